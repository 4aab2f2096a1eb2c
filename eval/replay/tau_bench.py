"""OpenAI-format agent trajectories (tau-bench's historical_trajectories) -> ReplaySessions.

A file is a JSON list of sessions, each {"traj" (or "messages"): [system, user, assistant with
tool_calls, tool, ...], "reward", "task_id", "trial"}. Every assistant message is one API call
whose request is everything before it, converted to the Messages API (tool_calls -> tool_use,
tool messages -> tool_result). No usage is recorded: tokens are estimated from text
(eval.replay.estimate), system prompt and tool schemas included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.replay.estimate import message_chars, preamble_chars, tokens_of
from eval.replay.session import FIVE_MINUTES_S, CallTokens, ReplayCall, ReplaySession
from router.core.schemas import Message

log = logging.getLogger(__name__)

# tau-bench's historical trajectories are GPT-4o runs: no Claude price, no Claude cache.
RECORDED_MODEL = "gpt-4o"


def anthropic_tools(tools: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """OpenAI function tools -> Messages-API tools (name, description, input_schema)."""
    out = []
    for tool in tools:
        fn = tool.get("function", tool)
        out.append(
            {
                "name": fn.get("name", ""),
                "description": fn.get("description", ""),
                "input_schema": fn.get("parameters", fn.get("input_schema", {})),
            }
        )
    return tuple(out)


def _arguments(raw: object) -> object:
    if not isinstance(raw, str):
        return raw or {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"_unparsed": raw}


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _blocks(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(Messages-API role, content blocks) of one OpenAI message."""
    role = message.get("role")
    text = _text(message.get("content"))
    if role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", "")}
        return "user", [result | {"content": text}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if role == "assistant":
        for call in message.get("tool_calls") or []:
            fn = call.get("function", {})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": fn.get("name", ""),
                    "input": _arguments(fn.get("arguments")),
                }
            )
        return "assistant", blocks
    return "user", blocks


def read_session(
    record: dict[str, Any], index: int, path: Path, tools: Sequence[dict[str, Any]]
) -> ReplaySession:
    """One trajectory; `tools` are OpenAI-format schemas sent with every call."""
    where = f"{path}[{index}]"
    traj = record.get("traj", record.get("messages"))
    if not isinstance(traj, list):
        traj = []
    claude_tools = anthropic_tools(record.get("tools") or tools)
    system = "\n\n".join(_text(m.get("content")) for m in traj if m.get("role") == "system")
    preamble = preamble_chars(system or None, claude_tools)
    history: list[Message] = []  # closed messages; consecutive same-role turns are merged
    chars = 0
    calls: list[ReplayCall] = []
    warnings: list[str] = []
    for position, raw in enumerate(m for m in traj if isinstance(m, dict)):
        if raw.get("role") == "system":
            continue
        role, blocks = _blocks(raw)
        try:
            message = Message.model_validate({"role": role, "content": blocks})
        except ValidationError as exc:
            warnings.append(f"{where} message {position}: skipped ({exc.errors()[0]['msg']})")
            continue
        if role == "assistant":
            if not history or history[-1].role != "user":
                warnings.append(f"{where} message {position}: assistant turn answers no user turn")
            else:
                calls.append(
                    ReplayCall(
                        messages=tuple(history),
                        model=RECORDED_MODEL,
                        tokens=CallTokens(
                            input_tokens=tokens_of(preamble + chars),
                            output_tokens=tokens_of(message_chars(message)),
                        ),
                        timestamp=None,
                        line=position + 1,
                        system=system or None,
                        tools=claude_tools,
                    )
                )
        if not blocks:
            continue
        if history and history[-1].role == role:  # merged, as the Messages API would
            chars -= message_chars(history[-1])
            content = [*history[-1].content, *message.content]
            message = Message.model_construct(role=role, content=content)
            history[-1] = message
        else:
            history.append(message)
        chars += message_chars(message)
    for warning in warnings:
        log.warning("%s", warning)
    task, trial = record.get("task_id", index), record.get("trial", 0)
    reward = record.get("reward")
    return ReplaySession(
        session_id=f"task{task}-trial{trial}",
        source="tau_bench",
        path=path,
        calls=tuple(calls),
        usage_recorded=False,
        ttl_s=FIVE_MINUTES_S,
        reward=float(reward) if isinstance(reward, int | float) else None,
        warnings=tuple(warnings),
    )


def is_trajectories(data: object) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(r, dict) and ("traj" in r or "messages" in r) for r in data[:5])
    )


def read_trajectories(
    data: list[dict[str, Any]], path: Path, tools: Sequence[dict[str, Any]]
) -> list[ReplaySession]:
    return [read_session(record, i, path, tools) for i, record in enumerate(data)]
