"""Quality, agreement and calibration metrics on hand-built arrays, expectations from definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from eval.quality import (
    calibration,
    cohen_kappa,
    judge_agreement,
    pearson,
    quality_by_category,
    roc_auc,
    spearman,
    tier_quality,
)
from router.core.tiers import TIER_ORDER

NAN = float("nan")


def test_tier_quality_ignores_missing_labels_and_reports_n() -> None:
    scores = np.array([[0.2, 1.0, NAN], [0.4, NAN, NAN], [NAN, 0.5, 0.9]])
    adequate = (scores >= 0.5).astype(np.float64)
    adequate[np.isnan(scores)] = NAN
    haiku, sonnet, opus = tier_quality(scores, adequate, TIER_ORDER)
    assert (haiku.n, haiku.mean_score, haiku.adequate_rate) == (2, pytest.approx(0.3), 0.0)
    assert (sonnet.n, sonnet.mean_score, sonnet.adequate_rate) == (2, 0.75, 1.0)
    assert (opus.n, opus.mean_score) == (1, 0.9)
    by_cat = quality_by_category(scores, adequate, ["b", "a", "b"], TIER_ORDER)
    assert [(c.category, c.n) for c in by_cat] == [("a", 1), ("b", 2)]
    assert by_cat[0].tiers[0].n == 1 and by_cat[0].tiers[2].n == 0
    assert math.isnan(by_cat[0].tiers[2].mean_score)


def test_kappa_from_its_definition() -> None:
    a = np.array([1, 1, 0, 0], dtype=bool)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, ~a) == -1.0  # p_obs 0, p_chance 0.5
    assert cohen_kappa(a, np.array([1, 0, 1, 0], dtype=bool)) == 0.0  # p_obs = p_chance = 0.5
    b = np.array([1, 1, 1, 0], dtype=bool)
    p_obs, p_chance = 3 / 4, 0.5 * 0.75 + 0.5 * 0.25
    assert cohen_kappa(a, b) == pytest.approx((p_obs - p_chance) / (1 - p_chance))
    assert math.isnan(cohen_kappa(np.ones(3, bool), np.ones(3, bool)))  # chance agreement is 1


def test_correlations_match_their_definitions() -> None:
    x = np.array([0.1, 0.4, 0.4, 0.9, 0.2])
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert spearman(x, x**3) == pytest.approx(1.0)  # monotone, not linear
    y = np.array([0.3, 0.1, 0.5, 0.5, 0.0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)  # with ties
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert math.isnan(pearson(x, np.ones(5)))


def test_identical_judges_agree_perfectly() -> None:
    s = np.array([0.2, 0.9, 0.6, 0.1])
    agree = judge_agreement("sonnet", "opus", s, s, s >= 0.5, s >= 0.5)
    assert (agree.n, agree.pearson, agree.kappa, agree.mean_abs_diff) == (4, 1.0, 1.0, 0.0)
    assert agree.spearman == pytest.approx(1.0)


def test_calibration_bins_ece_and_brier() -> None:
    # Bin [0.2, 0.3): four turns at 0.25, one adequate -> calibrated; bin [0.9, 1]: two at 0.9,
    # none adequate -> gap 0.9 on 2 of 6 turns.
    probs = np.array([0.25, 0.25, 0.25, 0.25, 0.9, 0.9])[:, None]
    adequate = np.array([1, 0, 0, 0, 0, 0], dtype=np.float64)[:, None]
    (cal,) = calibration(probs, adequate, TIER_ORDER[:1])
    assert cal.n == 6
    assert cal.ece == pytest.approx(2 / 6 * 0.9)
    assert cal.brier == pytest.approx((0.75**2 + 3 * 0.25**2 + 2 * 0.81) / 6)
    used = [b for b in cal.bins if b.n]
    assert [(b.lo, b.n, b.frac_adequate) for b in used] == [
        (pytest.approx(0.2), 4, 0.25),
        (pytest.approx(0.9), 2, 0.0),
    ]
    assert len(cal.bins) == 10


def test_calibration_skips_unlabeled_rows_and_puts_one_in_the_last_bin() -> None:
    probs = np.array([[1.0], [0.0], [0.5]])
    adequate = np.array([[1.0], [0.0], [NAN]])
    (cal,) = calibration(probs, adequate, TIER_ORDER[:1])
    assert cal.n == 2 and cal.ece == 0.0 and cal.brier == 0.0
    assert cal.bins[-1].n == 1 and cal.bins[0].n == 1


def test_auc_from_its_definition() -> None:
    y = np.array([1, 1, 0, 0], dtype=bool)
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0
    assert roc_auc(np.full(4, 0.5), y) == 0.5  # all tied: half credit per pair
    # Pairs (pos, neg): (0.9 > 0.5), (0.9 > 0.1), (0.3 < 0.5), (0.3 > 0.1) -> 3 of 4.
    assert roc_auc(np.array([0.9, 0.3, 0.5, 0.1]), y) == 0.75
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([True, True])))
