"""`tierwise train` = training, then the held-out comparison with every peer, then the model
card: on synthetic turns with the fake embedder (real sklearn heads, real onnxruntime)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from eval.peers import PEER_NAMES
from tests.training.conftest import FakeBundleEmbedder, synthetic_turns
from tierwise.cli import main
from tierwise.cv import CvConfig, run_cv
from tierwise.train import CompareOptions, TrainedAndCompared, train_and_compare
from training.config import TrainConfig
from training.data.logs import write_labeled


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> TrainedAndCompared:
    root = tmp_path_factory.mktemp("train-compare")
    turns = [
        t.model_copy(update={"category": ("chat", "math")[i % 2]})
        for i, t in enumerate(synthetic_turns(500, partial_every=4))
    ]
    write_labeled(turns, log := root / "synthetic.jsonl")
    cfg = TrainConfig(
        logs=(log,),
        out_dir=root / "models",
        version="syn-v1",
        cache_dir=root / "cache",
        heads=("logreg_c1",),
        compare_quantizations=("int8",),
        track=False,
        progress=False,
    )
    # The repeated-CV report of the same logs, which the model card carries.
    cv = run_cv(
        CvConfig(logs=(log,), folds=3, repeats=1, bootstrap=20, out=root / "cv",
                 cache_dir=root / "cache", progress=False),
        FakeBundleEmbedder(),
    )  # fmt: skip
    options = CompareOptions(reports=root / "reports", bootstrap=50, cv_report=cv.files.markdown)
    return train_and_compare(cfg, options, FakeBundleEmbedder())


def test_the_comparison_scores_exactly_trainings_held_out_turns(done: TrainedAndCompared) -> None:
    heldout = set(done.trained.manifest.training["heldout_ids"])
    ev = done.evaluation
    assert ev.dataset["n_eval"] == len(heldout)
    assert ev.dataset["n_train"] == done.trained.manifest.training["n_train"]
    assert ev.metrics.routing is not None
    names = [c.name for c in ev.metrics.routing.curves]
    assert names[: 1 + len(PEER_NAMES)] == ["router", *PEER_NAMES]


def test_model_card_compares_the_router_with_every_peer(done: TrainedAndCompared) -> None:
    text = done.card.read_text()
    assert done.card == done.trained.bundle_dir / "README.md"
    assert "## Held-out: the router against every peer (one split)" in text
    cv_md = (done.trained.bundle_dir.parent.parent / "cv" / "cv.md").read_text()
    assert "## Repeated CV: the numbers a release is judged on" in text
    # Every row of the repeated-CV report is in the card, and the CV comes before the split.
    rows = [line for line in cv_md.splitlines() if line.startswith("| ")]
    assert rows and all(row in text for row in rows)
    assert text.index("## Repeated CV") < text.index("## Held-out: the router against")
    assert "Winner on APGR:" in text
    labels = ("kNN (k tuned)", "MLP", "matrix factorisation", "IRT-2PL", "task/category prior",
              "random at the router's mix", "length heuristic", "cheap/top coin", "always haiku",
              "oracle")  # fmt: skip
    for label in labels:
        assert f"| {label}" in text, label
    assert "### Targets" in text and "| APGR ≥ best peer + 0.05" in text
    assert "**stand-in**: synthetic's outcomes" in text  # synthetic labels are not Claude's
    assert done.trained.manifest.training["data_hash"] in text
    assert "| int8 ONNX embedder (shipped) |" in text
    m = done.trained.manifest
    assert f"The default operating point ({m.policy} {m.knob:.4g})" in text


def test_tierwise_train_is_the_comparing_command() -> None:
    out = CliRunner().invoke(main, ["train", "--help"])
    assert out.exit_code == 0
    assert "--no-peers" in out.output and "--reports" in out.output and "--logs" in out.output
