"""kNN router: per tier, the adequate share among the k nearest training turns labeled for that
tier (cosine on the bundle's unit-norm embeddings), smoothed by one pseudo-count of the tier's
base rate; k by inner-CV log loss."""

from __future__ import annotations

import numpy as np

from eval.peers.base import INNER_FOLDS, PeerFit
from eval.peers.data import FloatArray, PeerData, inner_folds, log_loss

# Candidate k: 5 neighbours (local, noisy) to 160 (a smoothed regional rate).
KS = (5, 10, 20, 40, 80, 160)
# Eval rows per similarity block: bounds memory to CHUNK x n_train floats.
CHUNK = 1024


def knn_rates(
    train_emb: FloatArray,
    train_adequate: FloatArray,
    test_emb: FloatArray,
    ks: tuple[int, ...],
) -> dict[int, FloatArray]:
    """k -> (n_test, k_tiers) smoothed adequate share among the k nearest labeled rows."""
    n_tiers = train_adequate.shape[1]
    out = {k: np.zeros((len(test_emb), n_tiers)) for k in ks}
    for j in range(n_tiers):
        labeled = np.flatnonzero(~np.isnan(train_adequate[:, j]))
        if labeled.size == 0:
            for k in ks:
                out[k][:, j] = 0.0  # no labels: never looks adequate (the policy's fallback)
            continue
        y = train_adequate[labeled, j]
        base = float(y.mean())
        kmax = min(max(ks), labeled.size)
        emb = train_emb[labeled]
        for start in range(0, len(test_emb), CHUNK):
            sims = test_emb[start : start + CHUNK] @ emb.T
            top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
            order = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1)
            hits = np.cumsum(y[order], axis=1)
            for k in ks:
                kk = min(k, kmax)
                out[k][start : start + CHUNK, j] = (hits[:, kk - 1] + base) / (kk + 1)
    return out


class KnnPeer:
    name = "knn"
    label = "kNN (k tuned)"

    def __init__(self, ks: tuple[int, ...] = KS) -> None:
        self.ks = ks

    def fit_predict(self, train: PeerData, test: PeerData, seed: int) -> PeerFit:
        losses = dict.fromkeys(self.ks, 0.0)
        for a, b in inner_folds(train, INNER_FOLDS, seed):
            rates = knn_rates(train.embeddings[a], train.adequate[a], train.embeddings[b], self.ks)
            for k in self.ks:
                losses[k] += log_loss(train.adequate[b], rates[k])
        best = min(self.ks, key=lambda k: (losses[k], k))
        probs = knn_rates(train.embeddings, train.adequate, test.embeddings, (best,))[best]
        return PeerFit(probs, {"k": best})
