"""Pure turn economics: what each tier would cost for this turn in dollars, prompt cache included.

Units: token counts; prices in USD per million tokens (tiers.toml); every `*_usd` in USD.
Anthropic's prompt cache is per model, so the tier that already holds the conversation's prefix
reads it at `cache_read_multiplier` x input price while any other tier re-writes it at
`cache_write_multiplier` x its own input price. See docs/agent-routing.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from router.core.policy import UNBOUNDED, Bounds, Policy, PolicyDecision, allowed_tiers
from router.core.schemas import Usage
from router.core.tiers import TIER_ORDER, PricingSpec, Tier, TierSpec

CacheUse = Literal["read", "write", "none"]
PER_MTOK = 1e6
# Minimum cacheable prompt length of a model tiers.toml does not list (Anthropic's smallest).
DEFAULT_MIN_CACHEABLE_TOKENS = 1024
Amount = TypeVar("Amount", float, NDArray[np.float64])


def tokens_usd(tokens: Amount, per_mtok: float | Amount) -> Amount:
    """Dollars of `tokens` at a price per million tokens; scalars or arrays alike."""
    return tokens * per_mtok / PER_MTOK


def turn_costs(
    input_tokens: ArrayLike,
    output_tokens: ArrayLike,
    specs: Mapping[Tier, TierSpec],
    tiers: Sequence[Tier] = TIER_ORDER,
) -> NDArray[np.float64]:
    """(n, k) USD of answering each turn on each tier at list price, without the prompt cache:
    input tokens x input price + output tokens x output price. Columns follow `tiers`; input
    tokens are (n,) or a scalar, output tokens (n,), a scalar or (n, k) per-tier forecasts. The
    one turn cost of serving's plain requests, training's curve and eval."""
    inputs = np.asarray(input_tokens, dtype=np.float64).reshape(-1, 1)
    outputs = np.asarray(output_tokens, dtype=np.float64)
    if outputs.ndim < 2:
        outputs = outputs.reshape(-1, 1)
    input_price = np.asarray([specs[t].input_per_mtok for t in tiers], dtype=np.float64)
    output_price = np.asarray([specs[t].output_per_mtok for t in tiers], dtype=np.float64)
    costs: NDArray[np.float64] = tokens_usd(inputs, input_price) + tokens_usd(outputs, output_price)
    return costs


@dataclass(frozen=True)
class TurnShape:
    """What one turn consumes, independent of the tier that serves it."""

    input_tokens: int  # the whole prompt of this turn, cached prefix included
    prefix_tokens: int  # leading part of the prompt already in some model's cache
    cache_tier: Tier | None  # the tier whose model holds that cache; None: no tier does
    output_tokens: int  # expected completion tokens (a tier's own forecast may replace it)
    failed_turn_usd: float  # dollar value lost when the chosen tier answers inadequately

    @property
    def fresh_tokens(self) -> int:
        return max(0, self.input_tokens - self.prefix_tokens)


@dataclass(frozen=True)
class TierCost:
    """One tier's expected dollars for this turn; total = cache + fresh + output + risk."""

    tier: Tier
    p_adequate: float
    cache: CacheUse
    cached_tokens: int
    fresh_tokens: int
    output_tokens: float
    cache_usd: float
    fresh_usd: float
    output_usd: float
    risk_usd: float

    @property
    def tokens_usd(self) -> float:
        """What the API would bill for the turn (no risk term)."""
        return self.cache_usd + self.fresh_usd + self.output_usd

    @property
    def total_usd(self) -> float:
        return self.tokens_usd + self.risk_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "p_adequate": round(self.p_adequate, 6),
            "cache": self.cache,
            "cached_tokens": self.cached_tokens,
            "fresh_tokens": self.fresh_tokens,
            "output_tokens": round(self.output_tokens, 1),
            "cache_usd": self.cache_usd,
            "fresh_usd": self.fresh_usd,
            "output_usd": self.output_usd,
            "risk_usd": self.risk_usd,
            "total_usd": self.total_usd,
        }


def price_tier(
    tier: Tier,
    p_adequate: float,
    turn: TurnShape,
    spec: TierSpec,
    pricing: PricingSpec,
    output_tokens: float | None = None,
) -> TierCost:
    """One tier's dollars for the turn; `output_tokens` (the tier's forecast answer length)
    replaces turn.output_tokens when given."""
    output = float(turn.output_tokens if output_tokens is None else output_tokens)
    if turn.prefix_tokens <= 0:
        cache: CacheUse = "none"
        multiplier = 0.0
    elif tier == turn.cache_tier:
        cache, multiplier = "read", pricing.cache_read_multiplier
    else:
        cache, multiplier = "write", pricing.cache_write_multiplier
    cached = max(0, turn.prefix_tokens)
    return TierCost(
        tier=tier,
        p_adequate=p_adequate,
        cache=cache,
        cached_tokens=cached,
        fresh_tokens=turn.fresh_tokens,
        output_tokens=output,
        cache_usd=cached * spec.input_per_mtok * multiplier / PER_MTOK,
        fresh_usd=tokens_usd(float(turn.fresh_tokens), spec.input_per_mtok),
        output_usd=tokens_usd(output, spec.output_per_mtok),
        risk_usd=(1.0 - p_adequate) * turn.failed_turn_usd,
    )


def price_tiers(
    probs: Mapping[Tier, float],
    turn: TurnShape,
    specs: Mapping[Tier, TierSpec],
    pricing: PricingSpec,
    output_tokens: Mapping[Tier, float] | None = None,
) -> dict[Tier, TierCost]:
    """Every tier priced, cheapest tier first (candidates or not: the breakdown shows all);
    `output_tokens` are per-tier answer forecasts replacing turn.output_tokens."""
    return {
        t: price_tier(
            t,
            probs[t],
            turn,
            specs[t],
            pricing,
            None if output_tokens is None else output_tokens[t],
        )
        for t in TIER_ORDER
    }


@dataclass(frozen=True)
class CostDecision:
    """A policy's choice on cache-aware costs, with the arithmetic behind it."""

    decision: PolicyDecision
    candidates: tuple[Tier, ...]  # the tiers the policy could choose (threshold: P >= it)
    costs: dict[Tier, TierCost]
    turn: TurnShape
    reason: str  # the policy's reason and what the prompt cache did

    @property
    def tier(self) -> Tier:
        return self.decision.tier

    def breakdown(self) -> dict[str, Any]:
        """The arithmetic behind the choice, for RouteDecision.cost_breakdown."""
        return {
            "input_tokens": self.turn.input_tokens,
            "prefix_tokens": self.turn.prefix_tokens,
            "cache_tier": self.turn.cache_tier.value if self.turn.cache_tier else None,
            "output_tokens": self.turn.output_tokens,
            "failed_turn_usd": self.turn.failed_turn_usd,
            "candidates": [t.value for t in self.candidates],
            # The tiers the policy chose among (utility: the efficient frontier) and the USD it
            # put on an inadequate answer (utility: failed_turn_usd x the turn's size m).
            "choosable": [t.value for t in self.decision.choosable],
            "inadequate_usd": self.decision.value_usd,
            "chosen": self.tier.value,
            "tiers": {t.value: c.as_dict() for t, c in self.costs.items()},
        }


def decide_with_cache(
    policy: Policy,
    knob: float,
    probs: Mapping[Tier, float],
    turn: TurnShape,
    specs: Mapping[Tier, TierSpec],
    pricing: PricingSpec,
    bounds: Bounds = UNBOUNDED,
    output_tokens: Mapping[Tier, float] | None = None,
) -> CostDecision:
    """`policy` at `knob` on each tier's cache-aware dollars for the turn (price_tiers: cache
    read or write, fresh input, its answer tokens); the breakdown's risk is (1 - P) x the value
    the policy put on an inadequate answer (utility: V x m; threshold: turn.failed_turn_usd). The agent path's one chooser: the same decide() plain requests get."""
    costs = price_tiers(probs, turn, specs, pricing, output_tokens)
    decision = policy.decide(probs, {t: c.tokens_usd for t, c in costs.items()}, knob, bounds)
    if decision.value_usd is not None:
        # The utility policy's value of an inadequate answer at this turn (V x its size m):
        # the breakdown's risk and totals then add up to exactly what it minimised.
        costs = {
            t: replace(c, risk_usd=(1.0 - probs[t]) * decision.value_usd) for t, c in costs.items()
        }
    candidates = tuple(
        t for t in allowed_tiers(*bounds) if policy.knob_name != "threshold" or probs[t] >= knob
    )
    reason = decision.reason + cache_note(decision.tier, candidates, costs, turn, pricing)
    return CostDecision(decision, candidates, costs, turn, reason)


def _money(usd: float) -> str:
    return f"${usd:.4f}"


def cache_note(
    chosen: Tier,
    candidates: Sequence[Tier],
    costs: Mapping[Tier, TierCost],
    turn: TurnShape,
    pricing: PricingSpec,
) -> str:
    """What the prompt cache did to the choice, for the reason ("" when nothing is cached)."""
    if turn.prefix_tokens <= 0 or turn.cache_tier is None:
        return ""
    holder = turn.cache_tier
    cheaper = [t for t in candidates if t.rank < chosen.rank]
    if chosen == holder and cheaper:
        alt = costs[cheaper[0]]
        return (
            f"; staying on {holder.value} reads the {turn.prefix_tokens}-token cached prefix at "
            f"{pricing.cache_read_multiplier}x ({_money(costs[holder].cache_usd)}), "
            f"switching to {alt.tier.value} would re-write it at "
            f"{pricing.cache_write_multiplier}x ({_money(alt.cache_usd)})"
        )
    if chosen != holder and holder in costs:
        return (
            f"; switching from {holder.value} re-writes the {turn.prefix_tokens}-token prefix "
            f"({_money(costs[chosen].cache_usd)}) and still costs less than staying "
            f"({_money(costs[holder].total_usd)})"
        )
    return ""


def expected_output_tokens(max_tokens: int | None, default: int) -> int:
    """The request's max_tokens is a ceiling, not a forecast: expect min(max_tokens, default)."""
    return default if max_tokens is None else min(max_tokens, default)


def prefix_from_usage(usage: Usage) -> int:
    """Tokens of the next turn's prompt that the previous call left in the cache: its whole
    prompt (read + written + uncached tail). 0 when that call touched no cache at all: the
    client is not caching, or the prompt was below the minimum cacheable length."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    if read == 0 and written == 0:
        return 0
    return read + written + usage.input_tokens


def cache_writes(usage: Usage) -> tuple[int, int]:
    """(5-minute, 1-hour) cache-write tokens of a usage block: its `cache_creation` breakdown
    (ephemeral_5m/1h_input_tokens) when the API sent one, else every write is a 5-minute one."""
    written = usage.cache_creation_input_tokens or 0
    detail = (usage.model_extra or {}).get("cache_creation")
    if not isinstance(detail, dict):
        return written, 0
    hour = min(written, int(detail.get("ephemeral_1h_input_tokens") or 0))
    return written - hour, hour


def usage_cost_usd(usage: Usage, spec: TierSpec, pricing: PricingSpec) -> float:
    """Dollars the Messages API bills for one call's `usage` on a tier: uncached input, cache
    reads, 5-minute writes (1.25x) and 1-hour writes (2x, from the cache_creation breakdown)."""
    read = usage.cache_read_input_tokens or 0
    five_min, hour = cache_writes(usage)
    input_usd = spec.input_per_mtok * (
        usage.input_tokens
        + five_min * pricing.cache_write_multiplier
        + hour * pricing.cache_write_1h_multiplier
        + read * pricing.cache_read_multiplier
    )
    return (input_usd + usage.output_tokens * spec.output_per_mtok) / PER_MTOK


def min_cacheable_tokens(model: str, pricing: PricingSpec) -> int:
    """Anthropic's minimum cacheable prompt length for a model id (tiers.toml
    [pricing.min_cacheable_tokens]; a dated snapshot matches its base id, the longest id wins).
    Unlisted models: DEFAULT_MIN_CACHEABLE_TOKENS, the smallest documented minimum."""
    base = model_base(model, pricing.min_cacheable_tokens)
    return DEFAULT_MIN_CACHEABLE_TOKENS if base is None else pricing.min_cacheable_tokens[base]


def model_base(model: str, ids: Iterable[str]) -> str | None:
    """The one of `ids` that `model` is or is a dated snapshot of ("claude-opus-4-6-20260101");
    when one id extends another ("claude-opus-4" / "claude-opus-4-1") the longest wins."""
    name = model.strip()
    return max((i for i in ids if name == i or name.startswith(i + "-")), key=len, default=None)


def tier_for_model(model: str, specs: Mapping[Tier, TierSpec]) -> Tier | None:
    """The tier a Claude model id belongs to: exact id, a dated snapshot of it
    ("claude-opus-4-6-20260101"), or a tier name. None when no configured tier matches.
    When one configured id extends another ("claude-opus-4" / "claude-opus-4-1"), the longest
    match wins, so neither tier's ids are taken for the other's."""
    base = model_base(model, (spec.model for spec in specs.values()))
    if base is not None:
        return next(tier for tier, spec in specs.items() if spec.model == base)
    lowered = model.strip().lower()
    return next((t for t in TIER_ORDER if t.value == lowered), None)


def billing_tier(model: str, specs: Mapping[Tier, TierSpec]) -> Tier | None:
    """The tier whose prices bill a model: tier_for_model, else the tier its id names
    ("claude-3-opus-20240229" at Opus prices, "claude-sonnet-4-5" at Sonnet's). None: no tier
    prices it (gpt-4o). Labeling's ledger and eval's replay price recorded models with it."""
    tier = tier_for_model(model, specs)
    if tier is None:
        tier = next((t for t in TIER_ORDER if t.value in model.lower()), None)
    return tier
