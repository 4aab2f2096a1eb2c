"""Call-log migrations: a new log gets every migration once; a log written by the code before
migrations existed (its exact DDL below) opens, keeps its rows, records the migrations and takes
new rows, in SQLite and in PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.http.calllog.migrations import COLUMNS, MIGRATIONS, applied, migrate
from router.http.calllog.record import CallRecord
from router.http.calllog.stores import CallStore, PostgresStore, SqliteStore
from router.http.calllog.writer import record_to_row

ALL = [m.__name__ for m in MIGRATIONS]
# What the call log executed before migrations existed (tierwise up to 9f706d1): every column,
# message_id and answer included, created in one statement, no migrations table.
OLD_COLUMNS = (
    "call_id {text} NOT NULL UNIQUE, ts {ts} NOT NULL, endpoint {text} NOT NULL, "
    "request_hash {text} NOT NULL, request {json}, redacted {bool} NOT NULL, "
    "routed {bool} NOT NULL, tier {text}, model {text}, fallback {bool} NOT NULL, reason {text}, "
    "threshold {real}, probabilities {json}, model_version {text}, estimated_cost_usd {real}, "
    "route_latency_ms {real}, total_latency_ms {real}, upstream_status INTEGER, "
    "upstream_error {text}, stream {bool} NOT NULL, input_tokens INTEGER, output_tokens INTEGER, "
    "cache_creation_input_tokens INTEGER, cache_read_input_tokens INTEGER, cost_usd {real}, "
    "message_id {text}, answer {text}, session_id {text}"
)
OLD_SQLITE = "CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, {})".format(
    OLD_COLUMNS.format(text="TEXT", ts="TEXT", json="TEXT", bool="INTEGER", real="REAL")
)
OLD_POSTGRES = "CREATE TABLE IF NOT EXISTS calls (id BIGSERIAL PRIMARY KEY, {})".format(
    OLD_COLUMNS.format(
        text="TEXT", ts="TIMESTAMPTZ", json="JSONB", bool="BOOLEAN", real="DOUBLE PRECISION"
    )
)
OLD_ROW = (
    "INSERT INTO calls (call_id, ts, endpoint, request_hash, redacted, routed, fallback, "
    "stream, tier, answer) VALUES ('old-1', '2026-01-01T00:00:00.000000+00:00', 'gateway', "
    "'h', {false}, {true}, {false}, {false}, 'opus', 'an old answer')"
)


def routed(service: RoutingService, prompt: str) -> CallRecord:
    request = RouteRequest(prompt=prompt)
    return CallRecord.routed(request, service.route(request))


def check_adopted(store: CallStore, service: RoutingService) -> None:
    """The old row reads back whole, and a new row goes in beside it."""
    store.insert([record_to_row(routed(service, "hello"), redact=False)])
    old, new = list(store.rows())
    assert old["call_id"] == "old-1" and old["answer"] == "an old answer"
    assert old["tier"] == "opus" and old["request"] is None
    assert new["request"] == {"prompt": "hello"} and new["message_id"] is None


def test_a_new_log_runs_every_migration_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "calls.db")
    assert applied(store) == ALL
    assert store.columns("calls") == {"id", *(c.name for c in COLUMNS)}
    assert migrate(store) == []  # nothing left to do
    store.close()
    reopened = SqliteStore(tmp_path / "calls.db")
    assert applied(reopened) == ALL
    reopened.close()


def test_a_sqlite_log_from_before_migrations_opens_and_migrates(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.execute(OLD_SQLITE)
    old.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")
    old.execute(OLD_ROW.format(true=1, false=0))
    old.commit()
    old.close()
    store = SqliteStore(db)
    assert applied(store) == ALL
    check_adopted(store, make_service())
    store.close()


def test_a_postgres_log_from_before_migrations_opens_and_migrates(
    postgres_url: str, make_service: Callable[..., RoutingService]
) -> None:
    import psycopg

    name = f"legacy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as old:
        old.execute(OLD_POSTGRES)
        old.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")
        old.execute(OLD_ROW.format(true="TRUE", false="FALSE"))
    store = PostgresStore(url)
    assert applied(store) == ALL
    check_adopted(store, make_service())
    store.close()
    again = PostgresStore(url)  # a second replica opening the same log migrates nothing
    assert migrate(again) == [] and applied(again) == ALL
    again.close()


@pytest.mark.parametrize("missing", ["message_id", "answer"])
def test_each_migration_adds_only_what_it_names(tmp_path: Path, missing: str) -> None:
    """A log written before message_id (or answer) existed gains it, nullable."""
    db = tmp_path / "older.db"
    conn = sqlite3.connect(db)
    columns = OLD_COLUMNS.format(text="TEXT", ts="TEXT", json="TEXT", bool="INTEGER", real="REAL")
    kept = ", ".join(c for c in columns.split(", ") if not c.startswith(f"{missing} "))
    conn.execute(f"CREATE TABLE calls (id INTEGER PRIMARY KEY, {kept})")
    conn.commit()
    conn.close()
    store = SqliteStore(db)
    info: dict[str, Any] = {row[1]: row for row in store.execute("PRAGMA table_info(calls)")}
    assert missing in info and info[missing][3] == 0  # notnull = 0
    store.close()
