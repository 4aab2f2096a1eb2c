"""tierwise's own call-log export as a replay source: sessions by session_id (else by their
first message), recorded usage from gateway rows, estimates for the rest."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eval.replay.sources import load_sessions
from tierwise.export_log import export_rows

Q1 = [{"role": "user", "content": "Plan the migration of the billing tables."}]
A1 = {"role": "assistant", "content": "First, copy the schema; then backfill in batches."}
Q2 = [*Q1, A1, {"role": "user", "content": "Write the backfill script."}]


def row(n: int, messages: list[dict[str, Any]], session: str | None, usage: bool) -> dict[str, Any]:
    tokens = {"input_tokens": 20 + n, "output_tokens": 300, "cache_creation_input_tokens": 5000,
              "cache_read_input_tokens": 1000 * n}  # fmt: skip
    return {
        "call_id": f"c{n}",
        "ts": f"2026-11-20T10:00:{n:02d}+00:00",
        "endpoint": "gateway" if usage else "route",
        "request_hash": f"h{n}",
        "request": {"messages": messages, "model": "claude-opus-4-6", "session_id": session},
        "tier": "opus",
        "model": "claude-opus-4-6",
        "model_version": "v1",
        "probabilities": {"haiku": 0.2, "sonnet": 0.5, "opus": 0.9},
        "fallback": False,
        "upstream_status": 200 if usage else None,
        "answer": None,
        "session_id": session,
        "message_id": f"msg_{n}" if usage else None,
        **({k: v for k, v in tokens.items()} if usage else dict.fromkeys(tokens)),
    }


def test_gateway_rows_replay_with_their_usage(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    rows = [row(1, Q1, "s1", True), row(2, Q2, "s1", True), row(3, Q1, "s2", True)]
    assert export_rows(rows, out).written == 3
    meta = json.loads(out.read_text().splitlines()[0])["calllog"]
    assert meta["session_id"] == "s1" and meta["usage"]["cache_read_input_tokens"] == 1000
    sessions = {s.session_id: s for s in load_sessions([out]).sessions}
    assert sorted(sessions) == ["s1", "s2"]
    s1 = sessions["s1"]
    assert s1.source == "calllog" and s1.usage_recorded and s1.n_calls == 2
    assert [c.tokens.cache_read for c in s1.calls] == [1000, 2000]
    assert [c.message_id for c in s1.calls] == ["msg_1", "msg_2"]


def test_routed_rows_without_usage_are_grouped_by_conversation_and_estimated(
    tmp_path: Path,
) -> None:
    out = tmp_path / "calls.jsonl"
    export_rows([row(1, Q1, None, False), row(2, Q2, None, False)], out)
    with out.open("a") as fh:
        fh.write("{not json\n")
    loaded = load_sessions([out])
    (session,) = loaded.sessions
    assert session.session_id.startswith("conversation-") and not session.usage_recorded
    first, second = session.calls
    assert first.tokens.output_tokens == math.ceil(len(A1["content"]) / 4)  # resent answer
    assert second.tokens.input_tokens > first.tokens.input_tokens
    assert any(f"{out}:3: not JSON" in note for note in loaded.skipped)


def test_a_system_prompt_in_blocks_is_counted(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    plain, blocks = row(1, Q1, "a", False), row(2, Q1, "b", False)
    plain["request"]["system"] = "You are terse. " * 100
    blocks["request"]["system"] = [{"type": "text", "text": "You are terse. " * 100}]
    export_rows([plain, blocks], out)
    sessions = {s.session_id: s for s in load_sessions([out]).sessions}
    assert sessions["a"].calls[0].tokens.input_tokens == sessions["b"].calls[0].tokens.input_tokens
    assert sessions["a"].calls[0].tokens.input_tokens > 1500 / 4
