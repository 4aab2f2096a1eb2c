"""tierwise's own call-log export (`tierwise export-log`, one JSON object per line) ->
ReplaySessions.

Each line is one routed call: {"request": {...}, "calllog": {"ts", "model", "session_id",
"usage", ...}} (tierwise/export_log.py). Calls are grouped into sessions by `session_id`, else
by their first message (a conversation resends it on every call), and ordered by time. Gateway
calls carry the upstream usage; the rest are estimated from text (eval.replay.estimate), the
answer's length from the next call's copy of it, else `default_output_tokens`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.replay.estimate import message_chars, preamble_chars, tokens_of
from eval.replay.jsonl import json_objects
from eval.replay.session import FIVE_MINUTES_S, CallTokens, ReplayCall, ReplaySession
from router.core.schemas import RouteRequest

log = logging.getLogger(__name__)


def is_calllog_record(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("calllog"), dict)


@dataclass(frozen=True)
class _Row:
    line: int
    key: str
    ts: float | None
    model: str
    request: RouteRequest
    usage: dict[str, Any] | None
    message_id: str | None


def _conversation_key(request: RouteRequest) -> str:
    first = request.messages[0].model_dump(mode="json") if request.messages else request.prompt
    system = request.model_dump(mode="json", include={"system"}, exclude_none=True)
    blob = json.dumps([system, first], sort_keys=True, default=str).encode()
    return "conversation-" + hashlib.sha256(blob).hexdigest()[:12]


def _ts(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _row(entry: dict[str, Any], line: int, where: str) -> _Row | str:
    """A row, or why the line cannot be replayed."""
    meta = entry["calllog"]
    model = meta.get("model")
    if not isinstance(model, str) or not model:
        return f"{where}:{line}: no model recorded (the call was not routed); skipped"
    try:
        request = RouteRequest.model_validate(entry.get("request") or {})
    except ValidationError as exc:
        return f"{where}:{line}: request not readable ({exc.errors()[0]['msg']}); skipped"
    if request.prompt is not None:  # a plain prompt is a one-message conversation
        messages = [{"role": "user", "content": request.prompt}]
        request = request.model_copy(update={"prompt": None, "messages": messages})
        request = RouteRequest.model_validate(request.model_dump(exclude_none=True))
    session = meta.get("session_id") or request.session_id
    usage = meta.get("usage") if isinstance(meta.get("usage"), dict) else None
    return _Row(
        line,
        session or _conversation_key(request),
        _ts(meta.get("ts")),
        model,
        request,
        usage,
        meta.get("message_id"),
    )


def _tokens(row: _Row, following: _Row | None, default_output: int) -> CallTokens:
    if row.usage is not None:
        return CallTokens(
            input_tokens=int(row.usage.get("input_tokens") or 0),
            output_tokens=int(row.usage.get("output_tokens") or 0),
            cache_read=int(row.usage.get("cache_read_input_tokens") or 0),
            cache_write_5m=int(row.usage.get("cache_creation_input_tokens") or 0),
        )
    messages = row.request.messages or []
    chars = preamble_chars(row.request.system, row.request.tools or [])
    chars += sum(message_chars(m) for m in messages)
    output = default_output
    later = following.request.messages if following else None
    if later and len(later) > len(messages) and later[len(messages)].role == "assistant":
        output = tokens_of(message_chars(later[len(messages)]))  # the answer, resent
    return CallTokens(input_tokens=tokens_of(chars), output_tokens=output)


def read_export(
    lines: Iterable[str], path: Path, default_output_tokens: int
) -> tuple[list[ReplaySession], list[str]]:
    """All sessions of one export file, and the lines skipped (`file:line: why`)."""
    where = str(path)
    rows: list[_Row] = []
    warnings: list[str] = []
    for lineno, entry in json_objects(lines, where, warnings):
        if not is_calllog_record(entry):
            warnings.append(f"{where}:{lineno}: not a call-log export record; line skipped")
            continue
        row = _row(entry, lineno, where)
        if isinstance(row, str):
            warnings.append(row)
        else:
            rows.append(row)
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.key, []).append(row)
    sessions = []
    for key, group in groups.items():
        group.sort(key=lambda r: (r.ts is None, r.ts or 0.0, r.line))
        calls = []
        for i, row in enumerate(group):
            following = group[i + 1] if i + 1 < len(group) else None
            calls.append(
                ReplayCall(
                    messages=tuple(row.request.messages or ()),
                    model=row.model,
                    tokens=_tokens(row, following, default_output_tokens),
                    timestamp=row.ts,
                    line=row.line,
                    system=row.request.system
                    if isinstance(row.request.system, str | None)
                    else [b.model_dump() for b in row.request.system],
                    tools=tuple(row.request.tools or ()),
                    message_id=row.message_id,
                )
            )
        sessions.append(
            ReplaySession(
                session_id=key,
                source="calllog",
                path=path,
                calls=tuple(calls),
                usage_recorded=all(r.usage is not None for r in group),
                ttl_s=FIVE_MINUTES_S,
            )
        )
    for warning in warnings:
        log.warning("%s", warning)
    return sessions, warnings
