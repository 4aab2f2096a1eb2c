"""The report's tables as rows of strings, shared by HTML, Markdown and the CLI. No IO."""

from __future__ import annotations

import math
from typing import Any

from eval.bootstrap import Interval
from eval.comparison import MethodResult, SubsetResult
from eval.peers import PEERS
from eval.quality import Calibration, EvalMetrics
from eval.routing_metrics import RoutingMetrics

# Display names of every method eval compares (peers add their own from eval.peers.PEERS).
METHOD_LABELS: dict[str, str] = {
    "router": "tierwise router",
    **{name: peer.label for name, peer in PEERS.items()},
    "random": "random at the router's mix",
    "length": "length heuristic at the router's mix",
    "coin": "cheap/top coin",
    "oracle": "oracle (true labels and costs)",
}
KIND_LABELS = {"router": "router", "peer": "peer", "baseline": "baseline", "reference": "reference"}
QUALITY_HEAD = ["tier", "n", "mean score", "adequate"]
CALIBRATION_HEAD = ["method", "tier", "n", "ECE", "Brier", "AUC"]
JUDGE_HEAD = ["judges", "n (turn, tier)", "Pearson", "Spearman", "Cohen κ (adequate)", "mean |Δ|"]
CURVE_HEAD = ["method", "APGR", "saving", "CPT(50%)", "CPT(80%)", "AIQ"]
PEER_HEAD = ["peer", "chosen by inner CV"]


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def label(name: str) -> str:
    if name.startswith("always_"):
        return f"always {name.removeprefix('always_')}"
    return METHOD_LABELS.get(name, name)


def pct(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def ci(iv: Interval | None, spec: str = ".3f", scale: float = 1.0) -> str:
    if iv is None:
        return ""
    return f"[{format(iv.low * scale, spec)}, {format(iv.high * scale, spec)}]"


def signed(iv: Interval | None, spec: str = "+.3f", scale: float = 1.0) -> str:
    if iv is None:
        return ""
    star = " *" if iv.excludes_zero else ""
    return (
        f"{format(iv.estimate * scale, spec)} [{format(iv.low * scale, spec)}, "
        f"{format(iv.high * scale, spec)}]{star}"
    )


def comparison_head(subset: SubsetResult, share: float) -> list[str]:
    top = subset.tiers[-1] if subset.tiers else "top"
    return [
        "method",
        "kind",
        "APGR [95% CI]",
        f"saving at {share:.0%} of always-{top} [95% CI]",
        "router − method: APGR",
        "router − method: saving (pts)",
    ]


def comparison_row(m: MethodResult) -> list[str]:
    return [
        label(m.name),
        KIND_LABELS[m.kind],
        f"{fmt(m.apgr)} {ci(m.apgr_ci)}".strip(),
        f"{pct(m.saving)} {ci(m.saving_ci, '.1f', 100)}".strip(),
        signed(m.router_minus_apgr),
        signed(m.router_minus_saving, "+.1f", 100),
    ]


def comparison_rows(subset: SubsetResult) -> list[list[str]]:
    return [comparison_row(m) for m in subset.methods]


def subset_title(s: SubsetResult) -> str:
    what = {"pooled": "all routed turns", "complete": "turns labeled for every tier"}
    name = what.get(s.kind, f"category {s.name}")
    return f"{name} (n={s.n}; tiers {'/'.join(s.tiers)})"


def category_summary_head() -> list[str]:
    return ["subset", "n", "router APGR", "best peer (APGR)", "router − best peer APGR",
            "router saving", "best peer (saving)", "router − best peer saving (pts)",
            "oracle saving"]  # fmt: skip


def category_summary_rows(r: RoutingMetrics) -> list[list[str]]:
    rows = []
    for s in r.comparison:
        router, oracle = s.method("router"), s.method("oracle")
        best_a = s.method(s.best_peer_apgr) if s.best_peer_apgr else None
        best_s = s.method(s.best_peer_saving) if s.best_peer_saving else None
        rows.append(
            [
                s.name,
                str(s.n),
                fmt(router.apgr if router else None),
                f"{label(best_a.name)} {fmt(best_a.apgr)}" if best_a else "–",
                signed(best_a.router_minus_apgr) if best_a else "",
                pct(router.saving if router else None),
                f"{label(best_s.name)} {pct(best_s.saving)}" if best_s else "–",
                signed(best_s.router_minus_saving, "+.1f", 100) if best_s else "",
                pct(oracle.saving if oracle else None),
            ]
        )
    return rows


def curve_rows(r: RoutingMetrics) -> list[list[str]]:
    return [
        [label(c.name), fmt(c.apgr), pct(c.saving), fmt(c.cpt50, ".1%"), fmt(c.cpt80, ".1%"),
         fmt(c.aiq)]
        for c in r.curves
    ]  # fmt: skip


def vs_top(cost: float, r: RoutingMetrics) -> float:
    return cost / r.reference.top_cost if r.reference.top_cost > 0 else float("nan")


def quality_vs_top(quality: float, r: RoutingMetrics) -> float:
    q = r.reference.top_quality
    return quality / q if q > 0 else float("nan")


def point_head(r: RoutingMetrics) -> list[str]:
    mix = "mix " + "/".join(t.value for t in r.tiers)
    return ["policy", "knob", "quality", "$ / 1k turns", "cost vs top", "PGR", mix]


POINT_LABELS = {
    "router": "router at its knob",
    "oracle": "oracle (cheapest adequate)",
    "random": "random at the router's mix",
}


def point_rows(r: RoutingMetrics) -> list[list[str]]:
    rows = []
    for p in (r.router, r.oracle, r.random_same_mix, *r.always):
        rows.append(
            [
                POINT_LABELS.get(p.name, label(p.name)),
                fmt(p.threshold, ".3g") if p.threshold is not None else "",
                fmt(p.quality),
                fmt(p.cost * 1000, ".3f"),
                fmt(vs_top(p.cost, r), ".1%"),
                fmt(p.pgr, ".2f"),
                " / ".join(f"{c:.0%}" for c in p.calls),
            ]
        )
    return rows


def routing_category_head(r: RoutingMetrics) -> list[str]:
    top = r.tiers[-1].value
    mix = "mix " + "/".join(t.value for t in r.tiers)
    return ["category", "n", "router quality", f"always-{top}", "best fixed tier",
            f"cost vs {top}", mix]  # fmt: skip


def routing_category_rows(r: RoutingMetrics) -> list[list[str]]:
    rows = []
    for c in r.by_category:
        labeled = [j for j in range(len(r.tiers)) if not math.isnan(c.tier_quality[j])]
        best = max(labeled, key=lambda j: (c.tier_quality[j], -j)) if labeled else len(r.tiers) - 1
        rows.append(
            [
                c.category,
                str(c.n),
                fmt(c.quality),
                fmt(c.tier_quality[-1]),
                f"{r.tiers[best].value} {fmt(c.tier_quality[best])}",
                fmt(c.cost_vs_top, ".0%"),
                " / ".join(f"{x:.0%}" for x in c.calls),
            ]
        )
    return rows


def quality_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [q.tier.value, str(q.n), fmt(q.mean_score), fmt(q.adequate_rate, ".1%")]
        for q in m.tier_quality
    ]


def category_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [c.category, str(c.n)]
        + [f"{fmt(q.mean_score, '.2f')} ({fmt(q.adequate_rate, '.0%')})" for q in c.tiers]
        for c in m.by_category
    ]


def calibrations(m: EvalMetrics) -> dict[str, tuple[Calibration, ...]]:
    """Method -> per-tier calibration: the router first, then each peer."""
    return {"router": m.calibration, **m.peer_calibration}


def calibration_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [label(name), c.tier.value, str(c.n), fmt(c.ece), fmt(c.brier), fmt(c.auc)]
        for name, cals in calibrations(m).items()
        for c in cals
    ]


def judge_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [f"{j.judge_a} vs {j.judge_b}", str(j.n), fmt(j.pearson), fmt(j.spearman), fmt(j.kappa),
         fmt(j.mean_abs_diff)]
        for j in m.judges
    ]  # fmt: skip


def _param(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".3g")
    if isinstance(value, list):
        return "[" + ", ".join(_param(v) for v in value) + "]"
    return str(value)


def peer_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [label(name), ", ".join(f"{k}={_param(v)}" for k, v in params.items())]
        for name, params in m.peer_params.items()
    ]


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
