"""The scoring deadline fits the machine: each loaded bundle is timed at start-up and on reload,
the effective deadline is at least ROUTER_DEADLINE_FLOOR_FACTOR x the long-turn time, and both
are reported in /version and /metrics next to the fallback counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.core.speed import ScoringSpeed
from router.core.warmup import effective_deadline_ms, long_turn
from router.http.app import create_app
from router.settings import Settings

# Below anything a real machine can score a full turn in.
IMPOSSIBLE_MS = 0.05


def client_for(models: Path, **settings: object) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=models, **settings))) as client:  # type: ignore[arg-type]
        yield client


@pytest.mark.parametrize(
    ("configured", "long_ms", "factor", "want"),
    [(50, 10.0, 3, 50), (50, 30.0, 3, 90), (50, 30.0, 0, 50), (200, 60.0, 3, 200)],
)
def test_effective_deadline(configured: float, long_ms: float, factor: float, want: float) -> None:
    speed = ScoringSpeed(short_turn_ms=1.0, long_turn_ms=long_ms, measured_at=0.0)
    assert effective_deadline_ms(configured, speed, factor) == want


def test_long_turns_meet_a_deadline_raised_to_what_the_machine_can_do(models: Path) -> None:
    # A generous factor: this test is about the mechanism, on a busy shared machine.
    for client in client_for(models, deadline_ms=IMPOSSIBLE_MS, deadline_floor_factor=50):
        version = client.get("/version").json()
        scoring = version["scoring_ms"]
        assert 0 < scoring["short_turn_ms"] and 0 < scoring["long_turn_ms"]
        deadline = version["deadline_ms"]
        assert deadline["configured"] == IMPOSSIBLE_MS and deadline["floor_factor"] == 50
        assert deadline["effective"] == round(50 * scoring["long_turn_ms"], 1) > IMPOSSIBLE_MS
        turn = long_turn(64)  # the tiny bundle's max_length
        decisions = [client.post("/route", json={"prompt": turn}).json() for _ in range(4)]
        assert not any(d["fallback"] for d in decisions), [d["reason"] for d in decisions]

        metrics = client.get("/metrics").text
        effective_s = deadline["effective"] / 1000
        assert f'tierwise_deadline_seconds{{kind="effective"}} {effective_s}' in metrics
        assert 'tierwise_scoring_warmup_seconds{turn="long"}' in metrics
        assert 'tierwise_route_fallbacks_total{endpoint="route"}' not in metrics  # none yet

        # A reload times the new bundle too.
        assert client.post("/admin/reload", json={"path": "tiny-v2"}).status_code == 200
        after = client.get("/version").json()
        assert after["model_version"] == "tiny-v2"
        assert after["scoring_ms"]["measured_at"] > scoring["measured_at"]


def test_factor_zero_keeps_the_configured_deadline_and_fallbacks_are_counted(
    models: Path,
) -> None:
    for client in client_for(models, deadline_ms=IMPOSSIBLE_MS, deadline_floor_factor=0):
        assert client.get("/version").json()["deadline_ms"]["effective"] == IMPOSSIBLE_MS
        decision = client.post("/route", json={"prompt": long_turn(64)}).json()
        assert decision["fallback"] and "deadline" in decision["reason"]
        metrics = client.get("/metrics").text
        assert 'tierwise_route_fallbacks_total{endpoint="route"} 1.0' in metrics
        assert 'tierwise_routes_total{endpoint="route",tier="sonnet"} 1.0' in metrics
