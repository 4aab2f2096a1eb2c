import threading
import time
from pathlib import Path
from typing import Any

import pytest

from router.agent.budgets import MemoryRunStore, RedisRunStore
from router.agent.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionState,
    StoreError,
    TtlMap,
    connect_redis,
    redact_url,
)
from router.agent.sqlite_state import SqliteRunStore, SqliteSessionStore
from router.agent.stores import Workers, configured_workers, open_stores
from router.core.tiers import Tier
from router.settings import Settings
from tests.redis_server import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(tier: Tier = Tier.OPUS, prefix: int = 12_000) -> SessionState:
    return SessionState(tier, f"claude-{tier.value}", prefix, 1.7e9)


def test_ttl_map_expires_after_the_last_write() -> None:
    clock = Clock()
    m: TtlMap[int] = TtlMap(ttl_s=300, max_entries=10, clock=clock)
    m.put("a", 1)
    clock.now += 299
    assert m.get("a") == 1
    m.put("a", 2)  # a write restarts the TTL, as a cache hit restarts Anthropic's
    clock.now += 299
    assert m.get("a") == 2
    clock.now += 2
    assert m.get("a") is None
    assert len(m) == 0


def test_ttl_map_is_bounded_oldest_write_goes_first() -> None:
    m: TtlMap[int] = TtlMap(ttl_s=300, max_entries=3, clock=Clock())
    for i, key in enumerate("abcd"):
        m.put(key, i)
    assert m.get("a") is None
    assert [m.get(k) for k in "bcd"] == [1, 2, 3]
    m.put("b", 10)  # rewritten: now the newest
    m.put("e", 4)
    assert m.get("c") is None and m.get("b") == 10
    assert len(m) == 3


def test_ttl_map_update_is_atomic_under_threads() -> None:
    m: TtlMap[int] = TtlMap(ttl_s=300, max_entries=10)

    def bump() -> None:
        for _ in range(500):
            m.update("n", lambda v: (v or 0) + 1)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.get("n") == 4000


def test_memory_session_store_round_trip_and_ttl() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl_s=300, max_entries=100, clock=clock)
    assert store.get("s1") is None
    store.put("s1", state())
    assert store.get("s1") == state()
    clock.now += 301
    assert store.get("s1") is None


def test_session_state_json_round_trip() -> None:
    assert SessionState.from_json(state(Tier.HAIKU, 7).to_json()) == state(Tier.HAIKU, 7)


def test_redis_session_store_round_trip_shared_between_replicas(
    redis_client: Any, redis_url: str
) -> None:
    replica_a = RedisSessionStore(redis_client, ttl_s=300)
    replica_b = RedisSessionStore(connect_redis(redis_url, timeout_s=1.0), ttl_s=300)
    assert replica_b.get("s1") is None
    replica_a.put("s1", state())
    assert replica_b.get("s1") == state()
    ttl_ms = redis_client.pttl("tierwise:session:s1")
    assert 0 < ttl_ms <= 300_000


def test_redis_session_expires(redis_client: Any) -> None:
    store = RedisSessionStore(redis_client, ttl_s=0.2)
    store.put("short", state())
    assert store.get("short") is not None
    time.sleep(0.35)
    assert store.get("short") is None


def test_redis_session_unreadable_state_is_a_store_error(redis_client: Any) -> None:
    redis_client.set("tierwise:session:bad", "{not json")
    with pytest.raises(StoreError, match="'bad'"):
        RedisSessionStore(redis_client, ttl_s=300).get("bad")


def test_unreachable_redis_raises_store_error_quickly() -> None:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    start = time.perf_counter()
    with pytest.raises(StoreError, match="session store"):
        RedisSessionStore(client, ttl_s=300).get("s1")
    assert time.perf_counter() - start < 2


def test_bad_url_names_the_setting() -> None:
    with pytest.raises(StoreError, match="session_url"):
        connect_redis("http://nope", timeout_s=0.1)


def test_open_stores_follows_session_url(redis_url: str, tmp_path: Path) -> None:
    one = Workers(1, "one process")
    sessions, runs, _ = open_stores(Settings(), one)
    assert isinstance(sessions, MemorySessionStore) and isinstance(runs, MemoryRunStore)
    sessions, runs, close = open_stores(Settings(session_url=redis_url), one)
    assert isinstance(sessions, RedisSessionStore) and isinstance(runs, RedisRunStore)
    close()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    sessions, runs, close = open_stores(Settings(session_url=url), one)
    assert isinstance(sessions, SqliteSessionStore) and isinstance(runs, SqliteRunStore)
    close()
    assert (tmp_path / "state.db").is_file()


def test_memory_state_is_refused_with_several_workers() -> None:
    two = configured_workers({"WEB_CONCURRENCY": "2"}, ["uvicorn"])
    with pytest.raises(StoreError) as err:
        open_stores(Settings(), two)
    assert str(err.value) == (
        "2 worker processes are configured (WEB_CONCURRENCY=2) but ROUTER_SESSION_URL is not "
        "set, so each would keep its own sessions and budgets; set "
        "ROUTER_SESSION_URL=sqlite:///var/state.db (one machine) or redis://host:6379/0 (several)"
    )


@pytest.mark.parametrize(
    ("environ", "argv", "count", "source"),
    [
        ({}, ["uvicorn", "--factory", "router.http.app:create_app"], 1, "one process"),
        ({"WEB_CONCURRENCY": "3"}, ["uvicorn"], 3, "WEB_CONCURRENCY=3"),
        ({}, ["uvicorn", "--workers", "2"], 2, "--workers 2 on the command line"),
        ({}, ["uvicorn", "--workers=4"], 4, "--workers 4 on the command line"),
        ({}, ["gunicorn", "-w", "5", "-k", "uvicorn.workers.UvicornWorker"], 5, "--workers 5"),
        ({"WEB_CONCURRENCY": "2"}, ["tierwise", "serve", "--workers", "1"], 2, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "x"}, ["pytest", "-q"], 1, "one process"),
    ],
)
def test_configured_workers(
    environ: dict[str, str], argv: list[str], count: int, source: str
) -> None:
    workers = configured_workers(environ, argv)
    assert workers.count == count and source in workers.source


def test_unknown_session_url_scheme_is_refused() -> None:
    with pytest.raises(StoreError, match="ROUTER_SESSION_URL 'mysql://db' is not supported"):
        open_stores(Settings(session_url="mysql://db"), Workers(1, ""))


def test_urls_in_messages_hide_the_password() -> None:
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("redis://user:s3cret@db/0") == "redis://user:***@db/0"
    assert redact_url("redis://db:6379/0") == "redis://db:6379/0"
    with pytest.raises(StoreError) as err:
        connect_redis("rediss+nope://:s3cret@db/0", timeout_s=0.1)
    assert "s3cret" not in str(err.value)


def test_session_state_keeps_its_loop_quality_and_reads_old_state() -> None:
    from router.core.loop_quality import LoopQuality

    looped = SessionState(Tier.OPUS, "claude-opus", 9, 1.7e9, LoopQuality(2, (0.1, 0.2, 0.3)))
    assert SessionState.from_json(looped.to_json()) == looped
    old = '{"tier": "opus", "model": "claude-opus", "prefix_tokens": 9, "updated_at": 1.0}'
    assert SessionState.from_json(old).loop == LoopQuality()


def test_processes_opening_a_new_state_file_at_once_all_open(tmp_path: Path) -> None:
    """Workers starting together on a fresh state.db: each switches it to WAL, a lock SQLite's
    busy handler does not wait for. Before the open waited it out, about 1 round in 13 of six
    openers had one fail with "database is locked"; 60 rounds all open."""
    from router.agent.sqlite_state import SqliteState

    for round_ in range(60):
        path = tmp_path / f"r{round_}" / "state.db"
        errors: list[Exception] = []

        def open_it(path: Path = path, errors: list[Exception] = errors) -> None:
            try:
                SqliteState(path)
            except Exception as exc:  # noqa: BLE001 - the test reports any failure
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}: {errors}"
