"""Whatever a client sends, /route, /route/batch and /v1/messages answer a 4xx with a JSON error
message or a valid decision: never a 500, never a hang. Property-based (hypothesis) plus the
named nasty cases; schemathesis fuzzes the service's own OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from router.core.schemas import RouteDecision
from router.core.service import RoutingService
from router.http.app import create_app
from router.http.middleware.strict_json import MAX_JSON_DEPTH, json_depth, parse_json
from router.http.schemas import RouteBatchRequest

ROUTE_PATHS = ("/route", "/route/batch")
# Closed port: a body that got past the gates would fail upstream with 502, which the tests catch.
NO_UPSTREAM = "http://127.0.0.1:9"
JSON = {"content-type": "application/json"}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def client(make_service: Callable[..., RoutingService]) -> TestClient:
    service = make_service(deadline_ms=5000, upstream_url=NO_UPSTREAM)
    return TestClient(create_app(service.settings, service=service))


def assert_clean(path: str, r: Any) -> None:
    """A valid decision (batch) or a 4xx whose JSON names the problem."""
    assert r.status_code < 500, (path, r.status_code, r.text[:500])
    body = r.json()
    if r.status_code == 200:
        if path == "/route":
            RouteDecision.model_validate(body)
        else:
            assert all(RouteDecision.model_validate(d) for d in body["decisions"])
        return
    assert 400 <= r.status_code < 500
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"], body


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=30,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "", "USER"]) | st.text(max_size=8)
block_types = st.sampled_from(
    ["text", "image", "document", "tool_use", "tool_result", "thinking", "", "x" * 100]
)
blocks = st.fixed_dictionaries(
    {"type": block_types},
    optional={
        "text": st.text(max_size=200) | json_value,
        "content": st.text(max_size=50) | st.lists(json_value, max_size=3) | json_value,
        "source": st.fixed_dictionaries(
            {
                "type": st.sampled_from(["base64", "url", "text"]),
                "media_type": st.sampled_from(["image/png", "application/pdf", "text/plain"]),
                "data": st.text(max_size=100),
            }
        ),
        "name": st.text(max_size=20) | json_value,
        "input": json_value,
    },
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": st.text(max_size=300) | st.lists(blocks, max_size=4)}
    ),
    max_size=5,
)
knobs = st.fixed_dictionaries(
    {},
    optional={
        "threshold": json_value,
        "quality_target": st.floats(allow_nan=False, allow_infinity=False) | json_value,
        "min_tier": st.sampled_from(["haiku", "sonnet", "opus", "gpt", ""]) | json_value,
        "max_tier": st.sampled_from(["haiku", "sonnet", "opus"]) | json_value,
        "max_tokens": json_value,
        "system": st.text(max_size=50) | st.lists(blocks, max_size=2) | json_value,
        "tools": st.lists(json_value, max_size=3) | json_value,
        "session_id": st.text(max_size=300) | json_value,
        "budget_usd": json_value,
        "previous_usage": json_value,
    },
)
route_bodies = st.one_of(
    json_value,
    st.builds(lambda m, k: {"messages": m, **k}, messages, knobs),
    st.builds(lambda p, k: {"prompt": p, **k}, st.text(max_size=500) | json_value, knobs),
)


@FUZZ
@given(body=route_bodies, batch=st.booleans())
def test_any_json_body_is_a_route_or_a_clear_4xx(
    client: TestClient, body: Any, batch: bool
) -> None:
    path = "/route/batch" if batch else "/route"
    payload = {"requests": [body, body]} if batch else body
    r = client.post(path, content=json.dumps(payload).encode(), headers=JSON)
    assert_clean(path, r)


@FUZZ
@given(raw=st.binary(max_size=400), path=st.sampled_from(ROUTE_PATHS))
def test_any_bytes_are_a_clear_4xx(client: TestClient, raw: bytes, path: str) -> None:
    r = client.post(path, content=raw, headers=JSON)
    assert_clean(path, r)


@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=5000) | st.integers(min_value=55, max_value=66),
    where=st.sampled_from(["extra", "tools", "tool_result", "system"]),
    kind=st.sampled_from(["[", '{"a":']),
)
def test_deep_nesting_never_recurses(client: TestClient, depth: int, where: str, kind: str) -> None:
    close = "]" if kind == "[" else "}"
    leaf = "1" if kind != "[" else ""
    nested = kind * depth + leaf + close * depth
    bodies = {  # (template, nesting levels around the inserted value)
        "extra": ('{"prompt": "hi", "x": %s}', 1),
        "tools": ('{"prompt": "hi", "tools": [{"input_schema": %s}]}', 3),
        "tool_result": (
            '{"messages": [{"role": "user", "content": '
            '[{"type": "tool_result", "content": [{"type": "text", "text": "t", "x": %s}]}]}]}',
            7,
        ),
        "system": ('{"prompt": "hi", "system": [{"type": "text", "text": "s", "x": %s}]}', 3),
    }
    template, around = bodies[where]
    r = client.post("/route", content=(template % nested).encode(), headers=JSON)
    assert_clean("/route", r)
    too_deep = around + depth > MAX_JSON_DEPTH
    assert (r.status_code == 422 and "deep" in r.json()["error"]["message"]) == too_deep, r.text


NASTY: dict[str, tuple[bytes, int, str]] = {
    "malformed": (b'{"prompt": "hi",', 422, "not valid JSON"),
    "invalid utf-8": (b'{"prompt": "\xff\xfe caf\xe9"}', 422, "UTF-8"),
    "overlong utf-8": (b'{"prompt": "\xc0\xaf"}', 422, "UTF-8"),
    "lone surrogate": (b'{"prompt": "\\ud800 hi"}', 422, "surrogate"),
    "NaN": (b'{"prompt": "hi", "threshold": NaN}', 422, "NaN"),
    "Infinity": (b'{"prompt": "hi", "temperature": -Infinity}', 422, "finite"),
    "1e400": (b'{"prompt": "hi", "budget_usd": 1e400}', 422, "1e400"),
    "5000-digit int": (b'{"prompt": "hi", "max_tokens": ' + b"9" * 5000 + b"}", 422, "64 bits"),
    "2**64": (b'{"prompt": "hi", "max_tokens": 18446744073709551616}', 422, "64 bits"),
    "not an object": (b"[1, 2, 3]", 422, "body"),
    "empty messages": (b'{"messages": []}', 422, "messages"),
    "unknown role": (b'{"messages": [{"role": "robot", "content": "x"}]}', 422, "role"),
    "null content": (b'{"messages": [{"role": "user", "content": null}]}', 422, "content"),
    "text block without text": (
        b'{"messages": [{"role": "user", "content": [{"type": "text"}]}]}',
        422,
        "text",
    ),
    "BOM": (b'\xef\xbb\xbf{"prompt": "hi"}', 422, "BOM"),
}


@pytest.mark.parametrize("name", list(NASTY))
@pytest.mark.parametrize("path", ROUTE_PATHS)
def test_named_nasty_bodies(client: TestClient, name: str, path: str) -> None:
    raw, status, words = NASTY[name]
    if path == "/route/batch" and raw.startswith(b"{") and b"\xef" not in raw[:1]:
        raw = b'{"requests": [' + raw + b"]}"
    r = client.post(path, content=raw, headers=JSON)
    assert_clean(path, r)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": ""},
        {"prompt": "a\u0000b \U0001f600 \u202e"},
        {"prompt": "x" * 900_000},
        {"messages": [{"role": "user", "content": ""}]},
        {"messages": [{"role": "user", "content": []}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                        {
                            "type": "document",
                            "source": {"type": "url", "url": "https://example.com/a.pdf"},
                        },
                        {"type": "text", "text": "what is in these?"},
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"a": 1}]}],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "x"}] * 2000},
    ],
    ids=[
        "empty",
        "odd-unicode",
        "900kB",
        "empty-str",
        "no-blocks",
        "image+document",
        "odd-tool-result",
        "2000-msgs",
    ],
)
def test_odd_but_valid_turns_route(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/route", json=body)
    assert r.status_code == 200, r.text[:300]
    RouteDecision.model_validate(r.json())


def test_emoji_surrogate_pair_escapes_are_fine(client: TestClient) -> None:
    r = client.post("/route", content=b'{"prompt": "hi \\ud83d\\ude00"}', headers=JSON)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "size", "limit"),
    [
        ("/route", 10_000_000, "1000000"),
        ("/route/batch", 10_000_000, "1000000"),
        ("/v1/messages", 40_000_000, "32000000"),  # the gateway allows 32 MB, like Anthropic
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_huge_body_is_413(
    client: TestClient, path: str, size: int, limit: str, chunked: bool
) -> None:
    big = b'{"prompt": "' + b"x" * size + b'"}'
    if chunked:  # no content-length: the limit must hold while streaming, not only on the header
        r = client.post(path, content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]))
    else:
        r = client.post(path, content=big, headers=JSON)
    assert r.status_code == 413, r.text[:200]
    assert limit in r.text


def test_batch_of_too_many_is_400(client: TestClient) -> None:
    r = client.post("/route/batch", json={"requests": [{"prompt": "x"}] * 257})
    assert_clean("/route/batch", r)
    assert r.status_code == 400 and "max_batch" in r.json()["error"]["message"]


def test_unknown_path_and_method_are_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.get("/route")
    assert r.status_code == 405 and r.json()["error"]["message"]


@FUZZ
@given(raw=st.binary(max_size=300) | route_bodies.map(lambda b: json.dumps(b).encode()))
def test_gateway_bad_bodies_are_anthropic_shaped_4xx(client: TestClient, raw: bytes) -> None:
    """Only bodies the gates refuse are checked here (valid and empty ones go upstream)."""
    if not raw.strip():
        return
    try:
        parse_json(raw)
        return
    except Exception:
        pass
    r = client.post("/v1/messages", content=raw, headers={**JSON, "x-api-key": "sk-test"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("tierwise: ")


def test_gateway_routes_odd_but_valid_bodies(
    make_service: Callable[..., RoutingService], fake_anthropic: Any
) -> None:
    service = make_service(deadline_ms=5000, upstream_url=fake_anthropic.base_url)
    with TestClient(create_app(service.settings, service=service)) as client:
        for content in ("", [{"type": "image", "source": {"type": "base64", "data": "x"}}]):
            body = {
                "model": "claude-opus-4-6",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": content}],
            }
            r = client.post("/v1/messages", json=body, headers={"x-api-key": "sk-test"})
            assert r.status_code < 500, r.text


@pytest.mark.parametrize(
    ("body", "depth"),
    [(b"{}", 1), (b"[[], {}]", 2), (b'{"a": "[[[[{{{{"}', 1), (b'["\\"[["]', 1), (b"1", 0)],
)
def test_json_depth_ignores_brackets_in_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_schema_round_trip_of_batch() -> None:
    assert RouteBatchRequest.model_validate({"requests": [{"prompt": "x"}]}).requests[0].prompt


@pytest.mark.parametrize(
    "examples",
    [pytest.param(3, id="quick"), pytest.param(100, id="thorough", marks=pytest.mark.slow)],
)
def test_schemathesis_fuzz_of_own_openapi(
    make_service: Callable[..., RoutingService], examples: int
) -> None:
    """Every operation in /openapi.json (but the upstream-bound gateway), with schema-valid and
    schema-violating input from schemathesis: no 5xx, ever."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    service = make_service(deadline_ms=5000, upstream_url=NO_UPSTREAM)
    app = create_app(service.settings, service=service)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex="^/v1/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/route", "/route/batch", "/admin/reload"} <= {op.path for op in operations}
    calls = 0
    for op in operations:
        for mode in GenerationMode:

            @settings(FUZZ, max_examples=examples)
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:  # negative mode on an operation with no input to break
                assert mode is GenerationMode.NEGATIVE
    assert calls >= len(operations)


def test_schemathesis_fuzz_of_the_gateway(
    make_service: Callable[..., RoutingService], fake_anthropic: Any
) -> None:
    """The /v1/ operations against a local fake Anthropic: no 5xx (found: a control character
    in a passthrough path crashed URL building; now refused by PrintablePath)."""
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error

    service = make_service(deadline_ms=5000, upstream_url=fake_anthropic.base_url)
    app = create_app(service.settings, service=service)
    anthropic_headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    with TestClient(app):  # the lifespan starts the upstream client
        schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/v1/")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert "/v1/messages" in {op.path for op in operations}
        for op in operations:

            @settings(FUZZ, max_examples=10)
            @given(case=op.as_strategy())
            def check(case: Any) -> None:
                case.headers = {**(case.headers or {}), **anthropic_headers}
                case.call_and_validate(checks=[not_a_server_error])

            check()


@pytest.mark.parametrize("path", ["/v1/%1F", "/v1/models/%0Aevil", "/route%00", "/admin/%7F"])
def test_control_characters_in_paths_are_400(client: TestClient, path: str) -> None:
    r = client.post(path, json={"prompt": "hi"})
    assert r.status_code == 400, r.text
    assert "control character" in r.text
