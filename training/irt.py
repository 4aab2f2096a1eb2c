"""Two-parameter item response theory (2PL), fitted at training time only.

P(model j answers item i adequately) = sigmoid(a_i (theta_j - b_i)), a_i = exp(log_a_i): each
prompt has a difficulty b and a discrimination a, each model (tier or auxiliary model) an
ability theta. MAP with Gaussian priors (theta ~ N(0, 1), b ~ N(0, 2^2), log a ~ N(0, 0.5^2)),
scipy L-BFGS with analytic gradients; unobserved cells (NaN) are left out. Stage 1 of the
stacked heads regresses b and log a from the features (training/stack.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit

Array = NDArray[np.float64]
# Prior scales: abilities on the unit scale, difficulties a little wider (prompts vary more
# than models), discriminations near 1 (few models per prompt cannot pin them down).
PRIOR_THETA = 1.0
PRIOR_B = 2.0
PRIOR_LOG_A = 0.5


@dataclass(frozen=True)
class TwoPL:
    b: Array  # (n,) difficulty per item
    log_a: Array  # (n,) log discrimination per item
    theta: Array  # (m,) ability per model
    converged: bool


def _objective(params: Array, y: Array, observed: Array, n: int, m: int) -> tuple[float, Array]:
    b, log_a, theta = params[:n], params[n : 2 * n], params[2 * n :]
    a = np.exp(log_a)
    spread = theta[None, :] - b[:, None]
    logit = a[:, None] * spread
    # Binary cross-entropy from logits, stable: log(1 + e^z) - y z.
    nll = (np.logaddexp(0.0, logit) - y * logit) * observed
    loss = float(nll.sum())
    loss += float((b**2).sum() / (2 * PRIOR_B**2))
    loss += float((log_a**2).sum() / (2 * PRIOR_LOG_A**2))
    loss += float((theta**2).sum() / (2 * PRIOR_THETA**2))
    residual = (expit(logit) - y) * observed  # dloss/dlogit
    grad_b = -(residual * a[:, None]).sum(axis=1) + b / PRIOR_B**2
    grad_log_a = (residual * logit).sum(axis=1) + log_a / PRIOR_LOG_A**2
    grad_theta = (residual * a[:, None]).sum(axis=0) + theta / PRIOR_THETA**2
    return loss, np.concatenate([grad_b, grad_log_a, grad_theta])


def fit_2pl(outcomes: Array, max_iter: int = 500) -> TwoPL:
    """Fit on an (items, models) matrix of 0/1 outcomes, NaN where a model has none."""
    y_raw = np.asarray(outcomes, dtype=np.float64)
    observed = (~np.isnan(y_raw)).astype(np.float64)
    y = np.nan_to_num(y_raw)
    n, m = y.shape
    # Start each difficulty at its observed failure log-odds (smoothed), abilities at 0.
    accuracy = (y * observed).sum(axis=1) / np.maximum(observed.sum(axis=1), 1.0)
    b0 = -np.log((accuracy + 0.1) / (1.1 - accuracy))
    start = np.concatenate([b0, np.zeros(n), np.zeros(m)])
    result = minimize(
        _objective,
        start,
        args=(y, observed, n, m),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter},
    )
    p = result.x
    return TwoPL(p[:n], p[n : 2 * n], p[2 * n :], bool(result.success))
