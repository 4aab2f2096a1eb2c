"""Opening the session and run stores: in memory (one process), SQLite (the worker processes of
one machine) or Redis (replicas on several machines).

Called once by the app's lifespan; the stores are then passed to AgentRouting. In-memory state
is per process, so it is refused when several worker processes are configured
(configured_workers): their budgets and sessions would silently split.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from router.agent.budgets import MemoryRunStore, RedisRunStore, RunStore
from router.agent.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
    StoreError,
    connect_redis,
    redact_url,
    redis_error_type,
)
from router.agent.sqlite_state import (
    SQLITE_PREFIX,
    SqliteRunStore,
    SqliteSessionStore,
    SqliteState,
    sqlite_path,
)
from router.settings import Settings

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# What scripts/serve and `tierwise serve` use when they start several workers.
DEFAULT_SQLITE_URL = "sqlite:///var/state.db"


def _close_nothing() -> None:
    return None


class AgentStores(NamedTuple):
    sessions: SessionStore
    runs: RunStore
    close: Callable[[], None] = _close_nothing


@dataclass(frozen=True)
class Workers:
    count: int
    source: str  # where the count was read, for messages


_WORKERS_FLAG = re.compile(r"^(?:--workers|-w)(?:=?(\d+))?$")


def configured_workers(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> Workers:
    """How many worker processes serve this app, from what their supervisor was told:
    WEB_CONCURRENCY (the default worker count of uvicorn and gunicorn, which scripts/serve and
    `tierwise serve` set) and a `--workers N` / `-w N` on the command line (a uvicorn or
    gunicorn worker inherits its supervisor's sys.argv). The larger wins; 1 when neither says."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    found = [Workers(1, "one process")]
    raw = environ.get("WEB_CONCURRENCY", "").strip()
    if raw.isdigit():
        found.append(Workers(int(raw), f"WEB_CONCURRENCY={raw}"))
    for i, arg in enumerate(argv):
        match = _WORKERS_FLAG.match(arg)
        if match is None:
            continue
        value = match.group(1) or (argv[i + 1] if i + 1 < len(argv) else "")
        if value.isdigit():
            found.append(Workers(int(value), f"--workers {value} on the command line"))
    return max(found, key=lambda w: w.count)


def memory_stores(settings: Settings) -> AgentStores:
    """Process-local stores bounded by settings' TTLs and entry cap; no I/O."""
    return AgentStores(
        MemorySessionStore(settings.session_ttl_s, settings.session_max_entries),
        MemoryRunStore(settings.run_ttl_s, settings.session_max_entries),
    )


def check_session_url(settings: Settings, workers: Workers | None = None) -> None:
    """StoreError naming ROUTER_SESSION_URL when state would split between worker processes,
    or when the URL is of no supported kind."""
    url = settings.session_url
    if url is None:
        workers = workers or configured_workers()
        if workers.count > 1:
            raise StoreError(
                f"{workers.count} worker processes are configured ({workers.source}) but "
                "ROUTER_SESSION_URL is not set, so each would keep its own sessions and budgets; "
                f"set ROUTER_SESSION_URL={DEFAULT_SQLITE_URL} (one machine) or "
                "redis://host:6379/0 (several)"
            )
    elif not url.startswith((SQLITE_PREFIX, *REDIS_SCHEMES)):
        raise StoreError(
            f"ROUTER_SESSION_URL {redact_url(url)!r} is not supported; expected "
            f"{DEFAULT_SQLITE_URL} (a file path after sqlite:///) or redis://host:port/db"
        )


def open_stores(settings: Settings, workers: Workers | None = None) -> AgentStores:
    """Memory, SQLite or Redis stores, as settings.session_url says (check_session_url first).
    An unanswering Redis is logged, not fatal: routing works without state, and says so."""
    check_session_url(settings, workers)
    url = settings.session_url
    if url is None:
        return memory_stores(settings)
    if url.startswith(SQLITE_PREFIX):
        state = SqliteState(sqlite_path(url))
        return AgentStores(
            SqliteSessionStore(state, settings.session_ttl_s),
            SqliteRunStore(state, settings.run_ttl_s),
            state.close,
        )
    client = connect_redis(url, settings.session_timeout_ms / 1000)
    try:
        client.ping()
    except redis_error_type() as exc:
        where = client.connection_pool.connection_kwargs
        log.warning(
            "session store redis at %s:%s does not answer (%s); routing goes on without "
            "session and run state until it does",
            where.get("host"),
            where.get("port"),
            exc,
        )
    return AgentStores(
        RedisSessionStore(client, settings.session_ttl_s),
        RedisRunStore(client, settings.run_ttl_s),
        client.close,
    )
