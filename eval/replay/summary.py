"""Numbers of a replay, per session and per group of sessions: dollars per strategy, switches
and the cache writes they caused, tier mix, the router's predicted quality against always-Opus,
the target check on long sessions, and tau-bench difficulty by outcome. Pure: SessionReplays in,
frozen dataclasses out (rendering is report.py's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.replay.headroom import Headroom
from eval.replay.strategies import LABELS, STRATEGIES, SessionReplay, StrategyRun
from router.core.tiers import TIER_ORDER

QUALITY_TARGET = 0.95  # the bar: >= 95% of always-Opus's predicted quality
TOP = f"always-{TIER_ORDER[-1].value}"
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class StrategyTotals:
    name: str
    label: str
    usd: float
    calls: int
    switches: int
    switch_usd: float  # cache-write dollars of the prefixes the switches threw away
    tier_calls: dict[str, int]  # calls served per tier (tiers.toml names)
    quality_vs_top: float | None  # sum P(adequate) of the serving tier / always-Opus's


@dataclass(frozen=True)
class GroupSummary:
    name: str
    title: str
    sessions: int
    calls: int
    usage_recorded: bool  # every session's tokens recorded (else some estimated from text)
    strategies: dict[str, StrategyTotals]
    per_turn_free_usd: float  # per-turn routing if every model read every model's cache

    def usd(self, name: str) -> float | None:
        s = self.strategies.get(name)
        return None if s is None else s.usd


@dataclass(frozen=True)
class NaiveRouting:
    """What the cache does to cache-blind per-turn routing, against always-Opus with caching."""

    top_usd: float
    free_usd: float  # per-turn routing priced as if every model shared one cache
    actual_usd: float
    switches: int
    switch_usd: float

    @property
    def promised(self) -> float:
        return self.top_usd - self.free_usd

    @property
    def lost(self) -> float:
        return self.actual_usd - self.free_usd

    @property
    def eaten(self) -> float | None:
        return self.lost / self.promised if self.promised > 0 else None


@dataclass(frozen=True)
class SessionTarget:
    session_id: str
    calls: int
    top_usd: float
    per_turn_usd: float
    tierwise_usd: float
    quality: float
    loop_share: float  # calls pinned in a tool loop
    thinking_share: float  # ... of which with thinking blocks
    heads: int  # calls the router really decides (not pinned)
    head_tiers: tuple[str, ...]  # tierwise's tier at each head
    headroom: Headroom | None
    # heads where a tier cheaper than tierwise's choice also cleared the threshold, split by
    # whether the router priced a cached prefix there (else: a cold start, decided on risk)
    cheaper_cached: int = 0
    cheaper_cold: int = 0

    @property
    def met(self) -> bool:
        return (
            self.tierwise_usd < self.top_usd
            and self.tierwise_usd < self.per_turn_usd
            and self.quality >= QUALITY_TARGET
        )


@dataclass(frozen=True)
class TargetCheck:
    """The issue's target on long real Claude Code sessions, all together and one by one."""

    group: GroupSummary
    sessions: tuple[SessionTarget, ...]
    head_probs: tuple[float, ...]  # mean P(adequate) per tier at loop heads
    loop_probs: tuple[float, ...]  # ... on pinned loop turns

    @property
    def quality(self) -> float:
        q = self.group.strategies["tierwise"].quality_vs_top
        return float("nan") if q is None else q

    @property
    def met(self) -> bool:
        g = self.group
        tierwise, top, per_turn = g.usd("tierwise"), g.usd(TOP), g.usd("per-turn")
        assert tierwise is not None and top is not None and per_turn is not None
        return tierwise < top and tierwise < per_turn and self.quality >= QUALITY_TARGET


@dataclass(frozen=True)
class OutcomeDifficulty:
    outcome: str  # "resolved" / "unresolved"
    sessions: int
    turns: int
    mean_probs: tuple[float, ...]  # per tier, over turns
    difficulty: float  # mean over turns of 1 - P(haiku adequate)
    per_turn_mix: dict[str, int]  # tiers per-turn routing chose


@dataclass(frozen=True)
class Difficulty:
    """tau-bench: the router's predicted difficulty of the turns of resolved vs unresolved
    sessions (difficulty = 1 - P(Haiku adequate), the router's estimate, not ground truth)."""

    groups: tuple[OutcomeDifficulty, ...]
    diff: float  # unresolved - resolved, mean session difficulty
    ci: tuple[float, float]  # 95% bootstrap interval of diff (sessions resampled)
    session_difficulty: dict[str, tuple[float, ...]]  # outcome -> per-session mean difficulty


def _quality(runs: Sequence[StrategyRun], tops: Sequence[StrategyRun]) -> float | None:
    top = sum(float(np.nansum(r.quality)) for r in tops)
    if any(np.isnan(r.quality).any() for r in runs) or top <= 0:
        return None
    return sum(float(r.quality.sum()) for r in runs) / top


def strategy_totals(replays: Sequence[SessionReplay], name: str) -> StrategyTotals | None:
    runs = [r.runs[name] for r in replays if name in r.runs]
    if not runs or len(runs) < len(replays):
        return None  # e.g. "recorded" on sessions no Claude model served
    mix = {t.value: 0 for t in TIER_ORDER}
    for run in runs:
        for tier in run.tiers:
            if tier is not None:
                mix[tier.value] += 1
    return StrategyTotals(
        name=name,
        label=LABELS[name],
        usd=sum(r.total_usd for r in runs),
        calls=sum(len(r.usd) for r in runs),
        switches=sum(r.switches for r in runs),
        switch_usd=sum(float(r.switch_usd.sum()) for r in runs),
        tier_calls=mix,
        quality_vs_top=_quality(runs, [r.runs[TOP] for r in replays]),
    )


def group_summary(name: str, title: str, replays: Sequence[SessionReplay]) -> GroupSummary:
    strategies = {}
    for strategy in STRATEGIES:
        totals = strategy_totals(replays, strategy)
        if totals is not None:
            strategies[strategy] = totals
    return GroupSummary(
        name=name,
        title=title,
        sessions=len(replays),
        calls=sum(r.session.n_calls for r in replays),
        usage_recorded=all(r.session.usage_recorded for r in replays),
        strategies=strategies,
        per_turn_free_usd=sum(r.per_turn_free_usd for r in replays),
    )


def groups(replays: Sequence[SessionReplay]) -> list[GroupSummary]:
    """All sessions, the long Claude Code ones, then one group per source present."""
    out = [group_summary("all", "all sessions", replays)]
    long = [r for r in replays if r.session.is_long]
    if long:
        out.append(group_summary("long", "long Claude Code sessions", long))
    titles = {
        "claude_code": "Claude Code (recorded usage)",
        "tau_bench": "tau-bench airline (estimated tokens)",
        "calllog": "tierwise call log",
    }
    for source, title in titles.items():
        chosen = [r for r in replays if r.session.source == source]
        if chosen and len(chosen) < len(replays):
            out.append(group_summary(source, title, chosen))
    return out


def naive_routing(group: GroupSummary) -> NaiveRouting:
    per_turn = group.strategies["per-turn"]
    return NaiveRouting(
        top_usd=group.strategies[TOP].usd,
        free_usd=group.per_turn_free_usd,
        actual_usd=per_turn.usd,
        switches=per_turn.switches,
        switch_usd=per_turn.switch_usd,
    )


def headline_group(summaries: Sequence[GroupSummary]) -> GroupSummary:
    """The group the up-front sentence speaks of: long sessions, else recorded Claude Code
    sessions, else everything."""
    by_name = {g.name: g for g in summaries}
    return by_name.get("long") or by_name.get("claude_code") or by_name["all"]


def naive_sentence(group: GroupSummary) -> str:
    n = naive_routing(group)
    where = f"On these {group.sessions} sessions ({group.title}, {group.calls} calls)"
    if not group.usage_recorded:
        where += ", tokens estimated from text,"
    head = (
        f"{where}, cache-blind per-turn routing costs ${n.actual_usd:,.2f} against "
        f"${n.top_usd:,.2f} for always-Opus with caching. "
    )
    if n.switches == 0:
        return head + "It never switches models, so the cache costs it nothing."
    if n.promised <= 0:
        return head + (
            f"Even if every model could read every model's cache it would cost "
            f"${n.free_usd:,.2f}: there is no saving to eat, and its {n.switches} switches "
            f"add ${n.lost:,.2f} of lost cache on top."
        )
    eaten = n.eaten or 0.0
    tail = (
        "so it ends up costing more than always-Opus."
        if eaten > 1
        else f"leaving ${n.top_usd - n.actual_usd:,.2f}."
    )
    return head + (
        f"Priced as if the cache followed every switch it would save ${n.promised:,.2f} "
        f"({n.promised / n.top_usd:.1%}); its {n.switches} switches re-write the cached prefix "
        f"instead (${n.switch_usd:,.2f} of cache writes), and the lost cache eats {eaten:.0%} of "
        f"that saving, {tail}"
    )


def _mean_probs(replays: Sequence[SessionReplay], pick: str) -> tuple[float, ...]:
    rows = [
        r.probs[(r.loop_turn if pick == "loop" else ~r.loop_turn)] for r in replays if len(r.probs)
    ]
    stacked = np.vstack(rows) if rows else np.zeros((0, len(TIER_ORDER)))
    if not len(stacked):
        return tuple(float("nan") for _ in TIER_ORDER)
    return tuple(float(v) for v in stacked.mean(axis=0))


def _cheaper_heads(r: SessionReplay, heads: np.ndarray) -> dict[str, int]:
    cached = cold = 0
    for k in heads:
        tier = r.runs["tierwise"].tiers[k]
        if tier is None or not (r.probs[k, : tier.rank] >= r.threshold).any():
            continue
        if r.router_prefix[k] > 0:
            cached += 1
        else:
            cold += 1
    return {"cheaper_cached": cached, "cheaper_cold": cold}


def target_check(replays: Sequence[SessionReplay]) -> TargetCheck | None:
    long = [r for r in replays if r.session.is_long]
    if not long:
        return None
    rows = []
    for r in long:
        heads = np.flatnonzero(~r.loop_turn)
        tierwise = r.runs["tierwise"]
        q = _quality([tierwise], [r.runs[TOP]])
        rows.append(
            SessionTarget(
                session_id=r.session.session_id,
                calls=r.session.n_calls,
                top_usd=r.runs[TOP].total_usd,
                per_turn_usd=r.runs["per-turn"].total_usd,
                tierwise_usd=tierwise.total_usd,
                quality=float("nan") if q is None else q,
                loop_share=float(r.loop_turn.mean()),
                thinking_share=float(r.thinking.mean()),
                heads=len(heads),
                head_tiers=tuple(
                    t.value if (t := tierwise.tiers[k]) is not None else "?" for k in heads
                ),
                headroom=r.headroom,
                **_cheaper_heads(r, heads),
            )
        )
    return TargetCheck(
        group=group_summary("long", "long Claude Code sessions", long),
        sessions=tuple(rows),
        head_probs=_mean_probs(long, "head"),
        loop_probs=_mean_probs(long, "loop"),
    )


def _bootstrap_diff(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(b) - mean(a), each group resampled with replacement."""
    if len(a) < 2 or len(b) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (BOOTSTRAP_SAMPLES, len(a)))
    ib = rng.integers(0, len(b), (BOOTSTRAP_SAMPLES, len(b)))
    diffs = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def difficulty(replays: Sequence[SessionReplay]) -> Difficulty | None:
    scored = [r for r in replays if r.session.reward is not None and r.session.n_calls]
    outcomes = {
        "resolved": [r for r in scored if (r.session.reward or 0) >= 1.0],
        "unresolved": [r for r in scored if (r.session.reward or 0) < 1.0],
    }
    if not all(outcomes.values()):
        return None
    rows, per_session = [], {}
    for outcome, chosen in outcomes.items():
        probs = np.vstack([r.probs for r in chosen])
        mix = {t.value: 0 for t in TIER_ORDER}
        for r in chosen:
            for tier in r.runs["per-turn"].tiers:
                if tier is not None:
                    mix[tier.value] += 1
        per_session[outcome] = tuple(float(1 - r.probs[:, 0].mean()) for r in chosen)
        rows.append(
            OutcomeDifficulty(
                outcome=outcome,
                sessions=len(chosen),
                turns=len(probs),
                mean_probs=tuple(float(v) for v in probs.mean(axis=0)),
                difficulty=float(1 - probs[:, 0].mean()),
                per_turn_mix=mix,
            )
        )
    resolved = np.asarray(per_session["resolved"])
    unresolved = np.asarray(per_session["unresolved"])
    return Difficulty(
        groups=tuple(rows),
        diff=float(unresolved.mean() - resolved.mean()),
        ci=_bootstrap_diff(resolved, unresolved),
        session_difficulty=per_session,
    )
