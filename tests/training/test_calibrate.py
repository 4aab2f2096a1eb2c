"""`tierwise calibrate` on real outcomes: a bundle trained with Claude 3 Haiku as its haiku tier
is re-calibrated for Claude 3.5 Haiku (much stronger on math) from 300 labeled calls; its
held-out Brier score improves, the other tiers are untouched, and a task the new labels do not
cover keeps the tier uncertain there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router.core.bundle import load_bundle
from router.core.tiers import Tier
from tests.fakes import FakeBundleEmbedder, FakeEmbedder
from tests.training.zeroeval import CLAUDE_3, zeroeval_turns
from training.calibrate import calibrate
from training.config import TrainConfig
from training.data.logs import LabeledTurn, write_labeled
from training.stack_model import from_onnx
from training.train import train

NEW_HAIKU = {**CLAUDE_3, Tier.HAIKU: "claude-3-5-haiku-20241022"}


@pytest.fixture(scope="module")
def trained(zeroeval_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibrate")
    cfg = TrainConfig(
        logs=(zeroeval_log,),
        out_dir=root / "models",
        version="ze-v1",
        cache_dir=root / "cache",
        compare_quantizations=("int8",),
        track=False,
        progress=False,
    )
    return train(cfg, FakeBundleEmbedder()).bundle_dir


def brier(bundle_dir: Path, turns: list[LabeledTurn], tier: Tier) -> float:
    bundle = load_bundle(bundle_dir, embedder=FakeEmbedder())
    probs = bundle.score([t.turn() for t in turns])[:, tier.rank]
    y = np.asarray([t.scores[tier].score for t in turns])
    return float(np.mean((probs - y) ** 2))


def split(trained: Path, shared: Path) -> tuple[list[LabeledTurn], list[LabeledTurn]]:
    """(300 calls to calibrate with, the bundle's held-out turns), relabeled for the new haiku."""
    heldout = set(json.loads((trained / "manifest.json").read_text())["training"]["heldout_ids"])
    turns = [t for t in zeroeval_turns(shared, NEW_HAIKU) if Tier.HAIKU in t.scores]
    rest = [t for t in turns if t.id not in heldout]
    picked = np.random.default_rng(0).choice(len(rest), 300, replace=False)
    return [rest[i] for i in sorted(picked)], [t for t in turns if t.id in heldout]


def test_calibration_improves_held_out_brier(
    trained: Path, shared_data: Path, tmp_path: Path
) -> None:
    calls, heldout = split(trained, shared_data)
    log = tmp_path / "new_haiku.jsonl"
    write_labeled(calls, log)
    result = calibrate(
        trained, [log], tmp_path / "models", "ze-v1-haiku35", [Tier.HAIKU],
        cache_dir=tmp_path / "cache", embedder=FakeEmbedder(),
    )  # fmt: skip
    (report,) = result.tiers
    assert report.tier == Tier.HAIKU and report.n == 300 and report.c is not None
    before = brier(trained, heldout, Tier.HAIKU)
    after = brier(result.bundle_dir, heldout, Tier.HAIKU)
    assert after < before - 0.02, (before, after)
    # Stage 1 and the other tiers are the trained ones: opus is untouched; sonnet only moves
    # where it is uncertain (math-l5, where its value is the mean of haiku and opus).
    turns = [t.turn() for t in heldout]
    old = load_bundle(trained, embedder=FakeEmbedder()).score(turns)
    new = load_bundle(result.bundle_dir, embedder=FakeEmbedder()).score(turns)
    assert np.allclose(old[:, 2], new[:, 2], atol=1e-6)
    labeled_sonnet = np.asarray([Tier.SONNET in t.scores for t in heldout])
    assert np.abs(old[labeled_sonnet, 1] - new[labeled_sonnet, 1]).mean() < 0.01
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert manifest["training"]["calibration"]["from_version"] == "ze-v1"


def test_a_task_without_new_labels_keeps_the_tier_uncertain(
    trained: Path, shared_data: Path, tmp_path: Path
) -> None:
    calls, heldout = split(trained, shared_data)
    no_math = [t for t in calls if t.category != "math-l5"]
    log = tmp_path / "no_math.jsonl"
    write_labeled(no_math, log)
    result = calibrate(
        trained, [log], tmp_path / "models", "ze-v1-nomath", [Tier.HAIKU],
        cache_dir=tmp_path / "cache", embedder=FakeEmbedder(),
    )  # fmt: skip
    assert result.tiers[0].covered_tasks == ["crux", "gsm"]
    model = from_onnx(result.bundle_dir / "classifier.onnx")
    math = model.tasks.index("math-l5")
    assert model.guard[math].tolist() == [1.0, 1.0, 0.0]  # haiku now uncertain on math too
    rows = [t for t in heldout if t.category == "math-l5"]
    bundle = load_bundle(result.bundle_dir, embedder=FakeEmbedder())
    x = bundle.features([t.turn() for t in rows]).astype(np.float64)
    probs, _ = model.predict(x)
    design, task_probs = model.design(x)
    raw = 1 / (1 + np.exp(-(design @ model.s2_W + model.s2_b)))
    # Only opus is labeled on math: haiku's uncertain value there is half of opus's (the range
    # a cheaper tier can take), weighted by P(math-l5); on gsm/crux it is its new stage 2.
    want = raw[:, 0] + task_probs[:, math] * (raw[:, 2] / 2 - raw[:, 0])
    assert np.allclose(probs[:, 0], want, atol=1e-5)
    assert probs[:, 0].mean() < probs[:, 2].mean()
