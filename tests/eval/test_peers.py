"""Peer routers on synthetic matrices with known structure: each recovers what it models."""

from __future__ import annotations

import numpy as np
import pytest

from eval.cli import PEER_CHOICES
from eval.peers import PEER_NAMES, PEERS
from eval.peers.data import PeerData, inner_folds, log_loss
from eval.peers.irt import fit_2pl
from eval.peers.knn import KnnPeer
from eval.peers.neural import MatrixFactorization, Mlp, masked_bce_grad
from eval.quality import roc_auc

K = 3


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-tier AUC over labeled cells."""
    out = []
    for j in range(labels.shape[1]):
        rows = ~np.isnan(labels[:, j])
        out.append(roc_auc(probs[rows, j], labels[rows, j] == 1.0))
    return float(np.mean(out))


def irt_world(n: int, seed: int = 0, n_aux: int = 20) -> tuple[PeerData, PeerData, np.ndarray]:
    """Items whose 2PL difficulty is linear in their features; 3 tiers (sonnet unlabeled on a
    fifth of the rows) and n_aux other models. Returns (train, test, the test rows' labels)."""
    rng = np.random.default_rng(seed)
    dim = 16
    x = rng.normal(size=(n, dim + 4))
    x[:, :dim] /= np.linalg.norm(x[:, :dim], axis=1, keepdims=True)
    b = x @ rng.normal(size=dim + 4) / 2 + rng.normal(scale=0.3, size=n)
    theta = np.concatenate([[-0.8, 0.2, 1.0], rng.normal(size=n_aux)])
    p = 1 / (1 + np.exp(-1.5 * (theta[None, :] - b[:, None])))
    y = (rng.random(p.shape) < p).astype(np.float64)
    tiers, aux = y[:, :K].copy(), y[:, K:]
    tiers[::5, 1] = np.nan
    cats = np.asarray(["a", "b"])[rng.integers(0, 2, n)]
    cut = int(0.7 * n)
    train = PeerData(x[:cut], dim, tiers[:cut], aux[:cut], cats[:cut])
    test = PeerData(x[cut:], dim, np.full((n - cut, K), np.nan), None, cats[cut:])
    return train, test, tiers[cut:]


def test_the_cli_lists_every_registered_peer() -> None:
    assert PEER_CHOICES == PEER_NAMES == ("knn", "mlp", "mf", "irt", "task_prior")


def test_2pl_recovers_known_abilities_and_difficulties() -> None:
    rng = np.random.default_rng(1)
    n, m = 400, 50
    b = rng.normal(size=n)
    log_a = rng.normal(scale=0.3, size=n)
    theta = np.sort(rng.normal(size=m))
    p = 1 / (1 + np.exp(-np.exp(log_a)[:, None] * (theta[None, :] - b[:, None])))
    y = (rng.random(p.shape) < p).astype(np.float64)
    mask = (rng.random(p.shape) > 0.1).astype(np.float64)  # 10% missing, like zeroeval's
    fit = fit_2pl(y * mask, mask)
    assert np.corrcoef(fit.theta, theta)[0, 1] > 0.98
    assert np.corrcoef(fit.b, b)[0, 1] > 0.9
    assert np.all(np.diff(fit.theta[[0, m // 2, m - 1]]) > 0)  # the order of abilities


@pytest.mark.parametrize("name", ["irt", "mf", "mlp"])
def test_difficulty_peers_recover_a_latent_difficulty(name: str) -> None:
    train, test, labels = irt_world(600)
    fit = PEERS[name].fit_predict(train, test, seed=0)
    assert fit.probs.shape == labels.shape
    prior = PEERS["task_prior"].fit_predict(train, test, seed=0)
    assert auc(fit.probs, labels) > 0.75 > auc(prior.probs, labels) + 0.15
    assert log_loss(labels, fit.probs) < log_loss(labels, prior.probs)
    # Stronger tiers look stronger on average.
    means = fit.probs.mean(axis=0)
    assert means[0] < means[2]


def test_irt_peer_recovers_the_tiers_abilities() -> None:
    train, test, _ = irt_world(600)
    fit = PEERS["irt"].fit_predict(train, test, seed=0)
    theta = fit.params["theta"]
    assert theta[0] < theta[1] < theta[2]  # -0.8 < 0.2 < 1.0 in the generating model


def clusters(n: int, noise: float, seed: int = 0) -> tuple[PeerData, PeerData, np.ndarray]:
    """Four tight clusters on the unit sphere, each with its own tier success rates."""
    rng = np.random.default_rng(seed)
    dim = 8
    centers = np.eye(dim)[:4]
    rates = np.array([[0.9, 0.95, 1.0], [0.1, 0.8, 0.9], [0.0, 0.1, 0.7], [0.5, 0.5, 0.5]])
    which = rng.integers(0, 4, n)
    emb = centers[which] + rng.normal(scale=noise, size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    x = np.hstack([emb, np.zeros((n, 4))])
    y = (rng.random((n, K)) < rates[which]).astype(np.float64)
    cats = np.full(n, "x")
    cut = n // 2
    train = PeerData(x[:cut], dim, y[:cut], None, cats[:cut])
    test = PeerData(x[cut:], dim, np.full((n - cut, K), np.nan), None, cats[cut:])
    return train, test, rates[which[cut:]]


def test_knn_recovers_each_clusters_rates_and_tunes_k() -> None:
    train, test, rates = clusters(1200, noise=0.05)
    fit = KnnPeer().fit_predict(train, test, seed=0)
    assert np.abs(fit.probs - rates).mean() < 0.06
    # Noisy 0/1 labels within a cluster: averaging many neighbours wins.
    assert fit.params["k"] >= 40


def test_knn_with_a_tier_labeled_nowhere_never_calls_it_adequate() -> None:
    train, test, _ = clusters(200, noise=0.05)
    adequate = train.adequate.copy()
    adequate[:, 1] = np.nan
    train = PeerData(train.features, train.dim, adequate, None, train.categories)
    fit = KnnPeer().fit_predict(train, test, seed=0)
    assert np.all(fit.probs[:, 1] == 0.0)


def test_task_prior_is_the_smoothed_category_rate() -> None:
    adequate = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, np.nan, 1]], dtype=np.float64)
    cats = np.array(["a", "a", "b", "b"])
    train = PeerData(np.zeros((4, 5)), 1, adequate, None, cats)
    test = PeerData(np.zeros((3, 5)), 1, np.full((3, 3), np.nan), None, np.array(["a", "b", "c"]))
    probs = PEERS["task_prior"].fit_predict(train, test, seed=0).probs
    overall = np.array([2 / 4, 2 / 3, 1.0])
    assert probs[0] == pytest.approx((np.array([1, 2, 2]) + overall) / (np.array([2, 2, 2]) + 1))
    assert probs[1] == pytest.approx((np.array([1, 0, 2]) + overall) / (np.array([2, 1, 2]) + 1))
    assert probs[2] == pytest.approx(overall)  # a category training never saw


@pytest.mark.parametrize(
    "net", [Mlp(5, 4, hidden=6, dropout=0.0), MatrixFactorization(5, 4, rank=3)]
)
def test_network_gradients_match_finite_differences(net: Mlp | MatrixFactorization) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    t = (rng.random((7, 4)) < 0.5).astype(np.float32)
    m = (rng.random((7, 4)) < 0.8).astype(np.float32)
    params = {k: v.astype(np.float64) for k, v in net.init(rng).items()}

    def loss(p: dict[str, np.ndarray]) -> float:
        logits, _ = net.forward(p, x.astype(np.float64), None)  # type: ignore[arg-type]
        z = np.asarray(logits, dtype=np.float64)
        return float((m * (np.logaddexp(0, z) - t * z)).sum() / m.sum())

    logits, cache = net.forward(params, x.astype(np.float64), None)  # type: ignore[arg-type]
    grads = net.backward(params, cache, masked_bce_grad(logits, t, m).astype(np.float64))  # type: ignore[arg-type]
    for key, value in params.items():
        flat = value.reshape(-1)
        for i in rng.choice(flat.size, size=min(5, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-5
            up = loss(params)
            flat[i] = old - 1e-5
            down = loss(params)
            flat[i] = old
            assert grads[key].reshape(-1)[i] == pytest.approx((up - down) / 2e-5, abs=1e-5)


def test_inner_folds_stratify_by_category_and_outcome() -> None:
    train, _, _ = irt_world(300)
    folds = inner_folds(train, 3, seed=0)
    assert len(folds) == 3
    covered = np.sort(np.concatenate([b for _, b in folds]))
    assert covered.tolist() == list(range(len(train)))
    for _, held in folds:
        share = (train.categories[held] == "a").mean()
        assert abs(share - (train.categories == "a").mean()) < 0.05
