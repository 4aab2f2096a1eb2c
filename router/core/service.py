"""RoutingService: request -> features -> bundle scores -> policy -> RouteDecision.

Requests with agent context (sessions, runs, previous calls) are planned by an AgentHook
(router.agent.routing.AgentRouting), passed in with the stores it already holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from router.core.bundle import ModelBundle
from router.core.economics import expected_output_tokens, tokens_usd, turn_costs
from router.core.features import Turn, extract_turn
from router.core.policy import (
    DEFAULT_POLICY,
    Bounds,
    Policy,
    PolicyDecision,
    get_policy,
    threshold_for_quality,
)
from router.core.schemas import RouteDecision, RouteRequest
from router.core.tiers import TIER_ORDER, Tier
from router.settings import Settings

if TYPE_CHECKING:
    from router.core.warmup import ScoringSpeed

log = logging.getLogger(__name__)


class AgentHook(Protocol):
    """Agent-aware routing around the scores (router.agent.routing.AgentRouting)."""

    def plan(
        self, request: RouteRequest, turn: Turn, probs: Mapping[Tier, float], threshold: float
    ) -> PolicyDecision | None:
        """The decision for a request with agent context; None when it carries none."""
        ...

    def pinned_tier(self, request: RouteRequest) -> Tier | None:
        """The tier a tool loop pins the request to, without store calls (fallback path)."""
        ...

    def decided(self, requests: Sequence[RouteRequest], decisions: Sequence[RouteDecision]) -> None:
        """The decisions the callers got (scored or fallback), once each: runs count them."""
        ...


class RoutingService:
    def __init__(
        self,
        bundle: ModelBundle,
        settings: Settings,
        agent: AgentHook | None = None,
        policy: Policy | None = None,
        deadline_ms: float | None = None,
        speed: ScoringSpeed | None = None,
    ) -> None:
        """Without `agent` every request gets the plain policy (no session or budget state);
        `policy` defaults to the registered DEFAULT_POLICY; `deadline_ms` (the scoring deadline
        callers wait for, per turn) to settings.deadline_ms. `speed`: the bundle's measured
        scoring time (router.core.warmup), when it was measured."""
        self.bundle = bundle
        self.settings = settings
        self.agent = agent
        self.policy = policy or get_policy(DEFAULT_POLICY)
        self.deadline_ms = settings.deadline_ms if deadline_ms is None else deadline_ms
        self.speed = speed

    def with_bundle(
        self,
        bundle: ModelBundle,
        deadline_ms: float | None = None,
        speed: ScoringSpeed | None = None,
    ) -> RoutingService:
        """A service for a new bundle that keeps this one's agent state and policy (reloads)."""
        return RoutingService(bundle, self.settings, self.agent, self.policy, deadline_ms, speed)

    @property
    def version(self) -> str:
        return self.bundle.version

    def threshold_for(self, request: RouteRequest) -> float:
        """The request's threshold, else its quality_target's (BadRequestError when off the
        curve), else ROUTER_THRESHOLD, else the bundle's default."""
        if request.threshold is None and request.quality_target is not None:
            return threshold_for_quality(request.quality_target, self.bundle.manifest.curve)
        return self._plain_threshold(request)

    def _plain_threshold(self, request: RouteRequest) -> float:
        """threshold_for without quality_target, so it never raises (the fallback path)."""
        for value in (request.threshold, self.settings.threshold):
            if value is not None:
                return value
        return self.bundle.manifest.default_threshold

    def input_cost_usd(self, tier: Tier, turn: Turn) -> float:
        """RouteDecision.estimated_cost_usd: the turn's input tokens at the tier's list price."""
        return tokens_usd(float(turn.approx_tokens), self.settings.tier_spec(tier).input_per_mtok)

    def turn_costs(self, request: RouteRequest, turn: Turn) -> dict[Tier, float]:
        """What the policy weighs: each tier's USD for the turn, input and expected output."""
        output = expected_output_tokens(request.max_tokens, self.settings.expected_output_tokens)
        row = turn_costs(turn.approx_tokens, output, self.settings.tiers)[0]
        return {t: float(c) for t, c in zip(TIER_ORDER, row, strict=True)}

    def route(self, request: RouteRequest) -> RouteDecision:
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """Score all turns with one bundle.score call (the embedder still runs each text on its
        own); every decision's latency_ms is the whole batch's wall time."""
        start = time.perf_counter()
        thresholds = [self.threshold_for(r) for r in requests]  # fail fast on bad knobs
        turns = [extract_turn(r) for r in requests]
        probs = self.bundle.score(turns)
        elapsed_ms = (time.perf_counter() - start) * 1000
        out = []
        for request, turn, row, threshold in zip(requests, turns, probs, thresholds, strict=True):
            by_tier = {t: float(p) for t, p in zip(TIER_ORDER, np.asarray(row), strict=True)}
            plan = self.agent.plan(request, turn, by_tier, threshold) if self.agent else None
            if plan is None:
                costs = self.turn_costs(request, turn)
                bounds = Bounds(request.min_tier, request.max_tier)
                plan = self.policy.decide(by_tier, costs, threshold, bounds)
            tier, reason, breakdown = plan.tier, plan.reason, plan.cost_breakdown
            out.append(
                RouteDecision(
                    tier=tier,
                    model=self.settings.tier_spec(tier).model,
                    probabilities=by_tier,
                    threshold=threshold,
                    reason=reason,
                    model_version=self.version,
                    estimated_cost_usd=self.input_cost_usd(tier, turn),
                    latency_ms=elapsed_ms,
                    cost_breakdown=breakdown,
                )
            )
        return out

    def needs_recording(self, requests: Sequence[RouteRequest]) -> bool:
        """Whether `record` has anything to do (any request belongs to a run)."""
        return self.agent is not None and any(r.run_id is not None for r in requests)

    def record(self, requests: Sequence[RouteRequest], decisions: Sequence[RouteDecision]) -> None:
        """Tell the agent hook which decisions the callers got (may block on its store)."""
        if self.agent is not None:
            self.agent.decided(requests, decisions)

    def fallback(self, request: RouteRequest, reason: str, latency_ms: float) -> RouteDecision:
        """The configured fallback tier, clamped to the request's bounds, marked fallback=True."""
        tier = self.settings.fallback_tier
        pinned = self.agent.pinned_tier(request) if self.agent else None
        if pinned is not None:
            tier, reason = pinned, f"{reason}; kept {pinned.value}: mid tool-use loop"
        if request.min_tier and tier.rank < request.min_tier.rank:
            tier = request.min_tier
        if request.max_tier and tier.rank > request.max_tier.rank:
            tier = request.max_tier
        log.debug("fallback to %s: %s", tier.value, reason)  # http.scoring logs it, rate-limited
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
