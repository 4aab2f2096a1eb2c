"""Claude Code transcripts: calls, usage, history, compaction and subagents, against counts and
sums taken straight from the real files (never from the parser)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eval.replay.claude_code import read_transcript
from eval.replay.errors import ReplayError
from eval.replay.session import ReplaySession
from eval.replay.sources import load_sessions

Raw = dict[str, list[dict[str, Any]]]


def responses(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """message.id -> the assistant lines of that API response (client notices excluded)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        message = line.get("message")
        if line.get("type") == "assistant" and message.get("model") != "<synthetic>":
            out.setdefault(message["id"], []).append(line)
    return out


def test_every_file_is_read_and_the_empty_one_said(
    raw_transcripts: Raw, claude_sessions: dict[str, ReplaySession]
) -> None:
    assert len(raw_transcripts) == 21
    with_calls = {name for name, lines in raw_transcripts.items() if responses(lines)}
    assert len(with_calls) == 20  # the README's 20 files; one main file is empty
    assert set(claude_sessions) == with_calls


def test_call_count_per_file_is_the_number_of_distinct_responses(
    raw_transcripts: Raw, claude_sessions: dict[str, ReplaySession]
) -> None:
    for name, session in claude_sessions.items():
        assert session.n_calls == len(responses(raw_transcripts[name])), name
    assert sum(s.n_calls for s in claude_sessions.values()) == 899
    models = Counter(c.model for s in claude_sessions.values() for c in s.calls)
    assert models == {
        "claude-opus-4-6": 697,
        "claude-haiku-4-5-20251001": 184,
        "claude-sonnet-4-5-20250929": 18,
    }


def test_readmes_1060_counts_response_pieces_split_by_tool_results(raw_transcripts: Raw) -> None:
    """The data README's "1,060 API calls" (780 Opus / 240 Haiku / 40 Sonnet) counts runs of
    assistant lines between user lines. A response with parallel tool calls is written as
    several such runs, its tool results in between; every run after a response's first repeats
    its message.id, requestId and usage, so it is the same API call: 899 calls, 161 repeats."""
    runs: Counter[str] = Counter()
    repeats = 0
    for lines in raw_transcripts.values():
        seen: dict[str, dict[str, Any]] = {}
        previous = None
        for line in lines:
            if line.get("type") == "user":
                previous = None
            if line.get("type") != "assistant":
                continue
            message = line["message"]
            if message["id"] != previous:
                runs[message["model"]] += 1
                first = seen.setdefault(message["id"], line)
                if first is not line:
                    repeats += 1
                    assert first["requestId"] == line["requestId"]
                    same = (
                        "input_tokens",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    )
                    assert all(first["message"]["usage"][k] == message["usage"][k] for k in same)
            previous = message["id"]
    assert sum(runs.values()) == 1060
    assert runs == {
        "claude-opus-4-6": 780,
        "claude-haiku-4-5-20251001": 240,
        "claude-sonnet-4-5-20250929": 40,
    }
    assert repeats == 1060 - 899


def test_usage_totals_match_the_files(
    raw_transcripts: Raw, claude_sessions: dict[str, ReplaySession]
) -> None:
    for name, session in claude_sessions.items():
        want: Counter[str] = Counter()
        for lines in responses(raw_transcripts[name]).values():
            usage = lines[0]["message"]["usage"]
            want["input"] += usage["input_tokens"]
            want["read"] += usage["cache_read_input_tokens"]
            want["write_5m"] += usage["cache_creation"]["ephemeral_5m_input_tokens"]
            want["write_1h"] += usage["cache_creation"]["ephemeral_1h_input_tokens"]
            # output_tokens grows while a response streams: its largest value is the count
            want["output"] += max(line["message"]["usage"]["output_tokens"] for line in lines)
        got: Counter[str] = Counter()
        for call in session.calls:
            got["input"] += call.tokens.input_tokens
            got["read"] += call.tokens.cache_read
            got["write_5m"] += call.tokens.cache_write_5m
            got["write_1h"] += call.tokens.cache_write_1h
            got["output"] += call.tokens.output_tokens
        assert got == want, name


def test_ttl_follows_the_recorded_cache_writes(claude_sessions: dict[str, ReplaySession]) -> None:
    for session in claude_sessions.values():
        hour = sum(c.tokens.cache_write_1h for c in session.calls)
        five = sum(c.tokens.cache_write_5m for c in session.calls)
        assert session.ttl_s == (3600.0 if hour > five else 300.0)


def test_requests_alternate_roles_and_end_with_the_user_turn(
    claude_sessions: dict[str, ReplaySession],
) -> None:
    for session in claude_sessions.values():
        for call in session.calls:
            roles = [m.role for m in call.messages]
            assert roles[-1] == "user"
            assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), session.session_id


def test_parallel_tool_calls_are_one_assistant_turn(
    raw_transcripts: Raw, claude_sessions: dict[str, ReplaySession]
) -> None:
    """A response whose tool_use blocks were written with tool results between them is sent
    back as one assistant message, then one user message holding every result."""
    name = "4d5611e5-241a-462a-8d15-5122611a9569/subagents/agent-a2898e3.jsonl"
    first = next(iter(responses(raw_transcripts[name]).values()))
    uses = [
        b["id"] for line in first for b in line["message"]["content"] if b["type"] == "tool_use"
    ]
    assert len(uses) == 9
    second = claude_sessions[name].calls[1]
    assistant, results = second.messages[-2], second.messages[-1]
    assert isinstance(assistant.content, list) and isinstance(results.content, list)
    assert [b.model_extra["id"] for b in assistant.content if b.type == "tool_use"] == uses
    answered = [b.model_extra["tool_use_id"] for b in results.content if b.type == "tool_result"]
    assert answered == uses


def test_compact_boundary_resets_the_history(
    raw_transcripts: Raw, claude_sessions: dict[str, ReplaySession]
) -> None:
    name = "ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl"
    lines = raw_transcripts[name]
    boundary = next(i for i, x in enumerate(lines) if x.get("subtype") == "compact_boundary")
    before = len(responses(lines[:boundary]))
    calls = claude_sessions[name].calls
    assert [k for k, c in enumerate(calls) if c.compacted] == [before]
    assert len(calls[before].messages) < len(calls[before - 1].messages) / 10
    summary = next(x for x in lines[boundary:] if x.get("type") == "user")
    assert summary.get("isCompactSummary") is True
    first = calls[before].messages[0].content
    assert isinstance(first, list) and first[0].text == summary["message"]["content"]


def test_subagent_and_compaction_files_are_sessions_of_their_own(
    claude_sessions: dict[str, ReplaySession],
) -> None:
    kinds = Counter(s.kind for s in claude_sessions.values())
    assert kinds == {"main": 8, "subagent": 7, "compaction": 5}
    sub = claude_sessions["fa812bfe-b295-4cca-9c2f-fdf01028cb46/subagents/agent-a93ccab.jsonl"]
    assert sub.session_id == "fa812bfe-b295-4cca-9c2f-fdf01028cb46/agent-a93ccab"
    assert sum(s.is_long for s in claude_sessions.values()) == 5


def test_thinking_blocks_are_kept_in_the_history(claude_sessions: dict[str, ReplaySession]) -> None:
    last = claude_sessions["short.jsonl"].calls[-1]
    session = claude_sessions["4d5611e5-241a-462a-8d15-5122611a9569.jsonl"]
    blocks = [
        b for m in session.calls[5].messages if isinstance(m.content, list) for b in m.content
    ]
    thinking = [b for b in blocks if b.type == "thinking"]
    assert thinking and all("signature" in (b.model_extra or {}) for b in thinking)
    assert last.messages[-1].role == "user"


def test_a_folder_is_walked_like_a_claude_project(
    transcript_dir: Path, claude_sessions: dict[str, ReplaySession]
) -> None:
    loaded = load_sessions([transcript_dir])
    assert sorted(s.session_id for s in loaded.sessions) == sorted(
        s.session_id for s in claude_sessions.values()
    )
    assert any("no API calls" in note for note in loaded.skipped)


def test_a_subagent_file_given_alone_keeps_its_parent(transcript_dir: Path) -> None:
    folder = transcript_dir / "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
    (session,) = load_sessions([folder / "subagents/agent-aac57f5.jsonl"]).sessions
    assert session.kind == "subagent"
    assert session.session_id == "ae4a77f8-aedd-4bc1-888f-c94edc91af04/agent-aac57f5"
    walked = {s.session_id for s in load_sessions([folder]).sessions}  # the session's own folder
    assert walked == {f"{folder.name}/agent-aac57f5", f"{folder.name}/agent-acompact-946d2b"}


def test_unreadable_lines_name_file_and_line(transcript_dir: Path, tmp_path: Path) -> None:
    lines = (transcript_dir / "short.jsonl").read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], '{"type": "user", "message": ', "[1, 2]", *lines[1:]]))
    session = read_transcript(broken.read_text().splitlines(), broken.name, broken)
    assert session.n_calls == 1
    assert f"{broken}:2: not JSON" in session.warnings[0]
    assert f"{broken}:3: not a JSON object" in session.warnings[1]
    loaded = load_sessions([broken])
    assert any(f"{broken}:2:" in note for note in loaded.skipped)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file or folder"),
        ("notes.txt", "hello", "unknown file type"),
        ("other.json", json.dumps({"a": 1}), "not a list of trajectories"),
        ("bad.json.gz", "not gzip", "not JSON"),
    ],
)
def test_bad_paths_are_named_with_the_formats_replay_reads(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReplayError) as err:
        load_sessions([path])
    assert str(path) in str(err.value) and message in str(err.value)
