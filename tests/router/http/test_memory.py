"""A real uvicorn server keeps its memory bounded under a barrage of hostile requests (10 MB
bodies, chunked bodies, deep nesting, invalid UTF-8, 900 kB prompts, full batches) and model
reloads: every answer is < 500, the process survives, and its RSS grows by less than a generous
bound."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psutil
import pytest

from benchmarks.load_test import Server, serve
from tests.tiny_bundle import build_tiny_bundle

# Steady state after a warm-up round; glibc keeps some freed arenas, so this is generous.
MAX_GROWTH_MB = 64
ROUNDS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundle = build_tiny_bundle(tmp_path_factory.mktemp("mem") / "tiny-v1")
    with serve(bundle, {"ROUTER_DEADLINE_MS": "2000"}) as server:
        yield server


def _chunks(data: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def barrage(client: httpx.Client) -> list[int]:
    huge = b'{"prompt": "' + b"x" * 10_000_000 + b'"}'
    big_prompt = json.dumps({"prompt": "word " * 180_000}).encode()  # ~900 kB, accepted
    deep = b'{"prompt": "hi", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    batch = json.dumps({"requests": [{"prompt": "hello " * 400}] * 256}).encode()
    bodies: list[tuple[str, bytes | Iterator[bytes]]] = []
    for _ in range(3):
        bodies += [("/route", huge), ("/route/batch", huge)]
        bodies += [("/route", _chunks(huge)), ("/route/batch", _chunks(huge))]
    for _ in range(10):
        bodies += [("/admin/reload", b"")] * 3  # each loads fresh ONNX sessions; old ones must go
        bodies += [("/route", big_prompt), ("/route", deep), ("/route/batch", batch)]
        bodies += [("/route", b'{"prompt": "\xff\xfe"}'), ("/route", b'{"prompt": NaN}')]
        bodies += [("/route", b'{"messages": [{"role": "robot", "content": 1}]}')]
    statuses = []
    for path, body in bodies:
        try:
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            statuses.append(r.status_code)
        except httpx.HTTPError:  # the server may close a connection whose body it refused
            statuses.append(0)
    return statuses


def test_rss_stays_bounded_under_a_hostile_barrage(server: Server) -> None:
    proc = psutil.Process(server.pid)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        barrage(client)  # warm-up: allocator arenas, thread pool, first-call caches
        before = proc.memory_info().rss
        statuses = [s for _ in range(ROUNDS) for s in barrage(client)]
        after = proc.memory_info().rss
        assert client.post("/route", json={"prompt": "still alive?"}).status_code == 200
    assert proc.is_running()
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert {200, 413, 422} <= set(statuses)
    growth_mb = (after - before) / 2**20
    print(f"RSS {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB over {len(statuses)} requests")
    assert growth_mb < MAX_GROWTH_MB, f"RSS grew {growth_mb:.1f} MB over {len(statuses)} requests"
