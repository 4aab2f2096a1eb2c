"""Task prior: each tier's adequate rate within the turn's category on the training turns
(plus one pseudo-count of the tier's overall rate). It knows the task and nothing about the
prompt: the bar any text-based router must clear."""

from __future__ import annotations

import numpy as np

from eval.peers.base import PeerFit
from eval.peers.data import PeerData


class TaskPriorPeer:
    name = "task_prior"
    label = "task/category prior"

    def fit_predict(self, train: PeerData, test: PeerData, seed: int) -> PeerFit:
        a = train.adequate
        labeled_all = (~np.isnan(a)).sum(axis=0)
        # A tier labeled nowhere gets 0: it never looks adequate (the policy's fallback only).
        overall = np.nansum(a, axis=0) / np.maximum(labeled_all, 1)
        probs = np.tile(overall, (len(test), 1)).astype(np.float64)
        for cat in np.unique(test.categories):
            rows = train.categories == cat
            labeled = ~np.isnan(a[rows])
            hits = np.nansum(a[rows], axis=0)
            probs[test.categories == cat] = (hits + overall) / (labeled.sum(axis=0) + 1)
        return PeerFit(probs, {"categories": int(len(np.unique(train.categories)))})
