"""Small multi-output networks trained with full-batch Adam on a masked binary cross-entropy, in
numpy (no torch in eval): the MLP and the RouteLLM-style matrix factorisation peers.

Outputs are columns of T (tiers first, then any auxiliary models), with mask M = 1 where a label
exists. Weight decay is L2 added to the gradient, as torch.optim.Adam's `weight_decay` does.
Hyper-parameters and the number of epochs are picked by inner-CV log loss on the tier columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from eval.peers.data import FloatArray, Folds, log_loss

Params = dict[str, NDArray[np.float32]]
# Validation loss is recorded every this many epochs; the chosen epoch count is a multiple.
EVAL_EVERY = 10


def sigmoid(x: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))
    return out


def linear_init(
    rng: np.random.Generator, fan_in: int, shape: tuple[int, ...]
) -> NDArray[np.float32]:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn.Linear's default for weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Network(Protocol):
    def init(self, rng: np.random.Generator) -> Params: ...

    def forward(
        self, params: Params, x: NDArray[np.float32], rng: np.random.Generator | None
    ) -> tuple[NDArray[np.float32], Any]:
        """(logits (n, outputs), what backward needs); rng given: training mode (dropout)."""
        ...

    def backward(self, params: Params, cache: Any, dlogits: NDArray[np.float32]) -> Params: ...


@dataclass(frozen=True)
class Mlp:
    """inputs -> hidden ReLU (dropout in training) -> one logit per output column."""

    n_in: int
    n_out: int
    hidden: int = 64
    dropout: float = 0.2

    def init(self, rng: np.random.Generator) -> Params:
        return {
            "w1": linear_init(rng, self.n_in, (self.n_in, self.hidden)),
            "b1": linear_init(rng, self.n_in, (self.hidden,)),
            "w2": linear_init(rng, self.hidden, (self.hidden, self.n_out)),
            "b2": linear_init(rng, self.hidden, (self.n_out,)),
        }

    def forward(
        self, params: Params, x: NDArray[np.float32], rng: np.random.Generator | None
    ) -> tuple[NDArray[np.float32], Any]:
        pre = x @ params["w1"] + params["b1"]
        h = np.maximum(pre, 0)
        keep = None
        if rng is not None and self.dropout > 0:
            keep = (rng.random(h.shape) >= self.dropout).astype(np.float32) / (1 - self.dropout)
            h = h * keep
        return h @ params["w2"] + params["b2"], (x, pre, h, keep)

    def backward(self, params: Params, cache: Any, dlogits: NDArray[np.float32]) -> Params:
        x, pre, h, keep = cache
        dh = dlogits @ params["w2"].T
        if keep is not None:
            dh = dh * keep
        dpre = dh * (pre > 0)
        return {
            "w1": x.T @ dpre,
            "b1": dpre.sum(axis=0),
            "w2": h.T @ dlogits,
            "b2": dlogits.sum(axis=0),
        }


@dataclass(frozen=True)
class MatrixFactorization:
    """RouteLLM's MF router: logit(model m, prompt x) = b_m + <v_m, W x>, one row of V per output
    column (tiers and auxiliary models share the prompt projection W)."""

    n_in: int
    n_out: int
    rank: int = 32

    def init(self, rng: np.random.Generator) -> Params:
        return {
            "w": linear_init(rng, self.n_in, (self.n_in, self.rank)),
            "v": (rng.normal(size=(self.n_out, self.rank)) * 0.1).astype(np.float32),
            "b": np.zeros(self.n_out, dtype=np.float32),
        }

    def forward(
        self, params: Params, x: NDArray[np.float32], rng: np.random.Generator | None
    ) -> tuple[NDArray[np.float32], Any]:
        z = x @ params["w"]
        return z @ params["v"].T + params["b"], (x, z)

    def backward(self, params: Params, cache: Any, dlogits: NDArray[np.float32]) -> Params:
        x, z = cache
        return {"w": x.T @ (dlogits @ params["v"]), "v": dlogits.T @ z, "b": dlogits.sum(axis=0)}


def masked_bce_grad(
    logits: NDArray[np.float32], t: NDArray[np.float32], m: NDArray[np.float32]
) -> NDArray[np.float32]:
    """d(mean masked BCE)/d logits."""
    p = sigmoid(logits).astype(np.float32)
    return ((p - t) * m / max(float(m.sum()), 1.0)).astype(np.float32)


def train(
    net: Network,
    x: FloatArray,
    t: FloatArray,
    m: FloatArray,
    weight_decay: float,
    epochs: int,
    lr: float,
    seed: int,
    val: tuple[FloatArray, FloatArray] | None = None,
    val_cols: int | None = None,
) -> tuple[Params, list[float]]:
    """Full-batch Adam (betas .9/.999, eps 1e-8). With `val` = (x_val, adequate_val (n, k) with
    NaN), the validation log loss on its first `val_cols` outputs every EVAL_EVERY epochs."""
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    x32, t32, m32 = (np.asarray(a, dtype=np.float32) for a in (x, t, m))
    mom = {k: np.zeros_like(v) for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    history: list[float] = []
    for epoch in range(1, epochs + 1):
        logits, cache = net.forward(params, x32, rng)
        grads = net.backward(params, cache, masked_bce_grad(logits, t32, m32))
        for k, p in params.items():
            g = grads[k] + weight_decay * p
            mom[k] = 0.9 * mom[k] + 0.1 * g
            vel[k] = 0.999 * vel[k] + 0.001 * g * g
            step = lr * (mom[k] / (1 - 0.9**epoch)) / (np.sqrt(vel[k] / (1 - 0.999**epoch)) + 1e-8)
            params[k] = (p - step).astype(np.float32)
        if val is not None and epoch % EVAL_EVERY == 0:
            probs = predict(net, params, val[0])
            cols = val_cols if val_cols is not None else probs.shape[1]
            history.append(log_loss(val[1][:, :cols], probs[:, :cols]))
    return params, history


def predict(net: Network, params: Params, x: FloatArray) -> FloatArray:
    logits, _ = net.forward(params, np.asarray(x, dtype=np.float32), None)
    return sigmoid(logits)


@dataclass(frozen=True)
class Tuned:
    config: Any
    epochs: int
    cv_log_loss: float


def tune(
    configs: Mapping[Any, tuple[Callable[[], Network], float]],
    x: FloatArray,
    t: FloatArray,
    m: FloatArray,
    adequate: FloatArray,
    folds: Folds,
    max_epochs: int,
    lr: float,
    seed: int,
) -> Tuned:
    """The (config, epochs) with the lowest mean inner-CV tier log loss; configs map a key to
    (network factory, weight decay). `adequate` (n, k) holds the tier labels with NaN."""
    k = adequate.shape[1]
    best: Tuned | None = None
    for key, (make, wd) in configs.items():
        curves: Sequence[list[float]] = [
            train(make(), x[a], t[a], m[a], wd, max_epochs, lr, seed, (x[b], adequate[b]), k)[1]
            for a, b in folds
        ]
        mean = np.nanmean(np.asarray(curves, dtype=np.float64), axis=0)
        i = int(np.nanargmin(mean))
        if best is None or mean[i] < best.cv_log_loss:
            best = Tuned(key, (i + 1) * EVAL_EVERY, float(mean[i]))
    assert best is not None
    return best
