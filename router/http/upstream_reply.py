"""What an upstream Messages-API reply says about itself: usage, message id and, when the
reply is plain text that ended by itself, the answer. Reads JSON bodies and SSE streams."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from router.core.schemas import Usage


@dataclass(frozen=True)
class Reply:
    """What the call log keeps of an upstream answer."""

    usage: Usage | None = None
    message_id: str | None = None
    # The assistant's text, only when the reply was all text and ended by itself (end_turn):
    # then it is a usable answer of that tier for labeling.
    answer: str | None = None


def _text_answer(blocks: list[str] | None, text_only: bool, stop_reason: Any) -> str | None:
    if blocks is None or not text_only or stop_reason != "end_turn":
        return None
    return "".join(blocks)


class UsageTracker:
    """Usage (and, with capture_text, the answer) from an SSE stream as it passes:
    message_start carries input and cache tokens, message_delta the cumulative output tokens
    and the stop reason. Without capture_text only those two events are parsed."""

    def __init__(self, capture_text: bool = False) -> None:
        self.capture_text = capture_text
        self.usage: dict[str, int] = {}
        self.message_id: str | None = None
        self.stop_reason: Any = None
        self._texts: dict[int, list[str]] = {}
        self._text_only = True
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            if not self.capture_text and (
                b'"message_start"' not in line and b'"message_delta"' not in line
            ):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict):
                self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        usage: Any = None
        if kind == "message_start":
            message = event.get("message") or {}
            usage = message.get("usage")
            self.message_id = message.get("id") if isinstance(message.get("id"), str) else None
        elif kind == "message_delta":
            usage = event.get("usage")
            self.stop_reason = (event.get("delta") or {}).get("stop_reason")
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text":
                self._texts[int(event.get("index", 0))] = [str(block.get("text") or "")]
            else:
                self._text_only = False
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            texts = self._texts.get(int(event.get("index", 0)))
            if delta.get("type") == "text_delta" and texts is not None:
                texts.append(str(delta.get("text") or ""))
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if isinstance(v, int)})

    def result(self) -> Usage | None:
        return Usage.model_validate(self.usage) if self.usage else None

    def reply(self) -> Reply:
        blocks = None
        if self.capture_text and self._texts:
            blocks = ["".join(self._texts[i]) for i in sorted(self._texts)]
        return Reply(
            self.result(), self.message_id, _text_answer(blocks, self._text_only, self.stop_reason)
        )


def reply_from_json(data: bytes, capture_text: bool) -> Reply:
    """The Reply of a Messages-API response body; an empty one if it is not a message."""
    try:
        message = json.loads(data)
        usage = Usage.model_validate(message["usage"])
    except (ValueError, TypeError, KeyError, ValidationError):
        return Reply()
    message_id = message.get("id")
    content = message.get("content")
    blocks, text_only = None, False
    if capture_text and isinstance(content, list) and content:
        blocks = [str(b.get("text") or "") for b in content if isinstance(b, dict)]
        text_only = all(isinstance(b, dict) and b.get("type") == "text" for b in content)
    answer = _text_answer(blocks, text_only, message.get("stop_reason"))
    return Reply(usage, message_id if isinstance(message_id, str) else None, answer)
