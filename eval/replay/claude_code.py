"""Claude Code transcripts (~/.claude/projects/<project>/<session>.jsonl) -> one ReplaySession.

Claude Code writes one JSON object per line. One API response is written as several `assistant`
lines (one per content block) sharing `message.id`, with the tool results of its parallel tool
calls on `user` lines in between: a call is one `message.id`. `usage.output_tokens` can be the
streaming-start value on early lines, so the largest value of the response is kept. A
`compact_boundary` system line resets the history; `<synthetic>` assistant lines (client-side
notices) are no API call and are dropped. Subagent files (`<session>/subagents/agent-*.jsonl`)
are sessions of their own; `agent-acompact-*` files hold the compaction call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from eval.replay.jsonl import json_objects
from eval.replay.session import (
    FIVE_MINUTES_S,
    ONE_HOUR_S,
    CallTokens,
    Kind,
    ReplayCall,
    ReplaySession,
)
from router.core.economics import cache_writes
from router.core.schemas import MAX_MESSAGES, ContentBlock, Message, Usage

log = logging.getLogger(__name__)

SYNTHETIC_MODEL = "<synthetic>"


def transcript_kind(name: str) -> Kind:
    """main, or subagent/compaction for files under a `subagents/` folder."""
    parts = PurePosixPath(name).parts
    if len(parts) >= 2 and parts[-2] == "subagents":
        return "compaction" if parts[-1].startswith("agent-acompact") else "subagent"
    return "main"


def session_name(name: str) -> str:
    """`<session>` for a main file, `<session>/<agent-...>` for a subagent file."""
    path = PurePosixPath(name)
    if transcript_kind(name) == "main":
        return path.stem
    return f"{path.parent.parent.name}/{path.stem}"


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _blocks(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


@dataclass
class _Response:
    """One API call being assembled from its lines."""

    message_id: str
    model: str
    usage: dict[str, Any]
    output_tokens: int
    timestamp: float | None
    line: int
    history: tuple[Message, ...]
    compacted: bool


@dataclass
class _Builder:
    """The conversation as the next request would send it: validated messages, with the last
    one still growing (an assistant response's blocks, or pending user blocks)."""

    where: str
    done: list[Message] = field(default_factory=list)  # closed messages
    role: str | None = None  # role of the open message
    open_blocks: list[ContentBlock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.done, self.role, self.open_blocks = [], None, []

    def _validated(self, raw: list[dict[str, Any]], line: int) -> list[ContentBlock]:
        blocks = []
        for raw_block in raw:
            try:
                blocks.append(ContentBlock.model_validate(raw_block))
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                self.warnings.append(f"{self.where}:{line}: content block skipped ({msg})")
        return blocks

    def extend_response(self, raw: list[dict[str, Any]], line: int) -> None:
        """More blocks of the response being written. Tool results of its first tool calls may
        already sit in an open user turn: the blocks go to the response, the results stay after
        it, as the next request sends them (one assistant turn, then one user turn)."""
        last = self.done[-1] if self.done else None
        if self.role == "user" and last is not None and last.role == "assistant":
            assert isinstance(last.content, list)  # built here from blocks
            last.content.extend(self._validated(raw, line))
        else:
            self.add("assistant", raw, line)

    def add(self, role: str, raw: list[dict[str, Any]], line: int) -> None:
        blocks = self._validated(raw, line)
        if role != self.role:
            self._close()
            self.role = role
        self.open_blocks.extend(blocks)

    def _close(self) -> None:
        if self.role is not None and self.open_blocks:
            self.done.append(Message.model_construct(role=self.role, content=self.open_blocks))
        self.role, self.open_blocks = None, []

    def request(self) -> tuple[Message, ...]:
        """The messages a call sent now (the open user turn included), at most MAX_MESSAGES."""
        self._close()
        return tuple(self.done[-MAX_MESSAGES:])


def _tokens(usage: dict[str, Any], output_tokens: int) -> CallTokens:
    counts = Usage.model_validate({k: v for k, v in usage.items() if v is not None})
    five_min, hour = cache_writes(counts)
    return CallTokens(
        input_tokens=counts.input_tokens,
        output_tokens=output_tokens,
        cache_read=counts.cache_read_input_tokens or 0,
        cache_write_5m=five_min,
        cache_write_1h=hour,
    )


def read_transcript(lines: Iterable[str], name: str, path: Path) -> ReplaySession:
    """Parse one transcript file's lines; `name` is its path relative to the folder given
    (names the session and tells main from subagent files). Unreadable lines are skipped and
    listed in the session's warnings as `file:line: why`."""
    where = str(path)
    conv = _Builder(where)
    responses: dict[str, _Response] = {}
    current: str | None = None
    compacted = False
    for lineno, entry in json_objects(lines, where, conv.warnings):
        kind = entry.get("type")
        if kind == "system" and entry.get("subtype") == "compact_boundary":
            conv.reset()
            current, compacted = None, True
            continue
        message = entry.get("message")
        if kind not in ("user", "assistant") or not isinstance(message, dict):
            continue  # progress, file-history-snapshot, queue-operation, other system lines
        if kind == "user":
            conv.add("user", _blocks(message.get("content")), lineno)
            continue
        model = str(message.get("model") or "")
        message_id = message.get("id")
        if model == SYNTHETIC_MODEL or not isinstance(message_id, str):
            continue
        raw_usage = message.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        output = int(usage.get("output_tokens") or 0)
        seen = responses.get(message_id)
        if seen is None:
            responses[message_id] = _Response(
                message_id,
                model,
                usage,
                output,
                _timestamp(entry.get("timestamp")),
                lineno,
                conv.request(),
                compacted,
            )
            compacted = False
        else:
            seen.output_tokens = max(seen.output_tokens, output)  # the streaming value grows
            if message_id != current:
                conv.warnings.append(
                    f"{where}:{lineno}: response {message_id} continues after another one; "
                    "its blocks are added to the history where they appear"
                )
        if message_id == current:
            conv.extend_response(_blocks(message.get("content")), lineno)
        else:
            conv.add("assistant", _blocks(message.get("content")), lineno)
        current = message_id
    calls = []
    for r in responses.values():
        if not r.history or r.history[-1].role != "user":
            conv.warnings.append(
                f"{where}:{r.line}: response {r.message_id} answers no user turn; not replayed"
            )
            continue
        calls.append(
            ReplayCall(
                messages=r.history,
                model=r.model,
                tokens=_tokens(r.usage, r.output_tokens),
                timestamp=r.timestamp,
                line=r.line,
                compacted=r.compacted,
                message_id=r.message_id,
            )
        )
    for warning in conv.warnings:
        log.warning("%s", warning)
    hour = sum(c.tokens.cache_write_1h for c in calls)
    five = sum(c.tokens.cache_write_5m for c in calls)
    return ReplaySession(
        session_id=session_name(name),
        source="claude_code",
        path=path,
        calls=tuple(calls),
        usage_recorded=True,
        ttl_s=ONE_HOUR_S if hour > five else FIVE_MINUTES_S,
        kind=transcript_kind(name),
        warnings=tuple(conv.warnings),
    )
