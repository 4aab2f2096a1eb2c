"""Dollars of simulated calls, through router.core.economics (the one price seam): a model id is
priced as its tier (billing_tier: the tier's id, a dated snapshot, or the tier named in it, e.g.
claude-sonnet-4-5 at Sonnet prices). Arrays out, one row per call."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

from eval.replay.cache import CacheTrace
from eval.replay.session import CallTokens
from router.core.economics import billing_tier, min_cacheable_tokens, usage_cost_usd
from router.core.schemas import Usage
from router.core.tiers import TIER_ORDER, Tier
from router.settings import Settings


class Pricer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tier = cache(self._tier)
        self.min_tokens = cache(self._min_tokens)

    @property
    def tier_models(self) -> list[str]:
        """The model id of each tier, in TIER_ORDER."""
        return [self.settings.tier_spec(t).model for t in TIER_ORDER]

    def _tier(self, model: str) -> Tier | None:
        """The tier whose prices bill `model`; None for a model no tier prices (gpt-4o)."""
        return billing_tier(model, self.settings.tiers)

    def _min_tokens(self, model: str) -> int:
        return min_cacheable_tokens(model, self.settings.prices)

    def call_usd(self, model: str, tokens: CallTokens) -> float:
        tier = self.tier(model)
        if tier is None:
            return float("nan")
        usage = Usage.model_validate(tokens.usage())
        return usage_cost_usd(usage, self.settings.tier_spec(tier), self.settings.prices)

    def usd(self, trace: CacheTrace) -> NDArray[np.float64]:
        """(n,) dollars per call."""
        return np.asarray(
            [self.call_usd(m, trace.tokens(k)) for k, m in enumerate(trace.models)], dtype=float
        ).reshape(len(trace.models))

    def switch_usd(self, trace: CacheTrace) -> NDArray[np.float64]:
        """(n,) dollars of each switch's re-written prefix (trace.lost), as a cache write on the
        new model; 0 where the call did not switch."""
        out = np.zeros(len(trace.models), dtype=float)
        for k in np.flatnonzero(trace.lost):
            out[k] = self.call_usd(trace.models[k], trace.lost_tokens(int(k)))
        return out
