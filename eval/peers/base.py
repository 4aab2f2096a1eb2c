"""The Peer Protocol: a quality estimator fitted on the training turns that predicts each eval
turn's (n, k) P(adequate) per tier. Every peer tunes its own hyper-parameters by inner CV on the
training rows only (eval.peers.data.inner_folds), as carefully as training picks the router's
heads; eval then routes all of them with the same policy and costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eval.peers.data import FloatArray, PeerData

# Inner CV folds for tuning: as many as training uses to pick the router's heads.
INNER_FOLDS = 3


@dataclass(frozen=True)
class PeerFit:
    probs: FloatArray  # (n_test, k) P(adequate), tier columns cheapest first
    params: dict[str, Any] = field(default_factory=dict)  # what inner CV chose


class Peer(Protocol):
    name: str
    label: str  # what the report calls it

    def fit_predict(self, train: PeerData, test: PeerData, seed: int) -> PeerFit:
        """Fit on `train` (its labels only) and predict `test`; deterministic for a seed."""
        ...
