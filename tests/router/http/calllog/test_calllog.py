"""Call log: rows for /route and /route/batch, durability of acknowledged writes under kill -9,
export to the `tierwise label` input format, and the PostgreSQL backend on a real server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from labeling.sources import read_jsonl_turns
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.http.app import create_app
from router.http.calllog.record import CallRecord, request_hash
from router.http.calllog.stores import CallLogError, PostgresStore, SqliteStore, open_store
from router.http.calllog.writer import CallLog
from tierwise.cli import main as tierwise_cli

REPO = Path(__file__).resolve().parents[4]


def routed(service: RoutingService, prompt: str, **knobs: object) -> CallRecord:
    request = RouteRequest.model_validate({"prompt": prompt, **knobs})
    return CallRecord.routed(request, service.route(request))


def test_sqlite_is_wal_with_full_sync_and_round_trips(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    service = make_service()
    calllog = CallLog(lambda: SqliteStore(tmp_path / "calls.db"))
    record = routed(service, "hello what time is it", session_id="s9")
    calllog.write(record)
    calllog.close()
    store = SqliteStore(tmp_path / "calls.db")
    assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    (row,) = store.rows()
    store.close()
    decision = record.decision
    assert decision is not None
    assert row["call_id"] == record.call_id and row["endpoint"] == "route"
    assert row["tier"] == decision.tier.value and row["model"] == decision.model
    assert row["probabilities"] == {t.value: p for t, p in decision.probabilities.items()}
    assert row["model_version"] == "fake-v1" and row["fallback"] is False
    assert row["request"] == {"prompt": "hello what time is it", "session_id": "s9"}
    assert row["session_id"] == "s9" and row["redacted"] is False
    assert row["estimated_cost_usd"] == decision.estimated_cost_usd
    assert row["ts"].endswith("+00:00")


def test_route_and_batch_calls_are_logged(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    service = make_service(calllog_url=f"sqlite:///{tmp_path / 'calls.db'}")
    with TestClient(create_app(service.settings, service=service)) as client:
        assert client.post("/route", json={"prompt": "hello there"}).status_code == 200
        reqs = [{"prompt": f"prove theorem {i}"} for i in range(3)]
        assert client.post("/route/batch", json={"requests": reqs}).status_code == 200
    # Leaving the lifespan drained the queue: every row is there now.
    store = SqliteStore(tmp_path / "calls.db")
    rows = list(store.rows())
    store.close()
    assert [r["request"]["prompt"] for r in rows] == ["hello there"] + [
        f"prove theorem {i}" for i in range(3)
    ]
    assert {r["endpoint"] for r in rows} == {"route"}
    assert all(r["routed"] and r["upstream_status"] is None for r in rows)


def test_bad_call_log_urls_fail_at_startup(tmp_path: Path) -> None:
    with pytest.raises(CallLogError, match="scheme 'mysql' is not supported"):
        open_store("mysql://x/y")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(CallLogError, match="cannot be opened"):
        CallLog(lambda: SqliteStore(tmp_path / "dir.db"))


def test_full_queue_drops_and_counts(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    service = make_service()

    class SlowStore(SqliteStore):
        def insert(self, rows: object) -> None:
            time.sleep(0.2)
            super().insert(rows)  # type: ignore[arg-type]

    calllog = CallLog(lambda: SlowStore(tmp_path / "calls.db"), max_queue=2, max_batch=1)
    futures = [calllog.submit(routed(service, f"hi {i}")) for i in range(6)]
    calllog.close()
    failed = [f for f in futures if f.exception() is not None]
    assert calllog.dropped == len(failed) >= 2
    assert "queue is full" in str(failed[0].exception())
    assert calllog.written == 6 - len(failed)


WRITER = """
import sys
from pathlib import Path
from router.http.calllog.writer import CallLog
from router.http.calllog.stores import SqliteStore
from router.http.calllog.record import CallRecord, request_hash
from router.core.schemas import RouteDecision, RouteRequest
from router.core.tiers import Tier

calllog = CallLog(lambda: SqliteStore(Path(sys.argv[1])))
n = 0
while True:
    pending = []
    for _ in range(16):  # several in flight at once: acknowledged by group commit
        n += 1
        request = RouteRequest(prompt=f"turn {n}")
        decision = RouteDecision(
            tier=Tier.HAIKU, model="m", probabilities={}, threshold=0.5, reason="r",
            model_version="v", estimated_cost_usd=0.0, latency_ms=1.0,
        )
        record = CallRecord.routed(request, decision)
        pending.append((record.call_id, calllog.submit(record)))
    for call_id, future in pending:
        future.result()
        print(call_id, flush=True)  # acknowledged: durable from here on
"""


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < 300:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.wait()}"
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        acked += [line.strip() for line in proc.stdout if line.strip()]  # printed before death
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    store = SqliteStore(db)
    logged = {row["call_id"] for row in store.rows()}
    store.close()
    missing = [call_id for call_id in acked if call_id not in logged]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged rows lost"


def test_export_log_writes_label_input(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    service = make_service()
    db = tmp_path / "calls.db"
    calllog = CallLog(lambda: SqliteStore(db))
    for prompt in ("what time is it", "prove the theorem", "what time is it"):
        calllog.write(routed(service, prompt, min_tier="haiku", session_id="s1"))
    redacting = CallLog(lambda: SqliteStore(db), redact=True)
    redacting.write(routed(service, "secret"))
    calllog.close()
    redacting.close()

    out = tmp_path / "export" / "turns.jsonl"
    result = CliRunner().invoke(tierwise_cli, ["export-log", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "2 turns written (0 with a gateway answer), 1 redacted rows skipped, 1 repeated"
        in result.output
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["request"] for line in lines] == [
        {"prompt": "what time is it"},
        {"prompt": "prove the theorem"},
    ]
    assert all(line["id"].startswith("calllog:") and "scores" not in line for line in lines)
    assert lines[0]["calllog"]["model_version"] == "fake-v1"
    # The labeler reads it as it is.
    turns, failures = read_jsonl_turns(out)
    assert failures == [] and [t.request.prompt for t in turns] == [
        "what time is it",
        "prove the theorem",
    ]

    result = CliRunner().invoke(
        tierwise_cli,
        ["export-log", "--db", str(db), "--out", str(out), "--since", "2999-01-01"],
    )
    assert result.exit_code == 0 and "0 turns written" in result.output
    result = CliRunner().invoke(
        tierwise_cli, ["export-log", "--db", str(tmp_path / "nope.db"), "--out", str(out)]
    )
    assert result.exit_code != 0 and "does not exist" in result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rows_since_filters_in_the_database(
    backend: str,
    request: pytest.FixtureRequest,
    make_service: Callable[..., RoutingService],
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "calls.db")
    if backend == "postgres":
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("postgres_url")
    service = make_service()
    calllog = CallLog(lambda: open_store(url))
    marker = f"since-{backend}-{time.time_ns()}"
    for n, moment in enumerate(
        ["2026-01-01T00:00:00+00:00", "2026-06-01T12:00:00.5+00:00", "2026-06-01T13:00:00-01:00"]
    ):
        record = routed(service, f"{marker} {n}")
        calllog.write(replace(record, started_at=datetime.fromisoformat(moment)))
    calllog.close()
    store = open_store(url)
    since = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
    prompts = [r["request"]["prompt"] for r in store.rows(since) if marker in str(r["request"])]
    store.close()
    assert prompts == [f"{marker} 1", f"{marker} 2"]


def test_postgres_backend_round_trips_and_exports(
    postgres_url: str, make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    pytest.importorskip("psycopg")
    service = make_service()
    calllog = CallLog(lambda: open_store(postgres_url))
    records = [routed(service, f"question {i}", session_id="s") for i in range(3)]
    futures = [calllog.submit(r) for r in records]
    assert all(f.result(10) is None for f in futures)
    calllog.close()

    store = PostgresStore(postgres_url)
    rows = [r for r in store.rows() if r["call_id"] in {rec.call_id for rec in records}]
    store.close()
    assert [r["request"]["prompt"] for r in rows] == ["question 0", "question 1", "question 2"]
    assert rows[0]["probabilities"].keys() == {"haiku", "sonnet", "opus"}
    assert rows[0]["routed"] is True and rows[0]["session_id"] == "s"

    out = tmp_path / "pg.jsonl"
    result = CliRunner().invoke(
        tierwise_cli, ["export-log", "--db", postgres_url, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(read_jsonl_turns(out)[0]) >= 3


def test_a_log_from_an_older_version_gains_the_new_columns(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, call_id TEXT, ts TEXT)")
    old.execute("INSERT INTO calls (call_id, ts) VALUES ('old-1', '2026-01-01T00:00:00+00:00')")
    old.commit()
    old.close()
    calllog = CallLog(lambda: SqliteStore(db))
    calllog.write(routed(make_service(), "hello"))
    calllog.close()
    store = SqliteStore(db)
    rows = list(store.rows())
    store.close()
    assert [r["call_id"] for r in rows][0] == "old-1"
    assert rows[1]["request"] == {"prompt": "hello"} and rows[0]["request"] is None


def test_request_hash_is_computed_by_the_writer_not_on_the_request_path(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> None:
    record = routed(make_service(), "hello what time is it", threshold=0.3)
    assert "request_hash" not in vars(record)  # not computed when the route observer submits
    calllog = CallLog(lambda: SqliteStore(tmp_path / "calls.db"))
    calllog.write(record)
    calllog.close()
    store = SqliteStore(tmp_path / "calls.db")
    (row,) = store.rows()
    store.close()
    assert record.request is not None
    # Knobs are not content: the same turn hashes the same however it was routed.
    assert row["request_hash"] == request_hash(RouteRequest(prompt="hello what time is it"))
    assert row["request_hash"] == request_hash(record.request)
