"""replay() end to end on a few real sessions (fake bundle): the numbers add up, the report is
written in all three formats, and the CLI names bad input instead of failing with a traceback.
The full replay with the shipped bundle is the slow test at the end."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eval.replay.costs import Pricer
from eval.replay.replay import ReplayConfig, ReplayResult, replay
from eval.replay.routing import load_service, replay_service
from eval.replay.strategies import STRATEGIES, replay_session
from router.settings import Settings
from tierwise.cli import main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def small_inputs(
    transcript_dir: Path, raw_tau: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """A long main session, two fixtures and six tau-bench sessions (both outcomes)."""
    tau_dir = tmp_path_factory.mktemp("tau")
    picked = [s for s in raw_tau if s["reward"] == 1.0][:3] + [
        s for s in raw_tau if s["reward"] == 0.0
    ][:3]
    (tau_dir / "few.json.gz").write_bytes(gzip.compress(json.dumps(picked).encode()))
    tools = REPO.parent / "shared/data/agent_sessions/tau_bench/airline_tools.json"
    (tau_dir / "airline_tools.json").write_text(tools.read_text())
    main_session = transcript_dir / "4d5611e5-241a-462a-8d15-5122611a9569.jsonl"
    return [
        main_session,
        transcript_dir / "short.jsonl",
        transcript_dir / "tool_heavy.jsonl",
        tau_dir,
    ]


@pytest.fixture(scope="module")
def result(
    small_inputs: list[Path], fake_bundle: Any, tmp_path_factory: pytest.TempPathFactory
) -> ReplayResult:
    service = replay_service(fake_bundle, Settings(deadline_ms=5000))
    out = tmp_path_factory.mktemp("report")
    return replay(ReplayConfig(paths=tuple(small_inputs), out=out, progress=False), service=service)


def test_group_totals_add_up_the_sessions(result: ReplayResult) -> None:
    everything = next(g for g in result.groups if g.name == "all")
    assert everything.calls == result.calls == sum(r.session.n_calls for r in result.replays)
    for name, totals in everything.strategies.items():
        assert totals.usd == pytest.approx(sum(r.runs[name].total_usd for r in result.replays))
        assert sum(totals.tier_calls.values()) == totals.calls
    assert "recorded" not in everything.strategies  # tau-bench has no Claude model to price
    claude = next(g for g in result.groups if g.name == "claude_code")
    assert set(claude.strategies) == set(STRATEGIES)


def test_target_and_difficulty_are_judged(result: ReplayResult) -> None:
    assert result.target is not None and len(result.target.sessions) == 1
    row = result.target.sessions[0]
    assert row.session_id.startswith("4d5611e5") and row.heads == 3
    assert row.thinking_share > 0.9
    room = row.headroom
    assert room is not None and room.heads == (0, 61, 137)
    assert room.best is not None and room.best.quality_vs_opus >= 0.95
    assert room.best_in_threshold is not None and room.best_in_threshold.quality_vs_opus >= 0.95
    assert room.cheapest_in_threshold.usd <= room.best_in_threshold.usd
    assert result.difficulty is not None
    assert [g.sessions for g in result.difficulty.groups] == [3, 3]


def test_report_files(result: ReplayResult) -> None:
    out = result.config.out
    assert out is not None
    page = (out / "replay.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "<script" not in page
    assert "not ground truth" in page and "Target: long Claude Code sessions" in page
    markdown = (out / "replay.md").read_text()
    assert markdown.startswith("# tierwise replay") and "| tierwise (cache-aware) |" in markdown
    summary = json.loads((out / "replay.json").read_text())
    assert summary["verdict"][0].startswith("On these")
    assert len(summary["sessions"]) == len(result.replays)
    per_call = summary["sessions"][0]["strategies"]["tierwise"]["per_call"]
    assert len(per_call["usd"]) == result.replays[0].session.n_calls


def test_cli_names_a_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    run = CliRunner().invoke(main, ["replay", str(missing), "--out", str(tmp_path / "o")])
    assert run.exit_code == 1
    assert f"'{missing}': no such file or folder" in run.output
    assert "Traceback" not in run.output


def test_cli_names_the_ttl_choices(tmp_path: Path) -> None:
    run = CliRunner().invoke(main, ["replay", str(tmp_path), "--ttl", "2h"])
    assert run.exit_code == 2 and "'auto', '5m', '1h'" in run.output


def test_cli_names_a_bad_model_folder(transcript_dir: Path, tmp_path: Path) -> None:
    args = ["replay", str(transcript_dir / "short.jsonl"), "--model", str(tmp_path)]
    run = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--no-progress"])
    assert run.exit_code == 1 and str(tmp_path) in run.output and "manifest.json" in run.output


# ---- the shipped bundle on every shared session -------------------------------------------------


@pytest.mark.slow
def test_full_replay_with_the_shipped_bundle(agent_sessions: Path, tmp_path: Path) -> None:
    """All 220 sessions through the CLI; cache-aware routing never costs more than cache-blind
    routing on a long session and thinking loops never change tier."""
    run = CliRunner().invoke(
        main, ["replay", str(agent_sessions), "--out", str(tmp_path), "--no-progress"]
    )
    assert run.exit_code == 0, run.output
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["speed"]["calls"] == 899 + 2454
    long = [s for s in summary["sessions"] if s["kind"] == "main" and s["calls"] >= 100]
    assert len(long) == 5 and summary["target"] is not None
    for s in long:
        assert s["strategies"]["tierwise"]["usd"] <= s["strategies"]["per-turn"]["usd"] + 1e-9
        rec = s["strategies"]["recorded"]
        assert rec["switches"] == (
            2 if s["session_id"].startswith("ae4a77f8") else 0
        )  # there, back
    assert "eats" in summary["verdict"][0]


@pytest.mark.slow
def test_a_236_call_session_replays_in_a_few_seconds(
    claude_sessions: dict[str, Any],
) -> None:
    """ae4a77f8: 217 API calls (236 in the data README's count), every strategy, shipped bundle."""
    settings = Settings()
    service = load_service(REPO / "models", settings)
    session = claude_sessions["ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"]
    start = time.perf_counter()
    replay_session(session, service, Pricer(settings))
    assert time.perf_counter() - start < 5.0
