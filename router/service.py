"""Router: request -> features -> bundle scores -> policy -> RouteDecision."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from router.bundle import ModelBundle
from router.features import Turn, extract_turn
from router.policy import CurvePoint, choose_tier, threshold_for_quality
from router.schemas import RouteDecision, RouteRequest
from router.settings import Settings
from router.tiers import TIER_ORDER, Tier

log = logging.getLogger(__name__)


class Router:
    def __init__(self, bundle: ModelBundle, settings: Settings) -> None:
        self.bundle = bundle
        self.settings = settings
        self._curve = [CurvePoint(**p) for p in bundle.manifest.curve]

    @property
    def version(self) -> str:
        return self.bundle.version

    def threshold_for(self, request: RouteRequest) -> float:
        if request.threshold is not None:
            return request.threshold
        if request.quality_target is not None:
            return threshold_for_quality(request.quality_target, self._curve)
        if self.settings.threshold is not None:
            return self.settings.threshold
        return self.bundle.manifest.default_threshold

    def _plain_threshold(self, request: RouteRequest) -> float:
        for value in (request.threshold, self.settings.threshold):
            if value is not None:
                return value
        return self.bundle.manifest.default_threshold

    def input_cost_usd(self, tier: Tier, turn: Turn) -> float:
        return turn.approx_tokens * self.settings.tier_spec(tier).input_per_mtok / 1e6

    def route(self, request: RouteRequest) -> RouteDecision:
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """Score all turns in one embedder call; latency_ms is the batch's wall time per call."""
        start = time.perf_counter()
        thresholds = [self.threshold_for(r) for r in requests]  # fail fast on bad knobs
        turns = [extract_turn(r) for r in requests]
        probs = self.bundle.score(turns)
        elapsed_ms = (time.perf_counter() - start) * 1000
        out = []
        for request, turn, row, threshold in zip(requests, turns, probs, thresholds, strict=True):
            by_tier = {t: float(p) for t, p in zip(TIER_ORDER, np.asarray(row), strict=True)}
            decision = choose_tier(by_tier, threshold, request.min_tier, request.max_tier)
            out.append(
                RouteDecision(
                    tier=decision.tier,
                    model=self.settings.tier_spec(decision.tier).model,
                    probabilities=by_tier,
                    threshold=threshold,
                    reason=decision.reason,
                    model_version=self.version,
                    estimated_cost_usd=self.input_cost_usd(decision.tier, turn),
                    latency_ms=elapsed_ms,
                )
            )
        return out

    def fallback(self, request: RouteRequest, reason: str, latency_ms: float) -> RouteDecision:
        """The configured fallback tier, clamped to the request's bounds, marked fallback=True."""
        tier = self.settings.fallback_tier
        if request.min_tier and tier.rank < request.min_tier.rank:
            tier = request.min_tier
        if request.max_tier and tier.rank > request.max_tier.rank:
            tier = request.max_tier
        log.warning("fallback to %s: %s", tier.value, reason)
        return RouteDecision(
            tier=tier,
            model=self.settings.tier_spec(tier).model,
            probabilities={},
            threshold=self._plain_threshold(request),
            reason=f"fallback: {reason}",
            model_version=self.version,
            estimated_cost_usd=self.input_cost_usd(tier, extract_turn(request)),
            latency_ms=latency_ms,
            fallback=True,
        )
