"""Shadow model (ROUTER_SHADOW_MODEL_DIR): a candidate bundle scored on live traffic, off the
request path. As an Observer it only enqueues (O(1), never blocks); one daemon thread scores in
batches and logs and counts agreement with the live decision. A full queue drops and counts, so
the shadow can never slow or fail a response, and its decisions are never returned.
"""

from __future__ import annotations

import logging
import queue
import threading

from prometheus_client import Counter

from router.agent.routing import AgentRouting
from router.agent.stores import memory_stores
from router.core.bundle import load_bundle
from router.core.schemas import RouteDecision, RouteRequest
from router.core.service import RoutingService
from router.http.calllog.record import CallRecord
from router.settings import Settings

log = logging.getLogger(__name__)

# Pairs waiting for the shadow; beyond this they are dropped (counted as "skipped").
QUEUE_SIZE = 256
# Pairs scored per RoutingService.route_many call.
BATCH = 32


class Shadow:
    def __init__(self, service: RoutingService, outcomes: Counter) -> None:
        self.service = service
        self.outcomes = outcomes
        self._queue: queue.Queue[tuple[RouteRequest, RouteDecision] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._thread = threading.Thread(target=self._work, name="tierwise-shadow", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str:
        return self.service.version

    def on_route(self, request: RouteRequest, decision: RouteDecision) -> None:
        """Observer: hand the pair to the shadow thread or drop it; never blocks."""
        try:
            self._queue.put_nowait((request, decision))
        except queue.Full:
            self.outcomes.labels("skipped").inc()

    def on_call(self, record: CallRecord) -> None:
        """Observer: the shadow needs only the decisions."""

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # daemon thread: it dies with the process

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._score(batch)
                    return
                batch.append(more)
            self._score(batch)

    def _score(self, batch: list[tuple[RouteRequest, RouteDecision]]) -> None:
        shadow: list[RouteDecision | None]
        try:
            shadow = list(self.service.route_many([request for request, _ in batch]))
        except Exception:  # one bad request (e.g. quality_target off the curve): score singly
            shadow = []
            for request, _ in batch:
                try:
                    shadow.append(self.service.route(request))
                except Exception as exc:
                    log.warning("shadow %s failed: %s: %s", self.version, type(exc).__name__, exc)
                    shadow.append(None)
        for (_, live), mine in zip(batch, shadow, strict=True):
            if mine is None:
                self.outcomes.labels("error").inc()
                continue
            outcome = "agree" if mine.tier == live.tier else "disagree"
            self.outcomes.labels(outcome).inc()
            log.info(
                "shadow %s: %s (live %s %s: %s)",
                self.version,
                mine.tier.value,
                live.model_version,
                live.tier.value,
                outcome,
            )


def load_shadow(settings: Settings, outcomes: Counter) -> Shadow | None:
    """The shadow for settings.shadow_model_dir, or None. A bad shadow bundle is logged, never
    fatal: the live model does not depend on it. Its RoutingService keeps private in-memory session
    state, so shadow decisions never touch the live sessions and runs."""
    if settings.shadow_model_dir is None:
        return None
    try:
        bundle = load_bundle(settings.shadow_model_dir, threads=settings.onnx_threads)
    except Exception:
        log.exception("shadow model at %s not loaded", settings.shadow_model_dir)
        return None
    log.info("shadow model %s loaded from %s", bundle.version, bundle.path)
    # Its own memory stores: shadow decisions never touch the live sessions and runs.
    agent = AgentRouting(settings, memory_stores(settings))
    return Shadow(RoutingService(bundle, settings, agent), outcomes)
