"""When scoring fails or is slow, /route answers the configured fallback tier at once (at the
deadline, never later), says why, and counts it; a hung model cannot pile up threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray

from router.core.bundle import ModelBundle, load_bundle
from router.core.service import RoutingService
from router.http import scoring
from router.http.app import create_app
from router.http.inflight import InFlight
from router.http.rate_limited_log import RateLimitedLog
from router.http.state import app_state
from router.settings import Settings
from tests.fakes import FakeEmbedder
from tests.tiny_bundle import build_tiny_bundle


class BrokenEmbedder(FakeEmbedder):
    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise RuntimeError("onnxruntime exploded")


class HangingEmbedder(FakeEmbedder):
    """Blocks until released (or `max_s`), like a wedged model or a starved CPU."""

    def __init__(self, max_s: float = 5.0) -> None:
        super().__init__()
        self.release = threading.Event()
        self.max_s = max_s
        self.started = 0

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.started += 1
        self.release.wait(self.max_s)
        return super().embed(texts)


def client_for(bundle: ModelBundle, embedder: object, **settings: object) -> TestClient:
    swapped = ModelBundle(bundle.manifest, embedder, bundle.heads, bundle.path)  # type: ignore[arg-type]
    s = Settings(**settings)  # type: ignore[arg-type]
    return TestClient(create_app(s, service=RoutingService(swapped, s)))


def fallback_count(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('tierwise_route_fallbacks_total{endpoint="route"}'):
            return float(line.split()[-1])
    return 0.0


def test_scoring_failure_answers_fallback_and_counts(fake_bundle: ModelBundle) -> None:
    client = client_for(fake_bundle, BrokenEmbedder(), fallback_tier="opus")
    r = client.post("/route", json={"prompt": "hello"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "opus" and body["model"].startswith("claude-opus")
    assert body["fallback"] is True
    assert "scoring failed: RuntimeError: onnxruntime exploded" in body["reason"]
    r = client.post("/route/batch", json={"requests": [{"prompt": "a"}, {"prompt": "b"}]})
    assert [d["fallback"] for d in r.json()["decisions"]] == [True, True]
    client.post("/route", json={"prompt": "again", "max_tier": "sonnet"})
    assert fallback_count(client) == 4.0  # /route and each turn of /route/batch


@pytest.mark.parametrize("deadline_ms", [50, 200])
def test_slow_scoring_answers_at_the_deadline(fake_bundle: ModelBundle, deadline_ms: float) -> None:
    hang = HangingEmbedder()
    client = client_for(fake_bundle, hang, deadline_ms=deadline_ms)
    try:
        start = time.perf_counter()
        r = client.post("/route", json={"prompt": "hello", "min_tier": "opus"})
        elapsed = time.perf_counter() - start
    finally:
        hang.release.set()
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] is True and body["tier"] == "opus"  # clamped to min_tier
    assert f"exceeded the {deadline_ms:.0f} ms deadline" in body["reason"]
    # About the deadline: not before it, and nowhere near the 5 s the model would take.
    assert deadline_ms / 1000 * 0.9 <= elapsed < deadline_ms / 1000 + 0.5, elapsed
    assert body["latency_ms"] >= deadline_ms * 0.9
    assert fallback_count(client) == 1.0


def test_hung_model_cannot_pile_up_threads(fake_bundle: ModelBundle) -> None:
    hang = HangingEmbedder(max_s=10)
    client = client_for(fake_bundle, hang, deadline_ms=50, max_inflight_scoring=2)
    inflight: InFlight = app_state(client.app).inflight
    try:
        for _ in range(2):  # both time out; their threads keep hanging
            assert client.post("/route", json={"prompt": "x"}).json()["fallback"] is True
        assert inflight.running == 2
        start = time.perf_counter()
        body = client.post("/route", json={"prompt": "x"}).json()
        assert time.perf_counter() - start < 0.05 + 0.5
        assert body["fallback"] is True and body["reason"].startswith("fallback: overloaded")
        assert hang.started == 2  # the third never reached the model
    finally:
        hang.release.set()
    deadline = time.monotonic() + 5
    while inflight.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inflight.running == 0
    body = client.post("/route", json={"prompt": "hello"}).json()
    assert body["fallback"] is False


def test_ticket_dropped_before_start_gives_the_slot_back() -> None:
    inflight = InFlight(1)
    ticket = inflight.admit()
    assert ticket is not None and inflight.admit() is None
    ticket.drop()
    assert inflight.running == 0
    assert ticket.run(lambda: 1) is None  # a dropped ticket never runs its work
    ticket2 = inflight.admit()
    assert ticket2 is not None and ticket2.run(lambda: 7) == 7
    ticket2.drop()  # after running: a no-op
    assert inflight.running == 0


def test_bad_knobs_are_still_the_callers_error(fake_bundle: ModelBundle) -> None:
    """A 4xx the caller can fix is not masked as a fallback."""
    # A generous deadline: on a loaded box the 400 must not turn into a fallback's 200.
    client = client_for(fake_bundle, FakeEmbedder(), deadline_ms=10_000)
    r = client.post("/route", json={"prompt": "x", "quality_target": 0.999})
    assert r.status_code == 400 and "quality_target" in r.json()["error"]["message"]


def test_huge_prompt_is_scored_within_the_deadline(tmp_path: Path) -> None:
    """Only the head of a turn can reach the embedder's max_length tokens, so a 900 kB prompt
    must not cost the whole text's tokenisation (and a deadline fallback)."""
    bundle = load_bundle(build_tiny_bundle(tmp_path / "tiny"))
    settings = Settings(deadline_ms=50)
    client = TestClient(create_app(settings, service=RoutingService(bundle, settings)))
    for _ in range(3):
        body = client.post("/route", json={"prompt": "prove the theorem " * 50_000}).json()
        assert body["fallback"] is False, body["reason"]
        assert body["latency_ms"] < 50


def test_fallback_warnings_are_rate_limited(
    fake_bundle: ModelBundle, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under overload every request falls back; the log gets about one line a second."""
    monkeypatch.setattr(scoring, "_fallback_log", RateLimitedLog(scoring.log, interval_s=1.0))
    client = client_for(fake_bundle, BrokenEmbedder())
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="router.http.scoring"):
        for _ in range(50):
            assert client.post("/route", json={"prompt": "x"}).json()["fallback"] is True
    lines = [
        r for r in caplog.records if r.name == "router.http.scoring" and "fallback" in r.message
    ]
    assert 1 <= len(lines) <= 2 + (time.monotonic() - start)
    assert fallback_count(client) == 50.0


def test_rate_limited_log_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("tests.lograte"), interval_s=0.2)
    with caplog.at_level(logging.INFO, logger="tests.lograte"):
        assert limited.log(logging.INFO, "event %s", 1) is True
        assert [limited.log(logging.INFO, "event %s", i) for i in range(5)] == [False] * 5
        time.sleep(0.25)
        assert limited.log(logging.INFO, "event %s", 7) is True
    assert [r.getMessage() for r in caplog.records] == [
        "event 1",
        "event 7 (+5 more in the last 0.2 s)",
    ]


class PerTextEmbedder(FakeEmbedder):
    """Takes `per_text_s` per text, as the real embedder does (it runs each text alone)."""

    def __init__(self, per_text_s: float) -> None:
        super().__init__()
        self.per_text_s = per_text_s

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        time.sleep(self.per_text_s * len(texts))
        return super().embed(texts)


def test_batch_deadline_grows_with_the_number_of_turns(fake_bundle: ModelBundle) -> None:
    # 8 turns x 20 ms = 160 ms of work: within 8 x 50 ms, beyond the old 50 ms x sqrt(8).
    client = client_for(fake_bundle, PerTextEmbedder(0.02), deadline_ms=50)
    r = client.post("/route/batch", json={"requests": [{"prompt": f"q {i}"} for i in range(8)]})
    assert r.status_code == 200, r.text
    assert [d["fallback"] for d in r.json()["decisions"]] == [False] * 8
    # A single turn that takes longer than its own deadline still falls back.
    slow = client_for(fake_bundle, PerTextEmbedder(0.2), deadline_ms=50)
    assert slow.post("/route", json={"prompt": "q"}).json()["fallback"] is True
