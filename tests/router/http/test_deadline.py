"""ROUTER_DEADLINE_MS at the millisecond, without racing a busy machine: the event loop runs on a
virtual clock that only the fake embedder moves, so scoring "takes" exactly deadline - 1 ms or
deadline + 1 ms whatever else the machine is doing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from router.agent.routing import AgentRouting
from router.agent.stores import open_stores
from router.core.bundle import ModelBundle
from router.core.schemas import RouteDecision, RouteRequest
from router.core.service import RoutingService
from router.http.inflight import InFlight
from router.http.scoring import score_with_deadline
from router.settings import Settings
from tests.fakes import FakeEmbedder

DEADLINE_MS = 50


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is the virtual clock: timers (anyio's deadline among them)
    fire when the clock has passed them, never because real time went by."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        clock.loop = self

    def time(self) -> float:
        return self.clock.now


class ClockedEmbedder(FakeEmbedder):
    """Scoring that takes `takes_ms` of virtual time. It moves the clock, then waits until the
    loop has run a callback at the new time before it returns: any timer due by then (the
    deadline) has fired while scoring was still running, as it would in real time."""

    def __init__(self, clock: VirtualClock, takes_ms: float) -> None:
        super().__init__()
        self.clock = clock
        self.takes_ms = takes_ms

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        assert self.clock.loop is not None
        self.clock.now += self.takes_ms / 1000
        # The loop runs this callback, then (in the same pass) every timer due at the new time;
        # this thread's result can only be taken up in a later pass.
        looked = threading.Event()
        self.clock.loop.call_soon_threadsafe(looked.set)
        assert looked.wait(5)
        return super().embed(texts)


def score(fake_bundle: ModelBundle, n_turns: int, takes_ms: float) -> list[RouteDecision]:
    """score_with_deadline, as /route and /route/batch call it, on `n_turns` turns."""
    clock = VirtualClock()
    embedder = ClockedEmbedder(clock, takes_ms)
    bundle = ModelBundle(fake_bundle.manifest, embedder, fake_bundle.heads, fake_bundle.path)
    settings = Settings(deadline_ms=DEADLINE_MS)
    service = RoutingService(bundle, settings, AgentRouting(settings, open_stores(settings)))
    requests = [RouteRequest(prompt=f"question {i}") for i in range(n_turns)]
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        return runner.run(score_with_deadline(service, requests, InFlight(4)))


@pytest.mark.parametrize(
    ("n_turns", "takes_ms", "fallback"),
    [
        (1, DEADLINE_MS - 1, False),
        (1, DEADLINE_MS + 1, True),
        # A batch of n gets n deadlines (docs/reliability.md): 4 turns, 200 ms.
        (4, 4 * DEADLINE_MS - 1, False),
        (4, 4 * DEADLINE_MS + 1, True),
    ],
    ids=["turn-under", "turn-over", "batch-under", "batch-over"],
)
def test_deadline_at_the_millisecond(
    fake_bundle: ModelBundle, n_turns: int, takes_ms: float, fallback: bool
) -> None:
    decisions = score(fake_bundle, n_turns, takes_ms)
    assert [d.fallback for d in decisions] == [fallback] * n_turns
    for d in decisions:
        if fallback:
            assert d.tier.value == "sonnet" and d.probabilities == {}  # ROUTER_FALLBACK_TIER
            assert d.reason == (
                f"fallback: scoring exceeded the {DEADLINE_MS * n_turns} ms deadline"
            )
        else:
            assert set(d.probabilities) == {"haiku", "sonnet", "opus"}
