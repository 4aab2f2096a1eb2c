import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router.agent.budgets import MemoryRunStore, RedisRunStore, RunState, RunStore, budget_cap
from router.agent.sessions import SessionState
from router.agent.sqlite_state import SqliteRunStore, SqliteSessionStore, SqliteState
from router.core.tiers import Tier

H, S, O = Tier.HAIKU, Tier.SONNET, Tier.OPUS


@pytest.mark.parametrize(
    ("spent", "cap", "exhausted", "words"),
    [
        (0.0, None, False, ""),
        (0.79, None, False, ""),
        (0.80, S, False, "capped at sonnet"),
        (0.94, S, False, "capped at sonnet"),
        (0.95, H, False, "capped at haiku"),
        (0.999, H, False, "capped at haiku"),
        (1.0, H, True, "budget exhausted"),
        (3.0, H, True, "budget exhausted"),
    ],
)
def test_budget_steps_down(spent: float, cap: Tier | None, exhausted: bool, words: str) -> None:
    decision = budget_cap(RunState("r", budget_usd=2.0, spent_usd=2.0 * spent), 0.8, 0.95)
    assert decision.tier == cap
    assert decision.exhausted is exhausted
    assert words in decision.reason


def test_no_budget_no_cap() -> None:
    assert budget_cap(None, 0.8, 0.95).tier is None
    assert budget_cap(RunState("r", spent_usd=99.0), 0.8, 0.95).tier is None


def test_thresholds_are_settings() -> None:
    run = RunState("r", budget_usd=1.0, spent_usd=0.5)
    assert budget_cap(run, 0.5, 0.9).tier == S
    assert budget_cap(run, 0.2, 0.4).tier == H


def test_remaining_never_negative() -> None:
    run = RunState("r", budget_usd=1.0, spent_usd=1.5)
    assert run.remaining_usd == 0.0
    assert run.spent_fraction == 1.5


@pytest.fixture(params=["memory", "redis", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], RunStore]]:
    """A factory: each call is another replica on the same state (same Redis, same SQLite
    file through its own connection, same memory)."""
    if request.param == "memory":
        store = MemoryRunStore(ttl_s=3600, max_entries=100)
        yield lambda: store
    elif request.param == "redis":
        client: Any = request.getfixturevalue("redis_client")
        yield lambda: RedisRunStore(client, ttl_s=3600)
    else:
        opened: list[SqliteState] = []

        def connect() -> RunStore:
            opened.append(SqliteState(tmp_path / "state.db"))
            return SqliteRunStore(opened[-1], ttl_s=3600)

        yield connect
        for state in opened:
            state.close()


def test_run_store_tracks_budget_spend_and_calls(make_store: Callable[[], RunStore]) -> None:
    store = make_store()
    assert store.get("r1") is None
    run = store.set_budget("r1", 2.5)
    assert run.budget_usd == 2.5 and run.spent_usd == 0
    store.add_route("r1", O)
    store.add_route("r1", H)
    run, counted = store.add_usage("r1", O, 0.75)
    assert counted
    run, _ = make_store().add_usage("r1", H, 0.25)
    assert math.isclose(run.spent_usd, 1.0)
    assert run.calls == {H: 1, S: 0, O: 1}
    assert run.routed == {H: 1, S: 0, O: 1}
    assert run.updated_at > 0
    again = make_store().get("r1")
    assert again == run
    assert store.set_budget("r1", 5.0).spent_usd == run.spent_usd  # budget change keeps spend


def test_repeated_message_id_counts_once(make_store: Callable[[], RunStore]) -> None:
    store = make_store()
    first, counted = store.add_usage("r2", S, 0.1, message_id="msg_1")
    second, counted_again = make_store().add_usage("r2", S, 0.1, message_id="msg_1")
    assert counted and not counted_again
    assert second.spent_usd == first.spent_usd and second.calls[S] == 1
    third, _ = store.add_usage("r2", S, 0.1, message_id="msg_2")
    assert math.isclose(third.spent_usd, 0.2)


def test_usage_without_budget_creates_the_run(make_store: Callable[[], RunStore]) -> None:
    run, _ = make_store().add_usage("r3", O, 0.3)
    assert run.budget_usd is None and run.remaining_usd is None


def test_concurrent_usage_reports_all_count(make_store: Callable[[], RunStore]) -> None:
    """Replicas reporting for one run at once: no lost update (Redis HINCRBYFLOAT, memory lock)."""

    def report() -> None:
        store = make_store()
        for _ in range(25):
            store.add_usage("r4", H, 0.01)

    threads = [threading.Thread(target=report) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = make_store().get("r4")
    assert run is not None
    assert run.calls[H] == 150
    assert math.isclose(run.spent_usd, 1.5, rel_tol=1e-9)


def test_redis_run_keys_expire(redis_client: Any) -> None:
    store = RedisRunStore(redis_client, ttl_s=60)
    store.add_usage("r5", O, 0.1, message_id="m")
    assert 0 < redis_client.pttl("tierwise:run:r5") <= 60_000
    assert 0 < redis_client.pttl("tierwise:run:r5:messages") <= 60_000


def test_memory_runs_expire() -> None:
    now = [0.0]
    store = MemoryRunStore(ttl_s=10, max_entries=5, clock=lambda: now[0])
    store.set_budget("r", 1.0)
    now[0] = 11.0
    assert store.get("r") is None


def test_sqlite_runs_and_sessions_expire(tmp_path: Path) -> None:
    now = [1000.0]
    state = SqliteState(tmp_path / "state.db", wall_clock=lambda: now[0])
    runs, sessions = SqliteRunStore(state, ttl_s=10), SqliteSessionStore(state, ttl_s=5)
    runs.add_usage("r", O, 0.5, message_id="m1")
    sessions.put("s", SessionState(O, "claude-opus", 100, now[0]))
    now[0] += 6
    assert sessions.get("s") is None and runs.get("r") is not None
    now[0] += 5
    assert runs.get("r") is None
    # An expired run starts over: its spend and its counted message ids are gone.
    run, counted = runs.add_usage("r", O, 0.25, message_id="m1")
    assert counted and run.spent_usd == 0.25 and run.calls[O] == 1
    now[0] += 3600  # purged on a later write, not only hidden
    runs.add_route("other", H)
    raw = state._conn.execute("SELECT count(*) FROM run_messages").fetchone()[0]
    assert raw == 0
    state.close()
