"""Write the report: one self-contained HTML page (inline CSS and PNGs, no scripts, no external
assets), a JSON summary (every number; NaN as null) and a Markdown summary."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

from eval import plots
from eval.quality import EvalMetrics
from eval.summary import (
    CALIBRATION_HEAD,
    CURVE_HEAD,
    DEFINITIONS,
    INTERVAL_HEAD,
    JUDGE_HEAD,
    QUALITY_HEAD,
    ReportContext,
    calibration_rows,
    category_rows,
    curve_rows,
    data_facts,
    fmt,
    headline_metrics,
    interval_rows,
    jsonable,
    judge_rows,
    point_head,
    point_rows,
    quality_rows,
    quality_vs_top,
    render_markdown,
    routing_category_head,
    routing_category_rows,
    verdict,
    vs_top,
    warnings,
)

CSS = """
body{font:14px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2433;
margin:0;background:#f6f7f9}main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;
border-bottom:1px solid #dde1e7}.meta{color:#5c6677;font-size:13px}
.verdict{font-size:15.5px;background:#fff;border-left:4px solid #d62828;padding:12px 16px;
margin:16px 0;border-radius:4px}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:6px;padding:10px 16px;min-width:140px;flex:1;
box-shadow:0 1px 2px #0001}.card b{display:block;font-size:24px}.card span{color:#5c6677;
font-size:12.5px}.warn{background:#fff6e0;border:1px solid #f0d58c;border-radius:4px;
padding:8px 14px 8px 30px}.warn li{margin:2px 0}table{border-collapse:collapse;background:#fff;
margin:8px 0;font-size:13px}th,td{padding:5px 10px;border-bottom:1px solid #e6e9ee;
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#eef1f5}
img.plot{max-width:100%;background:#fff;border-radius:6px;box-shadow:0 1px 2px #0001;margin:6px 0}
.row{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}.note{max-width:460px;
color:#3a4353}.kv{display:grid;grid-template-columns:repeat(3,1fr);gap:6px 22px;background:#fff;
padding:12px 16px;border-radius:6px;font-size:13px}.kv div{display:flex;
justify-content:space-between;gap:8px;border-bottom:1px dotted #dde1e7}.kv span{color:#5c6677}
details{margin:6px 0}summary{cursor:pointer;color:#345}dt{font-weight:600}dd{margin:0 0 6px 16px}
"""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    markdown: Path


def html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html_img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode()
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _div(*parts: str, cls: str = "") -> str:
    attr = f" class='{cls}'" if cls else ""
    return f"<div{attr}>{''.join(parts)}</div>"


def _cards(m: EvalMetrics, ctx: ReportContext) -> str:
    items = [
        (str(m.n), "eval turns"),
        (str(ctx.dataset.get("overlap_removed", 0)), "dropped: in training"),
    ]
    r = m.routing
    if r is not None:
        router, top = next(c for c in r.curves if c.name == "router"), r.tiers[-1].value
        items = [
            (fmt(vs_top(r.router, r), ".0%"), f"cost vs always-{top}"),
            (fmt(quality_vs_top(r.router, r), ".1%"), f"quality vs always-{top}"),
            (fmt(router.apgr, ".3f"), "APGR (random ≈ 0.5)"),
            (fmt(router.cpt80, ".0%"), "CPT(80%): cost share for 80% of the gap"),
            *items,
        ]
    cards = (f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
             for v, k in items)  # fmt: skip
    return _div(*cards, cls="cards")


def _routing_sections(m: EvalMetrics) -> list[str]:
    r = m.routing
    if r is None:
        return []
    c = r.confusion
    note = (
        "Rows: the cheapest tier that was adequate for the turn (none: no tier was). Left of "
        f"the diagonal the router under-routed ({c.under_rate:.1%} of turns: quality lost); right "
        f"of it, over-routed ({c.over_rate:.1%}: money spent for nothing). Turns no tier handles "
        "count as neither; the policy sends them to the top tier."
    )
    tiers = ", ".join(t.value for t in r.tiers)
    return [
        "<h2>Cost vs quality</h2>",
        html_img(plots.cost_quality(r), "cost-quality curve"),
        _div(
            _div(
                html_table(CURVE_HEAD, curve_rows(r)),
                html_table(INTERVAL_HEAD, interval_rows(m)) if m.apgr_intervals else "",
            ),
            _div(html_table(point_head(r), point_rows(r))),
            cls="row",
        ),
        f"<p class='meta'>{r.n} turns labeled for {tiers}. Quality is the mean score of the "
        "chosen tier; cost is list price for the turn's input plus the priced output tokens.</p>",
        "<details open><summary>the router per category, at its threshold</summary>"
        + html_table(routing_category_head(r), routing_category_rows(r))
        + "</details>",
        "<h2>Routed tier vs cheapest adequate tier</h2>",
        _div(
            html_img(plots.confusion(r), "confusion matrix"),
            f"<p class='note'>{note}</p>",
            cls="row",
        ),
    ]


def render_html(m: EvalMetrics, ctx: ReportContext) -> str:
    r = m.routing
    parts = [
        f"<h1>tierwise router evaluation — {html.escape(ctx.version)}</h1>",
        f"<div class='meta'>{html.escape(ctx.created_at)} · data: "
        f"{html.escape(', '.join(ctx.data))}</div>",
    ]
    if r is not None:
        parts.append(f"<div class='verdict'>{html.escape(verdict(r, m.apgr_intervals))}</div>")
    parts.append(_cards(m, ctx))
    if warns := warnings(m, ctx):
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warns)
        parts.append(f"<h2>Check first</h2><ul class='warn'>{items}</ul>")
    parts += _routing_sections(m)
    cats = html_table(["category", "n", *[t.value for t in m.tiers]], category_rows(m))
    parts += [
        "<h2>Per-tier quality</h2>",
        _div(
            _div(
                html_img(plots.quality_by_category(m.by_category, m.tiers), "quality by category")
            ),
            _div(
                html_table(QUALITY_HEAD, quality_rows(m)),
                "<details><summary>per category: mean score (adequate rate)</summary>"
                f"{cats}</details>",
            ),
            cls="row",
        ),
        "<h2>Calibration of P(adequate)</h2>",
        html_img(plots.calibration(m.calibration), "calibration"),
        html_table(CALIBRATION_HEAD, calibration_rows(m)),
    ]
    if m.judges:
        parts += ["<h2>Judge agreement</h2>", html_table(JUDGE_HEAD, judge_rows(m))]
    facts = (f"<div><span>{html.escape(k)}</span><b>{html.escape(v)}</b></div>"
             for k, v in data_facts(ctx))  # fmt: skip
    defs = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS)
    parts += ["<h2>Data and assumptions</h2>", _div(*facts, cls="kv")]
    parts += [f"<h2>Definitions</h2><dl>{defs}</dl>"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tierwise eval {html.escape(ctx.version)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>"
    )


def write_reports(m: EvalMetrics, ctx: ReportContext, out_dir: Path) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "report.html", out_dir / "summary.json", out_dir / "summary.md")
    files.html.write_text(render_html(m, ctx), encoding="utf-8")
    files.markdown.write_text(render_markdown(m, ctx), encoding="utf-8")
    summary = {
        "context": jsonable(ctx),
        "headline": jsonable(headline_metrics(m, ctx)),
        "metrics": jsonable(m),
    }
    files.json.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return files
