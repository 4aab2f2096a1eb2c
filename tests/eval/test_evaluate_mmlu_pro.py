"""Slow: train a small real bundle (MiniLM int8 + logistic heads) on MMLU-Pro rows, then run
`tierwise eval` on disjoint held-out rows, as a user would, with MLflow in tmp_path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierwise.cli import main
from training.config import TrainConfig
from training.convert import DEFAULT_TIER_MAPS, convert_mmlu_pro
from training.data.logs import load_labeled, normalize_text, write_labeled
from training.train import train

pytestmark = pytest.mark.slow
N_TRAIN, N_EVAL, N_COPIES = 600, 250, 3


def test_eval_on_held_out_mmlu_pro(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    turns = list(convert_mmlu_pro(shared_data, DEFAULT_TIER_MAPS["mmlu_pro"]))
    turns.sort(key=lambda t: hashlib.sha256(t.id.encode()).hexdigest())  # a fixed shuffle
    train_turns, held_out = turns[:N_TRAIN], turns[N_TRAIN : N_TRAIN + N_EVAL]
    # Training questions logged again under new ids must not count as held out.
    held_out += [t.model_copy(update={"id": f"copy:{t.id}"}) for t in train_turns[:N_COPIES]]
    write_labeled(train_turns, train_path := tmp_path / "train.jsonl")
    write_labeled(held_out, eval_path := tmp_path / "eval.jsonl")
    cache = tmp_path / "cache"
    cfg = TrainConfig(
        logs=(train_path,),
        out_dir=tmp_path / "models",
        version="mmlu-small",
        quantization="int8",
        compare_quantizations=("int8",),
        heads=("logreg_c0.1",),
        cache_dir=cache,
        track=False,
        progress=False,
    )
    trained = train(cfg)
    bundle_dir, heldout_ids = trained.bundle_dir, set(trained.manifest.training["heldout_ids"])

    args = ["eval", "--model", str(bundle_dir), "--data", str(eval_path)]
    args += ["--train-data", str(train_path), "--out", str(tmp_path / "reports")]
    out = CliRunner().invoke(main, [*args, "--cache-dir", str(cache)])
    assert out.exit_code == 0, out.output
    assert "APGR" in out.output and "MLflow run" in out.output

    report_dir = tmp_path / "reports" / "mmlu-small"
    summary = json.loads((report_dir / "summary.json").read_text())
    # What training fitted on: its logs minus the held-out ids it recorded.
    fitted = [t for t in load_labeled([train_path]).turns if t.id not in heldout_ids]
    fitted_texts = {normalize_text(t.turn().text) for t in fitted}
    unique_eval = load_labeled([eval_path]).turns
    overlap = sum(normalize_text(t.turn().text) in fitted_texts for t in unique_eval)
    copies_fitted = sum(t.id not in heldout_ids for t in train_turns[:N_COPIES])
    assert overlap >= copies_fitted
    dataset = summary["context"]["dataset"]
    assert dataset["overlap_removed"] == overlap
    assert dataset["n_eval"] == len(unique_eval) - overlap
    assert dataset["train_hash_matches"] is True

    m = summary["metrics"]
    assert len(m["by_category"]) >= 10  # MMLU-Pro has 14 subject categories
    routing = m["routing"]
    names = [c["name"] for c in routing["curves"]]
    assert names == ["router", "knn", "mlp", "mf", "irt", "task_prior", "random", "length",
                     "coin", "oracle"]  # fmt: skip
    assert all(0.0 <= c["apgr"] <= 1.5 for c in routing["curves"] if c["name"] != "oracle")
    pooled = routing["comparison"][0]
    assert pooled["name"] == "all" and pooled["best_peer_apgr"] in names
    assert len(routing["comparison"]) >= 11  # all + each of MMLU-Pro's categories here
    always = {p["name"]: p for p in routing["always"]}
    assert always["always_haiku"]["pgr"] == 0.0 and always["always_opus"]["pgr"] == 1.0
    # Ground truth is 0/1 and the oracle takes the cheapest correct tier: never worse than top.
    assert routing["oracle"]["quality"] >= always["always_opus"]["quality"]
    assert routing["oracle"]["cost"] <= always["always_opus"]["cost"]
    assert (report_dir / "report.html").read_text().count("data:image/png;base64,") == 4

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("tierwise-eval").experiment_id]  # type: ignore[union-attr]
    )
    assert run.data.metrics["router.apgr"] == pytest.approx(summary["headline"]["router.apgr"])
    assert run.data.tags["bundle_version"] == "mmlu-small"
