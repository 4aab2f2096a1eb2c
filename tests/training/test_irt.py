"""The 2PL fit recovers known item and model parameters from a simulated outcome matrix."""

from __future__ import annotations

import numpy as np

from training.irt import fit_2pl


def simulate(n_items: int, abilities: np.ndarray, seed: int, missing: float = 0.0) -> tuple:
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1.2, n_items)
    log_a = rng.normal(0, 0.3, n_items)
    p = 1 / (1 + np.exp(-np.exp(log_a)[:, None] * (abilities[None, :] - b[:, None])))
    y = (rng.random(p.shape) < p).astype(float)
    y[rng.random(p.shape) < missing] = np.nan
    return y, b, log_a


def test_irt_recovers_known_abilities_and_difficulties() -> None:
    abilities = np.linspace(-1.5, 1.5, 12)
    y, b, _ = simulate(1500, abilities, seed=0, missing=0.2)
    fit = fit_2pl(y)
    assert fit.converged
    # Abilities: the right order and scale (the prior pulls them in a little: MAP, not MLE).
    assert np.array_equal(np.argsort(fit.theta), np.argsort(abilities))
    assert np.corrcoef(fit.theta, abilities)[0, 1] > 0.99
    assert np.max(np.abs(fit.theta - abilities)) < 0.35
    # Difficulties from 12 noisy answers each: strongly, not perfectly, recovered.
    assert np.corrcoef(fit.b, b)[0, 1] > 0.75


def test_irt_ignores_missing_cells() -> None:
    """A model with outcomes on only a random quarter of the items (a partial label) gets the
    same ability as its twin that answered them all; NaN cells are not read as failures."""
    abilities = np.array([-1.0, 0.0, 1.0, 1.0])
    y, _, _ = simulate(2000, abilities, seed=1)
    rng = np.random.default_rng(2)
    y[rng.random(len(y)) < 0.75, 3] = np.nan
    fit = fit_2pl(y)
    assert abs(fit.theta[3] - fit.theta[2]) < 0.2
    assert fit.theta[3] > fit.theta[1] + 0.6
