"""`tierwise export-log`: call-log rows -> JSONL turns for `tierwise label`.

Each line is a labeled-log record without scores (training/data/logs.py shape; labeling/sources.py
reads it):

    {"id": "calllog:<call_id>", "request": {...}, "source": "calllog",
     "calllog": {"ts": ..., "endpoint": ..., "tier": ..., "model": ..., "model_version": ...,
                 "probabilities": {...}, "fallback": false, "request_hash": ...,
                 "session_id": ..., "message_id": ..., "usage": {...} or null}}

`request` is the logged RouteRequest minus tierwise knobs and per-call transport fields, so a
turn labels the same however it was routed. Gateway calls whose reply was plain text that ended
by itself also carry `"answers": {"<tier>": {"text": ..., "model": ...}}`, which the labeler
grades instead of generating that tier's answer again. Redacted rows (no request text) cannot be labeled
and are counted, not written; repeated turns (same request_hash) are written once by default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from router.errors import RouterError
from router.http.calllog.stores import open_store

# Not part of the turn: routing knobs and per-call fields (stream, user metadata).
DROP_FIELDS = frozenset(
    {
        "threshold",
        "quality_target",
        "min_tier",
        "max_tier",
        "session_id",
        "run_id",
        "budget_usd",
        "previous_model",
        "previous_usage",
        "stream",
        "metadata",
    }
)
ROUTING_FIELDS = ("ts", "endpoint", "tier", "model", "model_version", "probabilities", "fallback")
REPLAY_FIELDS = ("session_id", "message_id")
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def _usage(row: dict[str, Any]) -> dict[str, int] | None:
    """The gateway's recorded usage block, or None (a /route call, or no upstream answer)."""
    if row.get("input_tokens") is None:
        return None
    return {k: int(row.get(k) or 0) for k in USAGE_FIELDS}


@dataclass
class ExportReport:
    written: int = 0
    redacted: int = 0
    duplicates: int = 0
    answers: int = 0  # turns written with the routed tier's answer from the gateway

    def summary(self) -> str:
        return (
            f"{self.written} turns written ({self.answers} with a gateway answer), "
            f"{self.redacted} redacted rows skipped, {self.duplicates} repeated turns skipped"
        )


def export_rows(rows: Iterable[dict[str, Any]], out: Path, *, dedupe: bool = True) -> ExportReport:
    """Write JSONL atomically (temp file + rename); returns what was written and skipped."""
    report = ExportReport()
    seen: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            if row["request"] is None:
                report.redacted += 1
                continue
            if dedupe and row["request_hash"] in seen:
                report.duplicates += 1
                continue
            seen.add(row["request_hash"])
            meta = {k: row[k] for k in ROUTING_FIELDS} | {"request_hash": row["request_hash"]}
            # For `tierwise replay`: which conversation, and what the call really used.
            meta |= {k: row.get(k) for k in REPLAY_FIELDS} | {"usage": _usage(row)}
            record: dict[str, Any] = {
                "id": f"calllog:{row['call_id']}",
                "request": {k: v for k, v in row["request"].items() if k not in DROP_FIELDS},
                "source": "calllog",
                "calllog": meta,
            }
            if row.get("answer") and row["tier"] and row["upstream_status"] == 200:
                # The gateway already has this tier's answer: labeling need not generate it.
                record["answers"] = {row["tier"]: {"text": row["answer"], "model": row["model"]}}
                report.answers += 1
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            report.written += 1
    tmp.replace(out)
    return report


@click.command("export-log")
@click.option(
    "--db",
    required=True,
    help="The call log: a SQLite file, sqlite:///path or postgresql://... (ROUTER_CALLLOG_URL).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file to write (replaced atomically).",
)
@click.option("--since", default=None, help="Only calls at or after this ISO-8601 time (UTC).")
@click.option("--dedupe/--no-dedupe", default=True, show_default=True, help="Write each turn once.")
def export_log(db: str, out: Path, since: str | None, dedupe: bool) -> None:
    """Export logged calls as turns for `tierwise label`."""
    since_dt = None
    if since is not None:
        try:
            since_dt = datetime.fromisoformat(since)
        except ValueError:
            msg = f"{since!r} is not an ISO-8601 time"
            raise click.BadParameter(msg, param_hint="--since") from None
        if since_dt.tzinfo is None:
            since_dt = since_dt.replace(tzinfo=UTC)
    if "://" not in db and not Path(db).is_file():
        raise click.BadParameter(f"call log {db!r} does not exist", param_hint="--db")
    try:
        store = open_store(db)
        try:
            report = export_rows(store.rows(since_dt), out, dedupe=dedupe)
        finally:
            store.close()
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out}: {report.summary()}")
