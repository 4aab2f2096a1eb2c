"""The real path: `tierwise train` on real MMLU-Pro rows with the packaged MiniLM (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from router.core.bundle import load_bundle
from router.core.features import Turn
from tierwise.cli import main
from training.convert import convert

pytestmark = pytest.mark.slow


def test_tierwise_train_cli_on_real_mmlu_pro(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # quantization temp files land here, not in the repo
    (log,) = convert(shared_data, tmp_path / "logs", datasets=("mmlu_pro",), limit=300)
    args = [
        "train", "--logs", str(log.path), "--out", str(tmp_path / "models"),
        "--version", "real-v1", "--quantization", "int8", "--compare", "int8",
        "--head", "logreg_c0.1", "--head", "logreg_c1",
        "--cache-dir", str(tmp_path / "cache"), "--no-track", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Loading weights" not in result.output  # --no-progress hides transformers' bar too
    # convert --limit samples 300 distinct questions (seeded, stratified): all of them train.
    lines = log.path.read_text().splitlines()
    assert len(lines) == len({json.loads(x)["id"] for x in lines}) == 300
    assert "300 turns loaded, 0 bad lines, 0 duplicates removed" in result.output
    assert "held-out routing (int8" in result.output and "always_top" in result.output

    bundle_dir = tmp_path / "models" / "real-v1"
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"classifier.onnx", "embedder.onnx", "tokenizer.json"}
    assert manifest["embedder"]["quantization"] == "int8" and manifest["embedder"]["dim"] == 384
    assert manifest["metrics"]["n_heldout"] == 60  # 20% of 300

    bundle = load_bundle(bundle_dir)  # re-runs the parity probe with the bundle's own embedder
    probs = bundle.score([Turn("What is 2 + 2?", 1, 3, False, False)])
    assert probs.shape == (1, 3) and np.all((probs >= 0) & (probs <= 1))

    # A retrain reuses every cached embedding and ONNX export, and gives the same heads.
    again = CliRunner().invoke(main, [*args[:6], "real-v2", *args[7:]])
    assert again.exit_code == 0, again.output
    second = json.loads((tmp_path / "models" / "real-v2" / "manifest.json").read_text())
    assert second["files"] == manifest["files"]
    assert second["metrics"]["routing"] == manifest["metrics"]["routing"]


@pytest.mark.parametrize("hidden", [False, True])
def test_no_progress_hides_the_loading_weights_bar(hidden: bool) -> None:
    """MiniLM's load draws transformers' "Loading weights" bar unless bars are hidden."""
    code = (
        "from training.embedder_export import hide_progress_bars, load_minilm\n"
        + ("hide_progress_bars()\n" if hidden else "")
        + "load_minilm()\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert ("Loading weights" in done.stderr) is not hidden
