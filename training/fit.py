"""Features and per-tier heads: (embedding ++ STRUCT_FEATURES) -> P(adequate | tier).

Features are built exactly as router.core.bundle.ModelBundle.features builds them at serve time.
Each tier's head is trained only on the records that carry that tier's label (partial labels),
and chosen among the candidate head types (training.head_types.HEADS) by cross-validated log loss.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline

from router.core.features import structure_matrix
from router.core.tiers import TIER_ORDER
from router.errors import RouterError
from training.data.logs import LabeledTurn, label_arrays
from training.head_types import HEADS, unknown_head

log = logging.getLogger(__name__)


class TrainingError(RouterError):
    """Training cannot proceed: a tier without labels, a single-class tier, an unknown head."""


@dataclass(frozen=True)
class TurnArrays:
    """Aligned per-turn arrays; tier columns in TIER_ORDER. Missing labels: labeled=False,
    scores=NaN, adequate=False."""

    features: NDArray[np.float32]  # (n, dim + len(STRUCT_FEATURES))
    scores: NDArray[np.float64]  # (n, k)
    labeled: NDArray[np.bool_]  # (n, k)
    adequate: NDArray[np.bool_]  # (n, k)
    tokens: NDArray[np.float64]  # (n,) approx input tokens, as the router prices them
    lengths: NDArray[np.float64]  # (n,) characters of the routed text

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, idx: NDArray[np.int64]) -> TurnArrays:
        return TurnArrays(
            self.features[idx],
            self.scores[idx],
            self.labeled[idx],
            self.adequate[idx],
            self.tokens[idx],
            self.lengths[idx],
        )

    @property
    def fully_labeled(self) -> NDArray[np.bool_]:
        return np.asarray(self.labeled.all(axis=1))


def build_features(
    turns: Sequence[LabeledTurn], embeddings: NDArray[np.float32]
) -> NDArray[np.float32]:
    """(n, dim + len(STRUCT_FEATURES)): the same hstack as ModelBundle.features."""
    structure = structure_matrix([t.turn() for t in turns])
    return np.hstack([embeddings, structure]).astype(np.float32)


def build_arrays(
    turns: Sequence[LabeledTurn], embeddings: NDArray[np.float32], adequacy_threshold: float
) -> TurnArrays:
    scores, adequate = label_arrays(turns, TIER_ORDER, adequacy_threshold)
    routed = [t.turn() for t in turns]
    return TurnArrays(
        features=build_features(turns, embeddings),
        scores=scores,
        labeled=~np.isnan(scores),
        adequate=adequate == 1.0,
        tokens=np.asarray([t.approx_tokens for t in routed], dtype=np.float64),
        lengths=np.asarray([len(t.text) for t in routed], dtype=np.float64),
    )


def label_pattern(labeled: NDArray[np.bool_], adequate: NDArray[np.bool_]) -> list[str]:
    """Per-row stratification key, e.g. '01-' (haiku no, sonnet yes, opus unlabeled)."""
    return [
        "".join("-" if not lab else str(int(ok)) for lab, ok in zip(lrow, arow, strict=True))
        for lrow, arow in zip(labeled, adequate, strict=True)
    ]


def split_holdout(
    labeled: NDArray[np.bool_], adequate: NDArray[np.bool_], fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(train indices, held-out indices), stratified by label pattern; patterns with fewer
    than two rows are pooled so every stratum can be split."""
    keys = label_pattern(labeled, adequate)
    counts = Counter(keys)
    keys = [k if counts[k] >= 2 else "rare" for k in keys]
    if Counter(keys)["rare"] == 1:
        keys = [counts.most_common(1)[0][0] if k == "rare" else k for k in keys]
    idx = np.arange(len(keys))
    train, test = train_test_split(idx, test_size=fraction, random_state=seed, stratify=keys)
    return np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)


def make_head(name: str, seed: int) -> Pipeline:
    """A fresh, unfitted head of the registered type `name` (training.head_types.HEADS)."""
    head = HEADS.get(name)
    if head is None:
        raise TrainingError(unknown_head(name))
    pipeline: Pipeline = head.build(seed)
    return pipeline


@dataclass(frozen=True)
class TierHead:
    tier: str
    name: str  # the chosen candidate
    estimator: Any  # fitted sklearn Pipeline with classes_ == [0, 1]
    n_train: int
    positive_rate: float
    cv_log_loss: dict[str, float]  # candidate -> mean CV log loss


def _fit_quietly(estimator: Any, x: NDArray[np.float32], y: NDArray[np.int64]) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y)
    for w in caught:
        log.warning("%s: %s", type(estimator[-1]).__name__, w.message)
    return estimator


def fit_tier_head(
    tier: str,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    candidates: Sequence[str],
    folds: int,
    seed: int,
) -> TierHead:
    """Pick the candidate with the lowest mean CV log loss, then refit it on all of (x, y)."""
    counts = np.bincount(y, minlength=2)
    if len(y) == 0:
        raise TrainingError(
            f"tier {tier!r} has no labeled records; every tier needs some scores to train"
        )
    if counts.min() < folds:
        raise TrainingError(
            f"tier {tier!r} has {counts[0]} inadequate and {counts[1]} adequate records; "
            f"need at least {folds} of each (cv_folds)"
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    losses: dict[str, float] = {}
    for name in candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fold_scores = cross_val_score(
                make_head(name, seed), x, y, cv=cv, scoring="neg_log_loss", n_jobs=1
            )
        losses[name] = float(-fold_scores.mean())
        log.info("tier %s head %s: CV log loss %.4f", tier, name, losses[name])
    best = min(losses, key=lambda n: (losses[n], n))
    estimator = _fit_quietly(make_head(best, seed), x, y)
    return TierHead(tier, best, estimator, len(y), float(y.mean()), losses)


def fit_heads(data: TurnArrays, candidates: Sequence[str], folds: int, seed: int) -> list[TierHead]:
    """One head per tier in TIER_ORDER, each on the rows labeled for that tier."""
    heads = []
    for j, tier in enumerate(TIER_ORDER):
        rows = data.labeled[:, j]
        y = data.adequate[rows, j].astype(np.int64)
        heads.append(fit_tier_head(tier.value, data.features[rows], y, candidates, folds, seed))
    return heads


def predict_proba(heads: Sequence[TierHead], x: NDArray[np.float32]) -> NDArray[np.float64]:
    """(n, k) sklearn P(adequate) per tier, TIER_ORDER columns."""
    return np.column_stack([h.estimator.predict_proba(x)[:, 1] for h in heads])


def head_metrics(
    heads: Sequence[TierHead], probs: NDArray[np.float64], data: TurnArrays
) -> dict[str, dict[str, float]]:
    """Per tier on its labeled held-out rows: n, AUC, log loss, Brier, base rate."""
    out: dict[str, dict[str, float]] = {}
    for j, head in enumerate(heads):
        rows = data.labeled[:, j]
        y = data.adequate[rows, j].astype(np.int64)
        p = probs[rows, j]
        m: dict[str, float] = {
            "n": float(len(y)),
            "positive_rate": float(y.mean()) if len(y) else 0,
        }
        if len(set(y.tolist())) == 2:
            m["auc"] = float(roc_auc_score(y, p))
            m["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
            m["brier"] = float(brier_score_loss(y, p))
        out[head.tier] = m
    return out
