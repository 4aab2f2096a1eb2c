"""Batch lane against the fake Batches API with the real SDK: outcomes, retries, backoff, resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labeling.batches import BatchError, BatchLane, BatchPendingError, PollConfig
from labeling.outcomes import ResultStore
from tests.fake_anthropic import FakeAnthropic, FakeError

MODEL = "claude-haiku-4-5"
FAST = PollConfig(interval_s=0.001, max_interval_s=0.004)


def params(text: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


def sent_ids(fake: FakeAnthropic) -> list[str]:
    """custom_ids of every request sent in every batch, in order."""
    return [r["custom_id"] for c in fake.calls("/v1/messages/batches") for r in c.body["requests"]]


def lane(fake: FakeAnthropic, tmp_path: Path, poll: PollConfig = FAST, **kw: Any) -> BatchLane:
    store = ResultStore(tmp_path / "results.jsonl")
    return BatchLane(
        fake.client(), tmp_path / "batches.json", store, poll=poll, progress=False, **kw
    )


def test_all_succeed_with_usage(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.responder = lambda p: f"echo {p['messages'][0]['content']}"
    out = lane(fake_anthropic, tmp_path).run({f"r{i}": params(f"q{i}") for i in range(5)})
    assert {cid: o.text for cid, o in out.items()} == {f"r{i}": f"echo q{i}" for i in range(5)}
    assert all(o.ok and o.lane == "batch" and o.usage["output_tokens"] > 0 for o in out.values())
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 1
    assert json.loads((tmp_path / "batches.json").read_text())["pending"] == {}


def test_errored_and_expired_items_retry_once_then_fail_with_reasons(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.batch_item_status.update(
        {
            "bad": "errored",  # invalid_request_error: not retried
            "exp_once": ["expired", None],  # retried, then succeeds
            "exp_always": "expired",  # retried once, then a failure
            "cancel": "canceled",  # not retried
        }
    )
    flaky = {"n": 0}

    def responder(p: dict[str, Any]) -> Any:
        if p["messages"][0]["content"] == "flaky" and flaky["n"] == 0:
            flaky["n"] += 1
            return FakeError(529, "overloaded")  # transient: retried
        return "fine"

    fake_anthropic.responder = responder
    ids = ["ok", "bad", "exp_once", "exp_always", "cancel", "flaky"]
    out = lane(fake_anthropic, tmp_path).run({cid: params(cid) for cid in ids})

    assert out["ok"].ok and out["exp_once"].ok and out["flaky"].ok
    assert out["bad"].status == "errored" and "invalid_request_error" in out["bad"].describe()
    assert out["exp_always"].status == "expired" and "24 h" in out["exp_always"].describe()
    assert out["cancel"].status == "canceled"
    assert Counter(sent_ids(fake_anthropic)) == {
        "ok": 1,
        "bad": 1,
        "cancel": 1,
        "exp_once": 2,
        "exp_always": 2,
        "flaky": 2,
    }
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 2  # original + one follow-up


def test_polls_with_exponential_backoff(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.batch_polls_in_progress = 5
    sleeps: list[float] = []
    poll = PollConfig(interval_s=1.0, backoff=2.0, max_interval_s=5.0)
    out = lane(fake_anthropic, tmp_path, poll, sleep=sleeps.append).run({"a": params("a")})
    assert out["a"].ok
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    gets = [r for r in fake_anthropic.requests if r.method == "GET" and r.path.count("/") == 4]
    assert len(gets) == 6 + 1  # our polls, plus the one the SDK's results() makes itself


def test_interrupted_batch_resumes_by_id_without_resending(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.batch_polls_in_progress = 3
    requests = {f"r{i}": params(f"q{i}") for i in range(4)}
    impatient = PollConfig(interval_s=0.001, max_wait_s=0.0)
    with pytest.raises(BatchPendingError) as info:
        lane(fake_anthropic, tmp_path, impatient).run(requests)
    (batch_id,) = info.value.batch_ids
    state = json.loads((tmp_path / "batches.json").read_text())
    assert set(state["pending"][batch_id]["custom_ids"]) == set(requests)

    out = lane(fake_anthropic, tmp_path).run(requests)  # a fresh process: new lane, same state
    assert all(o.ok and not o.reused for o in out.values())
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 1
    assert sorted(sent_ids(fake_anthropic)) == sorted(requests)

    again = lane(fake_anthropic, tmp_path).run(requests)  # everything paid: nothing is sent
    assert all(o.reused for o in again.values())
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 1


def test_new_requests_go_out_while_a_pending_batch_is_resumed(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.batch_polls_in_progress = 1
    with pytest.raises(BatchPendingError):
        lane(fake_anthropic, tmp_path, PollConfig(max_wait_s=0.0)).run({"a": params("a")})
    out = lane(fake_anthropic, tmp_path).run({"a": params("a"), "b": params("b")})
    assert out["a"].ok and out["b"].ok
    assert sent_ids(fake_anthropic) == ["a", "b"]


def test_create_retries_429_but_fails_clearly_on_400(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.fail_next(429, retry_after=0.01, path="/v1/messages/batches", method="POST")
    assert lane(fake_anthropic, tmp_path).run({"a": params("a")})["a"].ok
    assert len(fake_anthropic.calls("/v1/messages/batches")) == 2
    with pytest.raises(BatchError, match="custom_id"):
        lane(fake_anthropic, tmp_path / "x").run({"not valid!": params("b")})


def test_cancel_pending_then_collect(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.batch_polls_in_progress = 10
    with pytest.raises(BatchPendingError):
        lane(fake_anthropic, tmp_path, PollConfig(max_wait_s=0.0)).run({"a": params("a")})
    assert len(lane(fake_anthropic, tmp_path).cancel_pending()) == 1
    out = lane(fake_anthropic, tmp_path).run({"a": params("a")})
    assert out["a"].status == "canceled"


def test_a_batch_gone_from_the_api_is_sent_again(
    fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    fake_anthropic.batch_polls_in_progress = 1
    with pytest.raises(BatchPendingError) as info:
        lane(fake_anthropic, tmp_path, PollConfig(max_wait_s=0.0)).run({"a": params("a")})
    fake_anthropic.client().messages.batches.delete(info.value.batch_ids[0])
    out = lane(fake_anthropic, tmp_path).run({"a": params("a")})
    assert out["a"].ok
    assert sent_ids(fake_anthropic) == ["a", "a"]
