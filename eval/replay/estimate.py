"""Token estimates for sources that record no usage: characters / CHARS_PER_TOKEN (the router's
own ratio), counting everything the API bills: system prompt, tool schemas, text, tool calls
and their results."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from router.core.features import CHARS_PER_TOKEN
from router.core.schemas import ContentBlock, Message


def block_chars(block: ContentBlock) -> int:
    chars = len(block.text or "") + len(block.name or "")
    if isinstance(block.content, str):
        chars += len(block.content)
    elif isinstance(block.content, list):
        chars += sum(len(str(b.get("text", ""))) for b in block.content)
    extra = block.model_extra or {}
    for key in ("input", "thinking"):  # tool_use arguments, thinking text
        if key in extra:
            value = extra[key]
            chars += len(value if isinstance(value, str) else json.dumps(value))
    return chars


def message_chars(message: Message) -> int:
    if isinstance(message.content, str):
        return len(message.content)
    return sum(block_chars(b) for b in message.content)


def preamble_chars(
    system: str | Sequence[dict[str, Any] | ContentBlock] | None, tools: Iterable[dict[str, Any]]
) -> int:
    """System prompt and tool schemas: the prefix every call of a session sends first."""
    chars = sum(len(json.dumps(t)) for t in tools)
    if isinstance(system, str):
        chars += len(system)
    elif system is not None:
        for b in system:
            chars += (
                len(b.text or "") if isinstance(b, ContentBlock) else len(str(b.get("text", "")))
            )
    return chars


def tokens_of(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)
