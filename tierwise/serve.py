"""`tierwise serve`: uvicorn with the app factory, uvloop and httptools (scripts/serve runs it).

Before uvicorn starts, the configuration is checked here, in the parent process: a wrong
ROUTER_MODEL_DIR or a session store that does not fit the worker count is one line and exit
code 1 (uvicorn's own multi-worker supervisor would exit 0 after its workers failed). With
several workers it also defaults ROUTER_SESSION_URL to a shared SQLite file and
ROUTER_RELOAD_POLL_S to 5 s (POST /admin/reload reaches only one worker).
"""

from __future__ import annotations

import os

import click

# Defaults for several worker processes on one machine (docs/reliability.md).
MULTI_WORKER_DEFAULTS = {
    "ROUTER_SESSION_URL": "sqlite:///var/state.db",
    "ROUTER_RELOAD_POLL_S": "5",
}


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve /route on the bundle named by ROUTER_MODEL_DIR (default: models/DEFAULT)."""
    import uvicorn

    from router.agent.stores import Workers
    from router.errors import RouterError
    from router.http.startup import check_startup, load_settings

    # Every worker reads its worker count from here (router.agent.stores.configured_workers),
    # as uvicorn and gunicorn read their default from it.
    os.environ["WEB_CONCURRENCY"] = str(workers)
    if workers > 1:
        for name, value in MULTI_WORKER_DEFAULTS.items():
            os.environ.setdefault(name, value)
    try:
        check_startup(load_settings(), Workers(workers, f"--workers {workers}"))
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(
        "router.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        # httptools, with a bound on the time to receive headers (ROUTER_HEADER_TIMEOUT_S).
        http="router.http.protocol:HeaderTimeoutProtocol",
        access_log=False,
        # Outlast the usual 60 s idle timeout of load balancers and client pools.
        timeout_keep_alive=75,
    )
