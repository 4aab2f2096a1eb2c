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


# The operating-point fields of a request; at most one may be given.
KNOB_FIELDS = ("threshold", "quality_target", "failed_turn_usd")


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
        description="Share of always-top quality to keep (held-out); maps to the knob of the "
        "bundle's policy.",
    )
    failed_turn_usd: float | None = Field(
        default=None,
        ge=0,
        description="Utility policy: what an inadequate answer costs you in USD; a tier is "
        "chosen when its extra expected quality x this is worth its extra dollars.",
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
        knobs = [k for k in KNOB_FIELDS if getattr(self, k) is not None]
        if len(knobs) > 1:
            raise ValueError(f"give one of {list(KNOB_FIELDS)}, not {knobs}")
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
    threshold: float = Field(
        description="Minimum P(adequate) the tier had to reach: the threshold policy's knob; 0 "
        "under the utility policy, which has no floor."
    )
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
    policy: str | None = Field(default=None, description="The policy that chose (None: fallback).")
    knob: float | None = Field(
        default=None, description="Its knob: a threshold, or failed_turn_usd (USD) for utility."
    )
    expected_cost_usd: dict[Tier, float] | None = Field(
        default=None, description="Per tier, the turn's expected USD the policy weighed."
    )
    output_tokens: dict[Tier, float] | None = Field(
        default=None, description="Per tier, the answer tokens that cost assumes."
    )
