"""TierwiseClient and wrap_anthropic against a real tierwise server (uvicorn) whose upstream is
the fake Anthropic server, with the official anthropic SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from router.core.service import RoutingService
from router.http.app import create_app
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.live_server import serve_app
from tierwise.aclient import AsyncTierwiseClient, wrap_async_anthropic
from tierwise.client import TierwiseClient, TierwiseError, wrap_anthropic

EASY = "hello thanks name color"
HARD = "prove derive theorem integral optimize architecture prove"
TOKEN = "tw-caller-token-1"


@pytest.fixture
def tierwise_url(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> Iterator[str]:
    service = make_service(
        upstream_url=fake_anthropic.base_url, deadline_ms=5000, auth_tokens=TOKEN
    )
    with serve_app(create_app(service.settings, service=service)) as url:
        yield url


@pytest.fixture
def tw(tierwise_url: str) -> Iterator[TierwiseClient]:
    with TierwiseClient(tierwise_url, token=TOKEN) as client:
        yield client


def test_route_and_route_batch(tw: TierwiseClient) -> None:
    easy = tw.route(prompt=EASY)
    assert easy.tier == "haiku" and easy.fallback is False and easy.model_version == "fake-v1"
    hard = tw.route({"messages": [{"role": "user", "content": HARD}]}, min_tier="sonnet")
    assert hard.tier in ("sonnet", "opus")
    both = tw.route_batch([{"prompt": EASY}, {"prompt": HARD}])
    assert [d.tier for d in both] == [easy.tier, tw.route(prompt=HARD).tier]


def test_bad_requests_and_tokens_raise(tw: TierwiseClient, tierwise_url: str) -> None:
    with pytest.raises(TierwiseError, match="422.*prompt"):
        tw.route()
    with TierwiseClient(tierwise_url) as anonymous, pytest.raises(TierwiseError, match="401"):
        anonymous.route(prompt=EASY)


def test_unreachable_tierwise_answers_a_flagged_fallback(caplog: pytest.LogCaptureFixture) -> None:
    with TierwiseClient("http://127.0.0.1:9", timeout_s=1) as client:
        decision = client.route(prompt=EASY)
        capped = client.route(prompt=EASY, max_tier="haiku")
        batch = client.route_batch([{"prompt": EASY}, {"prompt": HARD, "min_tier": "opus"}])
    assert decision.fallback is True and decision.model_version == "unreachable"
    assert decision.tier == "sonnet" and decision.model == "claude-sonnet-4-6"
    assert decision.reason.startswith("client fallback: tierwise unreachable")
    assert capped.tier == "haiku"
    assert [d.tier for d in batch] == ["sonnet", "opus"]
    assert "tierwise client fallback" in caplog.text


def test_server_errors_fall_back_too() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="overloaded"))
    with TierwiseClient("http://tierwise", transport=transport, fallback_tier="opus") as client:
        decision = client.route(prompt=EASY)
    assert decision.fallback is True and decision.tier == "opus"
    assert "answered 503" in decision.reason


def _text(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_wrap_anthropic_routes_create_and_stream_and_reports_usage(
    tw: TierwiseClient, tierwise_url: str, fake_anthropic: FakeAnthropic
) -> None:
    with anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key="sk-test") as sdk:
        client = wrap_anthropic(sdk, tw, session_id="s1", run_id="run-1", budget_usd=5.0)
        first = client.messages.create(
            model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
        )
        chosen = client.last_decision
        assert chosen is not None and chosen.fallback is False
        assert fake_anthropic.calls("/v1/messages")[0].body["model"] == chosen.model
        assert _text(first) == f"fake answer from {chosen.model}"

        # The previous response's content blocks (SDK objects) go back in; knobs per call.
        history = [
            {"role": "user", "content": EASY},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": "and now?"},
        ]
        second = client.messages.create(
            model="claude-opus-4-6", max_tokens=64, messages=history, tierwise={"min_tier": "opus"}
        )
        assert second.model == "claude-opus-4-6"
        assert "tierwise" not in fake_anthropic.calls("/v1/messages")[1].body

        for model in ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"):
            fake_anthropic.script(model, Reply(text="streamed reply"))
        with client.messages.stream(
            model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
        ) as stream:
            assert "".join(stream.text_stream) == "streamed reply"

        counted = client.messages.count_tokens(
            model="claude-opus-4-6", messages=[{"role": "user", "content": EASY}]
        )
        assert counted.input_tokens > 0

    run = httpx.get(f"{tierwise_url}/runs/run-1", headers={"authorization": f"Bearer {TOKEN}"})
    assert run.status_code == 200, run.text
    assert sum(run.json()["calls"].values()) == 3
    assert run.json()["spent_usd"] > 0


def test_wrap_anthropic_keeps_working_when_tierwise_is_down(fake_anthropic: FakeAnthropic) -> None:
    with (
        anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key="sk-test") as sdk,
        TierwiseClient("http://127.0.0.1:9", timeout_s=1) as down,
    ):
        client = wrap_anthropic(sdk, down, run_id="r")
        message = client.messages.create(
            model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
        )
    assert message.model == "claude-sonnet-4-6"
    assert client.last_decision is not None and client.last_decision.fallback is True


def test_async_client_and_wrapper(tierwise_url: str, fake_anthropic: FakeAnthropic) -> None:
    async def main() -> None:
        async with (
            AsyncTierwiseClient(tierwise_url, token=TOKEN) as tw,
            anthropic.AsyncAnthropic(base_url=fake_anthropic.base_url, api_key="sk-test") as sdk,
        ):
            assert (await tw.route(prompt=EASY)).tier == "haiku"
            assert len(await tw.route_batch([{"prompt": EASY}, {"prompt": HARD}])) == 2
            client = wrap_async_anthropic(sdk, tw, session_id="s-a", run_id="run-a")
            first = await client.messages.create(
                model="claude-opus-4-6",
                max_tokens=64,
                messages=[{"role": "user", "content": EASY}],
            )
            assert client.last_decision is not None
            assert first.model == client.last_decision.model
            async with client.messages.stream(
                model="claude-opus-4-6",
                max_tokens=64,
                messages=[{"role": "user", "content": EASY}],
                tierwise={"max_tier": "haiku"},
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
            assert text == "fake answer from claude-haiku-4-5"
            run = await tw._http.get("/runs/run-a")
            assert sum(run.json()["calls"].values()) == 2

        async with AsyncTierwiseClient("http://127.0.0.1:9", timeout_s=1) as down:
            decision = await down.route(prompt=EASY, min_tier="opus")
        assert decision.fallback is True and decision.tier == "opus"

    asyncio.run(main())


def test_wrappers_refuse_the_other_kind_of_client() -> None:
    with pytest.raises(TypeError, match="wrap_async_anthropic"):
        wrap_anthropic(object(), AsyncTierwiseClient())  # type: ignore[arg-type]
    with TierwiseClient() as sync_client, pytest.raises(TypeError, match="AsyncTierwiseClient"):
        wrap_async_anthropic(object(), sync_client)  # type: ignore[arg-type]
