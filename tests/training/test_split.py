"""training.split on constructed turns: exact totals, per-category proportions, seeds."""

from __future__ import annotations

from collections import Counter

import pytest

from router.core.schemas import RouteRequest
from router.core.tiers import Tier
from training.data.logs import DataError, LabeledTurn, TierScore
from training.split import dedupe, fold_ids, label_pattern, sample, split_turns, strata


def turn(i: int, category: str, scores: dict[Tier, float], text: str | None = None) -> LabeledTurn:
    return LabeledTurn(
        id=f"t{i}",
        request=RouteRequest(prompt=text or f"question {i}"),
        scores={t: TierScore(score=v, source="ground_truth:x") for t, v in scores.items()},
        category=category,
        source="s",
    )


def many() -> list[LabeledTurn]:
    out = []
    for i in range(300):
        cat = "a" if i < 200 else "b"
        easy = i % 3 != 0
        scores = {Tier.HAIKU: float(easy), Tier.OPUS: 1.0}
        if cat == "a":
            scores[Tier.SONNET] = 1.0
        out.append(turn(i, cat, scores))
    return out


def test_label_pattern_marks_unlabeled_tiers() -> None:
    t = turn(0, "a", {Tier.HAIKU: 0.0, Tier.OPUS: 0.7})
    assert label_pattern(t) == "0-1"


def test_split_is_exact_proportional_and_seeded() -> None:
    turns = many()
    train, held = split_turns(turns, 0.2, seed=0)
    assert len(held) == 60 and len(train) == 240
    assert Counter(t.category for t in held) == {"a": 40, "b": 20}
    assert Counter(label_pattern(t) for t in held if t.category == "a") == {"111": 27, "011": 13}
    assert split_turns(turns, 0.2, seed=0) == (train, held)
    assert split_turns(turns, 0.2, seed=1)[1] != held
    assert [t.id for t in train] == sorted((t.id for t in train), key=lambda x: int(x[1:]))


def test_rare_patterns_are_pooled_within_their_category() -> None:
    turns = many()
    turns[5] = turn(5, "a", {Tier.HAIKU: 0.0, Tier.SONNET: 0.0, Tier.OPUS: 0.0})
    keys = strata(turns, 0.2)
    assert keys[5] == "s|a|rare" and keys[6] == "s|a|011" and keys[7] == "s|a|111"


def test_sample_and_dedupe() -> None:
    turns = many()
    assert len(sample(turns, 30, seed=2)) == 30 and sample(turns, 500, seed=2) == turns
    dup = [*turns[:3], turn(99, "a", {Tier.HAIKU: 1.0}, text="QUESTION 1  ")]
    kept, dropped = dedupe(dup)
    assert len(kept) == 3 and dropped == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_split_fraction_must_leave_both_sides(fraction: float) -> None:
    with pytest.raises(DataError, match="fraction"):
        split_turns(many(), fraction, seed=0)


@pytest.mark.parametrize("n_folds", [2, 3, 5])
def test_fold_ids_partition_every_category_and_pattern_evenly(n_folds: int) -> None:
    turns = many()
    folds = fold_ids(turns, n_folds, seed=7)
    assert sorted(set(folds.tolist())) == list(range(n_folds))
    sizes = Counter(folds.tolist())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for key in set(strata(turns, 1 / n_folds)):
        per = Counter(f for f, k in zip(folds, strata(turns, 1 / n_folds), strict=True) if k == key)
        counts = [per.get(f, 0) for f in range(n_folds)]
        assert max(counts) - min(counts) <= 1, key
    assert (fold_ids(turns, n_folds, seed=7) == folds).all()
    assert (fold_ids(turns, n_folds, seed=8) != folds).any()


def test_fold_ids_refuses_too_many_folds() -> None:
    with pytest.raises(DataError, match="folds"):
        fold_ids(many()[:3], 5, seed=0)
