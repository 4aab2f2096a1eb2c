"""What the report says, independent of format: headline numbers (MLflow, JSON), the verdict that
opens the report (who wins and by how much), warnings, and the Markdown summary. No plotting, IO."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.comparison import MethodResult, SubsetResult
from eval.curves import Curve
from eval.quality import EvalMetrics
from eval.routing_metrics import RoutingMetrics
from eval.tables import (
    CALIBRATION_HEAD,
    CURVE_HEAD,
    JUDGE_HEAD,
    PEER_HEAD,
    QUALITY_HEAD,
    calibration_rows,
    category_summary_head,
    category_summary_rows,
    comparison_head,
    comparison_rows,
    curve_rows,
    fmt,
    judge_rows,
    label,
    md_table,
    pct,
    peer_rows,
    point_head,
    point_rows,
    quality_rows,
    quality_vs_top,
    routing_category_head,
    routing_category_rows,
    subset_title,
    vs_top,
)

# Below this AUC a tier's P(adequate) is flagged as carrying little ranking signal.
WEAK_AUC = 0.6
DEFINITIONS = [
    ("quality", "mean score (0–1, judge or ground truth) of the tier each method picks"),
    ("PGR", "performance gap recovered: (quality − always-cheapest) / (always-top − always-cheapest)"),
    ("cost share", "(cost − always-cheapest) / (always-top − always-cheapest)"),
    ("APGR", "area under PGR over cost share 0→1 (RouteLLM); a random mix of the ends scores 0.5"),
    ("saving", "1 − cost / always-top cost at the cheapest point of the method's sweep that keeps "
               "95% of always-top quality (higher is better)"),
    ("peers", "quality estimators fitted on the same training turns and the bundle's own features "
              "(embedding + structure), each tuned by inner CV, and routed with the same policy and "
              "the same expected answer lengths as the router"),
    ("same mix", "random / length heuristic send the same share of turns to each tier as the "
                 "router at every point of its sweep"),
    ("coin", "each turn to the top tier with probability x, else the cheapest (APGR 0.5)"),
    ("oracle", "the cheapest routing at each quality, knowing every turn's true scores and costs"),
    ("paired bootstrap", "turns resampled with replacement, the same resample for every method; "
                         "* marks a difference whose 95% interval excludes 0"),
    ("CPT(x%)", "smallest cost share at which the method recovers x% of the gap"),
    ("AIQ", "area under the non-decreasing convex hull of (cost, quality) (RouterBench)"),
    ("partial labels", "each turn is routed among the tiers labeled on it; turns lacking the "
                       "cheapest or top tier are left out of routing; nothing is imputed"),
    ("ECE", "expected calibration error: turn-weighted |observed − predicted| over 10 bins"),
    ("AUC", "chance that P(adequate) ranks an adequate turn above an inadequate one (0.5 = none)"),
]  # fmt: skip


@dataclass(frozen=True)
class ReportContext:
    version: str
    created_at: str
    data: tuple[str, ...]
    dataset: dict[str, Any]  # EvalSet.summary()
    adequacy_threshold: float
    output_tokens: int  # answer tokens priced where no length is recorded
    prices: dict[str, dict[str, Any]]  # tier -> TierSpec fields
    policy: str = "threshold"
    recorded_lengths: float = 0.0  # share of (turn, tier) labels with a recorded answer length
    expected_lengths: dict[str, float] = field(default_factory=dict)  # what the policy assumes
    # True: the policy priced each turn with the bundle's own answer-length forecast (the means
    # are in expected_lengths); False: the training logs' mean per tier.
    lengths_forecast: bool = False
    n_boot: int = 0
    # tier -> label source ("ground_truth:<model>", "judge:<model>") -> eval turns
    label_sources: dict[str, dict[str, int]] = field(default_factory=dict)


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


# What MLflow accepts in a metric name; a subset is named by user data (a category, "(none)").
_NOT_IN_METRIC_NAMES = re.compile(r"[^A-Za-z0-9_\-. /:]")


def metric_key(name: str) -> str:
    """`name` with every character MLflow refuses in a metric name replaced by "_"."""
    return _NOT_IN_METRIC_NAMES.sub("_", name)


def headline_metrics(m: EvalMetrics, ctx: ReportContext) -> dict[str, float]:
    """Flat name -> number, for MLflow and the JSON summary's "headline"."""
    out: dict[str, float] = {
        "n_eval": m.n,
        "overlap_removed": ctx.dataset.get("overlap_removed", 0),
    }
    for q in m.tier_quality:
        out[f"quality.{q.tier.value}.mean_score"] = q.mean_score
        out[f"quality.{q.tier.value}.adequate_rate"] = q.adequate_rate
    for name, cals in {"router": m.calibration, **m.peer_calibration}.items():
        prefix = "calibration" if name == "router" else f"calibration.{name}"
        for c in cals:
            out.update(
                {f"{prefix}.{c.tier.value}.ece": c.ece, f"{prefix}.{c.tier.value}.auc": c.auc}
            )
            out[f"{prefix}.{c.tier.value}.brier"] = c.brier
    for j in m.judges:
        key = f"judges.{j.judge_a}_vs_{j.judge_b}"
        out.update({f"{key}.pearson": j.pearson, f"{key}.spearman": j.spearman})
        out.update({f"{key}.kappa": j.kappa, f"{key}.n": j.n})
    r = m.routing
    if r is None:
        return out
    out.update(
        {"routing.n": r.n, "routing.n_unrouted": r.n_unrouted, "routing.n_partial": r.n_partial}
    )
    for p in (r.router, r.oracle, r.random_same_mix, *r.always):
        out[f"{p.name}.quality"] = p.quality
        out[f"{p.name}.quality_vs_top"] = quality_vs_top(p.quality, r)
        out[f"{p.name}.cost_usd"] = p.cost
        out[f"{p.name}.cost_vs_top"] = vs_top(p.cost, r)
        out[f"{p.name}.pgr"] = p.pgr
    out["router.threshold"] = r.router_threshold
    for curve in r.curves:
        out.update({f"{curve.name}.apgr": curve.apgr, f"{curve.name}.saving": curve.saving})
        out.update({f"{curve.name}.cpt50": curve.cpt50, f"{curve.name}.cpt80": curve.cpt80})
        out[f"{curve.name}.aiq"] = curve.aiq
    for s in r.comparison:
        prefix = "" if s.kind == "pooled" else f"subset.{metric_key(s.name)}."
        for mr in s.methods:
            for metric, own, diff in (("apgr", mr.apgr_ci, mr.router_minus_apgr),
                                      ("saving", mr.saving_ci, mr.router_minus_saving)):  # fmt: skip
                if prefix:
                    out[f"{prefix}{mr.name}.{metric}"] = getattr(mr, metric)
                if own is not None:
                    out[f"{prefix}{mr.name}.{metric}_low"] = own.low
                    out[f"{prefix}{mr.name}.{metric}_high"] = own.high
                if diff is not None:
                    out[f"{prefix}router_minus_{mr.name}.{metric}"] = diff.estimate
                    out[f"{prefix}router_minus_{mr.name}.{metric}_low"] = diff.low
                    out[f"{prefix}router_minus_{mr.name}.{metric}_high"] = diff.high
    cm = r.confusion
    out.update({"confusion.exact": cm.exact_rate, "confusion.under": cm.under_rate})
    out["confusion.over"] = cm.over_rate
    return out


def _contest(s: SubsetResult, metric: str) -> str:
    """One sentence: who wins `metric` on subset `s` among the router and the learned peers."""
    router = s.method("router")
    best_name = s.best_peer_apgr if metric == "apgr" else s.best_peer_saving
    if router is None:
        return ""
    value = pct if metric == "saving" else fmt
    if best_name is None:
        return f"router {value(getattr(router, metric))} (no peers)"
    best = s.method(best_name)
    assert best is not None
    diff = best.router_minus_apgr if metric == "apgr" else best.router_minus_saving
    mine, theirs = getattr(router, metric), getattr(best, metric)
    if math.isnan(mine) or math.isnan(theirs):
        return f"router {value(mine)}, best peer {label(best_name)} {value(theirs)}"
    leader = "the router" if mine >= theirs else label(best_name)
    if diff is None:
        how, call = "no interval: bootstrap off", f"{leader} leads"
    else:
        spec, scale, unit = ("+.3f", 1.0, "") if metric == "apgr" else ("+.1f", 100.0, " pts")
        how = (
            f"router − {label(best_name)} = {format((mine - theirs) * scale, spec)}{unit} "
            f"[{format(diff.low * scale, spec)}, {format(diff.high * scale, spec)}]"
        )
        call = f"{leader} wins" if diff.excludes_zero else f"{leader} leads, within noise"
    return f"{call}: router {value(mine)} vs best peer {label(best_name)} {value(theirs)} ({how})"


def winner(s: SubsetResult) -> MethodResult | None:
    """The method with the best APGR on the subset among the router, the peers and the baselines
    (not the references: fixed tiers and the oracle)."""
    rivals = [m for m in s.methods if m.kind != "reference" and not math.isnan(m.apgr)]
    return max(rivals, key=lambda m: m.apgr) if rivals else None


def _winner(s: SubsetResult) -> str:
    w = winner(s)
    return f"{label(w.name)} ({fmt(w.apgr)})" if w else "none"


def verdict(r: RoutingMetrics) -> str:
    """The sentences a lead quotes, pooled over every routed turn."""
    s = r.comparison[0]
    top = r.tiers[-1].value
    share = f"{r.quality_share:.0%}"
    oracle = s.method("oracle")
    parts = [
        f"Winner on APGR: {_winner(s)}.",
        f"APGR: {_contest(s, 'apgr')}.",
        f"Cost saving at {share} of always-{top} quality: {_contest(s, 'saving')}"
        + (f"; the oracle saves {pct(oracle.saving)}." if oracle else "."),
        f"Every method routed by the {r.policy} policy with the same expected answer lengths; "
        f"{r.n} turns, paired bootstrap.",
        f"At its knob {fmt(r.router_threshold, '.3g')} the router spends "
        f"{fmt(vs_top(r.router.cost, r), '.0%')} of always-{top} cost and keeps "
        f"{fmt(quality_vs_top(r.router.quality, r), '.1%')} of its quality.",
    ]
    return " ".join(parts)


def subset_verdicts(r: RoutingMetrics) -> list[str]:
    """One line per subset after the pooled one."""
    return [
        f"{s.name} (n={s.n}): winner {_winner(s)}; APGR {_contest(s, 'apgr')}"
        for s in r.comparison[1:]
    ]


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
    if m.peers_skipped:
        out.append(f"No peer routers: {m.peers_skipped}.")
    weak = [f"{c.tier.value} {c.auc:.2f}" for c in m.calibration if c.auc < WEAK_AUC]
    if weak:
        out.append(
            f"The router's P(adequate) barely ranks turns (AUC {', '.join(weak)}; 0.5 is chance)."
        )
    r = m.routing
    if r is None:
        out.append("No routing metrics: no turn is labeled for two or more tiers.")
        return out
    out += dominated_by_fixed_tier(r)
    if r.n_unrouted:
        out.append(
            f"{r.n_unrouted} of {m.n} turns lack a label for the cheapest or top tier and are "
            "left out of routing (kept for per-tier quality and calibration)."
        )
    if r.n_partial:
        out.append(
            f"{r.n_partial} routed turns lack a middle-tier label: every method routes them "
            "among their labeled tiers; they are reported apart below."
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
    router = r.curve("router")
    out = []
    for p in r.always[1:-1]:
        reached = curve_quality_at(router, p.cost) if router else float("nan")
        if p.quality > reached:
            out.append(
                f"{label(p.name)} ({p.quality:.3f} quality at {vs_top(p.cost, r):.0%} of top "
                f"cost) beats every router point at that cost (best {reached:.3f}): a fixed "
                "middle tier is the stronger policy there."
            )
    return out


def data_facts(ctx: ReportContext) -> list[tuple[str, str]]:
    d = ctx.dataset
    matches = {True: "same", False: "DIFFERENT", None: "not recorded"}[d.get("train_hash_matches")]
    if d.get("train_hash_matches") is False and d.get("train_subset_of_logs"):
        matches = "a subset of its logs"
    expected = ", ".join(f"{t} {v:.0f}" for t, v in ctx.expected_lengths.items())
    facts = [
        ("eval turns evaluated", str(d.get("n_eval"))),
        ("valid, unique turns loaded", str(d.get("n_loaded"))),
        ("bad lines skipped", str(d.get("bad_lines"))),
        ("duplicates within eval", str(d.get("duplicates_in_eval"))),
        ("dropped: seen in training", str(d.get("overlap_removed"))),
        ("overlap checked against", str(d.get("overlap_source"))),
        ("training turns (peers)", str(d.get("n_train"))),
        ("training data vs manifest", matches),
        ("turns re-scored by --judge-scores", str(d.get("judge_merged"))),
        ("adequate if score ≥ (when unset)", str(ctx.adequacy_threshold)),
        ("policy (every method)", ctx.policy),
        (
            "answer tokens the policy expects"
            + (" (the bundle's forecast per turn; mean)" if ctx.lengths_forecast else ""),
            expected or "–",
        ),
        ("labels with a real answer length", f"{ctx.recorded_lengths:.0%}"),
        ("answer tokens priced when unrecorded", str(ctx.output_tokens)),
        ("bootstrap resamples", str(ctx.n_boot)),
    ]
    facts += [
        (f"{tier} labels", ", ".join(f"{src} ({n})" for src, n in sources.items()))
        for tier, sources in ctx.label_sources.items()
    ]
    facts += [
        (f"{t} $/Mtok in / out", f"{p['input_per_mtok']} / {p['output_per_mtok']}")
        for t, p in ctx.prices.items()
    ]
    return facts


def render_markdown(m: EvalMetrics, ctx: ReportContext) -> str:
    r = m.routing
    out = [f"# tierwise router evaluation: {ctx.version}", ""]
    out.append(f"{ctx.created_at} · data: {', '.join(ctx.data)} · {m.n} turns")
    if r is not None:
        out += ["", f"**{verdict(r)}**", ""]
        out += [f"- {line}" for line in subset_verdicts(r)]
        out += ["", "## Router vs peers, per subset", ""]
        out += [md_table(category_summary_head(), category_summary_rows(r))]
        for s in r.comparison:
            out += ["", f"### {subset_title(s)}", ""]
            out += [md_table(comparison_head(s, r.quality_share), comparison_rows(s))]
        out += ["", "## Curves on all routed turns", "", md_table(CURVE_HEAD, curve_rows(r))]
        out += ["", md_table(point_head(r), point_rows(r))]
        if r.by_category:
            out += ["", md_table(routing_category_head(r), routing_category_rows(r))]
        c = r.confusion
        out += [
            "",
            f"Routed vs cheapest adequate tier: exact {c.exact_rate:.1%}, "
            f"under-routed {c.under_rate:.1%}, over-routed {c.over_rate:.1%}.",
        ]
    if m.peer_params:
        out += ["", "## Peers (what inner CV chose)", "", md_table(PEER_HEAD, peer_rows(m))]
    out += ["", "## Check first", ""] + ([f"- {w}" for w in warnings(m, ctx)] or ["- nothing"])
    out += ["", "## Per-tier quality", "", md_table(QUALITY_HEAD, quality_rows(m))]
    out += ["", "## Calibration", "", md_table(CALIBRATION_HEAD, calibration_rows(m))]
    if m.judges:
        out += ["", "## Judge agreement", "", md_table(JUDGE_HEAD, judge_rows(m))]
    out += ["", "## Data", ""] + [f"- {k}: {v}" for k, v in data_facts(ctx)]
    return "\n".join(out) + "\n"
