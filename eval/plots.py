"""Report figures as PNG bytes. Figures are drawn on matplotlib's Agg canvas directly, without
pyplot: no display, no global figure state, nothing left open between calls."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.curves import Curve
from eval.quality import CategoryQuality, EvalMetrics
from eval.routing_metrics import RoutingMetrics
from eval.tables import calibrations, label
from router.core.tiers import Tier

TIER_COLORS: dict[str, str] = {"haiku": "#2a9d8f", "sonnet": "#457b9d", "opus": "#6a4c93"}
# Line styles of the curves eval.curves produces; labels come from eval.summary.
CURVE_STYLE: dict[str, dict[str, Any]] = {
    "router": {"color": "#d62828", "lw": 2.4, "zorder": 5},
    "knn": {"color": "#f77f00", "lw": 1.4},
    "mlp": {"color": "#2a9d8f", "lw": 1.4},
    "mf": {"color": "#457b9d", "lw": 1.4},
    "irt": {"color": "#6a4c93", "lw": 1.6},
    "task_prior": {"color": "#8a5a44", "lw": 1.4},
    "length": {"color": "#8d99ae", "lw": 1.2, "ls": "-."},
    "random": {"color": "#adb5bd", "lw": 1.2, "ls": "--"},
    "coin": {"color": "#ced4da", "lw": 1.0, "ls": ":"},
    "oracle": {"color": "#e9c46a", "lw": 1.4, "ls": ":"},
}
# Drawing order: references underneath, the router on top.
CURVE_ORDER = ["oracle", "coin", "random", "length", "task_prior", "knn", "mlp", "mf", "irt"]
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _draw_curve(ax: Axes, curve: Curve, x: str, y: str, scale_x: float = 1.0) -> None:
    style = CURVE_STYLE.get(curve.name, {})
    xs = [getattr(p, x) * scale_x for p in curve.points]
    ys = [getattr(p, y) for p in curve.points]
    ax.plot(xs, ys, label=label(curve.name), **style)


def cost_quality(r: RoutingMetrics) -> bytes:
    """Left: mean quality vs cost (% of always-top); right: PGR vs cost share (RouteLLM view)."""
    fig = new_figure(12.5, 4.8)
    left, right = fig.subplots(1, 2)
    top_cost = r.reference.top_cost
    pct = 100.0 / top_cost if top_cost > 0 else 1.0
    order = CURVE_ORDER + ["router"]
    curves = sorted(r.curves, key=lambda c: order.index(c.name) if c.name in order else -1)
    for c in curves:
        _draw_curve(left, c, "cost", "quality", pct)
        _draw_curve(right, c, "cost_share", "pgr", 100.0)
    for p in r.always:
        tier = p.name.removeprefix("always_")
        for ax, x, y in ((left, p.cost * pct, p.quality), (right, p.cost_share * 100, p.pgr)):
            ax.scatter(x, y, s=70, marker="s", color=TIER_COLORS.get(tier, "k"), zorder=6)
            ax.annotate(
                f"always {tier}",
                (x, y),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8.5,
                color=TIER_COLORS.get(tier, "k"),
            )
    o = r.oracle
    for ax, x, y in ((left, o.cost * pct, o.quality), (right, o.cost_share * 100, o.pgr)):
        ax.scatter(
            x,
            y,
            s=180,
            marker="*",
            color="#e9c46a",
            edgecolor="k",
            zorder=7,
            label="oracle point (cheapest adequate)",
        )
    p = r.router
    for ax, x, y in ((left, p.cost * pct, p.quality), (right, p.cost_share * 100, p.pgr)):
        ax.scatter(
            x,
            y,
            s=90,
            color="#d62828",
            edgecolor="white",
            lw=1.5,
            zorder=8,
            label=f"router @ knob {r.router_threshold:.3g}",
        )
    left.set(
        xlabel="cost, % of always-top",
        ylabel="mean quality of the chosen tier",
        title="Cost vs quality",
    )
    right.set(
        xlabel="cost share of the cheap→top gap, %",
        ylabel="performance gap recovered",
        title="Performance gap recovered (RouteLLM view)",
    )
    right.axhline(1.0, color="#ccc", lw=0.8, zorder=0)
    for ax in (left, right):
        ax.grid(alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = right.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(len(labels), 5),
        frameon=False,
        bbox_to_anchor=(0.5, -0.16),
        fontsize=9,
    )
    return png(fig)


def quality_by_category(cats: tuple[CategoryQuality, ...], tiers: tuple[Tier, ...]) -> bytes:
    """Grouped horizontal bars: mean score per tier in each category (sorted by top-tier score)."""
    cats = tuple(sorted(cats, key=lambda c: np.nan_to_num(c.tiers[-1].mean_score)))
    height = max(2.5, 0.42 * len(cats) + 1.2)
    fig = new_figure(8.5, height)
    ax = fig.subplots()
    y = np.arange(len(cats))
    bar = 0.8 / len(tiers)
    for j, tier in enumerate(tiers):
        vals = [np.nan_to_num(c.tiers[j].mean_score) for c in cats]
        ax.barh(
            y - (j - (len(tiers) - 1) / 2) * bar,
            vals,
            height=bar,
            color=TIER_COLORS.get(tier.value),
            label=tier.value,
        )
    ax.set_yticks(y, [f"{c.category} (n={c.n})" for c in cats], fontsize=8.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean judge / ground-truth score")
    ax.set_title("Per-tier quality by category")
    ax.grid(axis="x", alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower right", fontsize=8.5, frameon=False)
    return png(fig)


def confusion(r: RoutingMetrics) -> bytes:
    counts = np.asarray(r.confusion.counts, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = new_figure(5.4, 4.4)
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            color = "white" if share[i, j] > 0.6 else "#222"
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color=color,
            )
    ax.set_xticks(range(len(r.confusion.tiers)), [t.value for t in r.confusion.tiers])
    ax.set_yticks(range(len(r.confusion.true_labels)), list(r.confusion.true_labels))
    ax.set_xlabel(f"routed to (threshold {r.router_threshold:.2f})")
    ax.set_ylabel("cheapest adequate tier")
    c = r.confusion
    ax.set_title(
        f"exact {c.exact_rate:.0%} · under {c.under_rate:.0%} · over {c.over_rate:.0%}", fontsize=10
    )
    return png(fig)


def calibration(m: EvalMetrics) -> bytes:
    """Reliability diagram per tier: one line per method (the router bold), bin counts of the
    router as faint bars behind."""
    methods = calibrations(m)
    cals = m.calibration
    fig = new_figure(4.1 * len(cals), 4.2)
    axes = fig.subplots(1, len(cals), squeeze=False)
    for j, (ax, cal) in enumerate(zip(axes[0], cals, strict=True)):
        color = TIER_COLORS.get(cal.tier.value, "k")
        twin = ax.twinx()
        twin.bar(
            [(b.lo + b.hi) / 2 for b in cal.bins],
            [b.n for b in cal.bins],
            width=cal.bins[0].hi - cal.bins[0].lo,
            color=color,
            alpha=0.12,
        )
        twin.set_yticks([])
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
        for name, method_cals in methods.items():
            used = [b for b in method_cals[j].bins if b.n]
            style = CURVE_STYLE.get(name, {})
            ax.plot(
                [b.mean_prob for b in used],
                [b.frac_adequate for b in used],
                "o-" if name == "router" else ".-",
                color=style.get("color", "k"),
                lw=2.0 if name == "router" else 1.0,
                ms=4 if name == "router" else 3,
                label=label(name),
            )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="predicted P(adequate)",
            title=f"{cal.tier.value}: router ECE {cal.ece:.3f}, n={cal.n}",
        )
        ax.grid(alpha=0.25)
    axes[0][0].set_ylabel("observed adequate rate")
    if len(methods) > 1:
        axes[0][-1].legend(loc="upper left", fontsize=7.5, frameon=False)
    return png(fig)
