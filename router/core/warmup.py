"""Scoring speed measured at start-up, and the deadline floor it sets.

A deadline this machine cannot meet turns every long turn into a fallback: on a busy 2-core
host a 256-token turn took longer than the 50 ms default. So each loaded bundle is timed on a
short turn and on one that fills the embedder's max_length (the slowest a turn can be: longer
text is truncated), and the effective deadline is at least DEADLINE_FLOOR_FACTOR times the long
one (ROUTER_DEADLINE_FLOOR_FACTOR; docs/reliability.md).
"""

from __future__ import annotations

import statistics
import time

from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.core.speed import ScoringSpeed

# Warm-up calls before timing (the first onnxruntime runs allocate), then timed calls per turn.
WARMUP_CALLS = 2
TIMED_CALLS = 5
SHORT_TURN = "What is 7 + 5?"
_FILLER = "the quick brown fox jumps over the lazy dog "  # 9 words, about as many tokens


def long_turn(max_length: int) -> str:
    """A text of at least `max_length` tokens for any word-level or word-piece tokenizer."""
    return _FILLER * (max_length // 9 + 2)


def _median_ms(service: RoutingService, request: RouteRequest) -> float:
    for _ in range(WARMUP_CALLS):
        service.route(request)
    times = []
    for _ in range(TIMED_CALLS):
        start = time.perf_counter()
        service.route(request)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure_scoring(service: RoutingService) -> ScoringSpeed:
    """Time `service`'s bundle through the plain routing path (no agent state: no store calls)."""
    plain = RoutingService(service.bundle, service.settings)
    long = long_turn(service.bundle.manifest.embedder.max_length)
    return ScoringSpeed(
        short_turn_ms=round(_median_ms(plain, RouteRequest(prompt=SHORT_TURN)), 2),
        long_turn_ms=round(_median_ms(plain, RouteRequest(prompt=long)), 2),
        measured_at=time.time(),
    )


def effective_deadline_ms(configured_ms: float, speed: ScoringSpeed, factor: float) -> float:
    """The configured deadline, raised to `factor` x the long-turn time when that is higher."""
    floor = round(factor * speed.long_turn_ms, 1)
    return max(configured_ms, floor)


def with_measured_deadline(service: RoutingService) -> RoutingService:
    """`service` timed, with its deadline floored by ROUTER_DEADLINE_FLOOR_FACTOR (0: no floor).
    Blocks for a few dozen scoring calls: run it in a worker thread."""
    speed = measure_scoring(service)
    factor = service.settings.deadline_floor_factor
    deadline = effective_deadline_ms(service.settings.deadline_ms, speed, factor)
    return service.with_bundle(service.bundle, deadline_ms=deadline, speed=speed)
