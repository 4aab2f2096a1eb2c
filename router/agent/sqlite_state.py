"""Session and run state in one SQLite file (WAL), shared by every worker process on a machine.

ROUTER_SESSION_URL=sqlite:///var/state.db. Each process opens its own connection; every write is
one IMMEDIATE transaction, so increments from any number of processes and threads are exact,
and a repeated message_id is counted once (its row is the proof). Rows expire like the memory
and Redis stores: `ttl_s` after their last write. synchronous=NORMAL: a commit survives a
crashed or killed process; only a power loss can drop the last moments of spend.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from router.agent.budgets import RunState
from router.agent.sessions import SessionState, StoreError
from router.core.tiers import TIER_ORDER, Tier

SQLITE_PREFIX = "sqlite:///"
# A writer waits this long for another process's transaction (each takes well under a ms);
# counts must not be lost to a busy moment, and the scoring deadline still bounds callers.
BUSY_TIMEOUT_MS = 5000
# Expired rows are deleted at most this often (on a write), so the file does not grow forever.
PURGE_EVERY_S = 60.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, state TEXT NOT NULL, "
    "expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at)",
    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, budget_usd REAL, "
    "spent_usd REAL NOT NULL DEFAULT 0, updated_at REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS runs_expiry ON runs (expires_at)",
    # kind: 'calls' (usage reports) or 'routed' (decisions); one row per run, kind and tier.
    "CREATE TABLE IF NOT EXISTS run_counts (run_id TEXT NOT NULL, kind TEXT NOT NULL, "
    "tier TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (run_id, kind, tier)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS run_messages (run_id TEXT NOT NULL, message_id TEXT NOT NULL, "
    "PRIMARY KEY (run_id, message_id)) WITHOUT ROWID",
)


def sqlite_path(url: str) -> Path:
    """sqlite:///var/state.db -> var/state.db (relative to the working directory);
    sqlite:////srv/state.db -> /srv/state.db."""
    return Path(url.removeprefix(SQLITE_PREFIX))


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """PRAGMA journal_mode = WAL, waiting out other processes that open the file at the same
    moment (several workers starting on a new state.db): the switch takes a lock SQLite's busy
    handler does not wait for, so "database is locked" comes at once. Returns the mode."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteState:
    """One connection per process (the lifespan opens it), shared by threads under a lock."""

    def __init__(self, path: Path, wall_clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.now = wall_clock
        self._lock = threading.Lock()
        self._last_purge = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            mode = _switch_to_wal(self._conn)
            if mode != "wal":
                raise StoreError(f"session store {str(path)!r}: journal_mode is {mode!r}, not WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self.write():
                for statement in _SCHEMA:
                    self._conn.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"session store {str(path)!r} cannot be opened: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (the write lock is taken at once, so two writers never
        deadlock upgrading a read); expired rows are purged now and then inside it."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._maybe_purge()
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"session store {str(self.path)!r}: write failed: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (WAL: never waits for writers)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    yield self._conn
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"session store {str(self.path)!r}: read failed: {exc}") from exc

    def _maybe_purge(self) -> None:
        now = self.now()
        if now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        c = self._conn
        c.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        expired = "SELECT run_id FROM runs WHERE expires_at <= ?"
        c.execute(f"DELETE FROM run_counts WHERE run_id IN ({expired})", (now,))
        c.execute(f"DELETE FROM run_messages WHERE run_id IN ({expired})", (now,))
        c.execute("DELETE FROM runs WHERE expires_at <= ?", (now,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SqliteSessionStore:
    def __init__(self, state: SqliteState, ttl_s: float) -> None:
        self._state = state
        self._ttl_s = ttl_s

    def get(self, session_id: str) -> SessionState | None:
        with self._state.read() as c:
            row = c.execute(
                "SELECT state FROM sessions WHERE session_id = ? AND expires_at > ?",
                (session_id, self._state.now()),
            ).fetchone()
        if row is None:
            return None
        try:
            return SessionState.from_json(row[0])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"session {session_id!r} holds unreadable state: {exc}") from exc

    def put(self, session_id: str, state: SessionState) -> None:
        with self._state.write() as c:
            c.execute(
                "INSERT INTO sessions (session_id, state, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET state = excluded.state, "
                "expires_at = excluded.expires_at",
                (session_id, state.to_json(), self._state.now() + self._ttl_s),
            )


class SqliteRunStore:
    """runs (budget, spend, expiry), run_counts (calls and routed per tier) and run_messages
    (the message ids counted), all written in one transaction per call."""

    def __init__(self, state: SqliteState, ttl_s: float) -> None:
        self._state = state
        self._ttl_s = ttl_s

    def _read(self, c: sqlite3.Connection, run_id: str, now: float) -> RunState | None:
        row = c.execute(
            "SELECT budget_usd, spent_usd, updated_at FROM runs WHERE run_id = ? AND expires_at > ?",
            (run_id, now),
        ).fetchone()
        if row is None:
            return None
        counts = {("calls", t): 0 for t in TIER_ORDER} | {("routed", t): 0 for t in TIER_ORDER}
        for kind, tier, n in c.execute(
            "SELECT kind, tier, n FROM run_counts WHERE run_id = ?", (run_id,)
        ):
            counts[(kind, Tier(tier))] = int(n)
        return RunState(
            run_id=run_id,
            budget_usd=row[0],
            spent_usd=float(row[1]),
            calls={t: counts[("calls", t)] for t in TIER_ORDER},
            routed={t: counts[("routed", t)] for t in TIER_ORDER},
            updated_at=float(row[2]),
        )

    def _touch(self, c: sqlite3.Connection, run_id: str, now: float) -> None:
        """Make sure the run's row exists and is live (every write restarts its TTL)."""
        self._drop_if_expired(c, run_id, now)
        c.execute(
            "INSERT INTO runs (run_id, updated_at, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET updated_at = excluded.updated_at, "
            "expires_at = excluded.expires_at",
            (run_id, now, now + self._ttl_s),
        )

    def _drop_if_expired(self, c: sqlite3.Connection, run_id: str, now: float) -> None:
        """An expired run starts over, as it would in the memory and Redis stores."""
        expired = c.execute(
            "DELETE FROM runs WHERE run_id = ? AND expires_at <= ?", (run_id, now)
        ).rowcount
        if expired:
            c.execute("DELETE FROM run_counts WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM run_messages WHERE run_id = ?", (run_id,))

    def _count(self, c: sqlite3.Connection, run_id: str, kind: str, tier: Tier) -> None:
        c.execute(
            "INSERT INTO run_counts (run_id, kind, tier, n) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (run_id, kind, tier) DO UPDATE SET n = n + 1",
            (run_id, kind, tier.value),
        )

    def _final(self, c: sqlite3.Connection, run_id: str, now: float) -> RunState:
        run = self._read(c, run_id, now)
        assert run is not None  # written in this transaction
        return run

    def get(self, run_id: str) -> RunState | None:
        with self._state.read() as c:
            return self._read(c, run_id, self._state.now())

    def set_budget(self, run_id: str, budget_usd: float) -> RunState:
        now = self._state.now()
        with self._state.write() as c:
            self._touch(c, run_id, now)
            c.execute("UPDATE runs SET budget_usd = ? WHERE run_id = ?", (budget_usd, run_id))
            return self._final(c, run_id, now)

    def add_route(self, run_id: str, tier: Tier) -> None:
        now = self._state.now()
        with self._state.write() as c:
            self._touch(c, run_id, now)
            self._count(c, run_id, "routed", tier)

    def add_usage(
        self, run_id: str, tier: Tier, cost_usd: float, message_id: str | None = None
    ) -> tuple[RunState, bool]:
        now = self._state.now()
        with self._state.write() as c:
            self._drop_if_expired(c, run_id, now)
            if message_id is not None:
                new = c.execute(
                    "INSERT OR IGNORE INTO run_messages (run_id, message_id) VALUES (?, ?)",
                    (run_id, message_id),
                ).rowcount
                if not new:  # counted before: the run is unchanged
                    return self._final(c, run_id, now), False
            self._touch(c, run_id, now)
            c.execute(
                "UPDATE runs SET spent_usd = spent_usd + ? WHERE run_id = ?", (cost_usd, run_id)
            )
            self._count(c, run_id, "calls", tier)
            return self._final(c, run_id, now), True
