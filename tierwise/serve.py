"""`tierwise serve`: uvicorn with the app factory, uvloop and httptools."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve /route on the bundle named by ROUTER_MODEL_DIR (default: models/DEFAULT)."""
    import uvicorn

    uvicorn.run(
        "router.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # Outlast the usual 60 s idle timeout of load balancers and client pools (scripts/serve).
        timeout_keep_alive=75,
    )
