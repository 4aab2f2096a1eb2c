"""RateLimitedLog: at most one record per interval, with how many were held back, so an event
that repeats per request (fallbacks under overload) cannot flood the log or fill the disk."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 1.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next = 0.0
        self._held = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log now (True) or count it for the next record (False)."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return False
            held, self._held, self._next = self._held, 0, now + self.interval_s
        suffix = f" (+{held} more in the last {self.interval_s:g} s)" if held else ""
        self.logger.log(level, msg + suffix, *args)
        return True
