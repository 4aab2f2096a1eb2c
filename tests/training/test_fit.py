from __future__ import annotations

import numpy as np
import pytest

from router.core.bundle import ModelBundle
from router.core.features import Turn
from tests.fakes import FakeEmbedder
from tests.training.conftest import synthetic_turns
from training.fit import (
    TrainingError,
    build_arrays,
    build_features,
    fit_heads,
    make_head,
    predict_proba,
    split_holdout,
)


def arrays(n: int = 300, partial_every: int = 0):  # type: ignore[no-untyped-def]
    turns = synthetic_turns(n, partial_every=partial_every)
    emb = FakeEmbedder().embed([t.turn().text for t in turns])
    return turns, build_arrays(turns, emb, adequacy_threshold=0.5)


def test_features_match_serving(fake_bundle: ModelBundle) -> None:
    turns, _ = arrays(5)
    train_x = build_features(turns, FakeEmbedder().embed([t.turn().text for t in turns]))
    serve_x = fake_bundle.features([t.turn() for t in turns])
    assert isinstance(turns[0].turn(), Turn)
    assert np.array_equal(train_x, serve_x)


def test_partial_labels_train_each_tier_on_its_own_rows() -> None:
    _, data = arrays(300, partial_every=3)
    assert data.labeled[:, 1].sum() == 200 and data.labeled[:, [0, 2]].all()
    assert np.isnan(data.scores[~data.labeled]).all()
    heads = fit_heads(data, ["logreg_c1"], folds=3, seed=0)
    assert [h.n_train for h in heads] == [300, 200, 300]
    probs = predict_proba(heads, data.features)
    assert probs.shape == (300, 3)
    # Harder synthetic turns need higher tiers: P(adequate) rises with the tier on average.
    assert probs[:, 0].mean() < probs[:, 1].mean() < probs[:, 2].mean()


def test_head_is_chosen_by_cv_log_loss() -> None:
    _, data = arrays(200)
    heads = fit_heads(data, ["logreg_c0.01", "logreg_c1", "mlp"], folds=3, seed=0)
    for h in heads:
        assert set(h.cv_log_loss) == {"logreg_c0.01", "logreg_c1", "mlp"}
        assert h.name == min(h.cv_log_loss, key=h.cv_log_loss.__getitem__)


def test_split_is_seeded_and_stratified() -> None:
    _, data = arrays(400, partial_every=4)
    a = split_holdout(data.labeled, data.adequate, 0.25, seed=3)
    b = split_holdout(data.labeled, data.adequate, 0.25, seed=3)
    c = split_holdout(data.labeled, data.adequate, 0.25, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    train, test = a
    assert len(test) == 100 and not set(train) & set(test)
    rate = data.adequate[:, 0].mean()
    assert abs(data.adequate[test, 0].mean() - rate) < 0.05


def test_tier_without_labels_is_refused() -> None:
    _, data = arrays(60, partial_every=1)  # no row has a sonnet label
    with pytest.raises(TrainingError, match="'sonnet' has no labeled records"):
        fit_heads(data, ["logreg_c1"], folds=3, seed=0)


def test_unknown_head_names_the_choices() -> None:
    with pytest.raises(TrainingError, match="expected one of.*logreg_c0.001.*mlp"):
        make_head("svm", seed=0)
