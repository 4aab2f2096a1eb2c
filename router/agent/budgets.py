"""Per-run budgets: a run (`run_id`) has an optional `budget_usd` and the spend its client reports.

Contract: spend comes only from usage reports (POST /runs/{id}/usage, or AgentRouting.record_usage
in-process), never from `previous_usage` on /route, which only sizes the cached prefix. Each
report is priced with the tier's list prices; a repeated `message_id` is counted once.
As the spent share grows the router caps the tier (`budget_cap`); see docs/agent-routing.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from router.agent.sessions import KEY_PREFIX, StoreError, TtlMap, redis_error_type
from router.core.tiers import TIER_ORDER, Tier

# A run remembers at most this many message ids for de-duplication (memory store).
MAX_MESSAGE_IDS = 10_000


def _zero_counts() -> dict[Tier, int]:
    return {t: 0 for t in TIER_ORDER}


@dataclass(frozen=True)
class RunState:
    run_id: str
    budget_usd: float | None = None
    spent_usd: float = 0.0
    calls: dict[Tier, int] = field(default_factory=_zero_counts)  # usage reports per tier
    routed: dict[Tier, int] = field(default_factory=_zero_counts)  # /route decisions per tier
    updated_at: float = 0.0  # unix seconds

    @property
    def remaining_usd(self) -> float | None:
        return None if self.budget_usd is None else max(0.0, self.budget_usd - self.spent_usd)

    @property
    def spent_fraction(self) -> float | None:
        return None if self.budget_usd is None else self.spent_usd / self.budget_usd


class RunStore(Protocol):
    def get(self, run_id: str) -> RunState | None:
        """The run, or None if never seen or expired. Raises StoreError."""
        ...

    def set_budget(self, run_id: str, budget_usd: float) -> RunState:
        """Create the run or change its budget (the latest /route call's budget_usd wins)."""
        ...

    def add_route(self, run_id: str, tier: Tier) -> None:
        """Count one routing decision for the run."""
        ...

    def add_usage(
        self, run_id: str, tier: Tier, cost_usd: float, message_id: str | None = None
    ) -> tuple[RunState, bool]:
        """Add one call's cost; returns the run and False if message_id was already counted."""
        ...


@dataclass(frozen=True)
class BudgetCap:
    tier: Tier | None  # the most capable tier the budget still allows; None: no cap
    exhausted: bool
    reason: str  # "" when there is no cap


def budget_cap(run: RunState | None, sonnet_at: float, haiku_at: float) -> BudgetCap:
    """Spent share >= 1: exhausted, haiku; >= haiku_at: haiku; >= sonnet_at: sonnet."""
    if run is None or run.budget_usd is None:
        return BudgetCap(None, False, "")
    share = run.spent_usd / run.budget_usd
    spent = f"${run.spent_usd:.4f} of ${run.budget_usd:.4f} ({share:.0%})"
    if share >= 1.0:
        return BudgetCap(
            Tier.HAIKU, True, f"budget exhausted: {spent} spent; routing the cheapest tier"
        )
    for tier, at in ((Tier.HAIKU, haiku_at), (Tier.SONNET, sonnet_at)):
        if share >= at:
            return BudgetCap(tier, False, f"budget {spent} spent >= {at:.0%}: capped at {tier}")
    return BudgetCap(None, False, "")


@dataclass(frozen=True)
class _MemoryRun:
    state: RunState
    message_ids: frozenset[str] = frozenset()


class MemoryRunStore:
    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._map: TtlMap[_MemoryRun] = TtlMap(ttl_s, max_entries, clock)
        self._now = wall_clock

    def _change(self, run_id: str, change: Callable[[RunState], RunState]) -> _MemoryRun:
        def apply(current: _MemoryRun | None) -> _MemoryRun:
            run = current or _MemoryRun(RunState(run_id))
            return replace(run, state=replace(change(run.state), updated_at=self._now()))

        return self._map.update(run_id, apply)

    def get(self, run_id: str) -> RunState | None:
        run = self._map.get(run_id)
        return None if run is None else run.state

    def set_budget(self, run_id: str, budget_usd: float) -> RunState:
        return self._change(run_id, lambda s: replace(s, budget_usd=budget_usd)).state

    def add_route(self, run_id: str, tier: Tier) -> None:
        self._change(run_id, lambda s: replace(s, routed={**s.routed, tier: s.routed[tier] + 1}))

    def add_usage(
        self, run_id: str, tier: Tier, cost_usd: float, message_id: str | None = None
    ) -> tuple[RunState, bool]:
        counted = True

        def apply(current: _MemoryRun | None) -> _MemoryRun:
            nonlocal counted
            run = current or _MemoryRun(RunState(run_id))
            if message_id is not None and message_id in run.message_ids:
                counted = False
                return run
            s = run.state
            state = replace(
                s,
                spent_usd=s.spent_usd + cost_usd,
                calls={**s.calls, tier: s.calls[tier] + 1},
                updated_at=self._now(),
            )
            ids = run.message_ids
            if message_id is not None and len(ids) < MAX_MESSAGE_IDS:
                ids = ids | {message_id}
            return _MemoryRun(state, ids)

        return self._map.update(run_id, apply).state, counted


class RedisRunStore:
    """One hash per run at tierwise:run:<id> (budget_usd, spent_usd, calls:<tier>,
    routed:<tier>, updated_at) plus a set of counted message ids; increments are atomic, so
    replicas can report usage for the same run at once. Both keys expire ttl_s after a write."""

    def __init__(
        self,
        client: Any,
        ttl_s: float,
        prefix: str = KEY_PREFIX,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._prefix = prefix
        self._now = wall_clock
        self._error = redis_error_type()

    def _key(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}"

    def _parse(self, run_id: str, raw: dict[str, str]) -> RunState:
        try:
            budget = raw.get("budget_usd")
            return RunState(
                run_id=run_id,
                budget_usd=None if budget is None else float(budget),
                spent_usd=float(raw.get("spent_usd", 0.0)),
                calls={t: int(raw.get(f"calls:{t}", 0)) for t in TIER_ORDER},
                routed={t: int(raw.get(f"routed:{t}", 0)) for t in TIER_ORDER},
                updated_at=float(raw.get("updated_at", 0.0)),
            )
        except ValueError as exc:
            raise StoreError(f"run {run_id!r} holds unreadable state: {exc}") from exc

    def _write(self, run_id: str, ops: Callable[[Any, str], None]) -> RunState:
        key = self._key(run_id)
        try:
            pipe = self._client.pipeline(transaction=True)
            ops(pipe, key)
            pipe.hset(key, "updated_at", repr(self._now()))
            pipe.pexpire(key, self._ttl_ms)
            pipe.hgetall(key)
            raw = pipe.execute()[-1]
        except self._error as exc:
            raise StoreError(f"run store: write to {key!r} failed: {exc}") from exc
        return self._parse(run_id, raw)

    def get(self, run_id: str) -> RunState | None:
        try:
            raw = self._client.hgetall(self._key(run_id))
        except self._error as exc:
            raise StoreError(f"run store: HGETALL failed: {exc}") from exc
        return self._parse(run_id, raw) if raw else None

    def set_budget(self, run_id: str, budget_usd: float) -> RunState:
        return self._write(run_id, lambda p, k: p.hset(k, "budget_usd", repr(budget_usd)))

    def add_route(self, run_id: str, tier: Tier) -> None:
        self._write(run_id, lambda p, k: p.hincrby(k, f"routed:{tier}", 1))

    def add_usage(
        self, run_id: str, tier: Tier, cost_usd: float, message_id: str | None = None
    ) -> tuple[RunState, bool]:
        if message_id is not None:
            ids_key = f"{self._key(run_id)}:messages"
            try:
                pipe = self._client.pipeline(transaction=True)
                pipe.sadd(ids_key, message_id)
                pipe.pexpire(ids_key, self._ttl_ms)
                added = pipe.execute()[0]
            except self._error as exc:
                raise StoreError(f"run store: SADD to {ids_key!r} failed: {exc}") from exc
            if not added:
                state = self.get(run_id)
                return (state or RunState(run_id)), False

        def ops(pipe: Any, key: str) -> None:
            pipe.hincrbyfloat(key, "spent_usd", cost_usd)
            pipe.hincrby(key, f"calls:{tier}", 1)

        return self._write(run_id, ops), True
