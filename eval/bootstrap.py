"""Pure: bootstrap intervals for APGR, so a lead can tell a real gap between policies from noise.

Turns are resampled with replacement (paired: every policy sees the same resample) and each
curve is recomputed on a coarser threshold grid; intervals are percentile intervals. Rows and
tiers follow eval.curves (complete rows only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.curves import (
    FloatArray,
    length_curve,
    random_curve,
    reference,
    routing_rows,
    sweep,
)
from router.core.policy import Policy

# Thresholds per resampled sweep: 50 moves APGR by < 0.005 against the full grid and keeps 200
# resamples of four policies to seconds.
BOOTSTRAP_SWEEP_POINTS = 50


@dataclass(frozen=True)
class ApgrInterval:
    name: str
    low: float
    high: float
    diff_low: float  # APGR(name) - APGR(router), same resample; 0 for the router itself
    diff_high: float


def apgr_intervals(
    probs: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    lengths: FloatArray | None = None,
    baselines: dict[str, FloatArray] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    policy: Policy | None = None,
) -> tuple[ApgrInterval, ...]:
    """Intervals for "router", "random", "length" (given lengths) and each baseline sweep, all
    routed with `policy` (default: the threshold policy)."""
    rows = routing_rows(scores)
    if rows is None or n_boot <= 0:
        return ()
    cols, complete = rows
    sub = np.ix_(complete, cols)
    s, c, p = scores[sub], costs[sub], probs[sub]
    lens = lengths[complete] if lengths is not None else None
    base = {name: b[sub] for name, b in (baselines or {}).items()}
    names: list[str] = ["router", "random", *(["length"] if lens is not None else []), *base]
    samples = np.empty((n_boot, len(names)))
    rng = np.random.default_rng(seed)
    for i in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        s_b, c_b = s[idx], c[idx]
        ref = reference(s_b, c_b)
        router = sweep("router", p[idx], s_b, c_b, ref, BOOTSTRAP_SWEEP_POINTS, policy)
        values = [router.apgr, random_curve(router, s_b, c_b, ref).apgr]
        if lens is not None:
            values.append(length_curve(router, lens[idx], s_b, c_b, ref).apgr)
        values += [
            sweep(n, b[idx], s_b, c_b, ref, BOOTSTRAP_SWEEP_POINTS, policy).apgr
            for n, b in base.items()
        ]
        samples[i] = values
    return _intervals(names, samples, level)


def _intervals(names: Sequence[str], samples: FloatArray, level: float) -> tuple[ApgrInterval, ...]:
    tail = (1 - level) / 2 * 100
    diffs = samples - samples[:, :1]
    out = []
    for j, name in enumerate(names):
        lo, hi = np.nanpercentile(samples[:, j], [tail, 100 - tail])
        dlo, dhi = np.nanpercentile(diffs[:, j], [tail, 100 - tail])
        out.append(ApgrInterval(name, float(lo), float(hi), float(dlo), float(dhi)))
    return tuple(out)
