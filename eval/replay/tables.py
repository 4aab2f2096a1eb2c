"""The replay report's words and tables, shared by its HTML and Markdown: (head, rows) of
strings, and the sentences that say what the numbers mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.replay.headroom import Schedule
from eval.replay.result import ReplayResult
from eval.replay.session import short_id
from eval.replay.strategies import LABELS, ROUTED, SessionReplay
from eval.replay.summary import (
    TOP,
    Difficulty,
    GroupSummary,
    TargetCheck,
)
from eval.summary import fmt
from router.core.economics import min_cacheable_tokens
from router.core.tiers import TIER_ORDER
from router.settings import Settings

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
    "foresight: policy's tiers $ (quality)",
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


def target_note(t: TargetCheck) -> str:
    """What the target table's columns mean, in the words of the policy that routed."""
    rule = (
        "only with tiers on each head's efficient frontier (the tiers the utility policy chose "
        "among, as the cache-aware router priced them)"
        if t.policy == "utility"
        else "only with tiers whose P(adequate) clears the threshold there"
    )
    return (
        "Loop turns: calls that answer a pending tool_use, pinned to their loop's tier (in "
        "brackets: with thinking blocks). Heads: the calls the router decides (h/s/o: the tier "
        "it chose). Foresight: the cheapest schedule that keeps loops pinned and the session at "
        f">= 95% predicted quality, knowing the future, with any tier at each head, or {rule}."
    )


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
                "–" if room is None else _schedule(room.best_in_policy),
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
            money(bound_usd(t, "best")),
            money(bound_usd(t, "best_in_policy")),
            "yes" if t.met else "no",
        ]
    )
    return rows


def bound_usd(t: TargetCheck, which: str) -> float:
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
