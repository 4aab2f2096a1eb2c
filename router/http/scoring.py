"""score_with_deadline: the one way the app and the gateway score turns. Scoring runs in a worker
thread; past the deadline, on a scoring failure or when too many scoring calls are running, every
turn gets the fallback tier (fallback=True) instead of making the caller wait or fail."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial

import anyio

from router.core.schemas import RouteDecision, RouteRequest
from router.core.service import RoutingService
from router.errors import BadRequestError, RouterError, ScoringError
from router.http.inflight import InFlight, Ticket
from router.http.rate_limited_log import RateLimitedLog

log = logging.getLogger(__name__)
# Under overload every request falls back: one WARNING a second (with a count) keeps the log
# readable; GET /metrics still counts each fallback.
_fallback_log = RateLimitedLog(log, interval_s=1.0)


def _score(
    service: RoutingService, requests: Sequence[RouteRequest], ticket: Ticket | None
) -> list[RouteDecision]:
    if ticket is None:
        return service.route_many(requests)
    decisions = ticket.run(partial(service.route_many, requests))
    if decisions is None:
        raise ScoringError("scoring was dropped before it started")
    return decisions


async def score_with_deadline(
    service: RoutingService, requests: Sequence[RouteRequest], inflight: InFlight | None = None
) -> list[RouteDecision]:
    """One decision per request, in order. The caller gets its answer at the deadline even if
    the model hangs (the thread is abandoned and counted against `inflight`; when that many run,
    the fallback is answered at once). A BadRequestError (a bad knob) is raised, not fallen back.
    The decisions returned, fallbacks included, are then counted in their runs (off the event
    loop), exactly once: an abandoned scoring thread counts nothing."""
    decisions = await _decide(service, requests, inflight)
    if service.needs_recording(requests):
        await anyio.to_thread.run_sync(service.record, requests, decisions)
    return decisions


async def _decide(
    service: RoutingService, requests: Sequence[RouteRequest], inflight: InFlight | None
) -> list[RouteDecision]:
    start = time.perf_counter()
    # Each turn is embedded on its own (router/core/embedder.py), so a batch's work grows linearly.
    deadline_s = service.deadline_ms / 1000 * max(1, len(requests))
    ticket = inflight.admit() if inflight is not None else None
    if inflight is not None and ticket is None:
        reason = (
            f"overloaded: {inflight.limit} scoring calls already running "
            "(ROUTER_MAX_INFLIGHT_SCORING)"
        )
    else:
        try:
            with anyio.fail_after(deadline_s):
                return await anyio.to_thread.run_sync(
                    _score, service, requests, ticket, abandon_on_cancel=True
                )
        except TimeoutError:
            reason = f"scoring exceeded the {deadline_s * 1000:.0f} ms deadline"
        except RouterError as exc:
            if isinstance(exc, BadRequestError):
                raise
            reason = f"scoring failed: {exc}"
        except Exception as exc:  # any runtime failure of the model must not fail the caller
            log.exception("scoring failed")
            reason = f"scoring failed: {type(exc).__name__}: {exc}"
        finally:
            if ticket is not None:
                ticket.drop()  # gives the slot back only if the thread never started
    elapsed = (time.perf_counter() - start) * 1000
    _fallback_log.log(logging.WARNING, "fallback for %d turn(s): %s", len(requests), reason)
    return [service.fallback(r, reason, elapsed) for r in requests]
