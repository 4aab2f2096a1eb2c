"""What a peer router sees: the bundle's features of the training and eval turns, and the
training turns' labels (tiers, other models, category). Arrays in the conventions of eval.curves:
tier columns cheapest first (TIER_ORDER); NaN where a tier or an auxiliary model is unlabeled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedKFold

from router.core.tiers import TIER_ORDER
from training.data.logs import LabeledTurn, label_arrays

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Folds = list[tuple[IntArray, IntArray]]
# Probabilities are clipped here before log loss: a peer predicting exactly 0 or 1 on a turn it
# gets wrong is penalised heavily but finitely.
EPS = 1e-4


@dataclass(frozen=True)
class PeerData:
    """Rows of turns: `features` (n, dim + structure) exactly as the bundle builds them
    (ModelBundle.features), embedding columns first; `adequate` (n, k) 1/0/NaN; `aux` (n, m)
    other models' 1/0/NaN (None: no auxiliary outcomes); `categories` (n,) the turn's category."""

    features: FloatArray
    dim: int
    adequate: FloatArray
    aux: FloatArray | None
    categories: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def embeddings(self) -> FloatArray:
        return self.features[:, : self.dim]

    def subset(self, idx: IntArray) -> PeerData:
        return PeerData(
            self.features[idx],
            self.dim,
            self.adequate[idx],
            None if self.aux is None else self.aux[idx],
            self.categories[idx],
        )

    def targets(self, use_aux: bool) -> tuple[FloatArray, FloatArray]:
        """(T, M): the tiers' adequacy, then (use_aux) every auxiliary model's, with NaN -> 0 in
        T and the labeled mask as 1.0/0.0 in M."""
        cols = self.adequate
        if use_aux and self.aux is not None:
            cols = np.hstack([cols, self.aux])
        mask = (~np.isnan(cols)).astype(np.float64)
        return np.nan_to_num(cols), mask


def aux_names(turns: Sequence[LabeledTurn]) -> list[str]:
    """Every auxiliary model named in `turns`, sorted (the aux column order)."""
    return sorted({name for t in turns for name in (t.aux or {})})


def aux_matrix(
    turns: Sequence[LabeledTurn], names: Sequence[str], adequacy: float
) -> FloatArray | None:
    """(n, len(names)) 1.0 when that model's score >= adequacy, 0.0 below, NaN without a result;
    None when there are no names."""
    if not names:
        return None
    col = {name: j for j, name in enumerate(names)}
    out = np.full((len(turns), len(names)), np.nan)
    for i, t in enumerate(turns):
        for name, outcome in (t.aux or {}).items():
            if name in col:
                out[i, col[name]] = float(outcome.score >= adequacy)
    return out


def peer_data(
    turns: Sequence[LabeledTurn],
    features: NDArray[np.floating[Any]],
    dim: int,
    adequacy: float,
    names: Sequence[str] = (),
) -> PeerData:
    """PeerData of labeled turns; `names` are the auxiliary models to read (aux_names of the
    training turns; eval turns need none, peers never see their labels)."""
    _, adequate = label_arrays(turns, TIER_ORDER, adequacy)
    cats = np.asarray([t.category or "(none)" for t in turns], dtype=str)
    aux = aux_matrix(turns, names, adequacy)
    return PeerData(np.asarray(features, dtype=np.float64), dim, adequate, aux, cats)


def log_loss(adequate: FloatArray, probs: FloatArray) -> float:
    """Mean binary log loss over the labeled cells of (n, k) `adequate`."""
    mask = ~np.isnan(adequate)
    y, p = adequate[mask], np.clip(probs[mask], EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else float("nan")


def inner_folds(data: PeerData, n_folds: int, seed: int) -> Folds:
    """Stratified folds of the training rows for tuning (never the eval rows): by category and
    the adequacy of the cheapest and top tier; strata too small for every fold are pooled."""
    a = data.adequate
    ends = np.where(np.isnan(a[:, [0, -1]]), -1, a[:, [0, -1]]).astype(int)
    keys = [f"{c}|{lo}{hi}" for c, (lo, hi) in zip(data.categories, ends, strict=True)]
    counts = Counter(keys)
    keys = [k if counts[k] >= n_folds else "rare" for k in keys]
    if Counter(keys)["rare"] < n_folds:
        keys = [counts.most_common(1)[0][0] if k == "rare" else k for k in keys]
    cv = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    return [
        (tr.astype(np.int64), te.astype(np.int64)) for tr, te in cv.split(np.zeros(len(keys)), keys)
    ]


def standardize(train: FloatArray, test: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Both scaled by the training rows' mean and standard deviation."""
    mu, sd = train.mean(axis=0), train.std(axis=0) + 1e-6
    return (train - mu) / sd, (test - mu) / sd
