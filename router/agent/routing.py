"""AgentRouting: cache economics, tool-loop pinning and run budgets around the scores.

The core's RoutingService asks it to plan requests that carry agent context (session_id, run_id,
previous_model or previous_usage); other requests keep the plain policy. docs/agent-routing.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.agent.budgets import BudgetCap, RunState, RunStore, budget_cap
from router.agent.pinning import has_agent_context, pin_reason
from router.agent.sessions import SessionState, SessionStore, StoreError
from router.agent.stores import AgentStores
from router.core.economics import (
    TurnShape,
    decide_with_cache,
    expected_output_tokens,
    prefix_from_usage,
    tier_for_model,
    usage_cost_usd,
)
from router.core.features import Turn
from router.core.loop_quality import LoopQuality
from router.core.policy import (
    Bounds,
    OperatingPoint,
    Policy,
    PolicyDecision,
    ThresholdPolicy,
    allowed_tiers,
)
from router.core.schemas import RouteDecision, RouteRequest, Usage
from router.core.tiers import Tier
from router.errors import BadRequestError
from router.settings import Settings

log = logging.getLogger(__name__)
# The failed-turn value the threshold policy's agent path adds as a risk term when
# ROUTER_FAILED_TURN_USD is unset: the cost of redoing a typical 20k-token agent turn on Opus
# without the cache (20k x $5/M + 500 x $25/M ~ $0.11).
THRESHOLD_RISK_USD = 0.10


@dataclass(frozen=True)
class UsageRecord:
    tier: Tier
    cost_usd: float
    counted: bool  # False: message_id was already counted for this run
    run: RunState | None


class AgentRouting:
    """Implements router.core.service.AgentHook over the session and run stores it is given."""

    def __init__(
        self,
        settings: Settings,
        stores: AgentStores,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sessions: SessionStore = stores.sessions
        self.runs: RunStore = stores.runs
        self._now = wall_clock

    def _session(self, session_id: str | None, notes: list[str]) -> SessionState | None:
        if session_id is None:
            return None
        try:
            return self.sessions.get(session_id)
        except StoreError as exc:
            log.warning("session lookup failed: %s", exc)
            notes.append("session store unavailable, routed without session state")
            return None

    def _run(self, request: RouteRequest, notes: list[str]) -> RunState | None:
        if request.run_id is None:
            return None
        try:
            if request.budget_usd is not None:
                return self.runs.set_budget(request.run_id, request.budget_usd)
            return self.runs.get(request.run_id)
        except StoreError as exc:
            log.warning("run lookup failed: %s", exc)
            notes.append("run store unavailable, budget not applied")
            return None

    def previous_tier(self, request: RouteRequest, session: SessionState | None) -> Tier | None:
        if request.previous_model is not None:
            return tier_for_model(request.previous_model, self.settings.tiers)
        return session.tier if session else None

    def plan(
        self,
        request: RouteRequest,
        turn: Turn,
        probs: Mapping[Tier, float],
        point: OperatingPoint,
        output_tokens: Mapping[Tier, float],
    ) -> PolicyDecision | None:
        """The decision for a request with agent context, its cost breakdown included; None for
        a request without any (the service then applies the plain policy). The operating
        point's policy chooses on cache-aware costs: each tier's input (cache read or write),
        and its forecast answer tokens."""
        if not has_agent_context(request):
            return None
        s = self.settings
        notes: list[str] = []
        session = self._session(request.session_id, notes)
        cache_tier = self.previous_tier(request, session)
        if request.previous_model is not None and cache_tier is None:
            notes.append(
                f"previous_model {request.previous_model!r} is none of the configured models "
                f"{[spec.model for spec in s.tiers.values()]}, so no tier holds its cache"
            )
        # The prompt is at least the cached prefix plus the previous answer, which follows it.
        floor = prefix = session.prefix_tokens if session else 0
        if request.previous_usage is not None:
            prefix = prefix_from_usage(request.previous_usage)
            floor = prefix + request.previous_usage.output_tokens
        policy, value = self._policy(point)
        shape = TurnShape(
            input_tokens=max(turn.approx_tokens, floor),
            prefix_tokens=prefix,
            cache_tier=cache_tier,
            output_tokens=expected_output_tokens(request.max_tokens, s.expected_output_tokens),
            failed_turn_usd=value,
        )

        run = self._run(request, notes)
        cap = budget_cap(run, s.budget_cap_sonnet_at, s.budget_cap_haiku_at)
        lo, hi = request.min_tier, request.max_tier
        if cap.tier is not None and (hi is None or cap.tier.rank < hi.rank):
            hi = cap.tier
        if lo is not None and hi is not None and hi.rank < lo.rank:
            notes.append(f"min_tier={lo.value} overrides the budget cap")
            hi = lo

        pin = pin_reason(request)
        loop = session.loop if session else LoopQuality()
        weighed = probs
        if pin is None and loop.turns > 0:
            # A head commits the loop that follows: weigh it by that loop's expected quality.
            weighed = loop.at_head(probs)
            names = ", ".join(f"{t.value} {weighed[t]:.2f}" for t in weighed)
            notes.append(
                f"a head commits its tool loop: weighed by the mean P(adequate) of this "
                f"session's {loop.turns} loop turns and this turn ({names})"
            )
        elif pin is not None:
            loop = loop.add(probs)
        choice = decide_with_cache(
            policy, point.knob, weighed, shape, s.tiers, s.prices, Bounds(lo, hi), output_tokens
        )
        decision = choice.decision
        tier, reason = decision.tier, choice.reason
        pinned = False
        if pin is not None:
            if cache_tier is None:
                notes.append(f"{pin}, but the previous tier is unknown; routed on cost")
            elif cache_tier in allowed_tiers(lo, hi):
                pinned = True
                reason = (
                    f"pinned to {cache_tier.value}: {pin}; a tier change mid-loop is not "
                    f"allowed (on cost alone: {decision.tier.value})"
                )
                tier = cache_tier
            else:
                own_bounds = allowed_tiers(request.min_tier, request.max_tier)
                why = "the budget cap" if cache_tier in own_bounds else "min_tier/max_tier"
                notes.append(f"{pin}, but {why} rules out {cache_tier.value}; switching")
        if cap.reason:
            notes.insert(0, cap.reason)

        self._remember(request, tier, shape.input_tokens, loop, notes)
        breakdown = choice.breakdown()
        breakdown.update(chosen=tier.value, pinned=pinned, budget=_budget_view(run, cap))
        return PolicyDecision(
            tier,
            point.knob,
            "; ".join([reason, *notes]),
            breakdown,
            decision.off_frontier,
            decision.costs,
            decision.choosable,
            decision.value_usd,
        )

    def _policy(self, point: OperatingPoint) -> tuple[Policy, float]:
        """The policy to apply and the failed-turn value it prices as risk: the utility
        policy's knob is that value; the threshold policy adds ROUTER_FAILED_TURN_USD (default
        THRESHOLD_RISK_USD) x (1 - P) to each tier reaching the threshold."""
        if point.policy.knob_name == "failed_turn_usd":
            return point.policy, point.knob
        risk = self.settings.failed_turn_usd
        risk = THRESHOLD_RISK_USD if risk is None else risk
        return ThresholdPolicy(risk_usd=risk), risk

    def _remember(
        self,
        request: RouteRequest,
        tier: Tier,
        prompt_tokens: int,
        loop: LoopQuality,
        notes: list[str],
    ) -> None:
        """After a decision: the chosen model will hold this turn's prompt in its cache; `loop`
        is the session's loop-turn quality with this turn counted if it is one. (The run counts
        the decision in `decided`, once the caller has it: this one may yet be replaced by a
        fallback.)"""
        if request.session_id is None:
            return
        try:
            model = self.settings.tier_spec(tier).model
            state = SessionState(tier, model, prompt_tokens, self._now(), loop)
            self.sessions.put(request.session_id, state)
        except StoreError as exc:
            log.warning("session update failed: %s", exc)
            notes.append("session state not saved (store unavailable)")

    def decided(self, requests: Sequence[RouteRequest], decisions: Sequence[RouteDecision]) -> None:
        """Count each decision the caller got, fallbacks included, in its run's `routed`."""
        for request, decision in zip(requests, decisions, strict=True):
            if request.run_id is None:
                continue
            try:
                self.runs.add_route(request.run_id, decision.tier)
            except StoreError as exc:
                log.warning("run %r: decision not counted: %s", request.run_id, exc)

    def pinned_tier(self, request: RouteRequest) -> Tier | None:
        """The tier a tool loop pins this request to, from previous_model only (no store call:
        used on the fallback path, when the store may be what is slow)."""
        if request.previous_model is None or pin_reason(request) is None:
            return None
        return tier_for_model(request.previous_model, self.settings.tiers)

    def record_usage(
        self,
        model: str,
        usage: Usage,
        run_id: str | None = None,
        session_id: str | None = None,
        message_id: str | None = None,
    ) -> UsageRecord:
        """Price one Messages-API call's usage, add it to the run's spend, and record in the
        session which model now holds how much of the prompt in its cache."""
        tier = tier_for_model(model, self.settings.tiers)
        if tier is None:
            raise BadRequestError(
                f"model: {model!r} is none of the configured models "
                f"{[spec.model for spec in self.settings.tiers.values()]}; cannot price its usage"
            )
        cost = usage_cost_usd(usage, self.settings.tier_spec(tier), self.settings.prices)
        run: RunState | None = None
        counted = True
        if run_id is not None:
            run, counted = self.runs.add_usage(run_id, tier, cost, message_id)
        if session_id is not None and counted:
            known = self.sessions.get(session_id)  # keeps its loop-turn quality
            loop = known.loop if known else LoopQuality()
            state = SessionState(tier, model, prefix_from_usage(usage), self._now(), loop)
            self.sessions.put(session_id, state)
        return UsageRecord(tier, cost, counted, run)


def _budget_view(run: RunState | None, cap: BudgetCap) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "budget_usd": run.budget_usd,
        "spent_usd": run.spent_usd,
        "remaining_usd": run.remaining_usd,
        "cap": cap.tier.value if cap.tier else None,
        "exhausted": cap.exhausted,
    }
