"""The stacked heads (`stack4`, `stack2`): per-tier quality and answer length from the features.

Recipe (measured by repeated CV on real Claude outcomes, ../scratch/routing/FINDINGS.md):
1. Drop near-constant input columns (MiniLM has dimensions ~1e-33 that scaling would blow up).
2. P(task): a multinomial logistic on the features, trained from the turns' category/source.
3. Stage-1 targets: a 2PL IRT (training/irt.py) on the tiers' outcomes (plus auxiliary models'
   with use_aux) gives each prompt a difficulty and a discrimination; plus the prompt's mean
   centred log answer length. Ridge blocks regress them from the features: "embedding" (the
   embedding), "side" (structure + hand features + P(task)) and, in stack4, "tiers" (a direct
   linear-probability head per tier on all features). Cross-fitted, so stage 2 sees honest
   stage-1 outputs.
4. Stage 2, per tier on its labeled rows: a logistic on [stage 1, P(task), stage 1 x P(task)],
   C by CV log loss. This is where calibration happens.
5. Coverage guard: a tier with fewer than min_labels labels in a task is moved, on that task's
   prompts, to the mean of its neighbouring tiers: it stays uncertain where it was never seen.
6. Answer length per tier: a ridge on log1p(tokens), smearing-corrected; a constant when the
   logs have no lengths for the tier.
The result is a StackModel (plain arrays, training/stack_model.py) and honest out-of-fold
predictions for the training rows (the default operating point is chosen on them).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from training.irt import fit_2pl
from training.stack_model import StackModel, design, guard_mix, guarded, sigmoid

log = logging.getLogger(__name__)
Array = NDArray[np.float64]
# Ridge penalties tried by generalised cross-validation (per target): 1e-2 .. 1e4.
RIDGE_ALPHAS = np.logspace(-2, 4, 13)
EPS = 1e-4


@dataclass(frozen=True)
class StackData:
    """Training rows; tier columns cheapest first, NaN where unknown."""

    x: Array  # (n, n_inputs) [embedding, structure, hand] as served
    n_embedding: int  # the first n_embedding columns are the embedding
    tasks: NDArray[np.str_]  # (n,) category or source of each turn
    adequate: Array  # (n, k) 1/0, NaN unlabeled
    output_tokens: Array  # (n, k) the tier's answer tokens, NaN unknown
    aux: Array | None = None  # (n, m) other models' 1/0 outcomes, NaN missing
    aux_tokens: Array | None = None  # (n, m)


@dataclass(frozen=True)
class StackConfig:
    # Stage-1 blocks: stack4 has all three; stack2 leaves out the direct tier heads.
    blocks: tuple[str, ...] = ("embedding", "side", "tiers")
    use_aux: bool = False
    folds: int = 5
    # Stage-2 penalties tried per tier (CV log loss): it picked 0.01 on zeroeval.
    cs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    task_c: float = 0.1
    min_labels: int = 30
    default_output_tokens: float = 500.0
    # A column whose training std is below this is dropped (MiniLM's dead dims are ~1e-33).
    min_std: float = 1e-6
    # Tasks with fewer rows than this are pooled into "other" (P(task) needs examples).
    min_task_rows: int = 20
    seed: int = 0
    blas_threads: int = 1


@dataclass(frozen=True)
class StackFit:
    model: StackModel
    oof_probs: Array  # (n, k) out-of-fold quality of the training rows
    oof_tokens: Array  # (n, k) out-of-fold answer tokens
    dropped: list[int]  # input columns left out (near-constant)
    tasks: NDArray[np.str_]  # the (pooled) task of each training row
    label_counts: dict[str, list[int]]  # task -> labels per tier
    chosen_c: list[float | None]  # stage-2 C per tier (None: no model, uncertain everywhere)
    cv_log_loss: list[float | None]
    abilities: list[float]  # the 2PL theta of each tier on all training rows
    seconds: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._start
        self._start = now


def _scale(x: Array) -> tuple[Array, Array]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return mu, np.where(sd > 0, sd, 1.0)


def _fold(coef: Array, intercept: Array, mu: Array, sd: Array) -> tuple[Array, Array]:
    """A model fitted on (x - mu) / sd as weights and bias on raw x: coef (out, in)."""
    w = (coef / sd[None, :]).T
    return w, intercept - (mu / sd) @ coef.T


def _ridge(x: Array, y: Array) -> tuple[Array, Array]:
    """Ridge on standardised x, the penalty per target by exact leave-one-out error over
    RIDGE_ALPHAS (all from one eigen-decomposition), folded to raw x: W (in, targets), b."""
    y2 = y.reshape(len(y), -1)
    mu, sd = _scale(x)
    xs = (x - mu) / sd
    y_mean = y2.mean(axis=0)
    yc = y2 - y_mean
    # Eigen-decomposition of the Gram matrix (features x features): one per fit, whatever the
    # number of penalties; q = xs @ v holds the rotated rows.
    eig, v = np.linalg.eigh(xs.T @ xs)
    eig = np.clip(eig, 0.0, None)
    q = xs @ v
    qty = q.T @ yc
    q2 = q**2
    best = np.full(y2.shape[1], np.inf)
    coef = np.zeros((xs.shape[1], y2.shape[1]))
    for alpha in RIDGE_ALPHAS:
        inv = 1.0 / (eig + alpha)
        fitted = q @ (inv[:, None] * qty)
        hat = q2 @ inv + 1.0 / len(xs)  # leverage, the intercept's included
        err = (((yc - fitted) / (1.0 - hat)[:, None]) ** 2).mean(axis=0)
        better = err < best
        if better.any():
            c = v @ (inv[:, None] * qty)
            coef[:, better] = c[:, better]
            best[better] = err[better]
    return _fold(coef.T, y_mean, mu, sd)


def _ridge_masked(x: Array, y: Array) -> tuple[Array, Array]:
    """_ridge per target on the rows where that target is known (NaN: unknown); targets with
    the same known rows share one fit. A target known on no row gets zero weights."""
    y2 = y.reshape(len(y), -1)
    w = np.zeros((x.shape[1], y2.shape[1]))
    b = np.zeros(y2.shape[1])
    known = ~np.isnan(y2)
    groups: dict[bytes, list[int]] = {}
    for j in range(y2.shape[1]):
        groups.setdefault(known[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        rows = known[:, cols[0]]
        if rows.sum() < 2:
            continue
        wj, bj = _ridge(x[rows], y2[rows][:, cols])
        w[:, cols], b[cols] = wj, bj
    return w, b


def _logistic(
    x: Array, y: NDArray[np.int64], c: float, start: Any = None
) -> tuple[Array, Array, LogisticRegression]:
    """L2 logistic (multinomial for > 2 classes) on standardised x, folded to raw x, and the
    fitted estimator; `start`, a fitted one on the same classes, warm-starts it."""
    mu, sd = _scale(x)
    fit = LogisticRegression(C=c, max_iter=2000, warm_start=start is not None)
    if start is not None:
        fit.coef_, fit.intercept_ = start.coef_.copy(), start.intercept_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit.fit((x - mu) / sd, y)
    w, b = _fold(fit.coef_, fit.intercept_, mu, sd)
    return w, b, fit


def _logistic_path(
    x: Array, y: NDArray[np.int64], cs: Sequence[float]
) -> list[tuple[Array, Array]]:
    """_logistic at each C of an ascending grid, each fit warm-started from the previous one."""
    mu, sd = _scale(x)
    xs = (x - mu) / sd
    fit = LogisticRegression(max_iter=2000, warm_start=True)
    out = []
    for c in cs:
        fit.C = c
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit.fit(xs, y)
        out.append(_fold(fit.coef_, fit.intercept_, mu, sd))
    return out


def pool_tasks(tasks: Sequence[str], min_rows: int) -> NDArray[np.str_]:
    """Tasks with fewer than min_rows rows become "other" (joined to the largest if tiny)."""
    arr = np.asarray(tasks, dtype=str)
    names, counts = np.unique(arr, return_counts=True)
    rare = set(names[counts < min_rows].tolist())
    pooled = np.asarray(["other" if t in rare else t for t in arr.tolist()], dtype=str)
    names, counts = np.unique(pooled, return_counts=True)
    listed = names.tolist()
    if "other" in listed and len(listed) > 1 and counts[listed.index("other")] < 5:
        largest = names[np.argmax(np.where(names == "other", -1, counts))]
        pooled = np.where(pooled == "other", largest, pooled)
    return pooled


def _task_model(
    x: Array, tasks: NDArray[np.str_], names: list[str], cfg: StackConfig
) -> tuple[Array, Array, Array]:
    """(task_W, task_b) on x and the out-of-fold P(task) of the rows (n, K)."""
    n, k_tasks = len(x), len(names)
    if k_tasks == 1:
        return np.zeros((x.shape[1], 1)), np.zeros(1), np.ones((n, 1))
    codes = np.searchsorted(names, tasks)
    # The full fit first: it warm-starts the cross-fitting folds (same classes, close optimum).
    w, bias, full = _logistic(x, codes, cfg.task_c)
    oof = np.zeros((n, k_tasks))
    splits = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    for a, b in splits.split(x, codes):
        wa, ba, _ = _logistic(x[a], codes[a], cfg.task_c, start=full)
        oof[b] = _softmax(x[b] @ wa + ba) if wa.shape[1] > 1 else _two_tasks(x[b] @ wa + ba)
    if w.shape[1] == 1:
        w, bias = np.hstack([-w / 2, w / 2]), np.concatenate([-bias / 2, bias / 2])
    return w, bias, oof


def _two_tasks(logit: Array) -> Array:
    """A binary logistic's (n, 1) logit (sklearn's coef_ for two classes) as (n, 2) P(task)."""
    return _softmax(np.hstack([-logit / 2, logit / 2]))


def _softmax(logits: Array) -> Array:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


def stage1_targets(
    data: StackData, rows: NDArray[np.int64], use_aux: bool
) -> tuple[Array, list[str]]:
    """(len(rows), m) IRT difficulty and log discrimination, plus the mean centred log answer
    length when the rows have any; and their names. Fitted on `rows` only."""
    outcomes = data.adequate[rows]
    tokens = data.output_tokens[rows]
    if use_aux and data.aux is not None:
        outcomes = np.hstack([outcomes, data.aux[rows]])
        if data.aux_tokens is not None:
            tokens = np.hstack([tokens, data.aux_tokens[rows]])
    irt = fit_2pl(outcomes)
    cols, names = [irt.b, irt.log_a], ["difficulty", "log_discrimination"]
    if np.isfinite(tokens).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns and rows
            logs = np.log1p(tokens)
            logs = logs - np.nanmean(logs, axis=0)
            mean = np.nanmean(logs, axis=1)
        cols.append(np.where(np.isnan(mean), 0.0, mean))
        names.append("answer_length")
    return np.column_stack(cols), names


def _stage1(
    data: StackData,
    u: Array,
    n_kept_emb: int,
    n_kept: int,
    fit_rows: NDArray[np.int64],
    cfg: StackConfig,
) -> tuple[Array, Array, list[str]]:
    """Stage-1 ridge blocks fitted on fit_rows of u = [x_kept, T]: weights (u cols, m), bias."""
    targets, target_names = stage1_targets(data, fit_rows, cfg.use_aux)
    d_u = u.shape[1]
    weights, biases, names = [], [], []
    uf = u[fit_rows]
    for block in cfg.blocks:
        w_full = np.zeros((d_u, 0))
        if block in ("embedding", "side"):
            cols = np.arange(n_kept_emb) if block == "embedding" else np.arange(n_kept_emb, d_u)
            w, b = _ridge(uf[:, cols], targets)
            w_full = np.zeros((d_u, w.shape[1]))
            w_full[cols] = w
            names += [f"{block}:{t}" for t in target_names]
        elif block == "tiers":
            cols = np.arange(n_kept)
            w, b = _ridge_masked(uf[:, cols], data.adequate[fit_rows])
            w_full = np.zeros((d_u, w.shape[1]))
            w_full[cols] = w
            names += [f"tiers:{j}" for j in range(data.adequate.shape[1])]
        else:
            raise ValueError(f"unknown stage-1 block {block!r}")
        weights.append(w_full)
        biases.append(b)
    return np.hstack(weights), np.concatenate(biases), names


def _ll(y: Array, p: Array) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_stage2_tier(
    d: Array, y: Array, cfg: StackConfig
) -> tuple[Array, float, Array, float | None, float | None]:
    """One tier's logistic on its labeled rows of the design: (weights, bias, out-of-fold P of
    those rows, chosen C, its CV log loss). Too few labels of either kind: no model (zeros)."""
    yi = y.astype(np.int64)
    counts = np.bincount(yi, minlength=2)
    if counts.min() < 3:
        base = float(np.clip(y.mean(), EPS, 1 - EPS)) if len(y) else 0.5
        return (
            np.zeros(d.shape[1]),
            float(np.log(base / (1 - base))),
            np.full(len(y), base),
            None,
            None,
        )
    splits = list(StratifiedKFold(3, shuffle=True, random_state=cfg.seed).split(d, yi))
    cs = sorted(cfg.cs)
    oof = np.zeros((len(cs), len(y)))
    for a, b in splits:
        for i, (w, bias) in enumerate(_logistic_path(d[a], yi[a], cs)):
            oof[i, b] = sigmoid(d[b] @ w[:, 0] + bias[0])
    losses = [_ll(y, p) for p in oof]
    best = int(np.argmin(losses))  # the first (smallest C) among equal losses
    w, bias, _ = _logistic(d, yi, cs[best])
    return w[:, 0], float(bias[0]), oof[best], cs[best], losses[best]


def _lengths(u: Array, tokens: Array, cfg: StackConfig) -> tuple[Array, Array, Array, Array]:
    """Per-tier answer-length ridges on u: (len_W, len_b, smear, out-of-fold tokens)."""
    n, k = tokens.shape
    len_w, len_b = np.zeros((u.shape[1], k)), np.full(k, np.log1p(cfg.default_output_tokens))
    smear, oof = np.ones(k), np.full((n, k), cfg.default_output_tokens)
    for j in range(k):
        rows = np.flatnonzero(np.isfinite(tokens[:, j]))
        if len(rows) < 2 * cfg.folds:
            log.warning(
                "tier %d: %d answer lengths; assuming %s tokens",
                j,
                len(rows),
                cfg.default_output_tokens,
            )
            continue
        y = np.log1p(tokens[rows, j])
        for a, b in KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(rows):
            w, bias = _ridge(u[rows[a]], y[a])
            fitted = u[rows[a]] @ w[:, 0] + bias[0]
            s = float(np.mean(np.exp(y[a] - fitted)))
            oof[rows[b], j] = np.maximum(np.exp(u[rows[b]] @ w[:, 0] + bias[0]) * s - 1, 0)
        unlabeled = np.setdiff1d(np.arange(n), rows)
        w, bias = _ridge(u[rows], y)
        len_w[:, j], len_b[j] = w[:, 0], bias[0]
        smear[j] = float(np.mean(np.exp(y - (u[rows] @ w[:, 0] + bias[0]))))
        oof[unlabeled, j] = np.maximum(np.exp(u[unlabeled] @ w[:, 0] + bias[0]) * smear[j] - 1, 0)
    return len_w, len_b, smear, oof


def coverage_guard(counts: NDArray[np.int64], min_labels: int) -> Array:
    """(K, k) 1 where a tier has fewer than min_labels labels in a task that another tier
    has at least min_labels in (a partial label); a task too small for any tier is left to
    stage 2 rather than made uncertain for every tier."""
    covered_task = counts.max(axis=1, keepdims=True) >= min_labels
    out: Array = ((counts < min_labels) & covered_task).astype(np.float64)
    return out


def fit_stack(data: StackData, cfg: StackConfig) -> StackFit:
    """Fit the stacked heads on every row of `data` (see the module docstring), with BLAS on
    cfg.blas_threads threads: the matrices are small, and multi-threaded OpenBLAS slows
    down many times over when the cores are shared (measured: an SVD 12x slower at load 9)."""
    with threadpool_limits(cfg.blas_threads):
        return _fit_stack(data, cfg)


def _fit_stack(data: StackData, cfg: StackConfig) -> StackFit:
    timer = _Timer()
    n, k = data.adequate.shape
    sd = data.x.std(axis=0)
    kept = np.flatnonzero(sd >= cfg.min_std).astype(np.int64)
    dropped = np.flatnonzero(sd < cfg.min_std).tolist()
    xk = data.x[:, kept]
    n_kept_emb = int((kept < data.n_embedding).sum())
    tasks = pool_tasks(data.tasks, cfg.min_task_rows)
    names = sorted(set(tasks.tolist()))
    task_w, task_b, t_oof = _task_model(xk, tasks, names, cfg)
    timer.lap("task")

    u_oof = np.hstack([xk, t_oof])  # training rows see honest P(task) everywhere
    z_oof: Array | None = None
    for a, b in KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(xk):
        w, bias, s1_names = _stage1(data, u_oof, n_kept_emb, len(kept), a, cfg)
        z = u_oof[b] @ w + bias
        if z_oof is None:
            z_oof = np.zeros((n, z.shape[1]))
        z_oof[b] = z
    assert z_oof is not None
    s1_w, s1_b, s1_names = _stage1(data, u_oof, n_kept_emb, len(kept), np.arange(n), cfg)
    timer.lap("stage1")

    interact = len(names) > 1
    d_oof = design(z_oof, t_oof, interact)
    s2_w, s2_b = np.zeros((d_oof.shape[1], k)), np.zeros(k)
    raw_oof = np.zeros((n, k))
    chosen: list[float | None] = []
    losses: list[float | None] = []
    for j in range(k):
        lab = np.flatnonzero(~np.isnan(data.adequate[:, j]))
        w, bias, oof, c, loss = fit_stage2_tier(d_oof[lab], data.adequate[lab, j], cfg)
        s2_w[:, j], s2_b[j] = w, bias
        raw_oof[:, j] = sigmoid(d_oof @ w + bias)
        raw_oof[lab, j] = oof
        chosen.append(c)
        losses.append(loss)
    timer.lap("stage2")

    counts = {
        t: [int((~np.isnan(data.adequate[tasks == t, j])).sum()) for j in range(k)] for t in names
    }
    guard = coverage_guard(np.asarray([counts[t] for t in names]), cfg.min_labels)
    for j in range(k):
        if chosen[j] is None:  # no stage-2 model at all: uncertain everywhere
            guard[:, j] = 1.0
    mix, mix_b = guard_mix(guard)
    oof_probs = guarded(raw_oof, t_oof, guard, mix, mix_b)
    len_w, len_b, smear, oof_tokens = _lengths(u_oof, data.output_tokens, cfg)
    timer.lap("lengths")

    abilities = fit_2pl(data.adequate).theta.tolist()
    model = StackModel(
        n_inputs=data.x.shape[1],
        kept=kept,
        task_W=task_w,
        task_b=task_b,
        s1_W=s1_w,
        s1_b=s1_b,
        s2_W=s2_w,
        s2_b=s2_b,
        guard=guard,
        mix=mix,
        mix_b=mix_b,
        len_W=len_w,
        len_b=len_b,
        smear=smear,
        tasks=tuple(names),
        stage1=tuple(s1_names),
    )
    return StackFit(
        model, oof_probs, oof_tokens, dropped, tasks, counts, chosen, losses, abilities,
        timer.seconds,
    )  # fmt: skip
