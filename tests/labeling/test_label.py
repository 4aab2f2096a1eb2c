"""Labeling end to end against the fake API with the real SDK: arena-hard, logged turns, failures,
resume, cost report and the `tierwise label` command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from labeling.batches import PollConfig
from labeling.label import LabelConfig, Labeler
from labeling.sources import read_arena_hard, read_jsonl_turns
from router.core.tiers import Tier
from router.settings import Settings
from tests.fake_anthropic import FakeAnthropic, FakeError
from tierwise.cli import main as tierwise
from training.data.logs import load_labeled

SONNET, OPUS = "claude-sonnet-4-6", "claude-opus-4-6"
HAIKU_MODEL = "claude-haiku-4-5"
FAST = PollConfig(interval_s=0.001, max_interval_s=0.002)
ANSWER = re.compile(r"<answer>\n(.*)\n</answer>", re.DOTALL)
# Hand-copied from router/core/tiers.toml, so the cost check does not reuse the code it checks.
PRICES = {SONNET: (3.0, 15.0), OPUS: (5.0, 25.0), HAIKU_MODEL: (1.0, 5.0)}


def is_judge(params: dict[str, Any]) -> bool:
    system = params.get("system")
    return isinstance(system, list) and "expert evaluator" in system[0]["text"]


def verdict(score: int, adequate: bool) -> str:
    return json.dumps({"reason": f"scored {score}", "score": score, "adequate": adequate})


def make_config(tmp_path: Path, **kw: Any) -> LabelConfig:
    return LabelConfig(
        out=tmp_path / "labeled.jsonl", judges=(SONNET, OPUS), poll=FAST, progress=False, **kw
    )


def hand_priced_usd(results_file: Path, multiplier: float) -> dict[str, float]:
    """Dollars per model from the usage blocks the fake returned, priced independently."""
    out: dict[str, float] = {}
    for line in results_file.read_text().splitlines():
        msg = json.loads(line)["message"]
        usage, (p_in, p_out) = msg["usage"], PRICES[msg["model"]]
        usd = (
            usage["input_tokens"] * p_in
            + usage["cache_creation_input_tokens"] * p_in * 1.25
            + usage["cache_read_input_tokens"] * p_in * 0.1
            + usage["output_tokens"] * p_out
        ) / 1e6
        out[msg["model"]] = out.get(msg["model"], 0.0) + usd * multiplier
    return out


def test_label_arena_hard_end_to_end(
    fake_anthropic: FakeAnthropic, shared_data: Path, tmp_path: Path
) -> None:
    turns, bad = read_arena_hard(shared_data / "arena_hard", limit=10)
    assert len(turns) == 10 and not bad
    tier_of = {a.text: tier for t in turns for tier, a in t.answers.items()}
    opus_view = {Tier.HAIKU: (4, False), Tier.SONNET: (7, True), Tier.OPUS: (9, True)}

    def responder(params: dict[str, Any]) -> str:
        assert is_judge(params), "arena-hard has every answer: only judges are called"
        tier = tier_of[ANSWER.search(params["messages"][0]["content"]).group(1)]
        return verdict(8, True) if params["model"] == SONNET else verdict(*opus_view[tier])

    fake_anthropic.responder = responder
    cfg = make_config(tmp_path)
    result = Labeler(cfg, Settings(), fake_anthropic.client()).run(turns, confirm=lambda e: True)

    assert result is not None and result.labeled == 10 and not result.failures
    report = load_labeled([cfg.out])
    assert len(report.turns) == 10 and not report.bad_lines
    rec = report.turns[0]
    assert rec.source == "arena_hard" and rec.id.startswith("arena_hard:") and rec.category
    haiku, sonnet = rec.scores[Tier.HAIKU], rec.scores[Tier.SONNET]
    assert haiku.score == pytest.approx(((8 + 4) / 2 - 1) / 9, abs=1e-4)
    assert haiku.adequate is False  # one judge said no: the consensus is no
    assert sonnet.adequate is True and sonnet.score == pytest.approx((7.5 - 1) / 9, abs=1e-4)
    assert haiku.source == f"judge:{SONNET},{OPUS}"
    assert haiku.judges == {
        SONNET: {"score": 8.0, "adequate": True, "reason": "scored 8"},
        OPUS: {"score": 4.0, "adequate": False, "reason": "scored 4"},
    }
    assert haiku.model_extra == {"answer_model": "claude-3-haiku-20240307"}

    # One batch with 10 turns x 3 tiers x 2 judges, each with the rubric as a cached block.
    (create,) = fake_anthropic.calls("/v1/messages/batches")
    requests = create.body["requests"]
    assert len(requests) == 60
    assert all(r["params"]["system"][0]["cache_control"] == {"type": "ephemeral"} for r in requests)

    # The cost report is the fake's usage at tiers.toml prices, halved for batches.
    by_model = hand_priced_usd(cfg.work_dir / "results.jsonl", multiplier=0.5)
    judges = result.ledger.by_judge()
    assert judges[SONNET].usd == pytest.approx(by_model[SONNET])
    assert judges[OPUS].usd == pytest.approx(by_model[OPUS])
    assert judges[SONNET].requests == 30 and judges[OPUS].cache_read_input_tokens > 0
    assert sum(t.usd for t in result.ledger.by_tier().values()) == pytest.approx(
        result.ledger.total().usd
    )

    # A re-run finds every id already labeled: nothing is sent.
    n_requests = len(fake_anthropic.requests)
    again = Labeler(cfg, Settings(), fake_anthropic.client()).run(turns)
    assert again is not None and again.skipped == 10 and again.labeled == 0
    assert len(fake_anthropic.requests) == n_requests


def write_logged_turns(path: Path) -> None:
    lines = [
        {"id": "t1", "request": {"prompt": "t1: name a prime"}, "answers": {"haiku": "7"}},
        {"call_id": "t2", "request": {"prompt": "t2: explain monads"}, "category": "code"},
        {
            "id": "t3",
            "request": {"messages": [{"role": "user", "content": "t3: hi"}], "max_tokens": 50},
            "scores": {"opus": {"score": 1.0, "source": "ground_truth:x"}},
        },
        {"id": "t4", "request": {"messages": []}},  # invalid: an input failure
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")


def test_label_logged_turns_generates_answers_fails_visibly_and_resumes(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    write_logged_turns(tmp_path / "log.jsonl")
    turns, bad = read_jsonl_turns(tmp_path / "log.jsonl")
    assert [t.id for t in turns] == ["t1", "t2", "t3"] and len(bad) == 2
    state = {"opus_broken": True}

    def responder(params: dict[str, Any]) -> Any:
        text = json.dumps(params["messages"])
        if not is_judge(params):
            if "t3: hi" in text and params["model"] == SONNET:
                return FakeError(400, "prompt is too long")  # an errored batch item
            return f"answer by {params['model']}"
        if "t2: explain" in text and params["model"] == OPUS and state["opus_broken"]:
            return "I would rate this highly."  # malformed: no JSON
        return verdict(7, True)

    fake_anthropic.responder = responder
    cfg = make_config(tmp_path)
    result = Labeler(cfg, Settings(), fake_anthropic.client()).run(turns, input_failures=bad)
    assert result is not None and result.labeled == 1  # t1 only

    failures = {
        json.loads(line)["id"]: json.loads(line)["reasons"]
        for line in cfg.failures_path.read_text().splitlines()
    }
    assert set(failures) == {"t2", "t3", "log.jsonl:4", "log.jsonl:5"}
    assert {r["tier"] for r in failures["t2"]} == {"haiku", "sonnet", "opus"}
    assert all(r["judge"] == OPUS and "malformed verdict" in r["reason"] for r in failures["t2"])
    assert failures["t3"] == [
        {
            "stage": "answer",
            "tier": "sonnet",
            "reason": "answer request invalid_request_error: prompt is too long",
        }
    ]
    assert "invalid JSON" in failures["log.jsonl:5"][0]["reason"]
    # Answers: t1 needed sonnet+opus, t2 and t3 all three; the given haiku answer was kept.
    (answer_batch, judge_batch) = fake_anthropic.calls("/v1/messages/batches")
    assert len(answer_batch.body["requests"]) == 8
    assert len(judge_batch.body["requests"]) == 12  # t1 and t2, 3 tiers x 2 judges
    t3_params = [r["params"] for r in answer_batch.body["requests"] if "t3" in json.dumps(r)]
    assert all(p["max_tokens"] == 50 for p in t3_params)

    # Re-run after the judge is fixed: only the unusable replies and the errored answer are
    # sent again; t3's remaining answers and every good verdict are reused.
    state["opus_broken"] = False
    fake_anthropic.responder = lambda p: verdict(6, True) if is_judge(p) else "answer"
    before = len(fake_anthropic.calls("/v1/messages/batches"))
    result = Labeler(cfg, Settings(), fake_anthropic.client()).run(turns, input_failures=bad)
    assert result is not None and result.labeled == 2 and result.skipped == 1
    resent = [
        r["params"]
        for c in fake_anthropic.calls("/v1/messages/batches")[before:]
        for r in c.body["requests"]
    ]
    assert sum(not is_judge(p) for p in resent) == 1  # t3's sonnet answer
    assert sum(is_judge(p) for p in resent) == 3 + 6  # t2's opus verdicts, t3's six
    labeled = load_labeled([cfg.out]).turns
    assert sorted(t.id for t in labeled) == ["t1", "t2", "t3"]
    t3 = next(t for t in labeled if t.id == "t3")
    assert t3.scores[Tier.HAIKU].model_extra == {"answer_model": HAIKU_MODEL}
    remaining = [json.loads(line)["id"] for line in cfg.failures_path.read_text().splitlines()]
    assert remaining == ["log.jsonl:4", "log.jsonl:5"]


def test_live_lane_costs_full_price(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    write_logged_turns(tmp_path / "log.jsonl")
    turns, _ = read_jsonl_turns(tmp_path / "log.jsonl")
    fake_anthropic.responder = lambda p: verdict(9, True) if is_judge(p) else "an answer"
    cfg = make_config(tmp_path, lane="live", tiers=(Tier.HAIKU,))
    result = Labeler(cfg, Settings(), fake_anthropic.client()).run(turns[:2])
    assert result is not None and result.labeled == 2
    assert not fake_anthropic.calls("/v1/messages/batches")
    by_model = hand_priced_usd(cfg.work_dir / "results.jsonl", multiplier=1.0)
    assert result.ledger.total().usd == pytest.approx(sum(by_model.values()))
    answers = result.ledger.answers()
    assert answers[Tier.HAIKU].requests == 1  # t2's haiku answer; t1 came with one


def test_estimate_prices_only_what_will_be_sent(tmp_path: Path) -> None:
    write_logged_turns(tmp_path / "log.jsonl")
    turns, _ = read_jsonl_turns(tmp_path / "log.jsonl")
    batch = Labeler(make_config(tmp_path), Settings()).estimate(turns)
    live = Labeler(make_config(tmp_path, lane="live"), Settings()).estimate(turns)
    assert batch.new_requests == 8 + 18 and batch.reused_requests == 0
    assert batch.ledger.total().usd == pytest.approx(live.ledger.total().usd * 0.5)
    assert batch.worst_usd > batch.ledger.total().usd > 0
    assert "worst case" in batch.render()
    fresh = Labeler(make_config(tmp_path, use_given_answers=False), Settings()).estimate(turns)
    assert fresh.new_requests == 9 + 18  # t1's given haiku answer is regenerated too


def test_cli_dry_run_confirm_and_label(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_logged_turns(tmp_path / "log.jsonl")
    fake_anthropic.responder = lambda p: verdict(8, True) if is_judge(p) else "an answer"
    out = tmp_path / "out.jsonl"
    args = ["label", "--input", str(tmp_path / "log.jsonl"), "--out", str(out), "--limit", "2"]
    args += ["--poll-interval", "0.001", "--no-progress"]
    runner = CliRunner()
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    dry = runner.invoke(tierwise, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Estimated cost" in dry.output and not fake_anthropic.requests

    no_key = runner.invoke(tierwise, [*args, "--yes"])
    assert no_key.exit_code != 0 and "ANTHROPIC_API_KEY" in no_key.output

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    declined = runner.invoke(tierwise, args, input="n\n")
    assert declined.exit_code != 0 and "nothing was sent" in declined.output
    assert not fake_anthropic.requests

    done = runner.invoke(tierwise, [*args, "--yes"])
    assert done.exit_code == 0, done.output
    assert "labeled 2 turns" in done.output and "Actual cost of this run" in done.output
    assert all(r.api_key == "sk-test" for r in fake_anthropic.requests)
    assert len(load_labeled([out]).turns) == 2
    assert runner.invoke(tierwise, ["label", "--out", str(out)]).exit_code == 2  # no input


def test_cli_pending_batches_cancel_and_collect(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_logged_turns(tmp_path / "log.jsonl")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    fake_anthropic.batch_polls_in_progress = 1_000
    fake_anthropic.responder = lambda p: verdict(8, True) if is_judge(p) else "an answer"
    out = tmp_path / "out.jsonl"
    args = ["label", "--input", str(tmp_path / "log.jsonl"), "--out", str(out), "--tier", "haiku"]
    args += ["--poll-interval", "0.001", "--no-progress", "--yes"]
    runner = CliRunner()

    pending = runner.invoke(tierwise, [*args, "--max-wait", "0"])
    assert pending.exit_code == 1 and "still in progress" in pending.output
    (create,) = fake_anthropic.calls("/v1/messages/batches")
    assert len(create.body["requests"]) == 2  # haiku answers for t2 and t3 only

    cancel = runner.invoke(tierwise, [*args, "--cancel"])
    assert cancel.exit_code == 0 and "msgbatch_" in cancel.output

    fake_anthropic.batch_polls_in_progress = 0  # t1's judge batch (sent next) ends at once
    collect = runner.invoke(tierwise, args)
    assert collect.exit_code == 0, collect.output
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 2  # + t1's judge batch only
    failures = [
        json.loads(x) for x in (tmp_path / "out.jsonl.failures.jsonl").read_text().splitlines()
    ]
    canceled = {f["id"]: f["reasons"][0]["reason"] for f in failures if f["id"] in ("t2", "t3")}
    assert all("canceled" in why for why in canceled.values()) and len(canceled) == 2
    assert [t.id for t in load_labeled([out]).turns] == ["t1"]


def test_cost_table_rows_add_up_without_overlap_and_stay_aligned() -> None:
    """Answers and judging add up to the total; the by-tier view is set apart and adds up to
    the same total; every number column lines up, however long a judge model id is."""
    from labeling.ledger import Ledger

    settings, ledger = Settings(), Ledger()
    judges = ("claude-sonnet-4-6", "claude-opus-4-6-a-very-long-dated-judge-model-id")
    for n, tier in enumerate(Tier):
        usage = {"input_tokens": 1000 * (n + 1), "output_tokens": 300 + n}
        ledger.record(settings, ("answer", tier, settings.tier_spec(tier).model), usage, "batch")
        for judge in judges:
            ledger.record(settings, ("judge", tier, judge), {"input_tokens": 2_000 + n}, "batch")
    lines = ledger.render("Estimated cost:").splitlines()[2:]
    numbers = [line for line in lines if line.split()[-1].replace(".", "").isdigit()]
    assert len({len(line) for line in numbers}) == 1  # aligned columns

    def requests(line: str) -> int:
        return int(line.split()[-5])

    total_at = next(i for i, line in enumerate(lines) if line.split()[0] == "total")
    before, after = lines[:total_at], lines[total_at + 1 :]
    total = requests(lines[total_at])
    assert total == 3 * (1 + len(judges))
    assert sum(requests(line) for line in before if line in numbers) == total
    assert sum(requests(line) for line in after if line in numbers) == total
