"""Observer: what hears about every routing decision and every finished call (call log, metrics,
run spend, shadow model). Observers must be fast and must not raise; a failure is logged and
never reaches the caller."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from router.core.schemas import RouteDecision, RouteRequest
from router.http.calllog.record import CallRecord

log = logging.getLogger(__name__)


class Observer(Protocol):
    def on_route(self, request: RouteRequest, decision: RouteDecision) -> None:
        """A routing decision (/route, /route/batch or the gateway's), right after it is made."""
        ...

    def on_call(self, record: CallRecord) -> None:
        """A finished call: a /route decision as CallRecord.routed, or a gateway call once its
        upstream answer ended (usage included)."""
        ...


class Observers:
    """The app's observers, each told about every decision and every finished call in turn."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._observers = list(observers)

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def remove(self, observer: Observer) -> None:
        self._observers.remove(observer)

    def routed(self, pairs: Sequence[tuple[RouteRequest, RouteDecision]]) -> None:
        """Decisions of /route and /route/batch: on_route, then on_call with their records."""
        self.decided(pairs)
        for request, decision in pairs:
            self.finished(CallRecord.routed(request, decision))

    def decided(self, pairs: Sequence[tuple[RouteRequest, RouteDecision]]) -> None:
        for observer in self._observers:
            for request, decision in pairs:
                try:
                    observer.on_route(request, decision)
                except Exception:  # an observer bug must not fail routing
                    log.exception("observer %r failed on a decision", observer)

    def finished(self, record: CallRecord) -> None:
        for observer in self._observers:
            try:
                observer.on_call(record)
            except Exception:  # an observer bug must not fail the call
                log.exception("observer %r failed on a call", observer)
