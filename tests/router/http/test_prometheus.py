"""GET /metrics: one registry per app; routes, fallbacks, latency, savings, switch cache writes,
gateway upstream statuses, tokens and dollars."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from router.core.service import RoutingService
from router.http.app import create_app
from tests.fake_anthropic import FakeAnthropic

EASY = "hello thanks name color"
HARD = "prove derive theorem integral optimize architecture prove"
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


def value(client: TestClient, name: str, **labels: str) -> float:
    """One sample of GET /metrics (0 when absent)."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture
def make_client(make_service: Callable[..., RoutingService]) -> Callable[..., TestClient]:
    def make(**settings: object) -> TestClient:
        service = make_service(**({"deadline_ms": 5000} | settings))
        return TestClient(create_app(service.settings, service=service))

    return make


def test_routes_latency_and_savings(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    easy = client.post("/route", json={"prompt": EASY}).json()
    client.post("/route/batch", json={"requests": [{"prompt": HARD}, {"prompt": EASY}]})
    assert value(client, "tierwise_routes_total", endpoint="route", tier=easy["tier"]) >= 1
    total = sum(
        value(client, "tierwise_routes_total", endpoint="route", tier=t)
        for t in ("haiku", "sonnet", "opus")
    )
    assert total == 3
    assert value(client, "tierwise_route_latency_seconds_count", endpoint="route") == 3
    assert value(client, "tierwise_route_fallbacks_total", endpoint="route") == 0
    # An easy turn on haiku saves (opus - haiku) input price on its ~tokens.
    assert easy["tier"] == "haiku"
    assert value(client, "tierwise_saved_usd_total", endpoint="route") > 0


def test_registries_are_per_app(make_client: Callable[..., TestClient]) -> None:
    first, second = make_client(), make_client()
    first.post("/route", json={"prompt": EASY})
    assert value(first, "tierwise_routes_total", endpoint="route", tier="haiku") == 1
    assert value(second, "tierwise_routes_total", endpoint="route", tier="haiku") == 0


def test_fallbacks_are_counted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(deadline_ms=0.000001)  # nothing scores in a nanosecond
    decision = client.post("/route", json={"prompt": EASY}).json()
    assert decision["fallback"] is True
    assert value(client, "tierwise_route_fallbacks_total", endpoint="route") == 1
    assert value(client, "tierwise_routes_total", endpoint="route", tier=decision["tier"]) == 1


def test_switch_cache_writes_come_from_the_cost_breakdown(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    # A hard turn after a haiku turn with a big cached prefix: moving up re-writes that prefix.
    body = {
        "prompt": HARD,
        "session_id": "s1",
        "previous_model": "claude-haiku-4-5",
        "previous_usage": {"input_tokens": 50, "output_tokens": 5, "cache_read_input_tokens": 8000},
    }
    decision = client.post("/route", json=body).json()
    chosen = decision["cost_breakdown"]["tiers"][decision["tier"]]
    assert decision["tier"] != "haiku" and chosen["cache"] == "write"
    assert value(client, "tierwise_switch_cache_write_usd_total", endpoint="route") == (
        pytest.approx(chosen["cache_usd"])
    )
    # Staying on the tier that holds the cache costs no switch.
    client.post("/route", json=body | {"prompt": EASY, "previous_model": "claude-haiku-4-5"})
    assert value(client, "tierwise_switch_cache_write_usd_total", endpoint="route") == (
        pytest.approx(chosen["cache_usd"])
    )


def test_gateway_statuses_tokens_and_dollars(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> None:
    service = make_service(upstream_url=fake_anthropic.base_url, deadline_ms=5000)
    with TestClient(create_app(service.settings, service=service)) as client:
        message = {"model": "claude-opus-4-6", "max_tokens": 16}
        ok = client.post(
            "/v1/messages",
            json=message | {"messages": [{"role": "user", "content": EASY}]},
            headers=HEADERS,
        )
        assert ok.status_code == 200
        fake_anthropic.fail_next(529)
        client.post(
            "/v1/messages",
            json=message | {"messages": [{"role": "user", "content": EASY}]},
            headers=HEADERS,
        )
        tier = ok.headers["x-tierwise-tier"]
        assert value(client, "tierwise_gateway_upstream_responses_total", status="200") == 1
        assert value(client, "tierwise_gateway_upstream_responses_total", status="529") == 1
        assert value(client, "tierwise_routes_total", endpoint="gateway", tier=tier) == 2
        assert value(client, "tierwise_routes_total", endpoint="route", tier=tier) == 0
        usage = ok.json()["usage"]
        assert (
            value(client, "tierwise_gateway_tokens_total", tier=tier, kind="input")
            == (usage["input_tokens"])
        )
        assert value(client, "tierwise_gateway_cost_usd_total", tier=tier) > 0
        assert value(client, "tierwise_gateway_duration_seconds_count", stream="false") == 2


def test_gateway_unrouted_calls_count_under_the_model_called(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> None:
    service = make_service(upstream_url=fake_anthropic.base_url, deadline_ms=5000)
    with TestClient(create_app(service.settings, service=service)) as client:
        usage = {}
        for model in ("claude-opus-4-6", "not-a-claude-model"):
            r = client.post(
                "/v1/messages",
                json={
                    "model": model,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": EASY}],
                },
                headers=HEADERS | {"x-tierwise-route": "off"},
            )
            assert r.status_code == 200
            usage[model] = r.json()["usage"]
        opus_input = value(client, "tierwise_gateway_tokens_total", tier="opus", kind="input")
        assert opus_input == usage["claude-opus-4-6"]["input_tokens"]
        assert value(client, "tierwise_gateway_cost_usd_total", tier="opus") > 0
        assert value(client, "tierwise_gateway_tokens_total", tier="other", kind="input") > 0
        assert value(client, "tierwise_gateway_cost_usd_total", tier="other") == 0
        assert value(client, "tierwise_routes_total", endpoint="gateway", tier="opus") == 0
