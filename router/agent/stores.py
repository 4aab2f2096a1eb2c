"""Opening the session and run stores: in memory (one replica) or Redis (shared by replicas).

Called once by the app's lifespan; the stores are then passed to AgentRouting.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from router.agent.budgets import MemoryRunStore, RedisRunStore, RunStore
from router.agent.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
    connect_redis,
    redis_error_type,
)
from router.settings import Settings

log = logging.getLogger(__name__)


class AgentStores(NamedTuple):
    sessions: SessionStore
    runs: RunStore


def memory_stores(settings: Settings) -> AgentStores:
    """Process-local stores bounded by settings' TTLs and entry cap; no I/O."""
    return AgentStores(
        MemorySessionStore(settings.session_ttl_s, settings.session_max_entries),
        MemoryRunStore(settings.run_ttl_s, settings.session_max_entries),
    )


def open_stores(settings: Settings) -> AgentStores:
    """Memory stores, or Redis ones sharing one client when settings.session_url is set. An
    unanswering Redis is logged, not fatal: routing works without state, and says so."""
    if settings.session_url is None:
        return memory_stores(settings)
    client = connect_redis(settings.session_url, settings.session_timeout_ms / 1000)
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
    )
