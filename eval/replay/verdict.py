"""The replay report's sentences: what the lost cache does to naive routing, whether the target
is met on long sessions, and why, all computed from the numbers. Shared by HTML, Markdown, JSON
and the CLI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.replay.result import ReplayResult
from eval.replay.session import short_id
from eval.replay.strategies import SessionReplay
from eval.replay.summary import (
    QUALITY_TARGET,
    TOP,
    SessionTarget,
    TargetCheck,
    headline_group,
    naive_sentence,
)
from eval.replay.tables import bound_usd
from router.agent.routing import THRESHOLD_RISK_USD
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


def _failed_turn_usd(t: TargetCheck, settings: Settings) -> float:
    """The failed-turn value the threshold policy's agent path priced as risk: the setting,
    else its default (the utility policy's own knob is in t.knob)."""
    value = settings.failed_turn_usd
    return THRESHOLD_RISK_USD if value is None else value


def is_utility(t: TargetCheck) -> bool:
    return t.policy == "utility"


def _names() -> str:
    return "/".join(x.value for x in TIER_ORDER)


def _probs(p: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in p)


def _cheaper_heads_line(t: TargetCheck, settings: Settings) -> str:
    cached = sum(s.cheaper_cached for s in t.sessions)
    cold = sum(s.cheaper_cold for s in t.sessions)
    heads = sum(s.heads for s in t.sessions)
    stepped = sum(1 for s in t.sessions for h in s.head_tiers if h != TIER_ORDER[-1].value)
    if is_utility(t):
        return (
            f"At {cached + cold} of the {heads} heads a tier cheaper than tierwise's choice was "
            "also on the head's efficient frontier; tierwise paid for the pricier one because "
            "its extra expected quality, times the value of an inadequate answer there, was "
            f"worth more than its extra dollars: at {cached} with a cached prefix priced "
            f"(staying reads it at 0.1x, a switch writes it), at {cold} at session starts with "
            f"nothing cached. It stepped down from Opus at {stepped} head(s)."
        )
    return (
        f"At {cached + cold} of the {heads} heads a cheaper tier than tierwise's choice also "
        f"cleared the threshold; tierwise kept the pricier tier on expected cost: at {cached} "
        "because staying reads the cached prefix at 0.1x, at the other "
        f"{cold} (session starts with nothing cached) because its lower risk term "
        f"((1 - P) x ${_failed_turn_usd(t, settings):.2f}) outweighed the cheaper tokens of the "
        f"router's small prompt estimate. It stepped down at {stepped} head(s)."
    )


def _rates_line(t: TargetCheck, replays: Sequence[SessionReplay]) -> str:
    h, lp = t.head_probs, t.loop_probs
    head = (
        f"The router rates these agent turns hard: mean P(adequate) {_names()} {_probs(h)} at "
        f"loop heads and {_probs(lp)} on loop turns"
    )
    keeps = (
        f"A Sonnet loop keeps {lp[1] / lp[2]:.0%} of Opus's predicted quality, a Haiku loop "
        f"{lp[0] / lp[2]:.0%}"
    )
    if not is_utility(t):
        return (
            f"{head}, against a threshold of {replays[0].threshold:.2f}. {keeps}; heads look "
            "easier than the loops they start, so a cheaper tier chosen at a head can hold a "
            "long loop below the threshold."
        )
    values = np.asarray([v for s in t.sessions for v in s.head_values])
    return (
        f"{head}. The utility policy chooses, at each head, the tier with the lowest expected "
        "dollars + (1 - P) x the value of an inadequate answer, which is failed_turn_usd "
        f"(${t.knob:.4f}) x the turn's size (its dearest tier's dollars over the bundle's "
        f"typical training turn, at least 1): ${np.median(values):.2f} at the median head "
        f"(${values.min():.3f} to ${values.max():.2f}), a cached agent prefix makes a turn "
        f"tens to hundreds of typical ones. {keeps}, so on a loop turn Opus's edge is worth "
        "far more than its dollars; the choice is made at the head, and a head can look "
        "nothing like its loop (a one-line task, or a compaction summary the router rates "
        "Sonnet-friendly). So a head weighs the loop it commits: the mean P(adequate) of "
        "the session's loop turns so far and the head (router.core.loop_quality); at a "
        "session's first head no loop turn has been seen, and the head's own P is all "
        "there is."
    )


def _head_line(s: SessionTarget, i: int) -> str:
    """One head where tierwise stepped below Opus: what the policy weighed and what followed."""
    loop = s.loop_probs[i]
    after = (
        f"its {s.head_loops[i] - 1} loop turns rate {_names()} {_probs(loop)}"
        if loop
        else "no loop followed"
    )
    return (
        f"call {s.head_calls[i]}: {s.head_tiers[i]} for {s.head_loops[i]} calls, weighing "
        f"{_probs(s.head_weighed[i])} with an inadequate answer valued at "
        f"${s.head_values[i]:.3f}; {after}"
    )


def _stepped_lines(t: TargetCheck) -> list[str]:
    lines = []
    top = TIER_ORDER[-1].value
    for s in t.sessions:
        steps = [i for i, h in enumerate(s.head_tiers) if h != top]
        if s.quality >= QUALITY_TARGET or not steps or not s.head_calls:
            continue
        heads = "; ".join(_head_line(s, i) for i in steps)
        lines.append(
            f"{short_id(s.session_id)} keeps {s.quality:.1%} of always-Opus's predicted quality "
            f"at {s.tierwise_usd / s.top_usd - 1:+.1%} cost. Below Opus at {heads}."
        )
    return lines


def _foresight_line(t: TargetCheck) -> str | None:
    rooms = [s.headroom for s in t.sessions if s.headroom is not None]
    if len(rooms) != len(t.sessions):
        return None
    top = sum(s.top_usd for s in t.sessions)
    best, within = bound_usd(t, "best"), bound_usd(t, "best_in_policy")
    cheaper = [
        r.cheapest_in_policy
        for r, s in zip(rooms, t.sessions, strict=True)
        if r.cheapest_in_policy.usd < s.top_usd - 0.005
    ]
    rule = (
        "only the tiers on each head's efficient frontier (the tiers the utility policy chose "
        "among there)"
        if is_utility(t)
        else "only the tiers the threshold allows at each head (the policy's own rule)"
    )
    tail = (
        f": the cheaper schedules it allows keep {min(c.quality_vs_opus for c in cheaper):.0%}-"
        f"{max(c.quality_vs_opus for c in cheaper):.0%} of always-Opus's predicted quality."
        if cheaper
        else "."
    )
    return (
        f"Foresight bound: knowing every loop in advance, the cheapest schedule that keeps "
        f"tool loops pinned and each session at >= {QUALITY_TARGET:.0%} of always-Opus's "
        f"predicted quality costs ${best:,.2f} ({best / top - 1:+.1%} vs always-Opus) with any "
        f"tier at any head. With {rule} it costs ${within:,.2f} ({within / top - 1:+.1%})" + tail
    )


def _bound_is_top_line(t: TargetCheck) -> str | None:
    within_is_top = all(
        s.headroom is not None
        and s.headroom.best_in_policy is not None
        and s.headroom.best_in_policy.usd >= s.top_usd - 0.005
        for s in t.sessions
    )
    if not within_is_top:
        return None
    rule = "chooses on its heads' efficient frontiers" if is_utility(t) else "follows the threshold"
    return (
        f"So session by session no policy that {rule} and keeps thinking loops pinned can beat "
        "always-Opus at the quality bar on these sessions, even knowing the future: a cheaper "
        "tier chosen at a head commits a loop the router rates far below Opus, and leaving a "
        "cached Opus prefix costs more than it saves. Cheaper tiers need a router that rates "
        "them adequate on agent turns (a bundle trained on agent traffic)."
    )


def why_lines(t: TargetCheck, settings: Settings, replays: Sequence[SessionReplay]) -> list[str]:
    """Why the target comes out as it does, from the numbers (see docs/agent-routing.md)."""
    long = [r for r in replays if r.session.is_long]
    calls = sum(s.calls for s in t.sessions)
    loop = sum(s.loop_share * s.calls for s in t.sessions) / calls
    think = sum(s.thinking_share * s.calls for s in t.sessions) / calls
    heads = sum(s.heads for s in t.sessions)
    lines = [
        f"Tool loops decide the bill: {loop:.0%} of the {calls} calls answer a pending tool_use "
        f"({think:.0%} with thinking blocks, which must go back to the model that wrote them), "
        f"so the router really chooses at only {heads} loop heads; each head's tier serves its "
        "whole loop.",
        _rates_line(t, long),
        _cheaper_heads_line(t, settings),
        _switch_loss_line(settings, long),
    ]
    lines += [x for x in (_foresight_line(t), _bound_is_top_line(t)) if x is not None]
    return lines + _stepped_lines(t)
