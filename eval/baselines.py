"""Baseline routers that need fitting: kNN on training-set embeddings (sklearn lives here).

Each returns (n_eval, k) P(adequate) in tier column order, so it is swept exactly like the router.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsRegressor


def knn_probs(
    train_embeddings: NDArray[np.float32],
    train_adequate: NDArray[np.float64],
    eval_embeddings: NDArray[np.float32],
    n_neighbors: int,
) -> NDArray[np.float64]:
    """Per tier, the adequate share among the n_neighbors nearest training turns labeled for that
    tier (embeddings are unit-norm, so Euclidean order is cosine order). A tier with no training
    labels gets P = 0: the sweep then never picks it, except as the top-tier fallback."""
    out = np.zeros((len(eval_embeddings), train_adequate.shape[1]))
    for j in range(train_adequate.shape[1]):
        rows = ~np.isnan(train_adequate[:, j])
        if not rows.any():
            continue
        knn = KNeighborsRegressor(n_neighbors=min(n_neighbors, int(rows.sum())))
        knn.fit(train_embeddings[rows], train_adequate[rows, j])
        out[:, j] = knn.predict(eval_embeddings)
    return out
