"""InFlight: caps scoring calls running in worker threads, counting the ones abandoned past
their deadline (a thread cannot be killed, so it runs on after the caller got its fallback).

anyio releases its thread-limiter token as soon as an abandoned call's waiter is cancelled, so
it cannot bound these; a hung or very slow model would otherwise start a new thread per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Ticket:
    """One admitted call. Exactly one of start() (in the worker) and drop() (by the caller, if
    the worker never began) wins, and the slot is given back exactly once."""

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._state = "waiting"

    def run(self, fn: Callable[[], T]) -> T | None:
        with self._lock:
            if self._state != "waiting":
                return None  # the caller already gave up and gave the slot back
            self._state = "running"
        try:
            return fn()
        finally:
            self._owner.release()

    def drop(self) -> None:
        with self._lock:
            if self._state == "waiting":
                self._state = "dropped"
                self._owner.release()


class InFlight:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return self._running

    def admit(self) -> Ticket | None:
        """A ticket, or None when `limit` calls are already running."""
        with self._lock:
            if self._running >= self.limit:
                return None
            self._running += 1
        return Ticket(self)

    def release(self) -> None:
        with self._lock:
            self._running -= 1
