"""What a replay reads from any source: sessions of API calls, each with the request the client
sent (history, tool blocks, thinking) and the tokens it used, recorded or estimated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from router.core.schemas import Message

Source = Literal["claude_code", "tau_bench", "calllog"]
# main: a top-level conversation; subagent: a Task sub-conversation; compaction: the call that
# summarised a conversation (Claude Code writes it as agent-acompact-*).
Kind = Literal["main", "subagent", "compaction"]
FIVE_MINUTES_S = 300.0
ONE_HOUR_S = 3600.0
# A main Claude Code session with at least this many calls is "long": the target is set
# on those (the shared data's five main sessions have 139-217 calls; fixtures have 1-12).
LONG_SESSION_CALLS = 100


def short_id(session_id: str) -> str:
    """A session id for tables: Claude Code uuids cut to 8 characters, the agent file kept."""
    parent, _, agent = session_id.partition("/")
    head = parent[:8] if len(parent) == 36 and parent.count("-") == 4 else parent[:40]
    return f"{head}/{agent}" if agent else head


@dataclass(frozen=True)
class CallTokens:
    """One call's tokens as the Messages API counts them. `input_tokens` is the uncached tail
    after the last cache breakpoint; the whole prompt is input + read + both writes."""

    input_tokens: int
    output_tokens: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write

    def usage(self) -> dict[str, Any]:
        """A Messages-API `usage` block (with the cache_creation breakdown)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation_input_tokens": self.cache_write,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
        }


@dataclass(frozen=True)
class ReplayCall:
    """One API call: the request as sent (messages end with the user turn being answered)."""

    messages: tuple[Message, ...]
    model: str  # the model that served it, as recorded ("gpt-4o" for tau-bench)
    tokens: CallTokens  # recorded usage, or an estimate when the source has none
    timestamp: float | None  # seconds since the epoch; None when the source has no times
    line: int  # where the call starts in its file (1-based line, or record number)
    system: str | list[dict[str, Any]] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    compacted: bool = False  # the history was compacted (reset) just before this call
    message_id: str | None = None


@dataclass(frozen=True)
class ReplaySession:
    session_id: str
    source: Source
    path: Path
    calls: tuple[ReplayCall, ...]
    usage_recorded: bool  # False: tokens estimated from text (characters / 4)
    ttl_s: float  # the prompt-cache TTL the client used (recorded writes say which)
    kind: Kind = "main"
    reward: float | None = None  # tau-bench: 1.0 resolved, 0.0 not
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def is_long(self) -> bool:
        """A long, real (recorded usage) main session: where the replay's target is judged."""
        return self.kind == "main" and self.usage_recorded and self.n_calls >= LONG_SESSION_CALLS
