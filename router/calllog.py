"""Call log: every routed call (/route, /route/batch, /v1/messages) as one row in SQLite or
PostgreSQL, written by one background thread with group commit.

Durability contract: `CallLog.submit()` returns a Future that resolves only after the row's
transaction has committed (SQLite: WAL + synchronous=FULL, so the WAL is fsynced at commit;
PostgreSQL: a committed transaction). That resolution is the acknowledgement; `write()` blocks
until it. HTTP handlers do not wait for it, so routing latency never includes an fsync: a
kill -9 can lose the calls of the last group commit (milliseconds), never an acknowledged one,
and a graceful shutdown drains the queue. If the queue is full the record is dropped, counted
and logged, instead of blocking routing.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI

from router.calls import CallRecord
from router.errors import RouterError
from router.schemas import RouteDecision, RouteRequest

log = logging.getLogger(__name__)

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


def strip_media(value: Any) -> Any:
    """The request with base64 image/document data replaced by its length: routing reads only
    "[image]" from such blocks, and megabytes of base64 per row would swamp the log."""
    if isinstance(value, list):
        return [strip_media(v) for v in value]
    if not isinstance(value, dict):
        return value
    source = value.get("source")
    if (
        value.get("type") in ("image", "document")
        and isinstance(source, dict)
        and source.get("type") == "base64"
    ):
        data = source.get("data")
        omitted = f"<{len(data) if isinstance(data, str) else 0} base64 chars not logged>"
        return {**value, "source": {**source, "data": omitted}}
    return {k: strip_media(v) for k, v in value.items()}


def record_to_row(record: CallRecord, redact: bool) -> dict[str, Any]:
    """Column -> value; JSON columns hold Python objects, `ts` a datetime."""
    d, u, r = record.decision, record.usage, record.request
    return {
        "call_id": record.call_id,
        "ts": record.started_at,
        "endpoint": record.endpoint,
        "request_hash": record.request_hash,
        "request": None
        if redact or r is None
        else strip_media(r.model_dump(mode="json", exclude_none=True)),
        "redacted": redact,
        "routed": d is not None,
        "tier": d.tier.value if d else None,
        "model": record.model,
        "fallback": bool(d and d.fallback),
        "reason": d.reason if d else record.reason,
        "threshold": d.threshold if d else None,
        "probabilities": {t.value: p for t, p in d.probabilities.items()} if d else None,
        "model_version": d.model_version if d else None,
        "estimated_cost_usd": d.estimated_cost_usd if d else None,
        "route_latency_ms": d.latency_ms if d else None,
        "total_latency_ms": record.total_latency_ms,
        "upstream_status": record.upstream_status,
        "upstream_error": record.upstream_error,
        "stream": record.stream,
        "input_tokens": u.input_tokens if u else None,
        "output_tokens": u.output_tokens if u else None,
        "cache_creation_input_tokens": u.cache_creation_input_tokens if u else None,
        "cache_read_input_tokens": u.cache_read_input_tokens if u else None,
        "cost_usd": record.cost_usd,
        "message_id": record.message_id,
        "answer": None if redact else record.answer,
        "session_id": r.session_id if r else None,
    }


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


@dataclass
class _Item:
    record: CallRecord
    future: Future[None]


class CallLog:
    """Group-commit writer: one thread drains the queue and inserts each batch in one
    transaction, then resolves the batch's futures (see the module docstring)."""

    def __init__(
        self,
        store_factory: Callable[[], CallStore],
        *,
        redact: bool = False,
        max_queue: int = 10_000,
        max_batch: int = 500,
    ) -> None:
        self.redact = redact
        self.max_batch = max_batch
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(store_factory,), name="tierwise-calllog", daemon=True
        )
        self._thread.start()
        self._ready.result()  # re-raises a store that cannot be opened: fail at startup

    # ---- producers -----------------------------------------------------------------------
    def submit(self, record: CallRecord) -> Future[None]:
        """Queue a record; the Future resolves once it is durable (or fails with the reason)."""
        future: Future[None] = Future()
        if self._closed:
            future.set_exception(CallLogError("call log is closed"))
            return future
        try:
            self._queue.put_nowait(_Item(record, future))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("call log queue full: %d records dropped so far", self.dropped)
            future.set_exception(CallLogError("call log queue is full; record dropped"))
        return future

    def write(self, record: CallRecord, timeout: float | None = 30.0) -> None:
        """Submit and wait until the record is durable."""
        self.submit(record).result(timeout)

    def observe(self, request: RouteRequest, decision: RouteDecision) -> None:
        """A route observer (app.state.observers) for /route and /route/batch."""
        self.submit(CallRecord.routed(request, decision))

    # The gateway sends the finished call (with usage) to call_observers instead.
    observe.records_gateway_calls = True  # type: ignore[attr-defined]

    def observe_call(self, record: CallRecord) -> None:
        """A call observer (app.state.call_observers) for gateway calls."""
        self.submit(record)

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting records, write everything queued, close the store."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    # ---- the writer thread -----------------------------------------------------------------
    def _run(self, store_factory: Callable[[], CallStore]) -> None:
        try:
            store = store_factory()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                batch: list[_Item] = []
                item = self._queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= self.max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stopping = item is None
                if batch:
                    self._commit(store, batch)
        finally:
            store.close()

    def _commit(self, store: CallStore, batch: list[_Item]) -> None:
        rows, items = [], []
        for item in batch:
            try:
                rows.append(record_to_row(item.record, self.redact))
                items.append(item)
            except Exception as exc:  # one bad record must not sink the batch
                log.exception("call log: cannot serialize call %s", item.record.call_id)
                item.future.set_exception(exc)
        if not rows:
            return
        try:
            store.insert(rows)
        except Exception as exc:
            log.error("call log: writing %d calls failed: %s", len(rows), exc)
            for item in items:
                item.future.set_exception(exc)
            return
        self.written += len(rows)
        for item in items:
            item.future.set_result(None)


def install_calllog(app: FastAPI, calllog: CallLog) -> None:
    app.state.calllog = calllog
    app.state.observers.append(calllog.observe)
    app.state.call_observers.append(calllog.observe_call)


@asynccontextmanager
async def calllog_lifespan(app: FastAPI, url: str | None, redact: bool) -> AsyncIterator[None]:
    """Open the call log for the app's lifetime (nothing when url is None); drain on exit."""
    if url is None:
        yield
        return
    import anyio

    calllog = await anyio.to_thread.run_sync(
        lambda: CallLog(lambda: open_store(url), redact=redact)
    )
    install_calllog(app, calllog)
    try:
        yield
    finally:
        app.state.observers.remove(calllog.observe)
        app.state.call_observers.remove(calllog.observe_call)
        await anyio.to_thread.run_sync(calllog.close)
