"""Tier mixes: the share of turns sent to each tier, and assignments at a given mix (random, or
longest turns to the priciest tiers). Training and eval compare a policy against these
baselines at the policy's own mix. Arrays in, arrays out; columns cheapest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def tier_mix(chosen: NDArray[np.integer[Any]], n_tiers: int) -> tuple[float, ...]:
    """Share of rows per tier index, cheapest first; zeros for no rows."""
    if len(chosen) == 0:
        return tuple(0.0 for _ in range(n_tiers))
    counts = np.bincount(np.asarray(chosen, dtype=np.int64), minlength=n_tiers)
    return tuple(float(c) for c in counts / len(chosen))


def mix_counts(mix: Sequence[float], n: int) -> IntArray:
    """Integer counts per tier summing to n, closest to `mix` (largest remainder)."""
    raw = np.asarray(mix, dtype=np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def random_at_mix(mix: Sequence[float], n: int, seed: int) -> IntArray:
    """A random assignment with exactly the given tier mix (seeded)."""
    counts = mix_counts(mix, n)
    chosen = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(chosen).astype(np.int64)


def length_at_mix(lengths: NDArray[np.floating[Any]], mix: Sequence[float]) -> IntArray:
    """Longer prompt -> higher tier: rank by length, fill tiers cheapest first at `mix`."""
    lengths = np.asarray(lengths)
    counts = mix_counts(mix, len(lengths))
    order = np.argsort(lengths, kind="stable")
    chosen = np.empty(len(lengths), dtype=np.int64)
    chosen[order] = np.repeat(np.arange(len(counts)), counts)
    return chosen
