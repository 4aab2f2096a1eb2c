"""The routing contract: RouteRequest in (Anthropic Messages-shaped or a plain prompt), RouteDecision
out. pydantic, no HTTP: the core, the agent layer and the HTTP layer all speak these."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.core.messages import (
    MAX_BLOCKS_PER_MESSAGE,
    MAX_MESSAGES,
    ContentBlock,
    Message,
    Messages,
)
from router.core.tiers import Tier

__all__ = [
    "MAX_BLOCKS_PER_MESSAGE",
    "MAX_MESSAGES",
    "ContentBlock",
    "Message",
    "Messages",
    "RouteDecision",
    "RouteRequest",
    "Usage",
]


class Usage(BaseModel):
    """The previous turn's usage as the Messages API reports it."""

    model_config = ConfigDict(extra="allow")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int | None = Field(default=None, ge=0)
    cache_creation_input_tokens: int | None = Field(default=None, ge=0)


class RouteRequest(BaseModel):
    """A turn to route: `prompt`, or Messages-API `messages` (+ `system`, `tools`), plus knobs.

    Unknown Messages-API fields (max_tokens, temperature, ...) are accepted and ignored so a
    request body can be sent here unchanged.
    """

    model_config = ConfigDict(extra="allow")

    prompt: str | None = Field(default=None, description="A single user turn as plain text.")
    system: str | list[ContentBlock] | None = None
    # At most MAX_MESSAGES; checked in one pass, each Message built when read (router.core.messages).
    messages: Messages | None = None
    tools: list[dict[str, Any]] | None = None
    model: str | None = Field(default=None, description="The model the caller would have used.")
    max_tokens: int | None = Field(default=None, ge=1)

    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Minimum P(adequate) for a tier to be chosen."
    )
    quality_target: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of always-top quality to keep (held-out); maps to a threshold.",
    )
    min_tier: Tier | None = None
    max_tier: Tier | None = None

    # Agent-loop context (cache-aware routing, budgets).
    session_id: str | None = Field(default=None, max_length=256)
    run_id: str | None = Field(default=None, max_length=256)
    budget_usd: float | None = Field(default=None, gt=0)
    previous_model: str | None = Field(default=None, max_length=256)
    previous_usage: Usage | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RouteRequest:
        if self.prompt is None and not self.messages:
            raise ValueError("give either 'prompt' or a non-empty 'messages' list")
        if self.prompt is not None and self.messages:
            raise ValueError("give 'prompt' or 'messages', not both")
        if self.threshold is not None and self.quality_target is not None:
            raise ValueError("give 'threshold' or 'quality_target', not both")
        if self.min_tier and self.max_tier and self.min_tier.rank > self.max_tier.rank:
            raise ValueError(
                f"min_tier {self.min_tier.value!r} is above max_tier {self.max_tier.value!r}"
            )
        if self.messages and self.messages[-1].role != "user":
            raise ValueError("the last message must have role 'user': that is the turn to route")
        if self.budget_usd is not None and self.run_id is None:
            raise ValueError("budget_usd needs a run_id: budgets are tracked per run")
        return self


class RouteDecision(BaseModel):
    tier: Tier
    model: str = Field(description="Claude model id for the tier, from config.")
    probabilities: dict[Tier, float] = Field(description="P(adequate) per tier.")
    threshold: float
    reason: str
    model_version: str
    estimated_cost_usd: float = Field(
        description="This turn's input tokens at the tier's list price."
    )
    latency_ms: float
    fallback: bool = False
    cost_breakdown: dict[str, Any] | None = Field(
        default=None,
        description="Agent-aware requests only: each tier's dollars for this turn (prompt cache, "
        "output, quality risk), pin and budget state; see docs/agent-routing.md.",
    )
