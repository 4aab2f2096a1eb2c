"""The /route contract as the Python client sees it: Tier, RouteDecision and TierwiseError.

The client imports nothing from the server (router/), so installing it needs only httpx (and
anthropic to wrap a client): these mirror router.core.tiers and router.core.schemas, and
tests/tierwise/test_contract.py checks that the two agree.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class TierwiseError(Exception):
    """tierwise refused the request (4xx); the message is the server's."""


class Tier(StrEnum):
    """Cheapest first, as the server orders them; compare tiers with rank()."""

    HAIKU = "haiku"
    SONNET = "sonnet"
    OPUS = "opus"


def rank(tier: Tier) -> int:
    """0 for the cheapest tier."""
    return list(Tier).index(tier)


def parse_tier(value: str, field: str = "tier") -> Tier:
    """A tier name (case-insensitive); ValueError naming the field, value and choices."""
    try:
        return Tier(str(value).strip().lower())
    except ValueError:
        raise ValueError(
            f"{field}: unknown tier {value!r}; expected one of {[t.value for t in Tier]}"
        ) from None


@dataclass(frozen=True)
class RouteDecision:
    """One routing decision (the server's RouteDecision); fallback=True when it is a fallback."""

    tier: Tier
    model: str  # the Claude model id to call
    probabilities: dict[Tier, float]  # P(adequate) per tier; empty for a fallback
    threshold: float
    reason: str
    model_version: str  # the bundle that decided; "unreachable" for a client fallback
    estimated_cost_usd: float  # the turn's input at the tier's list price
    latency_ms: float
    fallback: bool = False
    cost_breakdown: dict[str, Any] | None = None  # agent-aware requests only
    policy: str | None = None  # "utility" or "threshold"; None for a fallback
    knob: float | None = None  # its knob: failed_turn_usd (USD) or the threshold
    expected_cost_usd: dict[Tier, float] | None = None  # per tier, what the policy weighed
    output_tokens: dict[Tier, float] | None = None  # per tier, the answer tokens assumed

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteDecision:
        """From the server's JSON; fields the client does not know are ignored."""
        return cls(
            tier=parse_tier(data["tier"]),
            model=str(data["model"]),
            probabilities={parse_tier(t): float(p) for t, p in data["probabilities"].items()},
            threshold=float(data["threshold"]),
            reason=str(data["reason"]),
            model_version=str(data["model_version"]),
            estimated_cost_usd=float(data["estimated_cost_usd"]),
            latency_ms=float(data["latency_ms"]),
            fallback=bool(data.get("fallback", False)),
            cost_breakdown=data.get("cost_breakdown"),
            policy=data.get("policy"),
            knob=None if data.get("knob") is None else float(data["knob"]),
            expected_cost_usd=_by_tier(data.get("expected_cost_usd")),
            output_tokens=_by_tier(data.get("output_tokens")),
        )


def _by_tier(values: Mapping[str, Any] | None) -> dict[Tier, float] | None:
    return None if values is None else {parse_tier(t): float(v) for t, v in values.items()}


def default_models() -> dict[Tier, str]:
    """Tier -> model id from the tiers.toml the tierwise distribution ships (the fallback's
    model), read as a data file: finding the router package does not import it."""
    spec = importlib.util.find_spec("router")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise RuntimeError("tiers.toml of the tierwise distribution not found; pass models=")
    tiers = tomllib.loads((Path(folders[0]) / "core" / "tiers.toml").read_text())["tiers"]
    return {Tier(name): spec["model"] for name, spec in tiers.items()}
