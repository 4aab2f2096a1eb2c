"""ScoringSpeed: how long a loaded bundle takes to route a turn, as router.core.warmup measures
it at start-up (the service carries it; /version and /metrics report it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoringSpeed:
    short_turn_ms: float  # median wall time of routing a one-line turn
    long_turn_ms: float  # ... of a turn that fills the embedder's max_length tokens
    measured_at: float  # unix seconds
