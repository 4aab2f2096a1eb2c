"""The stacked heads on real Claude 3 outcomes (zeroeval; FakeEmbedder text vectors plus the real
structure and hand features): the ONNX graph is the numpy model, a tier without labels in a
task stays uncertain there, and near-constant inputs cannot change the classifier."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.fakes import FakeEmbedder
from training.data.logs import load_labeled
from training.fit import TurnArrays, build_arrays, split_holdout
from training.head_types import HEADS
from training.stack import StackFit
from training.stack_heads import fit_stacked
from training.stack_model import OUTPUT_TOKENS, PROBABILITIES, from_onnx, to_onnx

LABELS = ["haiku", "sonnet", "opus"]
H, S, O = 0, 1, 2


@dataclass(frozen=True)
class Fitted:
    fit: StackFit
    train: TurnArrays
    test: TurnArrays


def arrays(log: Path) -> TurnArrays:
    turns = load_labeled([log]).turns
    emb = FakeEmbedder().embed([t.turn().text for t in turns])
    return build_arrays(turns, emb, 0.5, hand=True)


@pytest.fixture(scope="module")
def fitted(zeroeval_log: Path) -> Fitted:
    data = arrays(zeroeval_log)
    tr, te = split_holdout(data.labeled, data.adequate, 0.2, 0, data.tasks.tolist())
    train, test = data.subset(tr), data.subset(te)
    fit = fit_stacked(
        train,
        HEADS["stack4"],
        FakeEmbedder().dim,
        use_aux=False,
        min_labels=30,
        default_output_tokens=500,
        seed=0,
    )
    return Fitted(fit, train, test)


def run_onnx(proto: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    probs, tokens = session.run([PROBABILITIES, OUTPUT_TOKENS], {"input": x.astype(np.float32)})
    return probs, tokens


def test_onnx_graph_equals_the_numpy_model(fitted: Fitted, tmp_path: Path) -> None:
    model = fitted.fit.model
    x = fitted.test.features
    want_probs, want_tokens = model.predict(x)
    proto = to_onnx(model, LABELS)
    probs, tokens = run_onnx(proto, x)
    assert np.allclose(probs, want_probs, atol=1e-5)
    assert np.allclose(tokens, want_tokens, rtol=1e-5)
    # Not vacuous: the model separates prompts and predicts real answer lengths (opus answers
    # math-l5 in ~200 tokens, gsm in ~140).
    assert np.ptp(want_probs, axis=0).min() > 0.3
    math, gsm = fitted.test.tasks == "math-l5", fitted.test.tasks == "gsm"
    assert want_tokens[math, O].mean() > 1.2 * want_tokens[gsm, O].mean()
    # The graph keeps the arrays: reading it back gives the same model.
    path = tmp_path / "classifier.onnx"
    path.write_bytes(proto.SerializeToString())
    again = from_onnx(path)
    assert again.tasks == model.tasks == ("crux", "gsm", "math-l5")
    assert np.allclose(again.predict(x)[0], want_probs, atol=1e-5)


def test_a_tier_without_labels_in_a_task_stays_uncertain_there(fitted: Fitted) -> None:
    """Sonnet has no math-l5 outcome in zeroeval. Unguarded, its head extrapolates its gsm/crux
    success to math and looks confident; guarded it sits between haiku and opus there."""
    model = fitted.fit.model
    assert fitted.fit.label_counts["math-l5"][S] == 0
    assert model.guard[model.tasks.index("math-l5")].tolist() == [0.0, 1.0, 0.0]
    math = fitted.test.features[fitted.test.tasks == "math-l5"]
    probs, _ = model.predict(math)
    raw, _ = replace(model, guard=np.zeros_like(model.guard)).predict(math)
    midpoint = (probs[:, H] + probs[:, O]) / 2
    assert raw[:, S].mean() > raw[:, O].mean() + 0.2  # what the guard prevents
    assert np.abs(probs[:, S] - midpoint).mean() < 0.05
    assert probs[:, H].mean() < probs[:, S].mean() < probs[:, O].mean()
    # Where sonnet has labels the guard leaves it alone.
    gsm = fitted.test.features[fitted.test.tasks == "gsm"]
    assert (
        np.abs(
            model.predict(gsm)[0][:, S]
            - replace(model, guard=model.guard * 0).predict(gsm)[0][:, S]
        ).mean()
        < 0.02
    )


def test_calibrated_inside_the_model(fitted: Fitted) -> None:
    """Held-out reliability: within each quintile of a tier's predicted quality, the mean
    prediction is the observed adequacy rate (stage 2 is the calibration; no post-hoc map).
    (Per task it is looser: FakeEmbedder's hashed words mix gsm and math-l5 prompts.)"""
    probs, _ = fitted.fit.model.predict(fitted.test.features)
    for j in (H, S, O):
        lab = fitted.test.labeled[:, j]
        y, p = fitted.test.adequate[lab, j].astype(float), probs[lab, j]
        assert abs(p.mean() - y.mean()) < 0.03
        edges = np.quantile(p, np.linspace(0, 1, 6))
        bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 4)
        gaps = [abs(p[bins == b].mean() - y[bins == b].mean()) for b in range(5)]
        assert max(gaps) < 0.1, (j, gaps)
        assert p[bins == 4].mean() - p[bins == 0].mean() > 0.3  # and it ranks prompts


def test_near_constant_inputs_are_dropped_and_cannot_change_the_classifier(
    fitted: Fitted,
) -> None:
    """MiniLM has dimensions that are ~1e-33 for every text. Whatever tiny values they hold
    (they differ between embedding runs), the fitted classifier is byte for byte the same,
    and the dropped columns are named."""

    def with_dead_column(noise_seed: int) -> bytes:
        rng = np.random.default_rng(noise_seed)
        features = fitted.train.features.copy()
        features[:, 3] = rng.normal(0, 1e-33, len(features)).astype(np.float32)
        train = replace(fitted.train, features=features)
        fit = fit_stacked(
            train, HEADS["stack2"], 16, use_aux=False, min_labels=30,
            default_output_tokens=500, seed=0,
        )  # fmt: skip
        assert 3 in fit.dropped and 3 not in fit.model.kept.tolist()
        return to_onnx(fit.model, LABELS).SerializeToString()

    assert with_dead_column(1) == with_dead_column(2)


def test_two_tasks_give_two_task_probabilities() -> None:
    # sklearn's logistic has one coefficient column for two classes; P(task) still needs two.
    from tests.fakes import synthetic_turns

    turns = [
        t.model_copy(update={"category": ("chat", "math")[i % 2],
                             "request": t.request.model_copy(update={"prompt": f"{('chat', 'math')[i % 2]} {t.request.prompt}"})})
        for i, t in enumerate(synthetic_turns(300, lengths=True))
    ]  # fmt: skip
    emb = FakeEmbedder().embed([t.turn().text for t in turns])
    data = build_arrays(turns, emb, 0.5, hand=True)
    fit = fit_stacked(data, HEADS["stack4"], emb.shape[1], use_aux=False, min_labels=30,
                      default_output_tokens=500.0, seed=0)  # fmt: skip
    model = fit.model
    assert model.tasks == ("chat", "math") and model.task_W.shape[1] == 2
    t = model.task_probs(data.features)
    assert np.allclose(t.sum(axis=1), 1.0)
    assert (t[data.tasks == "math", 1] > 0.5).mean() > 0.9
    assert (t[data.tasks == "chat", 0] > 0.5).mean() > 0.9
    probs, tokens = model.predict(data.features)
    assert probs.shape == tokens.shape == (300, 3)
    session = ort.InferenceSession(to_onnx(model, LABELS).SerializeToString())
    got, _ = session.run([PROBABILITIES, OUTPUT_TOKENS], {"input": data.features})
    assert np.allclose(got, probs, atol=1e-5)
