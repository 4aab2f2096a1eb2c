"""Judge: rubric request shape, verdict parsing, live lane against the fake API with the real SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from labeling.judge import (
    RUBRIC,
    Judge,
    JudgeFailure,
    MalformedVerdictError,
    Verdict,
    answer_params,
    judge_params,
    parse_verdict,
    render_turn,
)
from labeling.live import LiveLane
from router.core.schemas import RouteRequest
from tests.fake_anthropic import FakeAnthropic, FakeError

SONNET, OPUS = "claude-sonnet-4-6", "claude-opus-4-6"
TURN = RouteRequest(prompt="What is 17 * 24?")


def verdict_json(score: int, adequate: bool, reason: str = "ok") -> str:
    return json.dumps({"reason": reason, "score": score, "adequate": adequate})


def client(fake: FakeAnthropic) -> anthropic.Anthropic:
    return fake.client()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("text", "score", "adequate"),
    [
        ('{"reason": "right", "score": 9, "adequate": true}', 9, True),
        (
            'Here is my verdict:\n```json\n{"reason": "x", "score": 3, "adequate": false}\n```',
            3,
            False,
        ),
        (
            'Thinking {not json}. Final: {"score": "7", "adequate": "yes", "reason": "fine"}',
            7,
            True,
        ),
        ('{"score": 2, "adequate": true} then revised {"score": 4, "adequate": "no"}', 4, False),
        ('{"score": 6.5, "adequate": false, "reason": {"nested": 1}}', 6.5, False),
    ],
)
def test_parse_verdict_accepts_json_in_the_reply(text: str, score: float, adequate: bool) -> None:
    verdict = parse_verdict(text, SONNET)
    assert (verdict.score, verdict.adequate, verdict.judge) == (score, adequate, SONNET)
    assert 0.0 <= verdict.unit_score <= 1.0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("The answer is good, 8/10.", "no JSON object"),
        ('{"reason": "x", "score": 11, "adequate": true}', "expected a number 1-10"),
        ('{"reason": "x", "score": "high", "adequate": true}', "expected a number 1-10"),
        ('{"reason": "x", "score": true, "adequate": true}', "expected a number 1-10"),
        ('{"reason": "x", "score": 5}', "'adequate' is missing"),
        ('{"reason": "x", "score": 5, "adequate": "maybe"}', "expected true or false"),
        ('{"reason": "cut at max tok', "no JSON object"),
    ],
)
def test_parse_verdict_rejects_malformed(text: str, why: str) -> None:
    with pytest.raises(MalformedVerdictError, match=why):
        parse_verdict(text, OPUS)


def test_judge_request_puts_the_rubric_first_as_a_cached_block() -> None:
    params = judge_params(TURN, "408", OPUS)
    assert params["model"] == OPUS
    assert params["system"] == [
        {"type": "text", "text": RUBRIC, "cache_control": {"type": "ephemeral"}}
    ]
    user = params["messages"][0]["content"]
    assert "17 * 24" in user and "<answer>\n408\n</answer>" in user
    # Same rubric bytes for every turn: the cache prefix never changes.
    assert judge_params(RouteRequest(prompt="other"), "x", OPUS)["system"] == params["system"]


def test_render_and_answer_params_for_a_messages_turn() -> None:
    turn = RouteRequest(
        system="be brief",
        messages=[
            {"role": "user", "content": "list files"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}],
            },
        ],
        tools=[{"name": "ls", "input_schema": {"type": "object"}}],
        max_tokens=64,
    )
    text = render_turn(turn)
    assert text.startswith("[system]\nbe brief") and "[tool_use ls]" in text and "a.txt" in text
    params = answer_params(turn, "claude-haiku-4-5")
    assert params["max_tokens"] == 64 and params["tools"][0]["name"] == "ls"
    assert params["messages"][2]["content"][0]["tool_use_id"] == "t1"
    assert "threshold" not in params and "prompt" not in params


def judge_responder(params: dict[str, Any]) -> str:
    return verdict_json(8 if params["model"] == SONNET else 6, params["model"] == SONNET)


def test_live_judge_happy_path_uses_both_judges_and_the_cache(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.responder = judge_responder
    judge = Judge(client(fake_anthropic), [SONNET, OPUS])
    got = judge.grade(TURN, "408")
    assert got == {
        SONNET: Verdict(SONNET, 8.0, True, "ok"),
        OPUS: Verdict(OPUS, 6.0, False, "ok"),
    }
    calls = fake_anthropic.calls("/v1/messages")
    assert sorted(c.body["model"] for c in calls) == [OPUS, SONNET]
    assert all(c.api_key == "test" for c in calls)
    # A second answer to grade: the rubric prefix is now read from the cache.
    lane = LiveLane(client(fake_anthropic), progress=False)
    outcomes = lane.run({"x": judge_params(TURN, "410", SONNET)})
    assert outcomes["x"].usage["cache_read_input_tokens"] > 0


def test_live_judge_retries_429_honouring_retry_after(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.responder = judge_responder
    fake_anthropic.fail_next(429, retry_after=0.2, path="/v1/messages")
    fake_anthropic.fail_next(529, retry_after=0.01, path="/v1/messages")
    lane = LiveLane(client(fake_anthropic), concurrency=1, progress=False)
    started = time.monotonic()
    got = Judge(client(fake_anthropic), [SONNET], lane=lane).grade(TURN, "408")
    assert isinstance(got[SONNET], Verdict)
    assert time.monotonic() - started >= 0.2  # waited what retry-after said
    assert len(fake_anthropic.calls("/v1/messages")) == 3


def test_live_judge_gives_up_as_a_failure_not_a_crash(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.responder = lambda params: FakeError(500, "upstream down", retry_after=0.001)
    lane = LiveLane(client(fake_anthropic), max_retries=1, progress=False)
    got = Judge(client(fake_anthropic), [SONNET], lane=lane).grade(TURN, "408")
    assert isinstance(got[SONNET], JudgeFailure)
    assert "api_error" in got[SONNET].reason and "upstream down" in got[SONNET].reason
    assert len(fake_anthropic.calls("/v1/messages")) == 2


def test_malformed_judge_output_is_a_recorded_failure(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(SONNET, "Looks right to me. 9/10")
    fake_anthropic.script(OPUS, verdict_json(9, True))
    got = Judge(client(fake_anthropic), [SONNET, OPUS]).grade(TURN, "408")
    assert isinstance(got[SONNET], JudgeFailure) and "malformed verdict" in got[SONNET].reason
    assert isinstance(got[OPUS], Verdict) and got[OPUS].score == 9
