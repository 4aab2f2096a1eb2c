"""Write the replay report like the eval report: one self-contained HTML page (inline CSS and
PNGs), a JSON file with every number (NaN as null) and a Markdown summary."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eval.replay import plots
from eval.replay.result import ReplayResult
from eval.replay.strategies import SessionReplay
from eval.replay.summary import TOP, GroupSummary, naive_routing
from eval.replay.tables import (
    ASSUMPTIONS,
    DIFFICULTY_HEAD,
    GROUP_HEAD,
    PRICING_HEAD,
    QUALITY_NOTE,
    SESSION_HEAD,
    TARGET_HEAD,
    difficulty_rows,
    difficulty_sentence,
    group_rows,
    pricing_rows,
    session_rows,
    target_note,
    target_rows,
)
from eval.replay.verdict import verdict, why_lines
from eval.report import CSS, ReportFiles, html_img, html_table
from eval.summary import jsonable, md_table
from router.settings import Settings

# Cumulative-dollar panels: the long sessions, else the sessions with the most calls.
MAX_PANELS = 6


def _p(text: str, cls: str = "") -> str:
    attr = f" class='{cls}'" if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def featured(result: ReplayResult) -> list[SessionReplay]:
    long = [r for r in result.replays if r.session.is_long]
    chosen = long or sorted(result.replays, key=lambda r: -r.session.n_calls)
    return chosen[:MAX_PANELS]


def _policy_fact(result: ReplayResult) -> str:
    if not result.replays:
        return "–"
    first = result.replays[0]
    if first.policy == "threshold":
        return f"threshold {first.threshold:.3f}"
    return (
        f"{first.policy}: an inadequate answer valued at ${first.knob:.4f} x the turn's size "
        "(its dearest tier over the bundle's typical turn, at least 1); a loop head weighs the "
        "mean P(adequate) of its session's loop turns so far and itself"
    )


def facts(result: ReplayResult, settings: Settings) -> list[tuple[str, str]]:
    loaded = result.loaded
    estimated = sum(1 for r in result.replays if not r.session.usage_recorded)
    return [
        ("inputs", ", ".join(str(p) for p in result.config.paths)),
        ("files read", str(len(loaded.files))),
        ("sessions", f"{len(result.replays)} ({estimated} with tokens estimated from text)"),
        ("API calls", str(result.calls)),
        ("skipped", f"{len(loaded.skipped)} files or lines (listed in replay.json)"),
        ("tool schemas", ", ".join(loaded.tools_files) or "none"),
        ("routing bundle", f"{result.bundle} ({result.bundle_dir})"),
        ("policy", _policy_fact(result)),
        ("replay speed", f"{result.calls_per_s:,.0f} calls/s ({result.seconds:.1f} s)"),
    ]


def render_html(result: ReplayResult, settings: Settings, created: str) -> str:
    parts = [
        "<h1>tierwise replay: what routing would have cost</h1>",
        f"<div class='meta'>{html.escape(created)} · bundle {html.escape(result.bundle)} · "
        f"{result.calls} calls in {len(result.replays)} sessions</div>",
        *(f"<div class='verdict'>{html.escape(line)}</div>" for line in verdict(result)),
        _p(QUALITY_NOTE, "meta"),
    ]
    if result.target is not None:
        t = result.target
        why = "".join(
            f"<li>{html.escape(line)}</li>" for line in why_lines(t, settings, result.replays)
        )
        parts += [
            "<h2>Target: long Claude Code sessions</h2>",
            html_table(TARGET_HEAD, target_rows(t)),
            _p(target_note(t), "meta"),
            f"<h2>Why</h2><ul class='warn'>{why}</ul>",
        ]
    for group in result.groups:
        parts += [
            f"<h2>Totals: {html.escape(group.title)} ({group.sessions} sessions, "
            f"{group.calls} calls)</h2>",
            html_img(plots.totals(group), f"totals {group.name}"),
            html_table(GROUP_HEAD, group_rows(group)),
        ]
    panels = featured(result)
    if panels:
        parts += [
            "<h2>Cumulative dollars over a session's calls</h2>",
            html_img(plots.cumulative_dollars(panels), "cumulative dollars"),
            "<p class='meta'>Dots: calls where per-turn routing (orange) or tierwise (red) "
            "switched models.</p>",
        ]
    if result.difficulty is not None:
        d = result.difficulty
        parts += [
            "<h2>tau-bench: predicted difficulty, resolved vs unresolved</h2>",
            _p(difficulty_sentence(d)),
            "<div class='row'>",
            html_img(plots.difficulty_by_outcome(d), "difficulty by outcome"),
            html_table(DIFFICULTY_HEAD, difficulty_rows(d)),
            "</div>",
        ]
    rows = session_rows(result.replays)
    parts += [
        "<h2>Per session</h2>",
        f"<details{' open' if len(rows) <= 30 else ''}><summary>{len(rows)} sessions</summary>"
        f"{html_table(SESSION_HEAD, rows)}</details>",
        "<h2>Prices and cache rules</h2>",
        html_table(PRICING_HEAD, pricing_rows(settings, result)),
        "<h2>Assumptions</h2><ul>"
        + "".join(f"<li>{html.escape(a)}</li>" for a in ASSUMPTIONS)
        + "</ul>",
        "<h2>Data</h2><div class='kv'>"
        + "".join(
            f"<div><span>{html.escape(k)}</span><b>{html.escape(v)}</b></div>"
            for k, v in facts(result, settings)
        )
        + "</div>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tierwise replay</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>"
    )


def render_markdown(result: ReplayResult, settings: Settings, created: str) -> str:
    out = ["# tierwise replay: what routing would have cost", ""]
    out += [f"{created} · bundle {result.bundle} · {result.calls} calls in "
            f"{len(result.replays)} sessions", ""]  # fmt: skip
    out += [*(line + "\n" for line in verdict(result)), QUALITY_NOTE, ""]
    if result.target is not None:
        t = result.target
        out += ["## Target: long Claude Code sessions", "", md_table(TARGET_HEAD, target_rows(t))]
        out += ["", target_note(t)]
        out += ["", "## Why", "", *(f"- {w}" for w in why_lines(t, settings, result.replays))]
    for group in result.groups:
        out += ["", f"## Totals: {group.title} ({group.sessions} sessions, {group.calls} calls)"]
        out += ["", md_table(GROUP_HEAD, group_rows(group))]
    if result.difficulty is not None:
        d = result.difficulty
        out += ["", "## tau-bench: predicted difficulty, resolved vs unresolved", ""]
        out += [difficulty_sentence(d), "", md_table(DIFFICULTY_HEAD, difficulty_rows(d))]
    claude = [r for r in result.replays if r.session.source != "tau_bench"]
    if claude:
        out += ["", "## Per session (tau-bench sessions: see replay.json)", ""]
        out += [md_table(SESSION_HEAD, session_rows(claude))]
    out += [
        "",
        "## Prices and cache rules",
        "",
        md_table(PRICING_HEAD, pricing_rows(settings, result)),
    ]
    out += ["", "## Assumptions", "", *(f"- {a}" for a in ASSUMPTIONS)]
    out += ["", "## Data", "", *(f"- {k}: {v}" for k, v in facts(result, settings))]
    return "\n".join(out) + "\n"


def _session_json(r: SessionReplay) -> dict[str, Any]:
    s = r.session
    return {
        "session_id": s.session_id,
        "source": s.source,
        "kind": s.kind,
        "path": str(s.path),
        "calls": s.n_calls,
        "usage_recorded": s.usage_recorded,
        "ttl_s": s.ttl_s,
        "reward": s.reward,
        "loop_turns": int(r.loop_turn.sum()),
        "thinking_turns": int(r.thinking.sum()),
        "per_turn_free_usd": r.per_turn_free_usd,
        "headroom": r.headroom,
        "strategies": {
            name: {
                "usd": run.total_usd,
                "switches": run.switches,
                "switch_usd": float(run.switch_usd.sum()),
                "quality_vs_top": float(np.nanmean(run.quality) / np.nanmean(r.runs[TOP].quality)),
                "per_call": {
                    "model": list(run.trace.models),
                    "usd": [round(float(x), 6) for x in run.usd],
                    "cache_read": run.trace.read.tolist(),
                    "cache_write": run.trace.write.tolist(),
                    "uncached": run.trace.uncached.tolist(),
                },
            }
            for name, run in r.runs.items()
        },
        "probabilities": np.round(r.probs, 4).tolist(),
        "tierwise_switch_reasons": [
            r.tierwise_reasons[k] for k in np.flatnonzero(r.runs["tierwise"].trace.switched)
        ],
    }


def _naive(group: GroupSummary) -> dict[str, Any]:
    n = naive_routing(group)
    fields: dict[str, Any] = jsonable(n)
    return fields | {"promised_usd": n.promised, "lost_usd": n.lost, "eaten": n.eaten}


def render_json(result: ReplayResult, settings: Settings, created: str) -> str:
    headline = [g for g in result.groups if g.name in ("long", "claude_code")] or result.groups
    summary = {
        "created_at": created,
        "config": result.config.model_dump(mode="json"),
        "bundle": result.bundle,
        "verdict": verdict(result),
        "quality_note": QUALITY_NOTE,
        "naive_routing": {g.name: _naive(g) for g in headline},
        "groups": result.groups,
        "target": result.target,
        "why": why_lines(result.target, settings, result.replays) if result.target else [],
        "difficulty": result.difficulty,
        "speed": {
            "calls": result.calls,
            "seconds": result.seconds,
            "calls_per_s": result.calls_per_s,
        },
        "files": result.loaded.files,
        "skipped": result.loaded.skipped,
        "sessions": [_session_json(r) for r in result.replays],
    }
    return json.dumps(jsonable(summary), indent=1, allow_nan=False) + "\n"


def write_reports(result: ReplayResult, settings: Settings, out_dir: Path) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "replay.html", out_dir / "replay.json", out_dir / "replay.md")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    files.html.write_text(render_html(result, settings, created), encoding="utf-8")
    files.markdown.write_text(render_markdown(result, settings, created), encoding="utf-8")
    files.json.write_text(render_json(result, settings, created), encoding="utf-8")
    return files
