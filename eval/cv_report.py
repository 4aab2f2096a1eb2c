"""The repeated-CV comparison (`tierwise cv`) as Markdown and JSON: issue 8's targets first, then
the router against every method on all turns, then router - each peer per subset. No math here:
eval.repeated computes every number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.bootstrap import Interval
from eval.repeated import APGR_MARGIN, GAP_SHARE, RepeatedSubset, Targets, targets
from eval.summary import jsonable
from eval.tables import KIND_LABELS, ci, fmt, label, md_table, pct, signed


@dataclass(frozen=True)
class CvRun:
    """What a repeated-CV comparison ran on and how."""

    logs: tuple[str, ...]  # file names of the labeled logs
    data_hash: str
    n_turns: int
    n_routed: int  # turns labeled for their cheapest and top routing tier
    folds: int
    repeats: int
    seed: int
    n_boot: int
    head: str  # the router's head type (training.head_types)
    policy: str
    embedder: str  # name:quantization of the embedder every method's features come from
    peers: tuple[str, ...]
    fold_sizes: tuple[tuple[int, ...], ...]  # per repeat, turns per fold
    share: float  # the saving's quality target, a share of always-top quality
    created_at: str
    seconds: float  # wall time of the whole run
    # Per fold (repeat by repeat), the default operating point its bundle would ship
    # (quality_target on its training rows' out-of-fold predictions) on the fold's unseen rows.
    default_points: tuple[DefaultPoint, ...] = ()
    quality_target: float | None = None


@dataclass(frozen=True)
class DefaultPoint:
    knob: float
    quality: float  # share of always-top quality on the fold's unseen rows
    cost: float  # share of always-top cost
    rows: int  # the fold's rows with the top tier labeled


def default_point_lines(run: CvRun, floor: float = 0.95) -> list[str]:
    """What the shipped default knob keeps on data it has not seen, fold by fold."""
    points = run.default_points
    if not points:
        return []
    quality = [p.quality for p in points]
    cost = [p.cost for p in points]
    below = sum(q < floor for q in quality)
    mean_q, mean_c = sum(quality) / len(quality), sum(cost) / len(cost)
    target = f"{run.quality_target:.2f}" if run.quality_target is not None else "?"
    return [
        "",
        f"Default operating point (quality_target {target} on each fold's training rows' "
        "out-of-fold predictions), on the fold's unseen rows:",
        "",
        md_table(
            [
                "folds",
                "quality vs always-top: mean [min, max]",
                f"folds below {floor:.0%}",
                "cost vs always-top: mean",
                "knob: min .. max",
            ],
            [
                [
                    str(len(points)),
                    f"{mean_q:.3f} [{min(quality):.3f}, {max(quality):.3f}]",
                    f"{below} of {len(points)}",
                    f"{mean_c:.3f}",
                    f"{min(p.knob for p in points):.4g} .. {max(p.knob for p in points):.4g}",
                ]
            ],
        ),  # fmt: skip
    ]


@dataclass(frozen=True)
class CvFiles:
    json: Path
    markdown: Path


def _verdict(met: bool, short: str) -> str:
    return "met" if met else f"MISSED by {short}"


def target_rows(t: Targets) -> list[list[str]]:
    closed_text = _closed(t.gap_closed)
    return [
        [
            f"APGR ≥ best peer + {APGR_MARGIN}",
            _verdict(t.apgr_met, f"{t.apgr_short:.3f} APGR"),
            f"router − {label(t.best_peer_apgr)} = {signed(t.apgr_gain)}",
        ],
        [
            "paired CI of router − best peer APGR excludes 0",
            "yes" if t.apgr_ci_excludes_zero else "no",
            f"[{t.apgr_gain.low:+.3f}, {t.apgr_gain.high:+.3f}]",
        ],
        [
            f"saving at 95% closes {GAP_SHARE:.0%} of the best-peer→oracle gap",
            _verdict(t.saving_met, f"{100 * t.saving_short:.1f} pts of saving"),
            f"closes {closed_text}; router − {label(t.best_peer_saving)} = "
            f"{signed(t.saving_gain, '+.1f', 100)} pts, oracle saves {pct(t.oracle_saving)}",
        ],
        [
            "paired CI of router − best peer saving excludes 0",
            "yes" if t.saving_ci_excludes_zero else "no",
            f"[{100 * t.saving_gain.low:+.1f}, {100 * t.saving_gain.high:+.1f}] pts",
        ],
    ]


def _repeats(values: tuple[float, ...], spec: str, scale: float = 1.0) -> str:
    return " / ".join(fmt(v * scale, spec) for v in values)


def method_rows(s: RepeatedSubset) -> list[list[str]]:
    return [
        [
            label(m.name),
            KIND_LABELS[m.kind],
            f"{fmt(m.apgr)} {ci(m.apgr_ci)}".strip(),
            _repeats(m.apgr_repeats, ".3f"),
            f"{pct(m.saving)} {ci(m.saving_ci, '.1f', 100)}".strip(),
            _repeats(m.saving_repeats, ".1f", 100),
            signed(m.router_minus_apgr),
            signed(m.router_minus_saving, "+.1f", 100),
        ]
        for m in s.methods
    ]


def method_head(s: RepeatedSubset, share: float) -> list[str]:
    top = s.tiers[-1] if s.tiers else "top"
    return ["method", "kind", "APGR mean [95% CI]", "APGR per repeat",
            f"saving at {share:.0%} of always-{top} [95% CI]", "saving per repeat (%)",
            "router − method: APGR", "router − method: saving (pts)"]  # fmt: skip


def _title(s: RepeatedSubset) -> str:
    what = {"pooled": "all routed turns", "complete": "turns labeled for every tier"}
    return f"{what.get(s.kind, s.name)} (n={s.n}; tiers {'/'.join(s.tiers)})"


def subset_rows(subsets: tuple[RepeatedSubset, ...]) -> list[list[str]]:
    rows = []
    for s in subsets:
        r, o = s.method("router"), s.method("oracle")
        pa = s.method(s.best_peer_apgr) if s.best_peer_apgr else None
        ps = s.method(s.best_peer_saving) if s.best_peer_saving else None
        rows.append([
            _title(s),
            fmt(r.apgr) if r else "–",
            f"{label(pa.name)} {fmt(pa.apgr)}" if pa else "–",
            signed(pa.router_minus_apgr) if pa else "–",
            pct(r.saving) if r else "–",
            f"{label(ps.name)} {pct(ps.saving)}" if ps else "–",
            signed(ps.router_minus_saving, "+.1f", 100) if ps else "–",
            pct(o.saving) if o else "–",
            _closed(s.gap_closed),
        ])  # fmt: skip
    return rows


def _closed(iv: Interval | None) -> str:
    """The share of the saving gap closed, with its interval when there is one."""
    if iv is None:
        return "–"
    if iv.low == iv.high:
        return pct(iv.estimate)
    return f"{pct(iv.estimate)} [{100 * iv.low:.0f}%, {100 * iv.high:.0f}%]"


def peer_matrix(
    subsets: tuple[RepeatedSubset, ...], peers: tuple[str, ...], saving: bool
) -> list[list[str]]:
    rows = []
    for s in subsets:
        row = [_title(s)]
        for p in peers:
            m = s.method(p)
            iv = None if m is None else m.router_minus_saving if saving else m.router_minus_apgr
            row.append(signed(iv, "+.1f", 100) if saving else signed(iv))
        rows.append(row)
    return rows


def render_markdown(run: CvRun, subsets: tuple[RepeatedSubset, ...]) -> str:
    pooled = subsets[0]
    t = targets(pooled)
    peers = run.peers
    lines = [
        f"Repeated CV: {run.folds} folds × {run.repeats} repeats (seed {run.seed}) on "
        f"{run.n_turns} turns of {', '.join(run.logs)} (data hash {run.data_hash[:12]}), "
        f"{run.n_routed} routed; {run.created_at}, {run.seconds / 60:.1f} min.",
        "",
        f"Each fold: the router ({run.head}) and every peer fitted on the other folds with the "
        f"same features ({run.embedder} embedding + structure + hand features), routed by the "
        f"same {run.policy} policy (each fold's reference turn cost, from its training rows) "
        "with the same believed costs (input + the router's answer-length forecast), priced "
        "with the recorded answer lengths. Numbers are means over repeats of each repeat's "
        "pooled out-of-fold routing; intervals are 95% paired bootstrap intervals "
        f"({run.n_boot} resamples of the turns, the same for every method and repeat); "
        "* = the interval excludes 0.",
        "",
        "Issue 8 targets (all routed turns):",
        "",
    ]
    if t is None:
        lines.append("No targets: they need the router, a peer, the oracle and the bootstrap.")
    else:
        lines.append(md_table(["target", "result", "numbers"], target_rows(t)))
    lines += [
        "",
        f"All methods, {_title(pooled)}:",
        "",
        md_table(method_head(pooled, run.share), method_rows(pooled)),
        "",
        "Per subset (the best peer of each subset by its mean):",
        "",
        md_table(
            [
                "subset",
                "router APGR",
                "best peer (APGR)",
                "router − best peer APGR",
                "router saving",
                "best peer (saving)",
                "router − best peer saving (pts)",
                "oracle saving",
                "gap closed",
            ],
            subset_rows(subsets),
        ),  # fmt: skip
    ]
    lines += default_point_lines(run)
    if peers:
        head = ["subset", *[label(p) for p in peers]]
        lines += [
            "",
            "Router − each peer, APGR:",
            "",
            md_table(head, peer_matrix(subsets, peers, saving=False)),
            "",
            "Router − each peer, saving at 95% (pts):",
            "",
            md_table(head, peer_matrix(subsets, peers, saving=True)),
        ]
    return "\n".join(lines) + "\n"


def cv_summary(run: CvRun, subsets: tuple[RepeatedSubset, ...]) -> dict[str, object]:
    """Every number, JSON-ready (NaN as None)."""
    return {
        "run": jsonable(run),
        "targets": jsonable(targets(subsets[0])),
        "subsets": jsonable(subsets),
    }


def write_cv(run: CvRun, subsets: tuple[RepeatedSubset, ...], out_dir: Path) -> CvFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = CvFiles(out_dir / "cv.json", out_dir / "cv.md")
    text = json.dumps(cv_summary(run, subsets), indent=1, allow_nan=False)
    files.json.write_text(text + "\n", encoding="utf-8")
    files.markdown.write_text(render_markdown(run, subsets), encoding="utf-8")
    return files
