"""The README's retraining flow runs as written: each `tierwise` line of its "Retraining,
labeling, evaluating" block is run verbatim (a subprocess in a scratch checkout) against small
copies of the public data, a real call log, the local fake Anthropic API (labeling), a real
MLflow on sqlite, the packaged MiniLM, and a live service that `deploy` hot-reloads. Only the
service URL is substituted, for the live server's port."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.http.app import create_app
from router.settings import Settings
from tests.fake_anthropic import FakeAnthropic
from tests.labeling.test_label import is_judge, verdict
from tests.live_server import serve_app
from tests.tiny_bundle import build_tiny_bundle

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
README_URL = "http://127.0.0.1:8000"
ROWS = 600  # questions per public dataset (zeroeval: a third per task): enough held out to mean something


def readme_commands() -> list[list[str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Retraining, labeling, evaluating\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def copy_csv(src: Path, dst: Path, start: int, rows: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open(newline="", encoding="utf-8") as fin, dst.open("w", newline="") as fout:
        reader = csv.reader(fin)
        writer = csv.writer(fout)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= start + rows:
                break
            if i >= start:
                writer.writerow(row)


def small_public_data(shared: Path, out: Path, start: int = 0, rows: int = ROWS) -> Path:
    """The layout `tierwise convert` reads, each dataset cut to a few rows."""
    copy_csv(
        shared / "mmlu_pro/mmlu_pro_correct.csv", out / "mmlu_pro/mmlu_pro_correct.csv", start, rows
    )
    copy_csv(shared / "routellm/gsm8k_responses.csv", out / "routellm/gsm8k_responses.csv", 0, 20)
    for path in sorted((shared / "routellm/mmlu_responses").glob("mmlu_*.csv"))[:2]:
        copy_csv(path, out / "routellm/mmlu_responses" / path.name, 0, 20)
    for task in ("gsm", "crux", "math-l5"):  # real Claude 3 tiers: what the README trains on
        copy_csv(shared / f"zeroeval/{task}.csv", out / f"zeroeval/{task}.csv", start, rows // 3)
    for split in ("train", "test"):
        records = json.loads((shared / f"dcrouter/{split}.json").read_text())[:20]
        (out / "dcrouter").mkdir(parents=True, exist_ok=True)
        (out / f"dcrouter/{split}.json").write_text(json.dumps(records))
    return out


@pytest.fixture
def checkout(shared_data: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A scratch checkout: models/ with a served bundle, ../shared/data, a call log with real
    routed calls, data/heldout.jsonl, and the environment the commands run in."""
    work = tmp_path / "work"
    build_tiny_bundle(work / "models" / "tiny-v1")
    (work / "models" / "DEFAULT").write_text("tiny-v1\n")
    small_public_data(shared_data, tmp_path / "shared" / "data")
    settings = Settings(model_dir=work / "models", calllog_url=str(work / "var" / "calls.db"))
    with serve_app(create_app(settings)) as url:
        for prompt in (
            "What is 7 + 5?",
            "Prove that sqrt(2) is irrational.",
            "hello",
            "Sort a list in Python",
        ):
            assert httpx.post(f"{url}/route", json={"prompt": prompt}).status_code == 200
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TIERWISE_CACHE": str(tmp_path / "cache"),
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }
    yield work, env


def test_readme_retraining_flow_runs_as_written(
    checkout: tuple[Path, dict[str, str]], fake_anthropic: FakeAnthropic
) -> None:
    work, env = checkout
    env["ANTHROPIC_BASE_URL"] = fake_anthropic.base_url
    fake_anthropic.responder = lambda p: verdict(8, True) if is_judge(p) else "an answer"
    commands = readme_commands()
    assert [c[1] for c in commands] == [
        "convert", "export-log", "label", "train", "eval", "promote", "deploy",
    ]  # fmt: skip
    service = Settings(model_dir=work / "models", deadline_ms=5000)
    with serve_app(create_app(service)) as url:
        outputs: dict[str, str] = {}
        for command in commands:
            assert command[0] == "tierwise"
            args = [url if a == README_URL else a for a in command[1:]]
            done = subprocess.run(
                [sys.executable, "-c", "from tierwise.cli import main; main()", *args],
                cwd=work,
                env=env,
                input="y\n",  # `label` asks before it spends
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
            outputs[command[1]] = done.stdout
        live: dict[str, Any] = httpx.get(f"{url}/version").json()
    assert live["model_version"] == "my-v2"
    assert "labeled 4 turns" in outputs["label"]
    assert "registered version 1" in outputs["train"]
    assert "tierwise-router@champion -> version 1 (bundle my-v2)" in outputs["promote"]
    assert "now serves my-v2 (was tiny-v1)" in outputs["deploy"]
    assert (work / "models" / "DEFAULT").read_text().strip() == "my-v2"
    assert any((work / "reports").iterdir())
