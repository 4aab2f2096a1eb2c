"""Real agent traffic for tests: every API call of the Claude Code transcripts and tau-bench
trajectories in ../shared/data/agent_sessions, rebuilt as the Messages-API body the agent sent
(history, tool_use / tool_result / thinking blocks, system prompt and tools where recorded)."""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive messages of one role joined into one, as the API wants them."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            blocks = [_as_blocks(out[-1]["content"]), _as_blocks(m["content"])]
            out[-1] = {"role": m["role"], "content": blocks[0] + blocks[1]}
        else:
            out.append(dict(m))
    return out


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def claude_code_calls(archive: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(transcript name, request body) for every assistant response in every transcript: the
    conversation before it (since the last compaction), lines of one response grouped by id."""
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.name.endswith(".jsonl"):
                continue
            lines = tar.extractfile(member).read().decode().splitlines()  # type: ignore[union-attr]
            yield from ((member.name, body) for body in _transcript_calls(lines))


def _transcript_calls(lines: list[str]) -> Iterator[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    responded: set[str] = set()
    for line in lines:
        entry = json.loads(line)
        if entry.get("subtype") == "compact_boundary":
            history = []
        if entry.get("type") not in ("user", "assistant") or "message" not in entry:
            continue
        message = entry["message"]
        if entry["type"] == "assistant":
            if message.get("id") not in responded and history and history[-1]["role"] == "user":
                responded.add(message.get("id"))
                yield {
                    "model": message.get("model", "claude-opus-4-6"),
                    "max_tokens": 32000,
                    "messages": _merged(history),
                }
            history.append({"role": "assistant", "content": message["content"]})
        else:
            history.append({"role": "user", "content": message["content"]})


def tau_bench_calls(data: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(session name, request body) for every agent call of the tau-bench airline trajectories,
    OpenAI chat turned into the Messages API (tool_calls -> tool_use, tool -> tool_result)."""
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "input_schema": t["function"]["parameters"],
        }
        for t in json.loads((data / "airline_tools.json").read_text())
    ]
    with gzip.open(data / "gpt-4o-airline.json.gz") as fh:
        sessions = json.load(fh)
    for n, session in enumerate(sessions):
        system = ""
        history: list[dict[str, Any]] = []
        for turn in session["traj"]:
            role = turn["role"]
            if role == "system":
                system = turn["content"]
            elif role == "user":
                history.append({"role": "user", "content": turn["content"]})
            elif role == "tool":
                block = {
                    "type": "tool_result",
                    "tool_use_id": turn["tool_call_id"],
                    "content": turn["content"],
                }
                history.append({"role": "user", "content": [block]})
            else:  # the assistant: one API call, answered by this turn
                if history and history[-1]["role"] == "user":
                    body = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "system": system}
                    yield f"tau-{n}", {**body, "tools": tools, "messages": _merged(history)}
                blocks = _as_blocks(turn["content"]) if turn.get("content") else []
                blocks += [
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": json.loads(call["function"]["arguments"]),
                    }
                    for call in turn.get("tool_calls") or []
                ]
                history.append({"role": "assistant", "content": blocks})
