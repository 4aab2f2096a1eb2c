"""Dollars for labeling: an estimate before sending and a ledger of real usage after.

Prices come from router tiers.toml (via Settings): a model is priced as the tier whose model id
it is (or a dated version of it, or failing that the tier named in it, e.g. claude-3-opus-...).
The Message Batches API multiplies every price by `pricing.batch_multiplier` (0.5).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from router.core.economics import billing_tier, usage_cost_usd
from router.core.features import CHARS_PER_TOKEN
from router.core.schemas import Usage
from router.core.tiers import TIER_ORDER, Tier
from router.errors import RouterError
from router.settings import Settings

Lane = Literal["batch", "live"]
Stage = Literal["answer", "judge"]


class CostError(RouterError):
    """A model cannot be priced from tiers.toml."""


def billed_tier(settings: Settings, model: str) -> Tier:
    """The tier whose prices a model is billed at; CostError when none fits."""
    tier = billing_tier(model, settings.tiers)
    if tier is None:
        known = [settings.tier_spec(t).model for t in TIER_ORDER]
        raise CostError(
            f"model {model!r} has no price: tiers.toml knows {known}; "
            "use one of them or a model id naming haiku/sonnet/opus"
        )
    return tier


def usage_usd(settings: Settings, model: str, usage: Mapping[str, Any], lane: Lane) -> float:
    """One call's dollars from its usage block (input, output, cache writes and reads)."""
    counts = Usage.model_construct(**{k: int(usage.get(k) or 0) for k in Usage.model_fields})
    spec, prices = settings.tier_spec(billed_tier(settings, model)), settings.prices
    usd = usage_cost_usd(counts, spec, prices)
    return usd * (prices.batch_multiplier if lane == "batch" else 1.0)


def approx_input_tokens(params: Mapping[str, Any]) -> int:
    """Rough input tokens of a Messages-API body (system, messages, tools) at CHARS_PER_TOKEN."""
    chars = sum(
        len(json.dumps(params.get(key), ensure_ascii=False))
        for key in ("system", "messages", "tools")
        if params.get(key)
    )
    return math.ceil(chars / CHARS_PER_TOKEN)


@dataclass
class Tally:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    usd: float = 0.0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.usd += other.usd


# (stage, tier whose answer it concerns, model called)
LedgerKey = tuple[Stage, Tier, str]


@dataclass
class Ledger:
    """Tokens and dollars per (stage, tier, model); also used for estimates."""

    rows: dict[LedgerKey, Tally] = field(default_factory=lambda: defaultdict(Tally))

    def record(
        self,
        settings: Settings,
        key: LedgerKey,
        usage: Mapping[str, Any],
        lane: Lane,
    ) -> None:
        row = self.rows[key]
        row.requests += 1
        row.input_tokens += int(usage.get("input_tokens") or 0)
        row.output_tokens += int(usage.get("output_tokens") or 0)
        row.cache_creation_input_tokens += int(usage.get("cache_creation_input_tokens") or 0)
        row.cache_read_input_tokens += int(usage.get("cache_read_input_tokens") or 0)
        row.usd += usage_usd(settings, key[2], usage, lane)

    def by_tier(self) -> dict[Tier, Tally]:
        """Answer generation plus judging of that tier's answers."""
        return _group(self.rows.items(), lambda k: k[1])

    def by_judge(self) -> dict[str, Tally]:
        return _group(((k, v) for k, v in self.rows.items() if k[0] == "judge"), lambda k: k[2])

    def answers(self) -> dict[Tier, Tally]:
        return _group(((k, v) for k, v in self.rows.items() if k[0] == "answer"), lambda k: k[1])

    def total(self) -> Tally:
        out = Tally()
        for row in self.rows.values():
            out.add(row)
        return out

    def render(self, title: str) -> str:
        """A plain-text table. Answers (per tier) and judging (per judge model) add up to the
        total; below it the same total by tier (a tier's answers and their judging). Rows are
        never counted twice within a group, and columns stay aligned for any model id."""
        answers = sorted(self.answers().items(), key=lambda kv: kv[0].rank)
        by_tier = sorted(self.by_tier().items(), key=lambda kv: kv[0].rank)
        groups: list[tuple[str, list[tuple[str, Tally]]]] = [
            ("answers, per tier", [(t.value, tally) for t, tally in answers]),
            ("judging, per judge model", sorted(self.by_judge().items())),
        ]
        split = (
            "the same total by tier (its answers and their judging)",
            [(t.value, tally) for t, tally in by_tier],
        )
        names = [n for _, rows in [*groups, split] for n, _ in rows] + ["total"]
        width = max(len(n) for n in names) + 4
        lines = [
            title,
            f"  {'':<{width}}{'requests':>9}{'input':>12}{'output':>10}{'cache r/w':>16}"
            f"{'USD':>11}",
        ]

        def row(name: str, t: Tally, indent: int) -> None:
            cache = f"{t.cache_read_input_tokens}/{t.cache_creation_input_tokens}"
            label = " " * indent + name
            lines.append(
                f"  {label:<{width}}{t.requests:>9}{t.input_tokens:>12}{t.output_tokens:>10}"
                f"{cache:>16}{t.usd:>11.4f}"
            )

        for heading, rows in groups:
            if rows:
                lines.append(f"  {heading}")
                for name, tally in rows:
                    row(name, tally, 2)
        row("total", self.total(), 0)
        if split[1]:
            lines.append(f"  {split[0]}")
            for name, tally in split[1]:
                row(name, tally, 2)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        def d(t: Tally) -> dict[str, Any]:
            return dict(vars(t), usd=round(t.usd, 6))

        return {
            "by_tier": {k.value: d(v) for k, v in self.by_tier().items()},
            "by_judge": {k: d(v) for k, v in self.by_judge().items()},
            "answers": {k.value: d(v) for k, v in self.answers().items()},
            "total": d(self.total()),
        }


def _group(items: Iterable[tuple[LedgerKey, Tally]], key: Any) -> dict[Any, Tally]:
    out: dict[Any, Tally] = defaultdict(Tally)
    for k, v in items:
        out[key(k)].add(v)
    return dict(out)
