"""CallLog: every routed call (/route, /route/batch, /v1/messages) as one row in SQLite or
PostgreSQL (router.http.calllog.stores), written by one background thread with group commit.

Durability contract: `CallLog.submit()` returns a Future that resolves only after the row's
transaction has committed (SQLite: WAL + synchronous=FULL, so the WAL is fsynced at commit;
PostgreSQL: a committed transaction). That resolution is the acknowledgement; `write()` blocks
until it. HTTP handlers do not wait for it, so routing latency never includes an fsync: a
kill -9 can lose the calls of the last group commit (milliseconds), never an acknowledged one,
and a graceful shutdown drains the queue. If the queue is full the record is dropped, counted
and logged, instead of blocking routing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from router.core.schemas import RouteDecision, RouteRequest
from router.http.calllog.record import CallRecord, json_bytes
from router.http.calllog.stores import CallLogError, CallStore, open_store

log = logging.getLogger(__name__)


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


def _without_media(document: dict[str, Any]) -> dict[str, Any]:
    """strip_media(document), walked only when its JSON mentions base64 at all."""
    return strip_media(document) if b'"base64"' in json_bytes(document) else document


def record_to_row(record: CallRecord, redact: bool) -> dict[str, Any]:
    """Column -> value; JSON columns hold Python objects, `ts` a datetime."""
    d, u, r = record.decision, record.usage, record.request
    document = record.request_document
    return {
        "call_id": record.call_id,
        "ts": record.started_at,
        "endpoint": record.endpoint,
        "request_hash": record.request_hash,
        "request": None if redact or document is None else _without_media(document),
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

    def on_route(self, request: RouteRequest, decision: RouteDecision) -> None:
        """Observer: decisions are logged with their finished call (on_call)."""

    def on_call(self, record: CallRecord) -> None:
        """Observer: queue every finished call (never blocks)."""
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


@asynccontextmanager
async def open_calllog(url: str | None, redact: bool) -> AsyncIterator[CallLog | None]:
    """The call log for an app's lifetime (None when url is None), opened and drained off the
    event loop; a store that cannot be opened fails startup."""
    if url is None:
        yield None
        return
    calllog = await anyio.to_thread.run_sync(
        lambda: CallLog(lambda: open_store(url), redact=redact)
    )
    try:
        yield calllog
    finally:
        await anyio.to_thread.run_sync(calllog.close)
