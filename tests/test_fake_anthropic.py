"""The fake Anthropic server speaks the real wire format: checked with the official SDK."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.fake_anthropic import FakeAnthropic, FakeError, Reply

MODEL = "claude-sonnet-4-6"


def client(fake: FakeAnthropic, **kw: object) -> anthropic.Anthropic:
    return fake.client(**kw)  # type: ignore[no-any-return]


def test_messages_create_records_headers_and_usage(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(MODEL, "Paris.")
    msg = client(fake_anthropic).messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Capital of France?"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Paris."
    assert msg.model == MODEL and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    (req,) = fake_anthropic.calls("/v1/messages")
    assert req.api_key == "test"  # SDK 2.x sends it as Authorization: Bearer
    assert "anthropic-version" in req.headers
    assert req.body["messages"][0]["content"] == "Capital of France?"


def test_prompt_caching_counts_creation_then_read(fake_anthropic: FakeAnthropic) -> None:
    c = client(fake_anthropic)
    system = [{"type": "text", "text": "rubric " * 200, "cache_control": {"type": "ephemeral"}}]
    kw = {"model": MODEL, "max_tokens": 10, "system": system}
    first = c.messages.create(messages=[{"role": "user", "content": "a"}], **kw)  # type: ignore[arg-type]
    second = c.messages.create(messages=[{"role": "user", "content": "b"}], **kw)  # type: ignore[arg-type]
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert not second.usage.cache_creation_input_tokens


def test_stream_event_sequence_and_final_message(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(MODEL, "one two three")
    with client(fake_anthropic).messages.stream(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events.index("message_delta") > events.index("content_block_stop")
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]
    assert final.usage.output_tokens > 1


def test_stream_tool_use_block(fake_anthropic: FakeAnthropic) -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    fake_anthropic.script(MODEL, Reply(content=[tool], stop_reason="tool_use"))
    with client(fake_anthropic).messages.stream(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]


def test_raw_sse_wire_format(fake_anthropic: FakeAnthropic) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", f"{fake_anthropic.base_url}/v1/messages", json=body, headers=headers
    ) as r:
        assert r.headers["content-type"] == "text/event-stream"
        names = [line.split(": ", 1)[1] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]


def test_429_with_retry_after_is_retried_by_sdk(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(429, times=2, retry_after=0.01, path="/v1/messages")
    msg = client(fake_anthropic, max_retries=3).messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content
    assert len(fake_anthropic.calls("/v1/messages")) == 3


def test_errors_surface_as_sdk_exceptions(fake_anthropic: FakeAnthropic) -> None:
    c = client(fake_anthropic, max_retries=0)
    fake_anthropic.fail_next(529)
    with pytest.raises(anthropic.InternalServerError):
        c.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    fake_anthropic.responder = lambda params: FakeError(400, "nope")
    with pytest.raises(anthropic.BadRequestError, match="nope"):
        c.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    no_key = httpx.post(f"{fake_anthropic.base_url}/v1/messages", json={})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"


def test_batches_lifecycle(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_polls_in_progress = 2
    fake_anthropic.batch_item_status.update({"b": "errored", "c": "expired"})
    c = client(fake_anthropic)
    reqs = [
        {
            "custom_id": cid,
            "params": {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": cid}],
            },
        }
        for cid in ("a", "b", "c")
    ]
    batch = c.messages.batches.create(requests=reqs)  # type: ignore[arg-type]
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    statuses = [c.messages.batches.retrieve(batch.id).processing_status for _ in range(3)]
    assert statuses == ["in_progress", "in_progress", "ended"]
    done = c.messages.batches.retrieve(batch.id)
    assert done.request_counts.succeeded == 1 and done.request_counts.errored == 1
    results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.content  # type: ignore[union-attr]
    assert results["b"].type == "errored" and "injected" in results["b"].error.error.message  # type: ignore[union-attr]
    assert results["c"].type == "expired"
    assert [b.id for b in c.messages.batches.list()] == [batch.id]


def test_batch_cancel_and_validation(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.batch_polls_in_progress = 5
    c = client(fake_anthropic, max_retries=0)
    req = {
        "custom_id": "x",
        "params": {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    }
    batch = c.messages.batches.create(requests=[req])  # type: ignore[list-item]
    assert c.messages.batches.cancel(batch.id).processing_status == "canceling"
    assert c.messages.batches.retrieve(batch.id).processing_status == "ended"
    assert [r.result.type for r in c.messages.batches.results(batch.id)] == ["canceled"]
    with pytest.raises(anthropic.BadRequestError, match="duplicate custom_id"):
        c.messages.batches.create(requests=[req, req])  # type: ignore[list-item]
    with pytest.raises(anthropic.NotFoundError):
        c.messages.batches.retrieve("msgbatch_missing")


def test_mid_stream_error_event_reaches_the_sdk(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(MODEL, Reply(text="partial answer here", stream_error="Overloaded"))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with client(fake_anthropic).messages.stream(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass


def test_count_tokens(fake_anthropic: FakeAnthropic) -> None:
    got = client(fake_anthropic).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 40}]
    )
    assert got.input_tokens == 10
