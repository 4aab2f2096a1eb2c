"""`tierwise cv`: the router's stacked heads and every peer fitted fold by fold, pooled per
repeat and compared with paired bootstrap intervals; on synthetic turns with the fake embedder,
and (slow) on the real Claude 3 outcomes of zeroeval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eval.cli import PEER_CHOICES
from eval.repeated import RepeatedSubset
from eval.tables import label
from tests.fakes import FakeBundleEmbedder, ShippedBundleEmbedder, synthetic_turns
from tierwise.cli import main
from tierwise.cv import CvConfig, CvResult, run_cv
from training.data.logs import write_labeled

N, FOLDS, REPEATS = 240, 3, 2


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> CvResult:
    root = tmp_path_factory.mktemp("cv")
    turns = [
        t.model_copy(update={"category": ("chat", "math")[i % 2]})
        for i, t in enumerate(synthetic_turns(N, partial_every=4, lengths=True))
    ]
    write_labeled(turns, log := root / "synthetic.jsonl")
    cfg = CvConfig(logs=(log,), folds=FOLDS, repeats=REPEATS, bootstrap=60, out=root / "out",
                   cache_dir=root / "cache", progress=False)  # fmt: skip
    return run_cv(cfg, FakeBundleEmbedder())


def test_every_peer_is_compared_on_every_subset(done: CvResult) -> None:
    assert [s.name for s in done.subsets] == ["all", "all tiers labeled", "chat", "math"]
    for subset in done.subsets:
        peers = [m.name for m in subset.methods if m.kind == "peer"]
        assert peers == list(PEER_CHOICES)
        for m in subset.methods:
            if m.kind in ("router", "peer"):
                assert len(m.apgr_repeats) == REPEATS and np.isfinite(m.apgr)


def test_folds_partition_the_turns_once_per_repeat(done: CvResult) -> None:
    assert len(done.folds) == REPEATS
    for folds in done.folds:
        assert folds.shape == (N,)  # one fold per turn: each turn predicted exactly once
        sizes = np.bincount(folds, minlength=FOLDS)
        assert len(sizes) == FOLDS and sizes.max() - sizes.min() <= 1
    assert (done.folds[0] != done.folds[1]).any()  # each repeat deals its own folds


def test_paired_intervals_contain_their_estimates(done: CvResult) -> None:
    for subset in done.subsets:
        for m in subset.methods:
            for iv in (m.router_minus_apgr, m.router_minus_saving):
                if m.kind == "peer":
                    assert iv is not None
                if iv is not None:
                    assert iv.low <= iv.estimate <= iv.high, (subset.name, m.name)


def test_every_fold_measures_its_default_point_on_unseen_rows(done: CvResult) -> None:
    """Each fold's bundle picks its default knob on its own training rows (as `tierwise train`
    does); what that keeps on the fold's unseen rows is reported, fold by fold."""
    summary = json.loads(done.files.json.read_text())
    points = summary["run"]["default_points"]
    assert len(points) == FOLDS * REPEATS
    sizes = [n for repeat in summary["run"]["fold_sizes"] for n in repeat]
    for point, size in zip(points, sizes, strict=True):
        assert 0 < point["rows"] <= size and point["knob"] >= 0
        assert 0 < point["quality"] <= 1.5 and 0 < point["cost"] <= 1.0 + 1e-9
    mean = np.mean([p["quality"] for p in points])
    below = sum(p["quality"] < 0.95 for p in points)
    assert "Default operating point (quality_target 0.97" in done.markdown
    assert f"| {len(points)} | {mean:.3f} [" in done.markdown
    assert f"| {below} of {len(points)} |" in done.markdown


def _pooled_json(done: CvResult) -> dict:  # type: ignore[type-arg]
    summary = json.loads(done.files.json.read_text())
    return summary


def test_json_and_markdown_agree(done: CvResult) -> None:
    summary = _pooled_json(done)
    md = done.files.markdown.read_text()
    assert md == done.markdown
    assert summary["run"]["folds"] == FOLDS and summary["run"]["repeats"] == REPEATS
    assert summary["run"]["fold_sizes"] == [np.bincount(f).tolist() for f in done.folds]
    pooled: dict = summary["subsets"][0]  # type: ignore[type-arg]
    assert pooled["name"] == "all"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines()}
    for m in pooled["methods"]:
        if m["kind"] not in ("router", "peer"):
            continue
        row = rows[label(m["name"])]
        assert f"| {m['apgr']:.3f} [" in row
        assert " / ".join(f"{v:.3f}" for v in m["apgr_repeats"]) in row
        if m["kind"] == "peer":
            d = m["router_minus_apgr"]
            assert f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" in row
    t = summary["targets"]
    verdict = "met" if t["apgr_met"] else f"MISSED by {t['apgr_short']:.3f} APGR"
    assert f"| APGR ≥ best peer + 0.05 | {verdict} |" in md
    assert f"router − {label(t['best_peer_apgr'])} = {t['apgr_gain']['estimate']:+.3f}" in md


def _check_sanity(pooled: RepeatedSubset, kinds: tuple[str, ...]) -> None:
    """Every method of `kinds` beats random routing at the router's mix and the coin, stays
    below the oracle, and saves something at 95% of always-top quality."""
    coin, oracle, random = (pooled.method(n) for n in ("coin", "oracle", "random"))
    assert coin is not None and oracle is not None and random is not None
    for m in (m for m in pooled.methods if m.kind in kinds):
        assert random.apgr < m.apgr < oracle.apgr, m.name
        assert coin.apgr < m.apgr, m.name
        assert 0 < m.saving <= oracle.saving, m.name


def test_the_router_beats_the_baselines_on_synthetic_turns(done: CvResult) -> None:
    # Only the router: hashed-word vectors carry too little for kNN, and the categories here
    # are unrelated to difficulty (the task prior is a coin).
    _check_sanity(done.subsets[0], ("router",))


def test_tierwise_cv_is_a_command() -> None:
    out = CliRunner().invoke(main, ["cv", "--help"])
    assert out.exit_code == 0
    for option in ("--logs", "--folds", "--repeats", "--peers", "--bootstrap", "--no-progress"):
        assert option in out.output
    bad = CliRunner().invoke(main, ["cv", "--logs", __file__, "--peers", "knn,oracle"])
    assert bad.exit_code != 0 and "unknown peer 'oracle'" in bad.output


@pytest.mark.slow
def test_repeated_cv_on_real_claude_outcomes(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("cv-zeroeval")
    args = ["convert", "--data", str(shared_data), "--out", str(root), "--dataset", "zeroeval"]
    converted = CliRunner().invoke(main, args)
    assert converted.exit_code == 0, converted.output
    cfg = CvConfig(logs=(root / "zeroeval.jsonl",), folds=3, repeats=1, bootstrap=50,
                   out=root / "out", cache_dir=root / "cache", progress=False)  # fmt: skip
    done = run_cv(cfg, ShippedBundleEmbedder())
    names = [s.name for s in done.subsets]
    assert names == ["all", "all tiers labeled", "crux", "gsm", "math-l5"]
    pooled = done.subsets[0]
    assert pooled.n == len(done.folds[0]) > 2000
    _check_sanity(pooled, ("router", "peer"))
    random = pooled.method("random")
    assert random is not None and random.router_minus_apgr is not None
    assert random.router_minus_apgr.low > 0  # the router beats random at its own mix
    math = done.subsets[-1]
    assert math.tiers == ("haiku", "opus")  # no Claude 3 Sonnet on math-l5: routed around it
    assert "Issue 8 targets" in done.markdown and done.files.json.is_file()
