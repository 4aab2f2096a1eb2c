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
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline

from router.core.features import feature_matrix
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

    features: NDArray[np.float32]  # (n, dim + len(STRUCT_FEATURES) [+ len(HAND_FEATURES)])
    scores: NDArray[np.float64]  # (n, k)
    labeled: NDArray[np.bool_]  # (n, k)
    adequate: NDArray[np.bool_]  # (n, k)
    tokens: NDArray[np.float64]  # (n,) approx input tokens, as the router prices them
    lengths: NDArray[np.float64]  # (n,) characters of the routed text
    tasks: NDArray[np.str_]  # (n,) category, else source, else "all"
    output_tokens: NDArray[np.float64]  # (n, k) each tier's answer tokens, NaN unknown
    aux: NDArray[np.float64]  # (n, m) other models' 1/0 adequacy, NaN missing
    aux_tokens: NDArray[np.float64]  # (n, m)

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, idx: NDArray[np.int64]) -> TurnArrays:
        return TurnArrays(*(getattr(self, f.name)[idx] for f in fields(self)))

    @property
    def fully_labeled(self) -> NDArray[np.bool_]:
        return np.asarray(self.labeled.all(axis=1))


def build_features(
    turns: Sequence[LabeledTurn], embeddings: NDArray[np.float32], hand: bool = False
) -> NDArray[np.float32]:
    """(n, dim + len(STRUCT_FEATURES) [+ len(HAND_FEATURES)]): the same hstack as
    ModelBundle.features for a manifest with (hand=True) or without hand features."""
    return feature_matrix(embeddings, [t.turn() for t in turns], hand)


def task_of(turn: LabeledTurn) -> str:
    """The task P(task) learns: the turn's category, else its source, else "all"."""
    return turn.category or turn.source or "all"


def build_arrays(
    turns: Sequence[LabeledTurn],
    embeddings: NDArray[np.float32],
    adequacy_threshold: float,
    hand: bool = False,
) -> TurnArrays:
    scores, adequate = label_arrays(turns, TIER_ORDER, adequacy_threshold)
    routed = [t.turn() for t in turns]
    output = np.full(scores.shape, np.nan)
    for i, t in enumerate(turns):
        for j, tier in enumerate(TIER_ORDER):
            s = t.scores.get(tier)
            if s is not None and s.output_tokens is not None:
                output[i, j] = s.output_tokens
    aux, aux_tokens = aux_arrays(turns, adequacy_threshold)
    return TurnArrays(
        features=build_features(turns, embeddings, hand),
        scores=scores,
        labeled=~np.isnan(scores),
        adequate=adequate == 1.0,
        tokens=np.asarray([t.approx_tokens for t in routed], dtype=np.float64),
        lengths=np.asarray([len(t.text) for t in routed], dtype=np.float64),
        tasks=np.asarray([task_of(t) for t in turns], dtype=str),
        output_tokens=output,
        aux=aux,
        aux_tokens=aux_tokens,
    )


def aux_arrays(
    turns: Sequence[LabeledTurn], adequacy_threshold: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(adequacy, answer tokens) of every auxiliary model (sorted by name), (n, m), NaN where a
    turn has no outcome of that model."""
    names = sorted({name for t in turns for name in (t.aux or {})})
    adequacy = np.full((len(turns), len(names)), np.nan)
    tokens = np.full_like(adequacy, np.nan)
    col = {name: j for j, name in enumerate(names)}
    for i, t in enumerate(turns):
        for name, outcome in (t.aux or {}).items():
            adequacy[i, col[name]] = float(outcome.score >= adequacy_threshold)
            if outcome.output_tokens is not None:
                tokens[i, col[name]] = outcome.output_tokens
    return adequacy, tokens


def label_pattern(labeled: NDArray[np.bool_], adequate: NDArray[np.bool_]) -> list[str]:
    """Per-row stratification key, e.g. '01-' (haiku no, sonnet yes, opus unlabeled)."""
    return [
        "".join("-" if not lab else str(int(ok)) for lab, ok in zip(lrow, arow, strict=True))
        for lrow, arow in zip(labeled, adequate, strict=True)
    ]


def split_holdout(
    labeled: NDArray[np.bool_],
    adequate: NDArray[np.bool_],
    fraction: float,
    seed: int,
    tasks: Sequence[str] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(train indices, held-out indices), stratified by task (when given) and label pattern;
    strata with fewer than two rows are pooled so every stratum can be split."""
    keys = label_pattern(labeled, adequate)
    if tasks is not None:
        keys = [f"{t}|{k}" for t, k in zip(tasks, keys, strict=True)]
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
    if head.build is None:
        raise TrainingError(f"head type {name!r} is stacked: training.stack fits it, not per tier")
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
    tiers: Sequence[str], probs: NDArray[np.float64], data: TurnArrays
) -> dict[str, dict[str, float]]:
    """Per tier on its labeled held-out rows: n, AUC, log loss, Brier, base rate."""
    out: dict[str, dict[str, float]] = {}
    for j, tier in enumerate(tiers):
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
        out[tier] = m
    return out
