"""IRT router: a two-parameter logistic item-response model fitted on every model's outcomes of
the training turns (the tiers and the auxiliary models), then each turn's difficulty b and log
discrimination regressed from the bundle features (ridge, alpha by GCV), so an unseen prompt gets
P(tier adequate) = sigmoid(a(x) * (theta_tier - b(x))).

    logit P(model j solves item i) = exp(la_i) * (theta_j - b_i)

fitted by MAP (L-BFGS, analytic gradient) with priors theta ~ N(0, 1), b ~ N(0, 2^2),
la ~ N(0, 0.5^2), which also fix the scale's location and unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import RidgeCV

from eval.peers.base import PeerFit
from eval.peers.data import FloatArray, PeerData, standardize
from eval.peers.neural import sigmoid

PRIOR_THETA, PRIOR_B, PRIOR_LOG_A = 1.0, 2.0, 0.5
# Ridge penalties searched by generalised cross-validation, per target.
ALPHAS = np.logspace(-2, 4, 13)


@dataclass(frozen=True)
class TwoPL:
    b: FloatArray  # (items,) difficulty
    log_a: FloatArray  # (items,) log discrimination
    theta: FloatArray  # (models,) ability

    def probs(self) -> FloatArray:
        return sigmoid(np.exp(self.log_a)[:, None] * (self.theta[None, :] - self.b[:, None]))


def _objective(params: FloatArray, t: FloatArray, m: FloatArray) -> tuple[float, FloatArray]:
    n, k = t.shape
    b, la, th = params[:n], params[n : 2 * n], params[2 * n :]
    a = np.exp(la)
    logit = a[:, None] * (th[None, :] - b[:, None])
    # softplus(z) - t z, stably
    nll = float(np.sum(m * (np.logaddexp(0.0, logit) - t * logit)))
    pen = (
        float(b @ b) / (2 * PRIOR_B**2)
        + float(la @ la) / (2 * PRIOR_LOG_A**2)
        + float(th @ th) / (2 * PRIOR_THETA**2)
    )
    r = m * (sigmoid(logit) - t)
    grad = np.concatenate(
        [
            -a * r.sum(axis=1) + b / PRIOR_B**2,
            (r * logit).sum(axis=1) + la / PRIOR_LOG_A**2,
            (r * a[:, None]).sum(axis=0) + th / PRIOR_THETA**2,
        ]
    )
    return nll + pen, grad


def fit_2pl(t: FloatArray, m: FloatArray, max_iter: int = 500) -> TwoPL:
    """MAP 2PL on (items, models) outcomes `t` (0/1) with labeled mask `m` (1.0/0.0)."""
    n, k = t.shape
    solved = (t * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
    b0 = -np.log((solved + 0.1) / (1.1 - solved))  # easy items start with low difficulty
    x0 = np.concatenate([b0, np.zeros(n), np.zeros(k)])
    res = minimize(
        _objective, x0, args=(t, m), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    x = res.x
    return TwoPL(x[:n], x[n : 2 * n], x[2 * n :])


class IrtPeer:
    name = "irt"
    label = "IRT-2PL"

    def __init__(self, use_aux: bool = True) -> None:
        self.use_aux = use_aux

    def fit_predict(self, train: PeerData, test: PeerData, seed: int) -> PeerFit:
        t, m = train.targets(self.use_aux)
        model = fit_2pl(t, m)
        x, x_test = standardize(train.features, test.features)
        ridge = RidgeCV(alphas=ALPHAS, alpha_per_target=True)
        ridge.fit(x, np.column_stack([model.b, model.log_a]))
        b_hat, log_a_hat = ridge.predict(x_test).T
        k = train.adequate.shape[1]
        theta = model.theta[:k]
        probs = sigmoid(np.exp(log_a_hat)[:, None] * (theta[None, :] - b_hat[:, None]))
        return PeerFit(
            probs,
            {
                "theta": [round(float(v), 3) for v in theta],
                "ridge_alpha": [float(v) for v in np.ravel(ridge.alpha_)],
                "models": t.shape[1],
            },
        )
