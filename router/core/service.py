"""RoutingService: request -> features -> bundle scores -> policy -> RouteDecision.

Requests with agent context (sessions, runs, previous calls) are planned by an AgentHook
(router.agent.routing.AgentRouting), passed in with the stores it already holds. Scoring
(`score`) and deciding (`decide`) are separate steps so that `tierwise route-file` can decide
one scored turn at several operating points through exactly the code /route runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from router.core.bundle import ModelBundle
from router.core.economics import expected_output_tokens, tokens_usd, turn_costs
from router.core.features import Turn, extract_turn
from router.core.policy import (
    Bounds,
    OperatingPoint,
    Policy,
    PolicyDecision,
    bundle_policy,
    get_policy,
    knob_for_quality,
)
from router.core.schemas import RouteDecision, RouteRequest
from router.core.speed import ScoringSpeed
from router.core.tiers import TIER_ORDER, Tier
from router.settings import Settings

log = logging.getLogger(__name__)


class AgentHook(Protocol):
    """Agent-aware routing around the scores (router.agent.routing.AgentRouting)."""

    def plan(
        self,
        request: RouteRequest,
        turn: Turn,
        probs: Mapping[Tier, float],
        point: OperatingPoint,
        output_tokens: Mapping[Tier, float],
    ) -> PolicyDecision | None:
        """The decision for a request with agent context; None when it carries none."""
        ...

    def pinned_tier(self, request: RouteRequest) -> Tier | None:
        """The tier a tool loop pins the request to, without store calls (fallback path)."""
        ...

    def decided(self, requests: Sequence[RouteRequest], decisions: Sequence[RouteDecision]) -> None:
        """The decisions the callers got (scored or fallback), once each: runs count them."""
        ...


@dataclass(frozen=True)
class ScoredTurn:
    """One request's turn and what the bundle predicts for it, per tier."""

    turn: Turn
    quality: dict[Tier, float]
    # Expected answer tokens per tier: the bundle's forecast, else Settings.expected_output_tokens;
    # capped by the request's max_tokens.
    output_tokens: dict[Tier, float]


class RoutingService:
    def __init__(
        self,
        bundle: ModelBundle,
        settings: Settings,
        agent: AgentHook | None = None,
        deadline_ms: float | None = None,
        speed: ScoringSpeed | None = None,
    ) -> None:
        """Without `agent` every request gets the plain policy (no session or budget state).
        The bundle's manifest names its policy (threshold for bundles older than the field).
        `deadline_ms` (the scoring deadline callers wait for, per turn) defaults to
        settings.deadline_ms; `speed`: the bundle's measured scoring time (router.core.warmup),
        when it was measured."""
        self.bundle = bundle
        self.settings = settings
        self.agent = agent
        manifest = bundle.manifest
        self.policy: Policy = bundle_policy(manifest.policy, manifest.reference_cost_usd)
        self.utility: Policy = bundle_policy("utility", manifest.reference_cost_usd)
        self.deadline_ms = settings.deadline_ms if deadline_ms is None else deadline_ms
        self.speed = speed

    def with_bundle(
        self,
        bundle: ModelBundle,
        deadline_ms: float | None = None,
        speed: ScoringSpeed | None = None,
    ) -> RoutingService:
        """A service for a new bundle that keeps this one's agent state (reloads)."""
        return RoutingService(bundle, self.settings, self.agent, deadline_ms, speed)

    @property
    def version(self) -> str:
        return self.bundle.version

    def operating_point(self, request: RouteRequest) -> OperatingPoint:
        """The request's threshold (threshold policy) or failed_turn_usd (utility policy), else
        its quality_target mapped on the bundle's held-out curve to the bundle policy's knob
        (BadRequestError when off the curve), else default_point."""
        if request.threshold is not None:
            return OperatingPoint(get_policy("threshold"), request.threshold)
        if request.failed_turn_usd is not None:
            return OperatingPoint(self.utility, request.failed_turn_usd)
        if request.quality_target is not None:
            knob = knob_for_quality(request.quality_target, self.bundle.manifest.curve)
            return OperatingPoint(self.policy, knob)
        return self.default_point()

    def default_point(self) -> OperatingPoint:
        """ROUTER_THRESHOLD, else ROUTER_FAILED_TURN_USD, else the bundle's own policy and
        default knob. Never raises (the fallback path uses it)."""
        if self.settings.threshold is not None:
            return OperatingPoint(get_policy("threshold"), self.settings.threshold)
        if self.settings.failed_turn_usd is not None:
            return OperatingPoint(self.utility, self.settings.failed_turn_usd)
        return OperatingPoint(self.policy, self.bundle.manifest.knob)

    def input_cost_usd(self, tier: Tier, turn: Turn) -> float:
        """RouteDecision.estimated_cost_usd: the turn's input tokens at the tier's list price."""
        return tokens_usd(float(turn.approx_tokens), self.settings.tier_spec(tier).input_per_mtok)

    def output_tokens(
        self, request: RouteRequest, forecast: Sequence[float] | None
    ) -> dict[Tier, float]:
        """Per tier, the answer tokens to price: the bundle's forecast (else the configured
        expectation), never more than the request's max_tokens, a ceiling."""
        if forecast is None:
            tokens = expected_output_tokens(
                request.max_tokens, self.settings.expected_output_tokens
            )
            return {t: float(tokens) for t in TIER_ORDER}
        cap = float(request.max_tokens) if request.max_tokens is not None else float("inf")
        return {t: min(float(v), cap) for t, v in zip(TIER_ORDER, forecast, strict=True)}

    def turn_costs(self, turn: Turn, output_tokens: Mapping[Tier, float]) -> dict[Tier, float]:
        """What the plain policy weighs: each tier's USD for the turn, input and its answer."""
        outputs = np.asarray([[output_tokens[t] for t in TIER_ORDER]])
        row = turn_costs(turn.approx_tokens, outputs, self.settings.tiers)[0]
        return {t: float(c) for t, c in zip(TIER_ORDER, row, strict=True)}

    def route(self, request: RouteRequest) -> RouteDecision:
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """Score all turns with one bundle call (the embedder still runs each text on its own),
        then decide each; every decision's latency_ms is the whole batch's wall time."""
        start = time.perf_counter()
        points = [self.operating_point(r) for r in requests]  # fail fast on bad knobs
        scored = self.score(requests)
        elapsed_ms = (time.perf_counter() - start) * 1000
        return [
            self.decide(request, item, point, elapsed_ms)
            for request, item, point in zip(requests, scored, points, strict=True)
        ]

    def score(self, requests: Sequence[RouteRequest]) -> list[ScoredTurn]:
        """Each request's turn with the bundle's per-tier quality and answer tokens."""
        turns = [extract_turn(r) for r in requests]
        scores = self.bundle.predict(turns)
        tokens = scores.output_tokens
        out = []
        for i, (request, turn) in enumerate(zip(requests, turns, strict=True)):
            quality = {t: float(p) for t, p in zip(TIER_ORDER, scores.quality[i], strict=True)}
            forecast = None if tokens is None else tokens[i].tolist()
            out.append(ScoredTurn(turn, quality, self.output_tokens(request, forecast)))
        return out

    def decide(
        self,
        request: RouteRequest,
        scored: ScoredTurn,
        point: OperatingPoint | None = None,
        latency_ms: float = 0.0,
    ) -> RouteDecision:
        """The decision for one scored request at `point` (default: the request's own)."""
        point = point or self.operating_point(request)
        plan = None
        if self.agent is not None:
            plan = self.agent.plan(
                request, scored.turn, scored.quality, point, scored.output_tokens
            )
        if plan is None:
            costs = self.turn_costs(scored.turn, scored.output_tokens)
            bounds = Bounds(request.min_tier, request.max_tier)
            plan = point.policy.decide(scored.quality, costs, point.knob, bounds)
        tier = plan.tier
        return RouteDecision(
            tier=tier,
            model=self.settings.tier_spec(tier).model,
            probabilities=scored.quality,
            threshold=point.knob if point.policy.knob_name == "threshold" else 0.0,
            reason=plan.reason,
            model_version=self.version,
            estimated_cost_usd=self.input_cost_usd(tier, scored.turn),
            latency_ms=latency_ms,
            cost_breakdown=plan.cost_breakdown,
            policy=point.policy.name,
            knob=point.knob,
            expected_cost_usd=dict(plan.costs) if plan.costs is not None else None,
            output_tokens=scored.output_tokens,
        )

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
        threshold = request.threshold
        if threshold is None:
            point = self.default_point()
            threshold = point.knob if point.policy.knob_name == "threshold" else 0.0
        return RouteDecision(
            tier=tier,
            model=self.settings.tier_spec(tier).model,
            probabilities={},
            threshold=threshold,
            reason=f"fallback: {reason}",
            model_version=self.version,
            estimated_cost_usd=self.input_cost_usd(tier, extract_turn(request)),
            latency_ms=latency_ms,
            fallback=True,
        )
