"""The replay report's sentences: what the lost cache does to naive routing, whether the target
is met on long sessions, and why, all computed from the numbers. Shared by HTML, Markdown, JSON
and the CLI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.replay.replay import ReplayResult
from eval.replay.session import short_id
from eval.replay.strategies import SessionReplay
from eval.replay.summary import QUALITY_TARGET, TOP, TargetCheck, headline_group, naive_sentence
from eval.replay.tables import bound_usd
from router.core.tiers import TIER_ORDER
from router.settings import Settings


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
        best, within = bound_usd(t, "best"), bound_usd(t, "best_in_threshold")
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
