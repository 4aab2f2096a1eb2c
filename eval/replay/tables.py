"""The replay report's words and tables, shared by its HTML and Markdown: (head, rows) of
strings, and the sentences that say what the numbers mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.replay.headroom import Schedule
from eval.replay.replay import ReplayResult
from eval.replay.session import short_id
from eval.replay.strategies import LABELS, ROUTED, SessionReplay
from eval.replay.summary import (
    QUALITY_TARGET,
    TOP,
    Difficulty,
    GroupSummary,
    TargetCheck,
    headline_group,
    naive_sentence,
)
from eval.summary import fmt
from router.economics import min_cacheable_tokens
from router.settings import Settings
from router.tiers import TIER_ORDER

QUALITY_NOTE = (
    "Predicted quality is the router's own estimate (mean P(adequate) of the serving tier, "
    "as a share of always-Opus's), not ground truth: nobody graded these answers."
)
GROUP_HEAD = [
    "strategy",
    "$",
    "vs always-Opus",
    "switches",
    "switch cache writes $",
    *[f"{t.value} calls" for t in TIER_ORDER],
    "predicted quality vs always-Opus",
]
TARGET_HEAD = [
    "session",
    "calls",
    "always-Opus $",
    "per-turn $",
    "tierwise $",
    "tierwise vs Opus",
    "predicted quality",
    "loop turns (thinking)",
    "tiers at heads",
    "foresight: any tier $ (quality)",
    "foresight: threshold tiers $ (quality)",
    "met",
]
SESSION_HEAD = [
    "session",
    "kind",
    "calls",
    "tokens",
    "TTL",
    *[LABELS[n] for n in ("recorded", "always-haiku", "always-sonnet", "always-opus")],
    "per-turn $ (switches, writes $)",
    "tierwise $ (switches, writes $)",
    "quality per-turn / tierwise",
    "tierwise tiers h/s/o",
]
DIFFICULTY_HEAD = [
    "outcome",
    "sessions",
    "turns",
    *[f"mean P({t.value})" for t in TIER_ORDER],
    "difficulty 1-P(haiku)",
    "per-turn tiers h/s/o",
]


def money(x: float | None) -> str:
    return "–" if x is None or np.isnan(x) else f"${x:,.2f}"


def pct(x: float | None, spec: str = ".1%") -> str:
    return fmt(x, spec)


def group_rows(group: GroupSummary) -> list[list[str]]:
    top = group.usd(TOP)
    rows = []
    for s in group.strategies.values():
        routed = s.name in ROUTED or s.name == "recorded"
        rows.append(
            [
                s.label,
                money(s.usd),
                pct(s.usd / top - 1, "+.1%") if top else "–",
                str(s.switches) if routed else "–",
                money(s.switch_usd) if routed else "–",
                *[f"{s.tier_calls[t.value] / max(1, s.calls):.0%}" for t in TIER_ORDER],
                pct(s.quality_vs_top),
            ]
        )
    return rows


def _schedule(s: Schedule | None) -> str:
    return "none" if s is None else f"{money(s.usd)} ({s.quality_vs_opus:.1%})"


def target_rows(t: TargetCheck) -> list[list[str]]:
    rows = []
    for s in t.sessions:
        room = s.headroom
        rows.append(
            [
                short_id(s.session_id),
                str(s.calls),
                money(s.top_usd),
                money(s.per_turn_usd),
                money(s.tierwise_usd),
                pct(s.tierwise_usd / s.top_usd - 1, "+.1%"),
                pct(s.quality),
                f"{s.loop_share:.0%} ({s.thinking_share:.0%})",
                f"{s.heads}: {'/'.join(h[0] for h in s.head_tiers)}",
                "–" if room is None else _schedule(room.best),
                "–" if room is None else _schedule(room.best_in_threshold),
                "yes" if s.met else "no",
            ]
        )
    g = t.group
    top, tierwise, per_turn = g.usd(TOP) or 0, g.usd("tierwise") or 0, g.usd("per-turn") or 0
    rows.append(
        [
            "all together",
            str(g.calls),
            money(top),
            money(per_turn),
            money(tierwise),
            pct(tierwise / top - 1, "+.1%") if top else "–",
            pct(t.quality),
            "",
            "",
            money(_bound(t, "best")),
            money(_bound(t, "best_in_threshold")),
            "yes" if t.met else "no",
        ]
    )
    return rows


def _bound(t: TargetCheck, which: str) -> float:
    """A foresight bound summed over the sessions (always-Opus where none was found)."""
    total = 0.0
    for s in t.sessions:
        found = getattr(s.headroom, which) if s.headroom else None
        total += found.usd if found else s.top_usd
    return total


def _mix(r: SessionReplay, name: str) -> str:
    tiers = [t for t in r.runs[name].tiers if t is not None]
    return "/".join(str(sum(1 for t in tiers if t == tier)) for tier in TIER_ORDER)


def _routed(r: SessionReplay, name: str) -> str:
    run = r.runs[name]
    return f"{money(run.total_usd)} ({run.switches}, {money(float(run.switch_usd.sum()))})"


def session_rows(replays: Sequence[SessionReplay]) -> list[list[str]]:
    rows = []
    for r in replays:
        s = r.session
        q = [np.nanmean(r.runs[n].quality) / np.nanmean(r.runs[TOP].quality) for n in ROUTED]
        rows.append(
            [
                short_id(s.session_id),
                s.kind,
                str(s.n_calls),
                "recorded" if s.usage_recorded else "estimated",
                "1h" if s.ttl_s > 300 else "5m",
                *[
                    money(r.runs[n].total_usd) if n in r.runs else "–"
                    for n in ("recorded", "always-haiku", "always-sonnet", "always-opus")
                ],
                _routed(r, "per-turn"),
                _routed(r, "tierwise"),
                f"{q[0]:.1%} / {q[1]:.1%}",
                _mix(r, "tierwise"),
            ]
        )
    return rows


def difficulty_rows(d: Difficulty) -> list[list[str]]:
    return [
        [
            g.outcome,
            str(g.sessions),
            str(g.turns),
            *[f"{p:.3f}" for p in g.mean_probs],
            f"{g.difficulty:.3f}",
            "/".join(str(g.per_turn_mix[t.value]) for t in TIER_ORDER),
        ]
        for g in d.groups
    ]


def difficulty_sentence(d: Difficulty) -> str:
    lo, hi = d.ci
    by = {g.outcome: g for g in d.groups}
    spans = "includes" if lo <= 0 <= hi else "excludes"
    return (
        f"The router predicts the turns of unresolved sessions "
        f"{'harder' if d.diff > 0 else 'easier'} by {abs(d.diff):.3f} in mean session difficulty "
        f"({by['unresolved'].difficulty:.3f} vs {by['resolved'].difficulty:.3f} over turns; "
        f"95% bootstrap interval of the session difference {lo:+.3f} to {hi:+.3f}, which "
        f"{spans} 0). Difficulty is 1 - P(Haiku adequate), the router's estimate: a turn the "
        "cheapest tier is predicted to fail."
    )


def verdict(result: ReplayResult) -> list[str]:
    """The up-front sentences: what the lost cache does to naive routing; the target."""
    lines = [naive_sentence(headline_group(result.groups))]
    if result.target is not None:
        lines.append(target_sentence(result.target))
    return lines


def target_sentence(t: TargetCheck) -> str:
    g = t.group
    top, tierwise, per_turn = g.usd(TOP) or 0, g.usd("tierwise") or 0, g.usd("per-turn") or 0
    met = sum(1 for s in t.sessions if s.met)
    ties = sum(1 for s in t.sessions if abs(s.tierwise_usd - s.top_usd) < 0.005)
    state = "met" if t.met else "not met"
    return (
        f"Target ({g.sessions} long Claude Code sessions together: tierwise below always-Opus "
        f"and per-turn routing at >= {QUALITY_TARGET:.0%} of always-Opus's predicted quality): "
        f"{state}. tierwise ${tierwise:,.2f} vs always-Opus ${top:,.2f} ({tierwise / top - 1:+.1%}) "
        f"and per-turn ${per_turn:,.2f} ({tierwise / per_turn - 1:+.1%}), at {t.quality:.1%} "
        f"predicted quality. Session by session it is met on {met} of {len(t.sessions)}; "
        f"tierwise ties always-Opus on {ties}."
    )


def _switch_loss_line(settings: Settings, long: Sequence[SessionReplay]) -> str:
    """The arithmetic of leaving a long Opus prefix for Sonnet, at the median call."""
    top = [r.runs[TOP] for r in long]
    prefix = float(np.median(np.concatenate([run.trace.read for run in top])))
    output = float(np.median(np.concatenate([run.trace.output for run in top])))
    opus, sonnet = settings.tier_spec(TIER_ORDER[-1]), settings.tier_spec(TIER_ORDER[1])
    p = settings.prices
    hour = sum(1 for r in long if r.session.ttl_s > 300)
    multiplier = p.cache_write_1h_multiplier if hour * 2 > len(long) else p.cache_write_multiplier
    stay = prefix * opus.input_per_mtok * p.cache_read_multiplier / 1e6
    move = prefix * sonnet.input_per_mtok * multiplier / 1e6
    per_call = (
        prefix * (opus.input_per_mtok - sonnet.input_per_mtok) * p.cache_read_multiplier
        + output * (opus.output_per_mtok - sonnet.output_per_mtok)
    ) / 1e6
    calls = (move - stay) / per_call if per_call > 0 else float("inf")
    return (
        f"A long cached prefix makes a switch a loss: the median always-Opus call reads "
        f"{prefix / 1000:.0f}k cached tokens (${stay:.3f} at {p.cache_read_multiplier}x); moving "
        f"that prefix to Sonnet writes it at {multiplier}x (${move:.3f}; {hour} of these "
        f"{len(long)} sessions use the 1-hour TTL, 2x), which Sonnet's cheaper reads and output "
        f"(${per_call:.4f} a call at the median {output:.0f} output tokens) win back only after "
        f"{calls:.0f} calls, and a step back up to Opus pays the write again."
    )


def _cheaper_heads_line(t: TargetCheck, settings: Settings) -> str:
    cached = sum(s.cheaper_cached for s in t.sessions)
    cold = sum(s.cheaper_cold for s in t.sessions)
    heads = sum(s.heads for s in t.sessions)
    stepped = sum(1 for s in t.sessions for h in s.head_tiers if h != TIER_ORDER[-1].value)
    return (
        f"At {cached + cold} of the {heads} heads a cheaper tier than tierwise's choice also "
        f"cleared the threshold; tierwise kept the pricier tier on expected cost: at {cached} "
        "because staying reads the cached prefix at 0.1x, at the other "
        f"{cold} (session starts with nothing cached) because its lower risk term "
        f"((1 - P) x ${settings.failed_turn_usd:.2f}) outweighed the cheaper tokens of the "
        f"router's small prompt estimate. It stepped down at {stepped} head(s)."
    )


def why_lines(t: TargetCheck, settings: Settings, replays: Sequence[SessionReplay]) -> list[str]:
    """Why the target comes out as it does, from the numbers (see docs/agent-routing.md)."""
    long = [r for r in replays if r.session.is_long]
    calls = sum(s.calls for s in t.sessions)
    loop = sum(s.loop_share * s.calls for s in t.sessions) / calls
    think = sum(s.thinking_share * s.calls for s in t.sessions) / calls
    heads = sum(s.heads for s in t.sessions)
    h, lp = t.head_probs, t.loop_probs
    names = "/".join(x.value for x in TIER_ORDER)
    lines = [
        f"Tool loops decide the bill: {loop:.0%} of the {calls} calls answer a pending tool_use "
        f"({think:.0%} with thinking blocks, which must go back to the model that wrote them), "
        f"so the router really chooses at only {heads} loop heads; each head's tier serves its "
        "whole loop.",
        f"The router rates these agent turns hard: mean P(adequate) {names} "
        f"{h[0]:.2f}/{h[1]:.2f}/{h[2]:.2f} at loop heads and {lp[0]:.2f}/{lp[1]:.2f}/{lp[2]:.2f} on "
        f"loop turns, against a threshold of {long[0].threshold:.2f}. A Sonnet "
        f"loop keeps {lp[1] / lp[2]:.0%} of Opus's predicted quality, a Haiku loop {lp[0] / lp[2]:.0%}; "
        "heads look easier than the loops they start, so a cheaper tier chosen at a head can "
        "hold a long loop below the threshold.",
        _cheaper_heads_line(t, settings),
        _switch_loss_line(settings, long),
    ]
    rooms = [s.headroom for s in t.sessions if s.headroom is not None]
    if len(rooms) == len(t.sessions):
        top = sum(s.top_usd for s in t.sessions)
        best, within = _bound(t, "best"), _bound(t, "best_in_threshold")
        cheaper = [
            r.cheapest_in_threshold
            for r, s in zip(rooms, t.sessions, strict=True)
            if r.cheapest_in_threshold.usd < s.top_usd - 0.005
        ]
        lines.append(
            f"Foresight bound: knowing every loop in advance, the cheapest schedule that keeps "
            f"tool loops pinned and each session at >= {QUALITY_TARGET:.0%} of always-Opus's "
            f"predicted quality costs ${best:,.2f} ({best / top - 1:+.1%} vs always-Opus), "
            "taking tiers the router rates below the threshold where the cache is cold or "
            "broken anyway. With only the tiers the threshold allows at each head (the "
            f"policy's own rule) it costs ${within:,.2f} ({within / top - 1:+.1%})"
            + (
                f": the cheaper schedules that rule allows keep "
                f"{min(c.quality_vs_opus for c in cheaper):.0%}-"
                f"{max(c.quality_vs_opus for c in cheaper):.0%} of always-Opus's predicted "
                "quality."
                if cheaper
                else "."
            )
        )
    stepped = [s for s in t.sessions if s.quality < QUALITY_TARGET]
    for s in stepped:
        lines.append(
            f"{short_id(s.session_id)}: the first head chose {s.head_tiers[0]}, and its thinking loop "
            f"stayed there; the session keeps {s.quality:.1%} of always-Opus's predicted quality "
            f"at {s.tierwise_usd / s.top_usd - 1:+.1%} cost."
        )
    within_is_top = all(
        s.headroom is not None
        and s.headroom.best_in_threshold is not None
        and s.headroom.best_in_threshold.usd >= s.top_usd - 0.005
        for s in t.sessions
    )
    if within_is_top:
        lines.append(
            "So session by session no policy that follows the threshold and keeps thinking "
            "loops pinned can beat always-Opus at the quality bar on these sessions, even "
            "knowing the future: a cheaper tier that clears the threshold at a head commits a "
            "loop the router rates far below Opus, and leaving a cached Opus prefix costs "
            "more than it saves. Beating it needs a better estimate of the loop a head commits "
            "(the gain-aware policy of issue 8) or a router that rates cheaper tiers adequate "
            "on agent turns (a bundle trained on agent traffic)."
        )
    return lines


def pricing_rows(settings: Settings, result: ReplayResult) -> list[list[str]]:
    """Each model the replay priced: its tier's prices and its minimum cacheable prompt."""
    from eval.replay.costs import Pricer

    pricer = Pricer(settings)
    models = {settings.tier_spec(t).model for t in TIER_ORDER}
    models |= {c.model for r in result.replays for c in r.session.calls}
    rows = []
    for model in sorted(models):
        tier = pricer.tier(model)
        if tier is None:
            rows.append([model, "–", "no Claude price: as recorded not priced", "–", "–"])
            continue
        spec = settings.tier_spec(tier)
        how = (
            "tier model"
            if model == spec.model
            else "by tier name"
            if spec.model not in model
            else "snapshot"
        )
        rows.append(
            [
                model,
                f"{tier.value} ({how})",
                f"${spec.input_per_mtok:g} / ${spec.output_per_mtok:g}",
                str(min_cacheable_tokens(model, settings.prices)),
                f"read {settings.prices.cache_read_multiplier}x, write "
                f"{settings.prices.cache_write_multiplier}x (5m) / "
                f"{settings.prices.cache_write_1h_multiplier}x (1h)",
            ]
        )
    return rows


PRICING_HEAD = ["model", "priced as", "$/MTok in / out", "min cacheable tokens", "cache"]

ASSUMPTIONS = [
    "Tokens: recorded usage where the source has it (Claude Code, gateway calls in the call "
    "log); otherwise characters / 4 of everything sent (system prompt and tool schemas "
    "included), with the cache breakpoint at the end of the prompt.",
    "Claude Code output_tokens are the largest value among a response's lines; some are still "
    "the streaming-start count, so output dollars are a lower bound (the same for every "
    "strategy).",
    "Claude Code transcripts hold neither the system prompt nor the tool schemas: their tokens "
    "are in the recorded usage (and so in every strategy's price), but the routed requests "
    "carry only the messages.",
    "Which prefix two consecutive calls share comes from the recording: the recorded cache "
    "read where the recorded model kept its cache across the two calls, else the whole "
    "previous prompt, else (after a compaction) the session's first cached prefix.",
    "A prefix the recording shows warm without an earlier call of the session (a first call's "
    "system prompt, another session's cache) is taken as warm on whatever tier a strategy "
    "uses for that call.",
    "The cache expires when the gap between calls (transcript timestamps) exceeds the "
    "session's TTL: 1 hour if its recorded writes are 1-hour ones, else 5 minutes; sources "
    "without timestamps never expire.",
    "A switch leaves the old model's cache behind; the 'switch cache writes' are the prefix "
    "the previous model still held, written again on the new one.",
    "Per-turn routing is the router with no agent context; tierwise gets session_id, "
    "previous_model and previous_usage (the simulated usage of its own previous call), as a "
    "live client would send them.",
]
