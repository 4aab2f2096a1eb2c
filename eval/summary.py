"""What the report says, independent of format: headline numbers (MLflow, JSON), the verdict
sentence, warnings, table rows, and the Markdown summary. No plotting, no IO."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.bootstrap import ApgrInterval
from eval.curves import Curve, PolicyPoint, RoutingMetrics
from eval.quality import EvalMetrics

# Display names of eval.curves' curve and operating-point names.
CURVE_LABELS = {
    "router": "router (threshold sweep)",
    "knn": "kNN on embeddings",
    "length": "length heuristic (same mix)",
    "random": "random (same mix)",
}
POINT_LABELS = {
    "router": "router",
    "oracle": "oracle (cheapest adequate)",
    "random": "random at the router's mix",
}
# Below this AUC a tier's P(adequate) is flagged as carrying little ranking signal.
WEAK_AUC = 0.6
CURVE_HEAD = ["policy family", "APGR", "CPT(50%)", "CPT(80%)", "AIQ"]
INTERVAL_HEAD = ["policy family", "APGR 95% CI", "APGR − router, 95% CI", "vs router"]
QUALITY_HEAD = ["tier", "n", "mean score", "adequate"]
CALIBRATION_HEAD = ["tier", "n", "ECE", "Brier", "AUC"]
JUDGE_HEAD = ["judges", "n (turn, tier)", "Pearson", "Spearman", "Cohen κ (adequate)", "mean |Δ|"]
DEFINITIONS = [
    ("quality", "mean score (0–1, judge or ground truth) of the tier each policy picks"),
    (
        "PGR",
        "performance gap recovered: (quality − always-cheapest) / (always-top − always-cheapest)",
    ),
    (
        "cost share",
        "(cost − always-cheapest) / (always-top − always-cheapest); with two tiers and "
        "equal-length turns it is RouteLLM's % of calls to the strong model",
    ),
    ("APGR", "area under PGR over cost share 0→1 (RouteLLM); a random mix of the ends scores 0.5"),
    ("CPT(x%)", "smallest cost share at which the policy recovers x% of the gap (lower is better)"),
    (
        "AIQ",
        "area under the non-decreasing convex hull of (cost, quality) over the always-cheapest.."
        "always-top cost range (RouterBench), in quality units",
    ),
    ("same mix", "the baseline sends the same share of turns to each tier as the router point"),
    ("oracle", "the cheapest adequate tier per turn (the cheapest tier when none is adequate)"),
    ("ECE", "expected calibration error: turn-weighted |observed − predicted| over 10 bins"),
    (
        "AUC",
        "chance that P(adequate) ranks a random adequate turn above an inadequate one (0.5 = none)",
    ),
    (
        "partial labels",
        "routing uses turns labeled for every routing tier; per-tier quality and calibration "
        "use every turn labeled for that tier; nothing is imputed",
    ),
    ("judge mean |Δ|", "mean absolute score difference, on the judges' own scale"),
]


@dataclass(frozen=True)
class ReportContext:
    version: str
    created_at: str
    data: tuple[str, ...]
    dataset: dict[str, Any]  # EvalSet.summary()
    adequacy_threshold: float
    output_tokens: int
    prices: dict[str, dict[str, Any]]  # tier -> TierSpec fields


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def jsonable(obj: Any) -> Any:
    """Dataclasses/tuples/enums -> JSON types; NaN and inf -> None (valid JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def vs_top(p: PolicyPoint, r: RoutingMetrics) -> float:
    return p.cost / r.reference.top_cost if r.reference.top_cost > 0 else float("nan")


def quality_vs_top(p: PolicyPoint, r: RoutingMetrics) -> float:
    q = r.reference.top_quality
    return p.quality / q if q > 0 else float("nan")


def headline_metrics(m: EvalMetrics, ctx: ReportContext) -> dict[str, float]:
    """Flat name -> number, for MLflow and the JSON summary's "headline"."""
    out: dict[str, float] = {
        "n_eval": m.n,
        "overlap_removed": ctx.dataset.get("overlap_removed", 0),
    }
    for q in m.tier_quality:
        out[f"quality.{q.tier.value}.mean_score"] = q.mean_score
        out[f"quality.{q.tier.value}.adequate_rate"] = q.adequate_rate
    for c in m.calibration:
        out[f"calibration.{c.tier.value}.ece"] = c.ece
        out[f"calibration.{c.tier.value}.brier"] = c.brier
        out[f"calibration.{c.tier.value}.auc"] = c.auc
    for j in m.judges:
        key = f"judges.{j.judge_a}_vs_{j.judge_b}"
        out.update({f"{key}.pearson": j.pearson, f"{key}.spearman": j.spearman})
        out.update({f"{key}.kappa": j.kappa, f"{key}.n": j.n})
    r = m.routing
    if r is None:
        return out
    out.update({"routing.n": r.n, "routing.n_incomplete": r.n_incomplete})
    for p in (r.router, r.oracle, r.random_same_mix, *r.always):
        out[f"{p.name}.quality"] = p.quality
        out[f"{p.name}.quality_vs_top"] = quality_vs_top(p, r)
        out[f"{p.name}.cost_usd"] = p.cost
        out[f"{p.name}.cost_vs_top"] = vs_top(p, r)
        out[f"{p.name}.pgr"] = p.pgr
    out["router.threshold"] = r.router_threshold
    for curve in r.curves:
        out.update({f"{curve.name}.apgr": curve.apgr, f"{curve.name}.cpt50": curve.cpt50})
        out.update({f"{curve.name}.cpt80": curve.cpt80, f"{curve.name}.aiq": curve.aiq})
    for iv in m.apgr_intervals:
        out.update({f"{iv.name}.apgr_low": iv.low, f"{iv.name}.apgr_high": iv.high})
        if iv.name != "router":
            out[f"{iv.name}.apgr_minus_router_low"] = iv.diff_low
            out[f"{iv.name}.apgr_minus_router_high"] = iv.diff_high
    cm = r.confusion
    out.update({"confusion.exact": cm.exact_rate, "confusion.under": cm.under_rate})
    out["confusion.over"] = cm.over_rate
    return out


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def verdict(r: RoutingMetrics, intervals: Sequence[ApgrInterval] = ()) -> str:
    """The sentences a lead quotes."""
    top, cheap = r.tiers[-1].value, r.tiers[0].value
    curves = {c.name: c for c in r.curves}
    others = ", ".join(
        f"{CURVE_LABELS.get(n, n)} {fmt(c.apgr, '.2f')}" for n, c in curves.items() if n != "router"
    )
    text = (
        f"At threshold {r.router_threshold:.2f} the router spends "
        f"{fmt(vs_top(r.router, r), '.0%')} of always-{top} cost and keeps "
        f"{fmt(quality_vs_top(r.router, r), '.1%')} of its quality (recovers "
        f"{fmt(r.router.pgr, '.0%')} of the {cheap}→{top} gap). The oracle would need "
        f"{fmt(vs_top(r.oracle, r), '.0%')} of the cost. APGR {fmt(curves['router'].apgr, '.2f')} "
        f"vs {others}."
    )
    rivals = [i for i in intervals if i.name != "router"]
    beaten = [CURVE_LABELS.get(i.name, i.name) for i in rivals if i.diff_high < 0]
    tied = [CURVE_LABELS.get(i.name, i.name) for i in rivals if i.diff_low <= 0 <= i.diff_high]
    better = [CURVE_LABELS.get(i.name, i.name) for i in rivals if i.diff_low > 0]
    if rivals:
        parts = [f"clearly beats {_join(beaten)}" if beaten else "clearly beats no baseline"]
        if tied:
            parts.append(f"is within noise of {_join(tied)}")
        if better:
            parts.append(f"is beaten by {_join(better)}")
        text += f" On APGR (95% bootstrap) the router {'; '.join(parts)}."
    return text


def warnings(m: EvalMetrics, ctx: ReportContext) -> list[str]:
    d, out = ctx.dataset, []
    if str(d.get("overlap_source", "")).startswith("not checked"):
        out.append(f"Overlap with training data {d['overlap_source']}.")
    if d.get("bad_lines"):
        out.append(f"{d['bad_lines']} bad lines in the eval files were skipped.")
    if d.get("train_hash_matches") is False and not d.get("train_subset_of_logs"):
        out.append(
            "The training data given differs from the manifest's (training.data_hash) and is "
            "not a subset of its training.logs: is it the data this bundle was trained on?"
        )
    if d.get("judge_unmatched"):
        out.append(f"{d['judge_unmatched']} --judge-scores records matched no eval turn.")
    if not d.get("n_train"):
        out.append("No --train-data: the kNN baseline was skipped.")
    weak = [f"{c.tier.value} {c.auc:.2f}" for c in m.calibration if c.auc < WEAK_AUC]
    if weak:
        out.append(
            f"P(adequate) barely ranks turns (AUC {', '.join(weak)}; 0.5 is chance): the "
            "router has little signal for these tiers."
        )
    r = m.routing
    if r is None:
        out.append("No routing metrics: no turn is labeled for two or more tiers.")
        return out
    out += dominated_by_fixed_tier(r)
    if r.n_incomplete:
        out.append(
            f"{r.n_incomplete} of {m.n} turns lack a label for some routing tier and are left "
            "out of routing metrics (kept for per-tier quality and calibration)."
        )
    if r.dropped_tiers:
        dropped = ", ".join(t.value for t in r.dropped_tiers)
        out.append(f"Tiers with no labels at all ({dropped}) are left out of routing.")
    return out


def curve_quality_at(curve: Curve, cost: float) -> float:
    """Best quality the sweep reaches at or below `cost` (NaN below its cheapest point)."""
    reachable = [p.quality for p in curve.points if p.cost <= cost + 1e-12]
    return max(reachable) if reachable else float("nan")


def dominated_by_fixed_tier(r: RoutingMetrics) -> list[str]:
    """A fixed middle tier that the router's curve cannot match at the same cost."""
    router = next(c for c in r.curves if c.name == "router")
    out = []
    for p in r.always[1:-1]:
        reached = curve_quality_at(router, p.cost)
        if p.quality > reached:
            out.append(
                f"{p.name.replace('_', ' ')} ({p.quality:.3f} quality at {vs_top(p, r):.0%} of "
                f"top cost) beats every router threshold at that cost (best {reached:.3f}): a "
                "fixed middle tier is the stronger policy there."
            )
    return out


def point_head(r: RoutingMetrics) -> list[str]:
    mix = "mix " + "/".join(t.value for t in r.tiers)
    return ["policy", "threshold", "quality", "$ / 1k turns", "cost vs top", "PGR", mix]


def point_rows(r: RoutingMetrics) -> list[list[str]]:
    rows = []
    for p in (r.router, r.oracle, r.random_same_mix, *r.always):
        rows.append(
            [
                POINT_LABELS.get(p.name, p.name.replace("_", " ")),
                fmt(p.threshold, ".2f") if p.threshold is not None else "",
                fmt(p.quality),
                fmt(p.cost * 1000, ".3f"),
                fmt(vs_top(p, r), ".1%"),
                fmt(p.pgr, ".2f"),
                " / ".join(f"{c:.0%}" for c in p.calls),
            ]
        )
    return rows


def curve_rows(r: RoutingMetrics) -> list[list[str]]:
    return [
        [CURVE_LABELS.get(c.name, c.name), fmt(c.apgr), fmt(c.cpt50, ".1%"), fmt(c.cpt80, ".1%"),
         fmt(c.aiq)]
        for c in r.curves
    ]  # fmt: skip


def interval_rows(m: EvalMetrics) -> list[list[str]]:
    rows = []
    for iv in m.apgr_intervals:
        if iv.name == "router":
            call = ""
        elif iv.diff_high < 0:
            call = "router better"
        elif iv.diff_low > 0:
            call = "router worse"
        else:
            call = "no clear difference"
        diff = "" if iv.name == "router" else f"{iv.diff_low:+.3f} … {iv.diff_high:+.3f}"
        rows.append(
            [CURVE_LABELS.get(iv.name, iv.name), f"{fmt(iv.low)} … {fmt(iv.high)}", diff, call]
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


def routing_category_head(r: RoutingMetrics) -> list[str]:
    top = r.tiers[-1].value
    mix = "mix " + "/".join(t.value for t in r.tiers)
    return ["category", "n", "router quality", f"always-{top}", "best fixed tier",
            f"cost vs {top}", mix]  # fmt: skip


def routing_category_rows(r: RoutingMetrics) -> list[list[str]]:
    rows = []
    for c in r.by_category:
        best = max(range(len(r.tiers)), key=lambda j: (c.tier_quality[j], -j))
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


def calibration_rows(m: EvalMetrics) -> list[list[str]]:
    return [[c.tier.value, str(c.n), fmt(c.ece), fmt(c.brier), fmt(c.auc)] for c in m.calibration]


def judge_rows(m: EvalMetrics) -> list[list[str]]:
    return [
        [f"{j.judge_a} vs {j.judge_b}", str(j.n), fmt(j.pearson), fmt(j.spearman), fmt(j.kappa),
         fmt(j.mean_abs_diff)]
        for j in m.judges
    ]  # fmt: skip


def data_facts(ctx: ReportContext) -> list[tuple[str, str]]:
    d = ctx.dataset
    matches = {True: "same", False: "DIFFERENT", None: "not recorded"}[d.get("train_hash_matches")]
    if d.get("train_hash_matches") is False and d.get("train_subset_of_logs"):
        matches = "a subset of its logs"
    facts = [
        ("eval turns evaluated", str(d.get("n_eval"))),
        ("valid, unique turns loaded", str(d.get("n_loaded"))),
        ("bad lines skipped", str(d.get("bad_lines"))),
        ("duplicates within eval", str(d.get("duplicates_in_eval"))),
        ("dropped: seen in training", str(d.get("overlap_removed"))),
        ("overlap checked against", str(d.get("overlap_source"))),
        ("training turns (kNN)", str(d.get("n_train"))),
        ("training data vs manifest", matches),
        ("turns re-scored by --judge-scores", str(d.get("judge_merged"))),
        ("adequate if score ≥ (when unset)", str(ctx.adequacy_threshold)),
        ("output tokens priced per turn", str(ctx.output_tokens)),
    ]
    facts += [
        (f"{t} $/Mtok in / out", f"{p['input_per_mtok']} / {p['output_per_mtok']}")
        for t, p in ctx.prices.items()
    ]
    return facts


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render_markdown(m: EvalMetrics, ctx: ReportContext) -> str:
    r = m.routing
    out = [f"# tierwise router evaluation: {ctx.version}", ""]
    out.append(f"{ctx.created_at} · data: {', '.join(ctx.data)} · {m.n} turns")
    if r is not None:
        out += ["", verdict(r, m.apgr_intervals), "", md_table(CURVE_HEAD, curve_rows(r))]
        if m.apgr_intervals:
            out += ["", md_table(INTERVAL_HEAD, interval_rows(m))]
        out += ["", md_table(point_head(r), point_rows(r))]
        if r.by_category:
            out += ["", md_table(routing_category_head(r), routing_category_rows(r))]
        c = r.confusion
        out += [
            "",
            f"Routed vs cheapest adequate tier: exact {c.exact_rate:.1%}, "
            f"under-routed {c.under_rate:.1%}, over-routed {c.over_rate:.1%}.",
        ]
    out += ["", "## Check first", ""] + ([f"- {w}" for w in warnings(m, ctx)] or ["- nothing"])
    out += ["", "## Per-tier quality", "", md_table(QUALITY_HEAD, quality_rows(m))]
    out += ["", "## Calibration", "", md_table(CALIBRATION_HEAD, calibration_rows(m))]
    if m.judges:
        out += ["", "## Judge agreement", "", md_table(JUDGE_HEAD, judge_rows(m))]
    out += ["", "## Data", ""] + [f"- {k}: {v}" for k, v in data_facts(ctx)]
    return "\n".join(out) + "\n"
