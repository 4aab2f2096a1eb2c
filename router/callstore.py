"""Call-log storage: the `calls` table in SQLite (WAL, synchronous=FULL) or PostgreSQL.

insert() is one transaction and is durable when it returns; router/calllog.py batches into it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from router.errors import RouterError

# (name, SQLite type, PostgreSQL type); the order is the INSERT order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("call_id", "TEXT NOT NULL UNIQUE", "TEXT NOT NULL UNIQUE"),
    ("ts", "TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),  # when the call arrived, UTC
    ("endpoint", "TEXT NOT NULL", "TEXT NOT NULL"),  # route | gateway
    ("request_hash", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("request", "TEXT", "JSONB"),  # the RouteRequest as JSON; NULL when redacted
    ("redacted", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("routed", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("tier", "TEXT", "TEXT"),
    ("model", "TEXT", "TEXT"),
    ("fallback", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("reason", "TEXT", "TEXT"),
    ("threshold", "REAL", "DOUBLE PRECISION"),
    ("probabilities", "TEXT", "JSONB"),  # {"haiku": p, ...}
    ("model_version", "TEXT", "TEXT"),
    ("estimated_cost_usd", "REAL", "DOUBLE PRECISION"),  # routing-time input estimate
    ("route_latency_ms", "REAL", "DOUBLE PRECISION"),
    ("total_latency_ms", "REAL", "DOUBLE PRECISION"),  # gateway: until the last byte
    ("upstream_status", "INTEGER", "INTEGER"),
    ("upstream_error", "TEXT", "TEXT"),
    ("stream", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("input_tokens", "INTEGER", "INTEGER"),
    ("output_tokens", "INTEGER", "INTEGER"),
    ("cache_creation_input_tokens", "INTEGER", "INTEGER"),
    ("cache_read_input_tokens", "INTEGER", "INTEGER"),
    ("cost_usd", "REAL", "DOUBLE PRECISION"),  # gateway: from upstream usage at list prices
    ("message_id", "TEXT", "TEXT"),  # gateway: the upstream's msg_... id
    ("answer", "TEXT", "TEXT"),  # gateway: the reply's text (text-only, end_turn); NULL if redacted
    ("session_id", "TEXT", "TEXT"),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)
JSON_COLUMNS = frozenset({"request", "probabilities"})
BOOL_COLUMNS = frozenset({"redacted", "routed", "fallback", "stream"})


def _added(column_type: str) -> str:
    """The type for a column added to an existing table: nullable, since old rows lack it."""
    return column_type.replace(" NOT NULL", "").replace(" UNIQUE", "")


class CallLogError(RouterError):
    """The call log cannot be opened or written."""

    status_code = 500


class CallStore(Protocol):
    """A backend. insert() is one transaction and is durable when it returns."""

    def insert(self, rows: Sequence[dict[str, Any]]) -> None: ...

    def rows(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Rows in insertion order (calls at or after `since`), JSON columns decoded."""
        ...

    def close(self) -> None: ...


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode; transactions are explicit in insert().
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 5000")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise CallLogError(f"call log {str(path)!r}: journal_mode is {mode!r}, not 'wal'")
            # FULL: the WAL is fsynced at every commit, so a commit survives power loss too.
            self._conn.execute("PRAGMA synchronous = FULL")
            cols = ", ".join(f"{name} {sqlite_type}" for name, sqlite_type, _ in COLUMNS)
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, {cols})")
            existing = {row[1] for row in self._conn.execute("PRAGMA table_info(calls)")}
            for name, sqlite_type, _ in COLUMNS:
                if name not in existing:  # a log written by an older tierwise
                    self._conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {_added(sqlite_type)}")
            self._conn.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")
        except sqlite3.Error as exc:
            raise CallLogError(f"call log {str(path)!r} cannot be opened: {exc}") from exc

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        sql = (
            f"INSERT INTO calls ({', '.join(COLUMN_NAMES)}) "
            f"VALUES ({', '.join('?' for _ in COLUMN_NAMES)})"
        )
        values = [tuple(_sqlite_value(name, row[name]) for name in COLUMN_NAMES) for row in rows]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(sql, values)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def rows(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        select = f"SELECT {', '.join(COLUMN_NAMES)} FROM calls"
        if since is None:
            cursor = self._conn.execute(f"{select} ORDER BY id")
        else:  # ts is fixed-width UTC ISO-8601 text, so text order is time order
            cursor = self._conn.execute(f"{select} WHERE ts >= ? ORDER BY id", (_ts_text(since),))
        for values in cursor:
            row = dict(zip(COLUMN_NAMES, values, strict=True))
            for name in JSON_COLUMNS:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
            for name in BOOL_COLUMNS:
                row[name] = bool(row[name])
            yield row

    def close(self) -> None:
        self._conn.close()


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in JSON_COLUMNS:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, datetime):
        return _ts_text(value)
    return value


def _ts_text(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 (microseconds always present), so it sorts as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class PostgresStore:
    """Same table in PostgreSQL (psycopg 3, `pip install tierwise[postgres]`)."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise CallLogError(
                "ROUTER_CALLLOG_URL is a postgresql:// URL but psycopg is not installed; "
                "install tierwise[postgres]"
            ) from exc
        self._psycopg = psycopg
        self._url = url
        self._conn = self._connect()
        cols = ", ".join(f"{name} {pg_type}" for name, _, pg_type in COLUMNS)
        with self._conn.transaction():
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS calls (id BIGSERIAL PRIMARY KEY, {cols})"
            )
            for name, _, pg_type in COLUMNS:  # a log written by an older tierwise
                self._conn.execute(
                    f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS {name} {_added(pg_type)}"
                )
            self._conn.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            # The message may echo the URL's host but psycopg never echoes the password.
            raise CallLogError(f"call log PostgreSQL connection failed: {exc}") from exc

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        from psycopg.types.json import Jsonb

        sql = (
            f"INSERT INTO calls ({', '.join(COLUMN_NAMES)}) "
            f"VALUES ({', '.join('%s' for _ in COLUMN_NAMES)})"
        )
        values = [
            tuple(
                Jsonb(row[n]) if n in JSON_COLUMNS and row[n] is not None else row[n]
                for n in COLUMN_NAMES
            )
            for row in rows
        ]
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(sql, values)

    def rows(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        # A server-side cursor (needs a transaction): the log can be bigger than memory.
        with self._conn.transaction(), self._conn.cursor(name="tierwise_calllog_rows") as cur:
            where, params = ("WHERE ts >= %s", (since,)) if since is not None else ("", ())
            cur.execute(f"SELECT {', '.join(COLUMN_NAMES)} FROM calls {where} ORDER BY id", params)
            for values in cur:
                row = dict(zip(COLUMN_NAMES, values, strict=True))
                if isinstance(row["ts"], datetime):
                    row["ts"] = row["ts"].isoformat()
                yield row

    def close(self) -> None:
        self._conn.close()


def open_store(url: str) -> CallStore:
    """`postgresql://...` (or postgres://) -> PostgresStore; a path or sqlite:///path -> SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        url = url.removeprefix("sqlite:///")
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise CallLogError(
            f"ROUTER_CALLLOG_URL scheme {scheme!r} is not supported; "
            "expected a file path, sqlite:///path or postgresql://..."
        )
    return SqliteStore(Path(url))
