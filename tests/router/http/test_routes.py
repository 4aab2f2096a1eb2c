from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from router.core.service import RoutingService
from router.http.app import create_app
from router.settings import Settings


@pytest.fixture
def client(make_service: Callable[..., RoutingService]) -> TestClient:
    # A generous deadline: on a loaded 2-core box a 400 must not turn into a fallback's 200.
    service = make_service(deadline_ms=10_000)
    return TestClient(create_app(service.settings, service=service))


def test_route_plain_prompt(client: TestClient) -> None:
    r = client.post("/route", json={"prompt": "hello what time is it"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] in ("haiku", "sonnet", "opus")
    assert set(body["probabilities"]) == {"haiku", "sonnet", "opus"}
    assert body["model"].startswith("claude-")
    assert body["model_version"] == "fake-v1"
    assert body["estimated_cost_usd"] >= 0
    assert body["fallback"] is False


def test_hard_prompt_routes_higher_than_easy(client: TestClient) -> None:
    easy = client.post("/route", json={"prompt": "hello thanks name color"}).json()
    hard = client.post(
        "/route", json={"prompt": "prove derive theorem integral optimize architecture prove"}
    ).json()
    order = ["haiku", "sonnet", "opus"]
    assert order.index(hard["tier"]) > order.index(easy["tier"])
    assert hard["probabilities"]["haiku"] < easy["probabilities"]["haiku"]


def test_messages_shape_with_blocks_and_tools(client: TestClient) -> None:
    body = {
        "system": "You are an agent.",
        "tools": [{"name": "search", "input_schema": {"type": "object"}}],
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": "find it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x" * 5000}],
            },
        ],
    }
    r = client.post("/route", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"prompt": "hi", "threshold": 2}, 422, "threshold"),
        ({"prompt": "hi", "min_tier": "gpt4"}, 422, "min_tier"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 422, "messages.0.role"),
        ({"messages": []}, 422, "messages"),
        ({}, 422, "prompt"),
        ({"prompt": "hi", "min_tier": "opus", "max_tier": "haiku"}, 422, "min_tier"),
        ({"prompt": "hi", "quality_target": 0.999}, 400, "quality_target"),
    ],
)
def test_bad_input_names_the_field(client: TestClient, body: dict, status: int, field: str) -> None:
    r = client.post("/route", json=body)
    assert r.status_code == status, r.text
    assert field in r.json()["error"]["message"]


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post("/route", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/route", "application/x-www-form-urlencoded"),  # what curl -d sends
        ("/route", "text/plain"),
        ("/route", None),
        ("/route/batch", "text/plain"),
        ("/runs/r1/usage", "application/x-www-form-urlencoded"),
    ],
)
def test_json_sent_as_something_else_says_what_to_send(
    client: TestClient, path: str, content_type: str | None
) -> None:
    body = {"/route": b'{"prompt": "hi"}', "/route/batch": b'{"requests": [{"prompt": "hi"}]}'}
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(path, content=body.get(path, b'{"model": "m", "usage": {}}'), headers=headers)
    assert r.status_code == 415
    sent = f"'s content-type is {content_type!r}" if content_type else " has none"
    assert r.json()["error"]["message"] == (
        f"body: send it as JSON with the header 'content-type: application/json' (this request{sent})"
    )


def test_oversized_body_is_413(make_service: Callable[..., RoutingService]) -> None:
    service = make_service()
    app = create_app(Settings(max_body_bytes=1000), service=service)
    r = TestClient(app).post("/route", json={"prompt": "x" * 5000})
    assert r.status_code == 413
    assert "1000" in r.json()["error"]["message"]


@pytest.mark.parametrize("n", [3, 4, 5], ids=["under", "at", "over"])
def test_batch_size_at_the_limit(make_service: Callable[..., RoutingService], n: int) -> None:
    service = make_service(max_batch=4, deadline_ms=10_000)  # sizes here, not a loaded CI box
    client = TestClient(create_app(service.settings, service=service))
    reqs = [{"prompt": f"hello {i}"} for i in range(n)]
    r = client.post("/route/batch", json={"requests": reqs})
    if n <= 4:
        assert r.status_code == 200, r.text
        decisions = r.json()["decisions"]
        assert len(decisions) == n and not any(d["fallback"] for d in decisions)
    else:
        assert r.status_code == 400
        assert r.json()["error"]["message"] == (
            "requests: 5 turns exceed max_batch 4 (ROUTER_MAX_BATCH)"
        )


def test_health_ready_version(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["model_version"] == "fake-v1"
    assert client.get("/version").json()["labels"] == ["haiku", "sonnet", "opus"]
