"""Pure: out-of-fold predictions pooled into one routing problem per cross-validation repeat.

Each fold's model predicts the rows it did not train on; pooled, every row of the data has one
honest prediction per repeat, and eval routes and scores the pooled rows as one held-out set.
Each fold's bundle has its own utility policy (its reference turn cost comes from its own
training rows); pooled, each row is routed as its fold's policy routes it (fold_policy_costs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from router.core.policy import UtilityPolicy

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def pool_folds(n: int, parts: Sequence[tuple[IntArray, FloatArray]]) -> FloatArray:
    """(n, ...) rows of each part's (rows, values) put back in place; every row must come from
    exactly one part (the folds partition the rows)."""
    if not parts:
        raise ValueError("no folds to pool")
    seen = np.zeros(n, dtype=np.int64)
    first = np.asarray(parts[0][1])
    out = np.full((n, *first.shape[1:]), np.nan)
    for rows, values in parts:
        np.add.at(seen, rows, 1)
        out[rows] = values
    if not (seen == 1).all():
        bad = np.flatnonzero(seen != 1)
        raise ValueError(
            f"folds do not partition the rows: row {bad[0]} is in {seen[bad[0]]} folds"
        )
    return out


def fold_policy_costs(
    believed: FloatArray, folds: IntArray, policies: Sequence[UtilityPolicy]
) -> FloatArray:
    """(n, k) believed costs of pooled rows as fold f's policy weighs them (each row divided by
    its size m, UtilityPolicy.size), so UtilityPolicy() without a reference, swept over the
    pooled rows, makes every row's choice its own fold's policy makes at the same knob:
    argmin cost + (1 - quality) V m = argmin cost / m + (1 - quality) V."""
    out = np.empty_like(believed, dtype=np.float64)
    for f, policy in enumerate(policies):
        rows = folds == f
        sizes = np.asarray([policy.size(float(c)) for c in believed[rows].max(axis=1)])
        out[rows] = believed[rows] / sizes[:, None]
    return out
