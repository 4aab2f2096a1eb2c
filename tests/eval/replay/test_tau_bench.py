"""tau-bench trajectories: one call per assistant message, OpenAI tool calls as Messages-API
blocks, and tokens estimated from text with the system prompt and tool schemas counted."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eval.replay.sources import load_sessions
from eval.replay.tau_bench import read_session


def test_every_assistant_message_is_a_call(
    agent_sessions: Path, raw_tau: list[dict[str, Any]]
) -> None:
    loaded = load_sessions([agent_sessions / "tau_bench"])
    assert len(loaded.sessions) == len(raw_tau) == 200
    want = [sum(1 for m in s["traj"] if m["role"] == "assistant") for s in raw_tau]
    assert [s.n_calls for s in loaded.sessions] == want
    assert sum(want) == 2454
    assert sum(s.reward == 1.0 for s in loaded.sessions) == 84
    assert all(not s.usage_recorded for s in loaded.sessions)
    assert loaded.tools_files == [str(agent_sessions / "tau_bench" / "airline_tools.json")]


def test_tokens_count_the_system_prompt_and_tool_schemas(
    agent_sessions: Path, raw_tau: list[dict[str, Any]]
) -> None:
    tools = json.loads((agent_sessions / "tau_bench" / "airline_tools.json").read_text())
    record = raw_tau[0]
    session = read_session(record, 0, Path("x"), tools)
    system, first_user = record["traj"][0]["content"], record["traj"][1]["content"]
    floor = (len(system) + len(first_user) + sum(len(json.dumps(t["function"])) for t in tools)) / 4
    first = session.calls[0].tokens
    assert first.input_tokens >= math.floor(floor) and first.cache_read == 0
    without = read_session(record, 0, Path("x"), [])
    assert without.calls[0].tokens.input_tokens < first.input_tokens - 2000  # schemas: ~2.3k
    prompts = [c.tokens.prompt_tokens for c in session.calls]
    assert prompts == sorted(prompts)  # the history only grows


def test_tool_calls_become_tool_use_and_tool_result_blocks(raw_tau: list[dict[str, Any]]) -> None:
    session = read_session(raw_tau[0], 0, Path("x"), [])
    call = next(c for c in session.calls if c.messages[-1].content and any(
        b.type == "tool_result" for b in c.messages[-1].content if not isinstance(b, str)))  # fmt: skip
    use = next(
        b for b in call.messages[-2].content if not isinstance(b, str) and b.type == "tool_use"
    )
    result = call.messages[-1].content[0]
    assert not isinstance(result, str)
    assert (result.model_extra or {})["tool_use_id"] == (use.model_extra or {})["id"]
    assert isinstance((use.model_extra or {})["input"], dict)
