"""Agent-aware routing through HTTP: cache economics, tool-loop pinning, run budgets, shared state.

The fake bundle sends hard words to opus and, for one-message prompts, easy words to haiku; the
expected dollars below are recomputed from the settings' price table, not copied."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.agent.pinning import pin_reason
from router.agent.routing import THRESHOLD_RISK_USD
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.http.app import create_app
from router.settings import Settings
from tests.fake_anthropic import FakeAnthropic
from tests.redis_server import free_port

EASY = "hello thanks name color"
HARD = "prove derive theorem integral optimize architecture prove"
TOOLS = [{"name": "search", "description": "web search", "input_schema": {"type": "object"}}]
# A roomy deadline: on a loaded 2-core box a decision must not turn into a fallback.
OPTS: dict[str, Any] = {"deadline_ms": 5000}


def settings_prices() -> tuple[dict[str, tuple[float, float]], float, float]:
    s = Settings()
    table = {t.value: (s.tiers[t].input_per_mtok, s.tiers[t].output_per_mtok) for t in s.tiers}
    return table, s.prices.cache_read_multiplier, s.prices.cache_write_multiplier


def model_of(tier: str) -> str:
    return Settings().tiers[tier].model  # type: ignore[index]


@pytest.fixture
def make_client(make_service: Callable[..., RoutingService]) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        service = make_service(**(OPTS | overrides))
        return TestClient(create_app(service.settings, service=service))

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def tool_use(tool_id: str, *thinking: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": t, "signature": "sig"} for t in thinking
    ]
    blocks.append({"type": "tool_use", "id": tool_id, "name": "search", "input": {"q": "x"}})
    return {"role": "assistant", "content": blocks}


def tool_result(tool_id: str, text: str = "3 results") -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": text}],
    }


def route(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/route", json=body)
    assert r.status_code == 200, r.text
    decision: dict[str, Any] = r.json()
    assert decision["fallback"] is False, decision["reason"]
    return decision


# ---- tool-loop detection (pure) -------------------------------------------------------------


def test_pin_reason_sees_a_pending_tool_loop() -> None:
    loop = RouteRequest(messages=[user(HARD), tool_use("t1"), tool_result("t1")])  # type: ignore[list-item]
    reason = pin_reason(loop)
    assert reason is not None and "t1" in reason and "thinking" not in reason
    thinking = RouteRequest(messages=[user(HARD), tool_use("t1", "plan"), tool_result("t1")])  # type: ignore[list-item]
    assert "thinking blocks" in (pin_reason(thinking) or "")


def test_no_pin_when_the_turn_is_a_new_user_message() -> None:
    # Thinking blocks of a finished turn need not go back to their model: no pin.
    done = [
        user(HARD),
        tool_use("t1", "plan"),
        tool_result("t1"),
        {"role": "assistant", "content": "done"},
    ]
    assert pin_reason(RouteRequest(messages=[*done, user(EASY)])) is None  # type: ignore[list-item]
    assert pin_reason(RouteRequest(prompt=EASY)) is None


# ---- the three-turn agent loop ----------------------------------------------------------------


def test_three_turn_agent_loop(client: TestClient) -> None:
    table, read, write = settings_prices()

    # Turn 1: a hard task; nothing is cached yet, so it is priced like any turn and goes to opus.
    first = [user(HARD)]
    t1 = route(client, messages=first, tools=TOOLS, session_id="s1", max_tokens=1024)
    assert t1["tier"] == "opus"
    assert t1["cost_breakdown"]["prefix_tokens"] == 0
    assert t1["cost_breakdown"]["tiers"]["opus"]["cache"] == "none"

    # Turn 2: the model asked for a tool; its result comes back. Whatever the scores say, the
    # tier stays (session state says opus served the last turn); probabilities are still there.
    loop = [*first, tool_use("t1"), tool_result("t1", "ok")]
    t2 = route(client, messages=loop, tools=TOOLS, session_id="s1")
    assert t2["tier"] == "opus"
    assert t2["reason"].startswith("pinned to opus: mid tool-use loop")
    assert set(t2["probabilities"]) == {"haiku", "sonnet", "opus"}
    assert t2["cost_breakdown"]["pinned"] is True

    # Turn 3: a new, easy user turn on a conversation whose 60k-token prompt opus has cached.
    usage = {
        "input_tokens": 50,
        "output_tokens": 700,
        "cache_read_input_tokens": 58_000,
        "cache_creation_input_tokens": 2_000,
    }
    prefix = 60_050
    easy = {"prompt": EASY, "max_tokens": 300}
    plain = route(client, **easy)
    assert plain["tier"] == "haiku" and plain["cost_breakdown"] is None  # alone: cheapest wins
    t3 = route(
        client, **easy, session_id="s1", previous_model=model_of("opus"), previous_usage=usage
    )
    bd = t3["cost_breakdown"]
    assert bd["prefix_tokens"] == prefix and bd["cache_tier"] == "opus"
    rows = bd["tiers"]
    # Staying reads the prefix at the read multiplier; switching writes it at the write one.
    assert math.isclose(rows["opus"]["cache_usd"], prefix * table["opus"][0] * read / 1e6)
    assert math.isclose(rows["haiku"]["cache_usd"], prefix * table["haiku"][0] * write / 1e6)
    for tier, row in rows.items():
        # The previous answer (700 tokens) follows the cached prefix and is read fresh.
        assert row["fresh_tokens"] == 700
        assert math.isclose(row["fresh_usd"], 700 * table[tier][0] / 1e6)
        assert row["output_tokens"] == 300
        assert math.isclose(row["output_usd"], 300 * table[tier][1] / 1e6)
        # Turn 3 is a head after one loop turn (turn 2): the quality it weighs is the mean of
        # both turns' P(adequate), the loop it commits, not its own alone.
        p = (t2["probabilities"][tier] + t3["probabilities"][tier]) / 2
        assert math.isclose(row["p_adequate"], p, rel_tol=1e-5)
        # The fake bundle is a threshold bundle: its agent path prices THRESHOLD_RISK_USD risk.
        assert math.isclose(row["risk_usd"], (1 - p) * THRESHOLD_RISK_USD, rel_tol=1e-5)
    assert "weighed by the mean P(adequate) of this session's 1 loop turns" in t3["reason"]
    assert bd["inadequate_usd"] == THRESHOLD_RISK_USD and "opus" in bd["choosable"]
    assert rows["opus"]["total_usd"] < min(rows["haiku"]["total_usd"], rows["sonnet"]["total_usd"])
    assert t3["tier"] == "opus"
    assert "staying on opus reads the 60050-token cached prefix" in t3["reason"]


def test_pin_follows_the_previous_model_not_the_scores(client: TestClient) -> None:
    loop = [user(HARD), tool_use("t9", "plan"), tool_result("t9")]
    t = route(client, messages=loop, tools=TOOLS, previous_model=model_of("sonnet"))
    assert t["tier"] == "sonnet"
    assert "thinking blocks" in t["reason"] and "on cost alone: opus" in t["reason"]


def test_tool_loop_with_unknown_previous_tier_routes_on_cost(client: TestClient) -> None:
    loop = [user(HARD), tool_use("t1"), tool_result("t1")]
    t = route(client, messages=loop, tools=TOOLS, session_id="never-seen")
    assert "previous tier is unknown" in t["reason"]
    assert t["cost_breakdown"]["pinned"] is False


def test_fallback_keeps_the_tool_loop_tier(make_service: Callable[..., RoutingService]) -> None:
    service = make_service()
    loop = [user(HARD), tool_use("t1"), tool_result("t1")]
    request = RouteRequest(messages=loop, previous_model=model_of("opus"))  # type: ignore[arg-type]
    decision = service.fallback(request, "scoring exceeded the 50 ms deadline", 51.0)
    assert service.settings.fallback_tier.value == "sonnet"
    assert decision.tier.value == "opus" and decision.fallback
    assert "mid tool-use loop" in decision.reason


# ---- budgets ------------------------------------------------------------------------------------


def test_budget_run_steps_down(client: TestClient) -> None:
    table, _, _ = settings_prices()
    opus_in, opus_out = table["opus"]
    run = {"prompt": HARD, "run_id": "r1", "budget_usd": 1.0}

    assert route(client, **run)["tier"] == "opus"

    def spend(input_tokens: int, output_tokens: int, **extra: Any) -> dict[str, Any]:
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        r = client.post("/runs/r1/usage", json={"model": model_of("opus"), "usage": usage, **extra})
        assert r.status_code == 200, r.text
        receipt: dict[str, Any] = r.json()
        want = (input_tokens * opus_in + output_tokens * opus_out) / 1e6
        assert math.isclose(receipt["cost_usd"], want) and receipt["tier"] == "opus"
        return receipt

    # 10k in + 32k out on opus at list price: 0.05 + 0.80 = $0.85 of $1.00 -> cap at sonnet.
    receipt = spend(10_000, 32_000, message_id="msg_1")
    assert receipt["run"]["cap"] == "sonnet" and math.isclose(receipt["run"]["spent_usd"], 0.85)
    again = spend(10_000, 32_000, message_id="msg_1")  # a retried report is not counted twice
    assert again["counted"] is False and math.isclose(again["run"]["spent_usd"], 0.85)
    second = route(client, **run)
    assert second["tier"] == "sonnet"
    assert "capped at sonnet" in second["reason"]
    assert second["cost_breakdown"]["budget"]["cap"] == "sonnet"

    spend(0, 4_400)  # +$0.11 -> $0.96: cap at haiku
    assert route(client, **run)["tier"] == "haiku"

    spend(0, 2_000)  # +$0.05 -> $1.01: exhausted, still routed, cheapest tier
    last = route(client, **run)
    assert last["tier"] == "haiku"
    assert "budget exhausted" in last["reason"]
    assert last["cost_breakdown"]["budget"]["exhausted"] is True

    status = client.get("/runs/r1").json()
    assert status["budget_usd"] == 1.0 and status["remaining_usd"] == 0.0
    assert math.isclose(status["spent_usd"], 1.01) and status["exhausted"] is True
    assert status["calls"] == {"haiku": 0, "sonnet": 0, "opus": 3}
    assert status["routed"] == {"haiku": 2, "sonnet": 1, "opus": 1}


def test_fallback_decisions_count_in_the_run(make_client: Callable[..., TestClient]) -> None:
    """A run's `routed` counts every decision its caller got, fallbacks included, once: the
    scoring thread a deadline abandoned counts nothing when it finishes later."""
    client = make_client(deadline_ms=0.001)  # every decision misses the deadline
    got = [client.post("/route", json={"prompt": p, "run_id": "fb"}).json() for p in (EASY, HARD)]
    batch = client.post(
        "/route/batch", json={"requests": [{"prompt": EASY, "run_id": "fb"}] * 3}
    ).json()["decisions"]
    decisions = got + batch
    assert all(d["fallback"] for d in decisions)
    time.sleep(0.3)  # let any abandoned scoring thread finish
    want = {t: sum(d["tier"] == t for d in decisions) for t in ("haiku", "sonnet", "opus")}
    assert client.get("/runs/fb").json()["routed"] == want == {"haiku": 0, "sonnet": 5, "opus": 0}


SONNET_CAP = "spent >= 80%: capped at sonnet"
HAIKU_CAP = "spent >= 95%: capped at haiku"
EXHAUSTED = "spent; routing the cheapest tier"


@pytest.mark.parametrize(
    ("cents", "tier", "exhausted", "reason"),
    [
        pytest.param(79, "opus", False, None, id="79c"),
        pytest.param(
            80, "sonnet", False, f"budget $0.8000 of $1.0000 (80%) {SONNET_CAP}", id="80c"
        ),
        pytest.param(
            81, "sonnet", False, f"budget $0.8100 of $1.0000 (81%) {SONNET_CAP}", id="81c"
        ),
        pytest.param(
            94, "sonnet", False, f"budget $0.9400 of $1.0000 (94%) {SONNET_CAP}", id="94c"
        ),
        pytest.param(95, "haiku", False, f"budget $0.9500 of $1.0000 (95%) {HAIKU_CAP}", id="95c"),
        pytest.param(96, "haiku", False, f"budget $0.9600 of $1.0000 (96%) {HAIKU_CAP}", id="96c"),
        pytest.param(99, "haiku", False, f"budget $0.9900 of $1.0000 (99%) {HAIKU_CAP}", id="99c"),
        pytest.param(
            100,
            "haiku",
            True,
            f"budget exhausted: $1.0000 of $1.0000 (100%) {EXHAUSTED}",
            id="100c",
        ),
        pytest.param(
            101,
            "haiku",
            True,
            f"budget exhausted: $1.0100 of $1.0000 (101%) {EXHAUSTED}",
            id="101c",
        ),
    ],
)
def test_budget_steps_at_the_cent(
    client: TestClient, cents: int, tier: str, exhausted: bool, reason: str | None
) -> None:
    """docs/agent-routing.md: >= 80% spent caps at sonnet, >= 95% at haiku, >= 100% is
    exhausted (still routed, cheapest tier). Each step one cent under, at and over."""
    haiku_in = settings_prices()[0]["haiku"][0]
    usage = {"input_tokens": round(cents / 100 * 1e6 / haiku_in), "output_tokens": 0}
    receipt = client.post("/runs/rb/usage", json={"model": model_of("haiku"), "usage": usage})
    assert receipt.json()["run"]["spent_usd"] == cents / 100  # exactly: a boundary, not near it

    decision = route(client, prompt=HARD, run_id="rb", budget_usd=1.0)
    assert decision["tier"] == tier
    budget = decision["cost_breakdown"]["budget"]
    assert budget["cap"] == (None if reason is None else tier)
    assert budget["exhausted"] is exhausted
    if reason is None:
        assert "budget" not in decision["reason"]
    else:
        assert decision["reason"].endswith(f"; {reason}")
    status = client.get("/runs/rb").json()
    assert (status["cap"], status["exhausted"]) == (budget["cap"], exhausted)
    assert status["remaining_usd"] == max(0.0, 1.0 - cents / 100)


def test_min_tier_beats_the_budget_cap(client: TestClient) -> None:
    usage = {"input_tokens": 0, "output_tokens": 40_000}
    client.post("/runs/r2/usage", json={"model": model_of("opus"), "usage": usage})
    t = route(client, prompt=HARD, run_id="r2", budget_usd=1.0, min_tier="opus")
    assert t["tier"] == "opus" and "min_tier=opus overrides the budget cap" in t["reason"]


def test_budget_cap_overrides_the_tool_loop_pin(client: TestClient) -> None:
    usage = {"input_tokens": 0, "output_tokens": 38_400}  # $0.96 on opus
    client.post("/runs/r3/usage", json={"model": model_of("opus"), "usage": usage})
    loop = [user(HARD), tool_use("t1"), tool_result("t1")]
    t = route(client, messages=loop, run_id="r3", budget_usd=1.0, previous_model=model_of("opus"))
    assert t["tier"] == "haiku"
    assert "capped at haiku" in t["reason"]
    assert "the budget cap rules out opus; switching" in t["reason"]
    assert t["cost_breakdown"]["pinned"] is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("get", "/runs/nope", None, 404, "'nope' is unknown"),
        ("post", "/runs/r/usage", {"model": "gpt-4o", "usage": {}}, 400, "'gpt-4o'"),
        ("post", "/runs/r/usage", {"usage": {}}, 422, "model"),
        ("post", "/route", {"prompt": "hi", "budget_usd": 1}, 422, "run_id"),
        ("post", "/route", {"prompt": "hi", "run_id": "r", "budget_usd": -1}, 422, "budget_usd"),
    ],
)
def test_run_errors_name_the_problem(
    client: TestClient, method: str, path: str, body: Any, status: int, words: str
) -> None:
    r = client.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_usage_report_updates_the_session(client: TestClient) -> None:
    usage = {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 20_000}
    body = {"model": model_of("sonnet"), "usage": usage, "session_id": "s7"}
    assert client.post("/runs/r7/usage", json=body).status_code == 200
    t = route(client, prompt=EASY, session_id="s7")
    assert t["cost_breakdown"]["cache_tier"] == "sonnet"
    assert t["cost_breakdown"]["prefix_tokens"] == 20_100


def test_a_usage_report_keeps_the_sessions_loop_quality(client: TestClient) -> None:
    loop = [user(HARD), tool_use("t1"), tool_result("t1")]
    route(client, messages=loop, tools=TOOLS, session_id="s8", previous_model=model_of("opus"))
    usage = {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 20_000}
    body = {"model": model_of("opus"), "usage": usage, "session_id": "s8"}
    assert client.post("/runs/r8/usage", json=body).status_code == 200
    t = route(client, prompt=EASY, session_id="s8")
    assert "this session's 1 loop turns" in t["reason"]


# ---- shared state and failures --------------------------------------------------------------


def test_replicas_share_sessions_and_runs_through_redis(
    make_client: Callable[..., TestClient], redis_client: Any, redis_url: str
) -> None:
    replica_a = make_client(session_url=redis_url)
    replica_b = make_client(session_url=redis_url)
    first = [user(HARD)]
    assert route(replica_a, messages=first, tools=TOOLS, session_id="s1")["tier"] == "opus"
    loop = [*first, tool_use("t1"), tool_result("t1")]
    pinned = route(replica_b, messages=loop, tools=TOOLS, session_id="s1")
    assert pinned["reason"].startswith("pinned to opus")
    usage = {"input_tokens": 1_000, "output_tokens": 100}
    replica_a.post("/runs/rr/usage", json={"model": model_of("haiku"), "usage": usage})
    assert replica_b.get("/runs/rr").json()["calls"]["haiku"] == 1


def test_store_outage_degrades_to_stateless_routing(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session_url=f"redis://127.0.0.1:{free_port()}/0", session_timeout_ms=200)
    assert "does not answer" in caplog.text  # said once at startup, not only per request
    t = route(client, prompt=HARD, session_id="s1", run_id="r1", budget_usd=1.0)
    assert t["tier"] == "opus"
    assert "session store unavailable" in t["reason"] and "budget not applied" in t["reason"]
    r = client.get("/runs/r1")
    assert r.status_code == 503 and "run store" in r.json()["error"]["message"]


# ---- through the gateway ------------------------------------------------------------------------


@pytest.fixture
def gateway(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> Iterator[TestClient]:
    service = make_service(upstream_url=fake_anthropic.base_url, **OPTS)
    with TestClient(create_app(service.settings, service=service)) as client:
        yield client


def test_gateway_calls_count_for_their_run_and_session(gateway: TestClient) -> None:
    """The gateway records each forwarded call's usage: clients behind it never post usage."""
    headers = {
        "x-api-key": "sk-ant-test",
        "anthropic-version": "2023-06-01",
        "x-tierwise-session-id": "g1",
        "x-tierwise-run-id": "gr",
        "x-tierwise-budget-usd": "5",
    }
    system = [
        {"type": "text", "text": "You are an agent. " * 200, "cache_control": {"type": "ephemeral"}}
    ]
    first = [user(HARD)]
    body = {"model": model_of("opus"), "max_tokens": 64, "system": system, "tools": TOOLS}
    r1 = gateway.post("/v1/messages", json=body | {"messages": first}, headers=headers)
    assert r1.status_code == 200, r1.text
    assert r1.headers["x-tierwise-tier"] == "opus"
    loop = [*first, tool_use("t1"), tool_result("t1")]
    r2 = gateway.post("/v1/messages", json=body | {"messages": loop}, headers=headers)
    assert r2.status_code == 200, r2.text
    assert r2.headers["x-tierwise-tier"] == "opus"
    assert "pinned to opus" in r2.headers["x-tierwise-reason"]

    table, read, write = settings_prices()
    want = 0.0
    for response in (r1, r2):
        u = response.json()["usage"]
        inp, out = table["opus"]
        want += (
            u["input_tokens"] * inp
            + u["cache_creation_input_tokens"] * inp * write
            + u["cache_read_input_tokens"] * inp * read
            + u["output_tokens"] * out
        ) / 1e6
    assert r2.json()["usage"]["cache_read_input_tokens"] > 0  # the fake cached the system prompt
    status = gateway.get("/runs/gr").json()
    assert status["calls"]["opus"] == 2 and status["routed"]["opus"] == 2
    assert math.isclose(status["spent_usd"], want) and status["budget_usd"] == 5.0
