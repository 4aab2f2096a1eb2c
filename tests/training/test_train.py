from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from router.core.bundle import load_bundle
from router.core.features import Turn
from tests.fakes import FakeEmbedder
from tests.training.conftest import FakeBundleEmbedder
from training.cli import train as train_cmd
from training.config import TrainConfig
from training.data.logs import DataError, load_labeled
from training.export import ExportError
from training.fit import TierHead
from training.train import TrainResult, train


def run(cfg: TrainConfig) -> TrainResult:
    return train(cfg, FakeBundleEmbedder())


def test_fit_export_end_to_end(fast_cfg: TrainConfig) -> None:
    result = run(fast_cfg)
    assert result.bundle_dir == fast_cfg.out_dir / "syn-v1"
    assert not list(fast_cfg.out_dir.glob(".staging-*"))
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"classifier.onnx"}
    assert manifest["labels"] == ["haiku", "sonnet", "opus"]
    assert manifest["training"]["n_records"] == 400
    assert manifest["training"]["sklearn"] and manifest["training"]["skl2onnx"]
    assert len(manifest["training"]["data_hash"]) == 64
    assert manifest["training"]["logs"] == ["synthetic.jsonl"]
    text = (result.bundle_dir / "manifest.json").read_text()
    for folder in (fast_cfg.logs[0].parent, fast_cfg.cache_dir, fast_cfg.out_dir):
        assert str(folder) not in text  # no path of the machine that built it
    heldout = manifest["training"]["heldout_ids"]
    assert len(heldout) == len(set(heldout)) == manifest["metrics"]["n_heldout"] == 80
    assert manifest["policy"] == "threshold"  # per-tier heads keep the threshold policy
    assert manifest["default_threshold"] in [p["knob"] for p in manifest["curve"]]
    routing = manifest["metrics"]["routing"]
    assert set(routing) == {"int8", "fp32"}
    assert set(routing["int8"]) == {
        "router",
        "always_cheap",
        "always_top",
        "random_at_mix",
        "length_at_mix",
        "oracle",
    }
    assert routing["int8"]["always_top"]["quality_share"] == 1.0

    bundle = load_bundle(result.bundle_dir, embedder=FakeEmbedder())
    probe = manifest["parity"]
    turns = [Turn(t, 1, int(len(t) / 4), False, False) for t in probe["texts"]]
    assert np.allclose(bundle.score(turns), probe["probs"], atol=1e-6)


def test_onnx_matches_sklearn_heads(
    fast_cfg: TrainConfig, synthetic_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published classifier.onnx reproduces the fitted sklearn heads' predict_proba on the
    held-out turns (atol 1e-5), through onnxruntime and the bundle's own feature path."""
    import training.train as train_module

    real_fit = train_module.fit_heads
    fitted: list[list[TierHead]] = []

    def keep(*args, **kwargs):  # type: ignore[no-untyped-def]
        fitted.append(real_fit(*args, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(train_module, "fit_heads", keep)  # to keep the fitted sklearn heads
    result = run(fast_cfg)
    (heads,) = fitted

    heldout = set(result.manifest.training["heldout_ids"])
    turns = [t.turn() for t in load_labeled([synthetic_log]).turns if t.id in heldout]
    assert len(turns) == len(heldout) == 80
    bundle = load_bundle(result.bundle_dir, embedder=FakeEmbedder())
    x = bundle.features(turns)
    onnx_probs = bundle.heads.predict(x)
    sk_probs = np.column_stack(
        [h.estimator.predict_proba(x.astype(np.float64))[:, 1] for h in heads]
    )
    assert onnx_probs.shape == sk_probs.shape == (80, 3)
    assert np.allclose(onnx_probs, sk_probs, atol=1e-5)
    assert np.ptp(sk_probs, axis=0).min() > 0.1  # the heads do separate turns: not a vacuous match


def test_export_refuses_a_classifier_that_differs(
    fast_cfg: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.export as export

    real = export.predict_proba
    monkeypatch.setattr(export, "predict_proba", lambda heads, x: real(heads, x) + 1e-3)
    with pytest.raises(ExportError, match="differs from sklearn"):
        run(fast_cfg)
    assert not (fast_cfg.out_dir / "syn-v1").exists()
    assert not list(fast_cfg.out_dir.glob(".staging-*"))


def bad_log(tmp_path: Path, synthetic_log: Path) -> Path:
    lines = synthetic_log.read_text().splitlines()
    lines[2] = "{not json"
    lines[5] = json.dumps({"id": "x", "request": {"prompt": "hi"}, "scores": {"gpt5": {}}})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_lines_are_reported_with_numbers(
    fast_cfg: TrainConfig, synthetic_log: Path, tmp_path: Path
) -> None:
    path = bad_log(tmp_path, synthetic_log)
    result = run(fast_cfg.model_copy(update={"logs": (path,)}))
    bad = result.load_report.bad_lines
    assert [(Path(f).name, n) for f, n, _ in bad] == [("bad.jsonl", 3), ("bad.jsonl", 6)]
    assert "invalid JSON" in bad[0][2] and "scores" in bad[1][2]
    assert result.manifest.training["bad_lines"] == 2

    with pytest.raises(DataError, match=r"bad\.jsonl:3: invalid JSON"):
        run(fast_cfg.model_copy(update={"logs": (path,), "fail_on_bad_lines": True}))


def test_cli_fails_on_bad_lines_with_file_and_line(synthetic_log: Path, tmp_path: Path) -> None:
    path = bad_log(tmp_path, synthetic_log)
    args = ["--logs", str(path), "--out", str(tmp_path / "m"), "--fail-on-bad-lines", "--no-track"]
    result = CliRunner().invoke(train_cmd, args)
    assert result.exit_code == 1
    assert "bad.jsonl:3: invalid JSON" in result.output
    assert "2 bad lines" in result.output


def test_cli_rejects_bad_config(synthetic_log: Path, tmp_path: Path) -> None:
    args = ["--logs", str(synthetic_log), "--holdout", "1.5", "--no-track"]
    result = CliRunner().invoke(train_cmd, args)
    assert result.exit_code == 1 and "holdout_fraction" in result.output


def test_mlflow_run_with_registered_model(
    fast_cfg: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = run(fast_cfg.model_copy(update={"track": True}))
    assert result.mlflow_run_id and result.registered_version == "1"

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    run_data = client.get_run(result.mlflow_run_id).data
    assert run_data.params["seed"] == "0" and run_data.params["version"] == "syn-v1"
    assert "routing.int8.router.quality_share" in run_data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "bundle")}
    assert {"bundle/manifest.json", "bundle/classifier.onnx"} <= artifacts
    versions = client.search_model_versions(f"name='{fast_cfg.registered_model}'")
    assert [str(v.version) for v in versions] == ["1"]


def test_a_tiny_training_set_warns_that_it_means_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.training.conftest import synthetic_turns
    from training.cli import print_summary
    from training.data.logs import write_labeled

    log = tmp_path / "tiny.jsonl"
    write_labeled(synthetic_turns(40), log)
    cfg = TrainConfig(
        logs=(log,),
        out_dir=tmp_path / "models",
        version="tiny-v1",
        cache_dir=tmp_path / "cache",
        heads=("logreg_c1",),
        compare_quantizations=("int8",),
        track=False,
        progress=False,
    )
    result = run(cfg)
    want = (
        "only 40 turns (8 held out with every tier labeled): held-out quality and cost are "
        "+-35% noise and the heads barely learned; train on at least 500 turns (100 held out) "
        "before trusting this bundle"
    )
    assert result.warnings == (want,)
    assert want in caplog.text
    print_summary(result)
    assert f"warning: {want}" in capsys.readouterr().err

    big = tmp_path / "big.jsonl"
    write_labeled(synthetic_turns(600), big)
    assert run(cfg.model_copy(update={"logs": (big,), "version": "big"})).warnings == ()
