"""Speed under agent traffic: /route as an agent's history grows, tail latency under 4 clients,
the call log's cost, and what the gateway adds on top of routing. Ratios come from ONE run.

Every server under test runs at the same time (the real service, `uvicorn --factory
router.http.app:create_app` with uvloop + httptools, as scripts/serve runs it) and requests go
to them in turn, in sets sent back to back (a bare turn and each history; /route, /v1/messages
and the upstream alone), so a busy machine slows all of them alike: ratios and differences are
taken set by set, and the server's own CPU per request (all threads, from /proc) is reported
beside wall time.
Servers: this tree with the call log off and on (scripts/serve turns it on), plus, with
--baseline DIR, another source tree (say `git archive main`) with the same two settings.

    .venv/bin/python benchmarks/agent_traffic.py                             # this tree
    git archive main | tar -x -C /tmp/tierwise-main     # a baseline tree to compare against
    .venv/bin/python benchmarks/agent_traffic.py --baseline /tmp/tierwise-main --rounds 40

Measured, per server:
- sequential /route p50/p99 (one keep-alive client) for a bare turn and the same last turn
  after 10, 1,000 and 1,999 prior agent messages (text, tool_use, tool_result; 2,000 messages
  in all, the request limit);
- p50/p99 and req/s of the bare turn with --clients (4) concurrent clients;
- /v1/messages through the gateway against a local fake Anthropic (tests/fake_anthropic.py) in
  its own process, next to /route with the same body and the fake upstream called directly:
  proxying = gateway - route - upstream, set by set.

Targets (printed with pass/fail): 1,999 prior messages <= 1.5x a bare turn (p50); p99 <= 3x
p50 at 4 clients; proxying <= 1 ms beyond routing. Not a test: the first line records the load.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.load_test import serve  # noqa: E402
from router.core.bundle import resolve_bundle_dir  # noqa: E402

LAST_TURN = "What is the capital of France, in one word?"
HISTORIES = (0, 10, 1_000, 1_999)  # prior messages; 1,999 + the last turn = MAX_MESSAGES
GATEWAY_HISTORY = 10
TARGET_HISTORY_RATIO = 1.5
TARGET_TAIL_RATIO = 3.0
TARGET_PROXY_MS = 1.0
JSON = {"content-type": "application/json"}


def agent_message(i: int) -> dict[str, Any]:
    """Message i of a coding agent's loop: ask, call a tool, read its result, explain."""
    kind = i % 4
    if kind == 0:
        text = f"Please look at src/module_{i}.py and fix the failing test number {i}."
        return {"role": "user", "content": text}
    if kind == 1:
        call = {
            "type": "tool_use",
            "id": f"toolu_{i:08d}",
            "name": "Bash",
            "input": {"command": f"pytest tests/test_module_{i}.py -q"},
        }
        return {"role": "assistant", "content": [{"type": "text", "text": "Running it."}, call]}
    if kind == 2:
        result = (
            f"FAILED tests/test_module_{i}.py::test_total - assert 41 == 42\n1 failed, 12 passed"
        )
        block = {"type": "tool_result", "tool_use_id": f"toolu_{i - 1:08d}", "content": result}
        return {"role": "user", "content": [block]}
    return {"role": "assistant", "content": "The total is off by one; I'll fix the loop bound."}


def agent_body(prior: int, **extra: Any) -> bytes:
    """A Messages-API body: `prior` agent messages, then LAST_TURN from the user."""
    messages = [agent_message(i) for i in range(prior)]
    if messages and messages[-1]["role"] == "user":  # roles alternate, as the API wants
        messages.append({"role": "assistant", "content": "Done."})
        messages = messages[1:]
    messages.append({"role": "user", "content": LAST_TURN})
    return json.dumps({"messages": messages, **extra}).encode()


class Conn:
    """One keep-alive HTTP/1.1 connection with TCP_NODELAY; http.client sends a bytes body in
    the same write as the headers, so no Nagle stalls and little client CPU."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes, headers: dict[str, str] = JSON) -> tuple[float, bytes]:
        """(wall ms, response body); raises on anything but 200."""
        start = time.perf_counter()
        self.conn.request("POST", path, body, headers)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = (time.perf_counter() - start) * 1000
        if resp.status != 200:
            raise click.ClickException(f"{path} answered {resp.status}: {data[:300]!r}")
        return elapsed, data

    def close(self) -> None:
        self.conn.close()


def cpu_ms(pid: int) -> float:
    """CPU time all threads of process `pid` have run, in ms (/proc/<pid>/task/*/schedstat:
    nanoseconds, unlike the 10 ms ticks of /proc/<pid>/stat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
    return total / 1e6


@dataclass
class Server:
    label: str
    url: str
    pid: int
    calllog: bool
    seq: dict[str, list[float]] = field(default_factory=dict)
    # Server CPU per request (ms, all threads) by scenario: robust where wall time is not, on a
    # machine other jobs share; work left behind (the call log's writer) counts where it runs.
    cpu: dict[str, list[float]] = field(default_factory=dict)
    # Each set of back-to-back requests (see measure_sequential): scenario -> wall ms.
    sets: list[dict[str, float]] = field(default_factory=list)
    conc: list[float] = field(default_factory=list)
    conc_seconds: float = 0.0
    fallbacks: int = 0

    def add(self, scenario: str, ms: float) -> None:
        self.seq.setdefault(scenario, []).append(ms)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@contextlib.contextmanager
def fake_upstream() -> Iterator[str]:
    """tests/fake_anthropic.py's FakeAnthropic in its own process; yields its base URL."""
    code = (
        "import sys, time; from tests.fake_anthropic import FakeAnthropic\n"
        "fake = FakeAnthropic().start(); print(fake.base_url, flush=True)\n"
        "while True:\n"
        "    time.sleep(1); fake.requests.clear()  # keep memory flat over a long run\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


HISTORY_SET = tuple(f"hist{n}" for n in HISTORIES)
GATEWAY_SET = ("gateway_route", "gateway", "upstream")


def measure_sequential(
    servers: list[Server], upstream: str, bodies: dict[str, bytes], rounds: int, block: int
) -> None:
    """Each round, every server (in a fresh random order) gets `block` sets of requests: a bare
    turn and each history, then /route, /v1/messages and the upstream alone with the gateway
    body. A set's requests go back to back in random order, so ratios and differences taken set
    by set hold however the machine's speed drifts, and work a request leaves behind (the call
    log's writer thread) lands on every scenario alike. One keep-alive connection per server."""
    conns = {s.label: Conn(s.url) for s in servers}
    direct = Conn(upstream)
    gateway_headers = {**JSON, "x-api-key": "bench", "anthropic-version": "2023-06-01"}
    order = random.Random(0)

    def send(s: Server, scenario: str) -> float:
        if scenario == "upstream":  # the fake upstream alone, as the server reaches it
            return direct.post("/v1/messages", bodies["gateway"], gateway_headers)[0]
        if scenario == "gateway":
            return conns[s.label].post("/v1/messages", bodies[scenario], gateway_headers)[0]
        ms, data = conns[s.label].post("/route", bodies[scenario])
        s.fallbacks += json.loads(data)["fallback"]
        return ms

    try:
        for s in servers:  # warm up every path once
            for scenario in (*HISTORY_SET, *GATEWAY_SET):
                send(s, scenario)
        for _ in range(rounds):
            for s in order.sample(servers, len(servers)):
                for _ in range(block):
                    for kind in (HISTORY_SET, GATEWAY_SET):
                        times = {}
                        for scenario in order.sample(kind, len(kind)):
                            cpu_before = cpu_ms(s.pid)
                            times[scenario] = send(s, scenario)
                            s.add(scenario, times[scenario])
                            s.cpu.setdefault(scenario, []).append(cpu_ms(s.pid) - cpu_before)
                        s.sets.append(times)
    finally:
        for c in [*conns.values(), direct]:
            c.close()


def closed_loop(url: str, body: bytes, clients: int, seconds: float) -> tuple[list[float], float]:
    """`clients` threads, each on its own connection, send the next request as soon as the last
    is answered, for `seconds`; (every latency in ms, wall seconds)."""
    conns = [Conn(url) for _ in range(clients)]
    for c in conns:
        c.post("/route", body)  # connected and warm before the clock starts
    latencies: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    stop = [float("inf")]

    def run(i: int) -> None:
        barrier.wait()
        while time.perf_counter() < stop[0]:
            latencies[i].append(conns[i].post("/route", body)[0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    stop[0] = start + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return [ms for per in latencies for ms in per], elapsed


def measure_concurrent(
    servers: list[Server], body: bytes, clients: int, rounds: int, seconds: float
) -> None:
    """Each round: every server in turn gets `clients` closed-loop clients for `seconds`."""
    for _ in range(rounds):
        for s in servers:
            latencies, elapsed = closed_loop(s.url, body, clients, seconds)
            s.conc += latencies
            s.conc_seconds += elapsed


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def med(values: list[float]) -> float:
    return pct(values, 50)


def history_ratio(s: Server, per: dict[str, list[float]]) -> float:
    """Median CPU of the longest history over a bare turn's."""
    return med(per[HISTORY_SET[-1]]) / med(per[HISTORY_SET[0]])


def paired_history_ratio(s: Server) -> float:
    """Median over sets of (longest history / bare turn), each pair sent back to back."""
    return med([t[HISTORY_SET[-1]] / t[HISTORY_SET[0]] for t in s.sets if HISTORY_SET[0] in t])


def proxy_ms(s: Server) -> float:
    """Median over sets of gateway - /route with the same body - the upstream alone."""
    return med(
        [t["gateway"] - t["gateway_route"] - t["upstream"] for t in s.sets if "gateway" in t]
    )


def proxy_cpu_ms(s: Server) -> float:
    """Server CPU per call: gateway - /route with the same body (the upstream's is not in it)."""
    return med(s.cpu["gateway"]) - med(s.cpu["gateway_route"])


def tail_ratio(s: Server) -> float:
    return pct(s.conc, 99) / pct(s.conc, 50)


def render(servers: list[Server], clients: int, info: str) -> str:
    scen = [f"hist{n}" for n in HISTORIES]
    last = f"{HISTORIES[-1]:,}"
    lines = [f"Machine: {info}", "", "Sequential /route by prior messages, one keep-alive client:"]
    lines += [
        "",
        "| server | " + " | ".join(f"{n:,} p50 ms | p99 ms" for n in HISTORIES)
        + f" | {last} / bare (paired) | " + " | ".join(f"{n:,} CPU ms" for n in HISTORIES)
        + f" | {last} / bare CPU | fallbacks |",
        "|---|" + "---:|" * (3 * len(HISTORIES) + 3),
    ]  # fmt: skip
    for s in servers:
        wall = " | ".join(f"{med(s.seq[k]):.2f} | {pct(s.seq[k], 99):.2f}" for k in scen)
        cpu = " | ".join(f"{med(s.cpu[k]):.2f}" for k in scen)
        n = sum(len(v) for k, v in s.seq.items() if k != "upstream")
        lines.append(
            f"| {s.label} | {wall} | {paired_history_ratio(s):.2f}x | {cpu} | "
            f"{history_ratio(s, s.cpu):.2f}x | {s.fallbacks}/{n} |"
        )
    lines += [
        "",
        f"Bare turn, {clients} concurrent clients:",
        "",
        "| server | requests | req/s | p50 ms | p99 ms | p99 / p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in servers:
        rps = len(s.conc) / s.conc_seconds if s.conc_seconds else 0.0
        lines.append(
            f"| {s.label} | {len(s.conc)} | {rps:.0f} | {pct(s.conc, 50):.2f} | "
            f"{pct(s.conc, 99):.2f} | {tail_ratio(s):.2f}x |"
        )
    lines += [
        "",
        f"Gateway, {GATEWAY_HISTORY} prior messages, the fake upstream in its own process:",
        "",
        "| server | /route p50 ms | /v1/messages p50 ms | upstream alone p50 ms | proxying ms "
        "(gateway - route - upstream, paired) | /route CPU ms | /v1/messages CPU ms | "
        "proxying CPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in servers:
        route, gw, up = (med(s.seq[k]) for k in ("gateway_route", "gateway", "upstream"))
        cpu_route, cpu_gw = med(s.cpu["gateway_route"]), med(s.cpu["gateway"])
        lines.append(
            f"| {s.label} | {route:.2f} | {gw:.2f} | {up:.2f} | {proxy_ms(s):.2f} | "
            f"{cpu_route:.2f} | {cpu_gw:.2f} | {proxy_cpu_ms(s):.2f} |"
        )
    baseline = {s.label.split(" ")[-1]: s for s in servers if s.label.startswith("baseline")}
    if baseline:
        pairs = [
            (s, baseline[s.label.split(" ")[-1]]) for s in servers if s.label.startswith("this")
        ]
        cols = [f"{n:,} prior p50" for n in HISTORIES] + [
            f"{last} CPU",
            f"{clients}-client p99",
            "proxying CPU",
        ]
        lines += ["", "This tree / baseline (below 1: faster):", ""]
        lines += [f"| call log | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
        for s, b in pairs:
            cells = [ratio(med(s.seq[k]), med(b.seq[k])) for k in scen]
            cells.append(ratio(med(s.cpu[scen[-1]]), med(b.cpu[scen[-1]])))
            cells.append(ratio(pct(s.conc, 99), pct(b.conc, 99)))
            cells.append(ratio(proxy_cpu_ms(s), proxy_cpu_ms(b)))
            lines.append(f"| {s.label.split(' ')[-1]} | {' | '.join(cells)} |")
    lines += [
        "",
        "| target | server | measured (wall) | measured (server CPU) | target | result (wall) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for s in servers:
        hist, hist_cpu, tail = paired_history_ratio(s), history_ratio(s, s.cpu), tail_ratio(s)
        proxy, proxy_cpu = proxy_ms(s), proxy_cpu_ms(s)
        lines += [
            f"| {last} prior / bare | {s.label} | {hist:.2f}x | {hist_cpu:.2f}x | "
            f"<= {TARGET_HISTORY_RATIO}x | {verdict(hist <= TARGET_HISTORY_RATIO)} |",
            f"| p99 / p50, {clients} clients | {s.label} | {tail:.2f}x | - | "
            f"<= {TARGET_TAIL_RATIO}x | {verdict(tail <= TARGET_TAIL_RATIO)} |",
            f"| proxying beyond routing | {s.label} | {proxy:.2f} ms | {proxy_cpu:.2f} ms | "
            f"<= {TARGET_PROXY_MS} ms | {verdict(proxy <= TARGET_PROXY_MS)} |",
        ]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


@click.command()
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO / "models",
    show_default=True,
    help="Bundle folder, or a models folder with DEFAULT.",
)
@click.option(
    "--baseline",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Another source tree to serve side by side (e.g. an exported main).",
)
@click.option("--rounds", default=30, show_default=True, help="Sequential rounds.")
@click.option("--block", default=5, show_default=True, help="Request sets per server per round.")
@click.option("--clients", default=4, show_default=True)
@click.option("--conc-rounds", default=5, show_default=True, help="Concurrent rounds.")
@click.option("--conc-seconds", default=2.0, show_default=True, help="Per server per round.")
@click.option("--deadline-ms", default=1000.0, show_default=True)
def main(
    bundle: Path,
    baseline: Path | None,
    rounds: int,
    block: int,
    clients: int,
    conc_rounds: int,
    conc_seconds: float,
    deadline_ms: float,
) -> None:
    """Serve every configuration at once and measure them in turn; print Markdown tables."""
    bundle_dir = resolve_bundle_dir(bundle)
    bodies = {f"hist{n}": agent_body(n) for n in HISTORIES}
    gateway = agent_body(GATEWAY_HISTORY, model="claude-opus-4-6", max_tokens=256)
    bodies |= {"gateway_route": gateway, "gateway": gateway}
    trees = [("this", REPO)] + ([("baseline", baseline.resolve())] if baseline else [])
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
        upstream = stack.enter_context(fake_upstream())
        servers = []
        for name, src in trees:
            for calllog in (False, True):
                label = f"{name} log-{'on' if calllog else 'off'}"
                env = {
                    "ROUTER_DEADLINE_MS": str(deadline_ms),
                    "ROUTER_ONNX_THREADS": "1",
                    "OMP_NUM_THREADS": "1",
                    "ROUTER_UPSTREAM_URL": upstream,
                    "ROUTER_CALLLOG_URL": str(Path(tmp) / f"{name}-calls.db") if calllog else "off",
                    "PYTHONPATH": str(src),
                }
                click.echo(f"starting {label} ({src})", err=True)
                server = stack.enter_context(serve(bundle_dir, env=env, src=src))
                servers.append(Server(label, server.url, server.pid, calllog))
        gc.collect()
        gc.freeze()  # the client's own collector pauses would land in the servers' p99
        click.echo("sequential requests", err=True)
        measure_sequential(servers, upstream, bodies, rounds, block)
        click.echo(f"{clients} concurrent clients", err=True)
        measure_concurrent(servers, bodies["hist0"], clients, conc_rounds, conc_seconds)
    load_after = os.getloadavg()
    sizes = ", ".join(f"{n}: {len(bodies[f'hist{n}']) / 1000:.0f} kB" for n in HISTORIES)
    info = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load avg {load_before[0]:.2f} before / "
        f"{load_after[0]:.2f} after, python {platform.python_version()}, bundle "
        f"{bundle_dir.name}, onnx threads 1, deadline {deadline_ms:g} ms; bodies by prior "
        f"messages {sizes}; {rounds} rounds x {block} sets of sequential requests per server"
    )
    click.echo(render(servers, clients, info))


if __name__ == "__main__":
    main()
