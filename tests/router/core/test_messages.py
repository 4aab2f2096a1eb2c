"""Messages: the one-pass check accepts only what pydantic accepts and fails exactly as pydantic
does, counts what routing counted, builds a Message only when one is read, and dumps as
list[Message] does; on real agent transcripts, requests route as fully validated ones do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from router.core.features import extract_turn
from router.core.messages import MAX_MESSAGES, Message, Messages
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.http.calllog.record import request_document
from tests.agent_sessions import claude_code_calls, tau_bench_calls

LAZY: TypeAdapter[Messages] = TypeAdapter(Messages)
FULL: TypeAdapter[list[Message]] = TypeAdapter(list[Message])

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=12,
)
# Mostly valid shapes, with every field sometimes wrong, missing or null.
block = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["text", "tool_use", "tool_result", "thinking", "image", "", "x" * 65]
        )
    },
    optional={
        "text": st.text(max_size=40) | json_leaf,
        "content": st.text(max_size=40)
        | st.lists(st.dictionaries(st.sampled_from(["type", "text", "x"]), json_value, max_size=3))
        | st.lists(json_leaf, max_size=2)
        | json_leaf,
        "name": st.text(max_size=10) | json_leaf,
        "id": st.text(max_size=10),
        "input": json_value,
        "cache_control": st.none() | st.just({"type": "ephemeral"}),
    },
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"])
        | st.sampled_from(["system", "USER", "", None]),
        "content": st.text(max_size=60) | st.lists(block, max_size=4) | json_leaf,
    },
    optional={"name": json_leaf, "z": json_value},
)
valid_block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result"]), "text": st.text(max_size=40)},
    optional={
        "content": st.text(max_size=40)
        | st.lists(st.dictionaries(st.text(max_size=5), json_value)),
        "name": st.none() | st.text(max_size=10),
        "input": json_value,
        "cache_control": st.none() | st.just({"type": "ephemeral"}),
    },
)
valid_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]),
        "content": st.text(max_size=60) | st.lists(valid_block, max_size=4),
    },
    optional={"z": json_value},
)
# Half lists pydantic accepts (the lazy path), half anything (mostly the full path).
messages = st.lists(valid_message, max_size=8) | st.lists(message | json_leaf, max_size=6)
EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def counted_as_before(validated: list[Message]) -> tuple[int, int]:
    """User turns and characters as router.core.features counted them on Message objects."""
    chars = 0
    for m in validated:
        if isinstance(m.content, str):
            chars += len(m.content)
            continue
        for b in m.content:
            chars += len(b.text or "")
            if isinstance(b.content, str):
                chars += len(b.content)
            elif isinstance(b.content, list):
                chars += sum(len(str(x.get("text", ""))) for x in b.content)
    return sum(m.role == "user" for m in validated), chars


@EXAMPLES
@given(raw=messages)
def test_the_one_pass_check_agrees_with_pydantic(raw: list[Any]) -> None:
    try:
        full = FULL.validate_python(raw)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as lazy_error:
            LAZY.validate_python(raw)
        # the same errors: fields named the same way, the same messages
        assert lazy_error.value.errors(include_context=False) == exc.errors(include_context=False)
        return
    lazy = LAZY.validate_python(raw)
    assert list(lazy) == full
    assert (lazy.user_turns, lazy.content_chars) == counted_as_before(full)
    for exclude_none in (False, True):
        for mode in ("python", "json"):
            assert LAZY.dump_python(lazy, mode=mode, exclude_none=exclude_none) == FULL.dump_python(
                full, mode=mode, exclude_none=exclude_none
            )
        # byte for byte, key order included: labeled logs and their data hash are dumped so
        assert LAZY.dump_json(lazy, exclude_none=exclude_none) == FULL.dump_json(
            full, exclude_none=exclude_none
        )
    assert lazy.json_values() == FULL.dump_python(full, mode="json", exclude_none=True)


def test_messages_built_from_message_objects_count_the_same() -> None:
    raw = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "name": "sql", "id": "t"}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "content": [{"text": "rows"}, {"x": 1}]}],
        },
    ]
    lazy = LAZY.validate_python(raw)
    eager = LAZY.validate_python([Message.model_validate(m) for m in raw])
    assert lazy == eager and (lazy.user_turns, lazy.content_chars) == (2, 6)
    assert (eager.user_turns, eager.content_chars) == (2, 6)


def agent_history(n: int) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    for i in range(n - 1):
        if i % 2:
            call = {"type": "tool_use", "id": f"t{i}", "name": "bash", "input": {"cmd": "ls"}}
            history.append({"role": "assistant", "content": [call]})
        else:
            result = {"type": "tool_result", "tool_use_id": f"t{i - 1}", "content": "a.py b.py"}
            history.append({"role": "user", "content": [result]})
    return [*history, {"role": "user", "content": "now fix the test"}]


def test_routing_builds_only_the_messages_it_reads(
    make_service: Callable[..., RoutingService],
) -> None:
    request = RouteRequest.model_validate({"messages": agent_history(MAX_MESSAGES)})
    assert request.messages is not None and len(request.messages) == MAX_MESSAGES
    make_service().route(request)
    # White-box on purpose: that history stays plain dicts is the whole point of Messages.
    built = [i for i, item in enumerate(request.messages._items) if isinstance(item, Message)]
    assert built == [MAX_MESSAGES - 1]


def test_a_bad_message_deep_in_the_history_is_named() -> None:
    raw = agent_history(MAX_MESSAGES)
    raw[1500] = {"role": "system", "content": "x"}
    with pytest.raises(ValidationError) as exc:
        RouteRequest.model_validate({"messages": raw})
    assert [e["loc"][:3] for e in exc.value.errors()] == [("messages", 1500, "role")]
    with pytest.raises(ValidationError) as too_many:
        RouteRequest.model_validate({"messages": [*raw, raw[-1]]})
    assert "at most 2000 items" in str(too_many.value)


def fully_validated(body: dict[str, Any]) -> RouteRequest:
    """The request with every message built by pydantic, as before Messages."""
    validated = [Message.model_validate(m) for m in body["messages"]]
    return RouteRequest.model_validate({**body, "messages": validated})


def agent_calls(shared_data: Path, every: int) -> list[tuple[str, dict[str, Any]]]:
    sessions = shared_data / "agent_sessions"
    calls = [
        *claude_code_calls(sessions / "claude_code" / "transcripts.tar.gz"),
        *tau_bench_calls(sessions / "tau_bench"),
    ]
    return calls[::every]


@pytest.mark.parametrize(
    "every", [pytest.param(25, id="sample"), pytest.param(1, id="all", marks=pytest.mark.slow)]
)
def test_agent_transcripts_route_as_fully_validated_requests(
    shared_data: Path, make_service: Callable[..., RoutingService], every: int
) -> None:
    service = make_service()
    calls = agent_calls(shared_data, every)
    assert len(calls) >= 3353 // every
    for name, body in calls:
        lazy, full = RouteRequest.model_validate(body), fully_validated(body)
        assert extract_turn(lazy) == extract_turn(full), name
        got, want = service.route(lazy), service.route(full)
        assert got.model_dump(exclude={"latency_ms"}) == want.model_dump(exclude={"latency_ms"})
        assert request_document(lazy) == full.model_dump(mode="json", exclude_none=True), name
        assert lazy.model_dump_json(exclude_none=True) == full.model_dump_json(exclude_none=True)
