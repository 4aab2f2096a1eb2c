"""Call-log storage: the `calls` table in SQLite (WAL, synchronous=FULL) or PostgreSQL.

Opening a store migrates its table (router.http.calllog.migrations). insert() is one transaction
and is durable when it returns; router.http.calllog.writer batches into it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from router.errors import RouterError
from router.http.calllog.migrations import COLUMNS, Dialect, migrate
from router.http.calllog.record import json_bytes

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
JSON_COLUMNS = frozenset({"request", "probabilities"})
BOOL_COLUMNS = frozenset({"redacted", "routed", "fallback", "stream"})


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
            migrate(self)
        except sqlite3.Error as exc:
            raise CallLogError(f"call log {str(path)!r} cannot be opened: {exc}") from exc

    # ---- Schema (migrations) ------------------------------------------------------------------
    dialect: Dialect = "sqlite"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """IMMEDIATE: take the write lock at once, so two writers never deadlock on upgrade."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---- CallStore ---------------------------------------------------------------------------
    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        sql = (
            f"INSERT INTO calls ({', '.join(COLUMN_NAMES)}) "
            f"VALUES ({', '.join('?' for _ in COLUMN_NAMES)})"
        )
        values = [tuple(_sqlite_value(name, row[name]) for name in COLUMN_NAMES) for row in rows]
        with self.transaction():
            self._conn.executemany(sql, values)

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
        return json_bytes(value).decode()
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
        migrate(self)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            # The message may echo the URL's host but psycopg never echoes the password.
            raise CallLogError(f"call log PostgreSQL connection failed: {exc}") from exc

    # ---- Schema (migrations) ------------------------------------------------------------------
    dialect: Dialect = "postgres"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

    def columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {str(r[0]) for r in rows}

    def transaction(self) -> Any:
        return self._conn.transaction()

    # ---- CallStore ---------------------------------------------------------------------------
    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        from psycopg.types.json import Jsonb

        sql = (
            f"INSERT INTO calls ({', '.join(COLUMN_NAMES)}) "
            f"VALUES ({', '.join('%s' for _ in COLUMN_NAMES)})"
        )
        values = [
            tuple(
                Jsonb(row[n], dumps=json_bytes)
                if n in JSON_COLUMNS and row[n] is not None
                else row[n]
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
