"""Several worker processes share sessions and budgets exactly: a real uvicorn with 2 workers on
the SQLite store, ~2,000 concurrent usage reports (a quarter of them repeats), gateway calls and
/route decisions for one run -> GET /runs/{id} has every count and dollar, each message once.
Without a shared store several workers refuse to start."""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.load_test import REPO, Server, serve
from router.core.economics import tier_for_model, usage_cost_usd
from router.core.schemas import Usage
from router.settings import Settings
from tests.fake_anthropic import FakeAnthropic
from tests.tiny_bundle import build_tiny_bundle

RUN = "agent-run-1"
CONNECTIONS = 32  # requests in flight at once, spread over both workers by the kernel


@dataclass(frozen=True)
class Load:
    reports: int  # usage reports posted
    unique: int  # distinct message ids among them: the rest repeat one already sent
    gateway_calls: int
    routes: int


LOADS = [
    pytest.param(Load(300, 225, 30, 30), id="quick"),
    pytest.param(Load(2_000, 1_500, 150, 150), id="2000-reports", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers") / "models"
    build_tiny_bundle(root / "tiny-v1")
    (root / "DEFAULT").write_text("tiny-v1\n")
    return root


@pytest.fixture
def two_workers(models: Path, tmp_path: Path) -> Iterator[tuple[Server, FakeAnthropic]]:
    with FakeAnthropic() as upstream:
        env = {
            "ROUTER_SESSION_URL": f"sqlite:///{tmp_path / 'state.db'}",
            "ROUTER_UPSTREAM_URL": upstream.base_url,
            "ROUTER_DEADLINE_MS": "2000",
        }
        with serve(models, env, workers=2) as server:
            yield server, upstream


def reports(load: Load) -> list[dict[str, Any]]:
    """load.reports usage reports of load.unique distinct messages, shuffled: a repeat may
    arrive while the first copy is still in flight on the other worker."""
    rng = random.Random(7)
    models = [spec.model for spec in Settings().tiers.values()]
    unique = [
        {
            "model": rng.choice(models),
            "message_id": f"msg_{i:05d}",
            "usage": {
                "input_tokens": rng.randint(100, 50_000),
                "output_tokens": rng.randint(1, 4_000),
                "cache_read_input_tokens": rng.choice([0, rng.randint(0, 100_000)]),
                "cache_creation_input_tokens": rng.choice([0, rng.randint(0, 20_000)]),
            },
        }
        for i in range(load.unique)
    ]
    sent = unique + [rng.choice(unique) for _ in range(load.reports - load.unique)]
    rng.shuffle(sent)
    return sent


def cost(model: str, usage: dict[str, int]) -> float:
    settings = Settings()
    tier = tier_for_model(model, settings.tiers)
    assert tier is not None
    return usage_cost_usd(Usage(**usage), settings.tier_spec(tier), settings.prices)


async def send_all(url: str, load: Load, sent: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    """Every report, gateway call and /route at once, CONNECTIONS in flight at a time."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    in_flight = asyncio.Semaphore(CONNECTIONS)
    gate = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "x-tierwise-run-id": RUN}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def post(path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
            async with in_flight:
                return await client.post(path, json=body, **kw)

        posts = [post(f"/runs/{RUN}/usage", r) for r in sent]
        calls = [
            post(
                "/v1/messages",
                {
                    "model": "claude-opus-4-6",
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": f"question {i} " * (1 + i % 30)}],
                },
                headers=gate,
            )
            for i in range(load.gateway_calls)
        ]
        routes = [
            post("/route", {"prompt": f"turn {i} prove it", "run_id": RUN})
            for i in range(load.routes)
        ]
        everything = await asyncio.gather(*posts, *calls, *routes)
    n, g = len(posts), len(calls)
    return everything[:n], everything[n : n + g], everything[n + g :]


@pytest.mark.parametrize("load", LOADS)
def test_two_workers_count_a_run_exactly(
    two_workers: tuple[Server, FakeAnthropic], load: Load
) -> None:
    server, upstream = two_workers
    sent = reports(load)
    receipts, gateway, routed = asyncio.run(send_all(server.url, load, sent))
    assert all(r.status_code == 200 for r in [*receipts, *gateway, *routed]), {
        r.status_code for r in [*receipts, *gateway, *routed]
    }

    # Each message counted once, whichever worker saw it first.
    counted = [r.json() for r in receipts if r.json()["counted"]]
    assert len(counted) == load.unique
    assert len({r.json()["run"]["run_id"] for r in receipts}) == 1

    first: dict[str, dict[str, Any]] = {}
    for report in sent:
        first.setdefault(report["message_id"], report)
    want_calls: Counter[str] = Counter()
    want_usd = 0.0
    for report in first.values():
        want_calls[tier_for_model(report["model"], Settings().tiers).value] += 1  # type: ignore[union-attr]
        want_usd += cost(report["model"], report["usage"])
    for r in gateway:
        body = r.json()
        want_calls[r.headers["x-tierwise-tier"]] += 1
        want_usd += cost(body["model"], body["usage"])
    want_routed = Counter(r.headers["x-tierwise-tier"] for r in gateway)
    want_routed.update(r.json()["tier"] for r in routed)
    assert len(upstream.calls("/v1/messages")) == load.gateway_calls

    run = httpx.get(f"{server.url}/runs/{RUN}").json()
    tiers = ("haiku", "sonnet", "opus")
    assert run["calls"] == {t: want_calls[t] for t in tiers}
    assert sum(run["calls"].values()) == load.unique + load.gateway_calls
    assert run["routed"] == {t: want_routed[t] for t in tiers}
    assert sum(run["routed"].values()) == load.gateway_calls + load.routes
    assert math.isclose(run["spent_usd"], want_usd, rel_tol=1e-9)
    # Both workers answered (each process has its own Prometheus counters). Told apart by their
    # summed scoring latency: two workers can count the same number of routes (30 and 30).
    # Which one accepts a new connection is a race, so ask until both have (or 200 times).
    seen: set[float] = set()
    for _ in range(200):
        seen.add(_worker_latency(server.url))
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen


def _worker_latency(url: str) -> float:
    with httpx.Client(base_url=url) as fresh:  # a new connection: any worker may answer
        text = fresh.get("/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("tierwise_route_latency_seconds_sum{")
    )


def test_several_workers_without_a_shared_store_refuse_to_start(models: Path) -> None:
    with pytest.raises(RuntimeError) as err, serve(models, {"ROUTER_SESSION_URL": ""}, workers=2):
        pass
    assert "ROUTER_SESSION_URL is not set" in str(err.value)
    assert "--workers 2 on the command line" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_tierwise_serve_refuses_a_memory_store_for_several_workers(models: Path) -> None:
    env = {"ROUTER_MODEL_DIR": str(models), "ROUTER_SESSION_URL": "", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", "from tierwise.cli import main; main()", "serve", "--workers", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: 3 worker processes are configured (--workers 3) but ROUTER_SESSION_URL is not "
        "set, so each would keep its own sessions and budgets; set "
        "ROUTER_SESSION_URL=sqlite:///var/state.db (one machine) or redis://host:6379/0 (several)"
    )
