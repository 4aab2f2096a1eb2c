"""Run an ASGI app under a real uvicorn in a thread on a free loopback port (lifespan included),
for tests that need real HTTP: the anthropic SDK, streaming, TierwiseClient."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_app(app: ASGIApp, timeout_s: float = 10.0, **config: Any) -> Iterator[str]:
    """Yield the server's base URL (http://127.0.0.1:PORT); stop it (and its lifespan) on exit.
    `config`: more uvicorn.Config options (e.g. http=a protocol class)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", **config)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start (see the log above)")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
