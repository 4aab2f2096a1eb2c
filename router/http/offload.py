"""offload: work on a request body in a worker thread when the body is big enough to stall the
event loop (parsing, checking or re-serialising megabytes of base64 images)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

# Bodies from this size on are handled in a worker thread; below it a thread hop costs more
# than the work. A 1 MB body (/route's limit) is checked and parsed in ~2 ms (strict_json).
THREAD_BODY_BYTES = 1024 * 1024


async def offload(size: int, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), in a worker thread when the body it works on is `size` >= THREAD_BODY_BYTES."""
    if size < THREAD_BODY_BYTES:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)
