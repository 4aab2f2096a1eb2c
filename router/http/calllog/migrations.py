"""Numbered migrations of the call log's `calls` table, for SQLite and PostgreSQL (the way
simonw/llm's migrations.py does it).

migrate() applies, in order and in one transaction, every migration the database has not
recorded in `_tierwise_migrations`. A log written before migrations existed (its table grew by
adding whatever column was missing) is adopted by m001, which adds the columns it lacks. A schema
change is a new function at the end of this file; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgres"]


class Schema(Protocol):
    """The database a migration runs on; SqliteStore and PostgresStore implement it."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns ([] for DDL)."""
        ...

    def columns(self, table: str) -> set[str]: ...

    def transaction(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Column:
    name: str
    sqlite: str
    postgres: str

    def type(self, db: Schema) -> str:
        return self.sqlite if db.dialect == "sqlite" else self.postgres


Migration = Callable[[Schema], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


def add_column(db: Schema, table: str, column: Column) -> None:
    """Add `column` unless the table has it. Nullable whatever its type says: rows already in
    the table have no value for it."""
    if column.name in db.columns(table):
        return
    nullable = column.type(db).replace(" NOT NULL", "").replace(" UNIQUE", "")
    db.execute(f"ALTER TABLE {table} ADD COLUMN {column.name} {nullable}")


# The calls table of the first release; the order is the INSERT order.
CALLS_V1: tuple[Column, ...] = (
    Column("call_id", "TEXT NOT NULL UNIQUE", "TEXT NOT NULL UNIQUE"),
    Column("ts", "TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),  # when the call arrived, UTC
    Column("endpoint", "TEXT NOT NULL", "TEXT NOT NULL"),  # route | gateway
    Column("request_hash", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("request", "TEXT", "JSONB"),  # the RouteRequest as JSON; NULL when redacted
    Column("redacted", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    Column("routed", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    Column("tier", "TEXT", "TEXT"),
    Column("model", "TEXT", "TEXT"),
    Column("fallback", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    Column("reason", "TEXT", "TEXT"),
    Column("threshold", "REAL", "DOUBLE PRECISION"),
    Column("probabilities", "TEXT", "JSONB"),  # {"haiku": p, ...}
    Column("model_version", "TEXT", "TEXT"),
    Column("estimated_cost_usd", "REAL", "DOUBLE PRECISION"),  # routing-time input estimate
    Column("route_latency_ms", "REAL", "DOUBLE PRECISION"),
    Column("total_latency_ms", "REAL", "DOUBLE PRECISION"),  # gateway: until the last byte
    Column("upstream_status", "INTEGER", "INTEGER"),
    Column("upstream_error", "TEXT", "TEXT"),
    Column("stream", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    Column("input_tokens", "INTEGER", "INTEGER"),
    Column("output_tokens", "INTEGER", "INTEGER"),
    Column("cache_creation_input_tokens", "INTEGER", "INTEGER"),
    Column("cache_read_input_tokens", "INTEGER", "INTEGER"),
    Column("cost_usd", "REAL", "DOUBLE PRECISION"),  # gateway: from upstream usage at list prices
    Column("session_id", "TEXT", "TEXT"),
)
MESSAGE_ID = Column("message_id", "TEXT", "TEXT")  # gateway: the upstream's msg_... id
# gateway: the reply's text (text-only, end_turn); NULL if redacted
ANSWER = Column("answer", "TEXT", "TEXT")


@migration
def m001_calls(db: Schema) -> None:
    primary = "id INTEGER PRIMARY KEY" if db.dialect == "sqlite" else "id BIGSERIAL PRIMARY KEY"
    columns = ", ".join(f"{c.name} {c.type(db)}" for c in CALLS_V1)
    db.execute(f"CREATE TABLE IF NOT EXISTS calls ({primary}, {columns})")
    for column in CALLS_V1:  # a log from before migrations may lack some
        add_column(db, "calls", column)
    db.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")


@migration
def m002_message_id(db: Schema) -> None:
    add_column(db, "calls", MESSAGE_ID)


@migration
def m003_answer(db: Schema) -> None:
    add_column(db, "calls", ANSWER)


# Every column the migrations create: what a row holds (router.http.calllog.writer.record_to_row).
COLUMNS: tuple[Column, ...] = (*CALLS_V1, MESSAGE_ID, ANSWER)
TABLE = "_tierwise_migrations"
# PostgreSQL: replicas opening one log at once take turns (a transaction-scoped advisory lock).
_PG_LOCK_KEY = 0x7469657277697365  # "tierwise"


def applied(db: Schema) -> list[str]:
    """Names of the migrations recorded in the database, in the order they ran."""
    if TABLE not in _tables(db):
        return []
    return [str(row[0]) for row in db.execute(f"SELECT name FROM {TABLE} ORDER BY name")]


def _tables(db: Schema) -> set[str]:
    if db.dialect == "sqlite":
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows}


def migrate(db: Schema) -> list[str]:
    """Apply the migrations the database lacks, in one transaction; their names, in order."""
    mark = "?" if db.dialect == "sqlite" else "%s"
    with db.transaction():
        if db.dialect == "postgres":
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
        db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
        done = set(applied(db))
        ran = []
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                continue
            fn(db)
            moment = datetime.now(UTC).isoformat(timespec="microseconds")
            db.execute(f"INSERT INTO {TABLE} VALUES ({mark}, {mark})", (fn.__name__, moment))
            ran.append(fn.__name__)
    return ran
