"""Tool-loop pinning: a turn that answers a pending tool_use stays on the model that asked."""

from __future__ import annotations

from typing import Any

from router.core.schemas import RouteRequest

THINKING_BLOCKS = ("thinking", "redacted_thinking")


def has_agent_context(request: RouteRequest) -> bool:
    """True when the request carries session, run or previous-call context (agent routing)."""
    return any(
        v is not None
        for v in (
            request.session_id,
            request.run_id,
            request.previous_model,
            request.previous_usage,
        )
    )


def _blocks(content: object) -> list[Any]:
    return content if isinstance(content, list) else []


def pin_reason(request: RouteRequest) -> str | None:
    """Why this turn must stay on the previous model, or None.

    Mid tool-use loop (the last user message carries tool_result blocks answering the
    assistant's pending tool_use): the loop's prefix is cached on that model, and thinking blocks
    of the current assistant turn must go back, signed, to the model that wrote them. Thinking
    blocks of finished turns do not pin: the API drops or re-reads them like any other prefix.
    """
    messages = request.messages
    if not messages:
        return None
    results = [b for b in _blocks(messages[-1].content) if b.type == "tool_result"]
    if not results:
        return None
    ids = [str((b.model_extra or {}).get("tool_use_id", "")) for b in results]
    why = (
        f"mid tool-use loop (the last user message answers tool_use {sorted(i for i in ids if i)})"
    )
    if turn_has_thinking(request):
        why += " with thinking blocks that must go back to the model that wrote them"
    return why


def turn_has_thinking(request: RouteRequest) -> bool:
    """Whether the current assistant turn (assistant messages since the last plain user
    message) carries thinking or redacted_thinking blocks."""
    messages = request.messages
    if not messages:
        return False
    for i in range(len(messages) - 2, -1, -1):  # builds only the messages it reads
        message = messages[i]
        blocks = _blocks(message.content)
        if message.role == "user" and not any(b.type == "tool_result" for b in blocks):
            return False
        if any(b.type in THINKING_BLOCKS for b in blocks):
            return True
    return False
