"""Replay figures as PNG bytes, drawn like eval.plots (Agg canvas, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.plots import TIER_COLORS, new_figure, png
from eval.replay.session import short_id
from eval.replay.strategies import LABELS, SessionReplay
from eval.replay.summary import Difficulty, GroupSummary

STRATEGY_STYLE: dict[str, dict[str, object]] = {
    "recorded": {"color": "#222222", "lw": 1.6, "ls": ":"},
    "always-haiku": {"color": TIER_COLORS["haiku"], "lw": 1.4, "ls": "--"},
    "always-sonnet": {"color": TIER_COLORS["sonnet"], "lw": 1.4, "ls": "--"},
    "always-opus": {"color": TIER_COLORS["opus"], "lw": 1.8, "ls": "--"},
    "per-turn": {"color": "#f77f00", "lw": 1.8},
    "tierwise": {"color": "#d62828", "lw": 2.4, "zorder": 5},
}


def cumulative_dollars(replays: Sequence[SessionReplay], columns: int = 2) -> bytes:
    """One panel per session: cumulative dollars over its calls, one line per strategy; dots
    mark the calls where per-turn routing and tierwise switch models."""
    rows = max(1, -(-len(replays) // columns))
    fig = new_figure(6.2 * min(columns, len(replays)), 3.6 * rows)
    axes = fig.subplots(rows, min(columns, len(replays)), squeeze=False).ravel()
    for ax, replay in zip(axes, replays, strict=False):
        x = np.arange(1, replay.session.n_calls + 1)
        for name, run in replay.runs.items():
            cum = np.cumsum(run.usd)
            ax.plot(x, cum, label=LABELS[name], **STRATEGY_STYLE.get(name, {}))
            if name in ("per-turn", "tierwise"):
                at = np.flatnonzero(run.trace.switched)
                ax.scatter(x[at], cum[at], s=18, color=STRATEGY_STYLE[name]["color"], zorder=6)
        title = f"{short_id(replay.session.session_id)} ({replay.session.n_calls} calls)"
        ax.set_title(title, fontsize=10)
        ax.set(xlabel="API call", ylabel="cumulative $")
        ax.grid(alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[len(replays) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * (rows == 1)))  # fmt: skip
    fig.subplots_adjust(bottom=0.16 if rows == 1 else 0.08, hspace=0.45)
    return png(fig)


def totals(group: GroupSummary) -> bytes:
    """Left: dollars per strategy; right: the tier mix each strategy served."""
    names = list(group.strategies)
    fig = new_figure(12.0, 3.8)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    usd = [group.strategies[n].usd for n in names]
    colors = [str(STRATEGY_STYLE.get(n, {}).get("color", "#888")) for n in names]
    y = np.arange(len(names))
    left.barh(y, usd, color=colors)
    for yi, v in zip(y, usd, strict=True):
        left.text(v, yi, f" ${v:,.2f}", va="center", fontsize=8.5)
    left.set_yticks(y, [LABELS[n] for n in names], fontsize=9)
    left.invert_yaxis()
    left.set(xlabel="dollars", title=f"{group.title}: dollars per strategy")
    left.set_xlim(0, max(usd) * 1.25 if usd else 1)
    start = np.zeros(len(names))
    for tier in TIER_COLORS:
        share = np.asarray(
            [
                group.strategies[n].tier_calls.get(tier, 0) / max(1, group.strategies[n].calls)
                for n in names
            ]
        )
        right.barh(y, share, left=start, color=TIER_COLORS[tier], label=tier)
        start += share
    right.set_yticks(y, [])
    right.invert_yaxis()
    right.set(xlabel="share of calls", title="tier mix (same rows)", xlim=(0, 1))
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8.5,
                 frameon=False)  # fmt: skip
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
    return png(fig)


def difficulty_by_outcome(d: Difficulty) -> bytes:
    """Per-session mean predicted difficulty (1 - P(Haiku adequate)), resolved vs unresolved."""
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    data = [np.asarray(d.session_difficulty[g.outcome]) for g in d.groups]
    bins = np.linspace(min(map(np.min, data)), max(map(np.max, data)), 16).tolist()
    for values, g, color in zip(data, d.groups, ("#2a9d8f", "#d62828"), strict=False):
        ax.hist(values, bins=bins, histtype="step", lw=2, color=color,
                label=f"{g.outcome} (n={g.sessions}, mean {values.mean():.3f})")  # fmt: skip
    ax.set(xlabel="session mean of 1 - P(Haiku adequate), router's estimate", ylabel="sessions")
    ax.set_title("tau-bench: predicted difficulty by outcome", fontsize=10)
    ax.legend(fontsize=8.5, frameon=False)
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    return png(fig)
