"""asyncio versions of tierwise.client: AsyncTierwiseClient and wrap_async_anthropic. The
behaviour matches the sync ones, including the flagged fallback when tierwise is unreachable.

    tw = AsyncTierwiseClient("http://tierwise:8000")
    client = wrap_async_anthropic(anthropic.AsyncAnthropic(), tw, session_id="s-1")
    message = await client.messages.create(model="claude-opus-4-6", max_tokens=512, messages=[...])
    async with client.messages.stream(model=..., max_tokens=..., messages=[...]) as stream: ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from tierwise.client import ClientCore, LoopState
from tierwise.contract import RouteDecision, Tier

log = logging.getLogger(__name__)


class AsyncTierwiseClient(ClientCore):
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout_s: float = 2.0,
        fallback_tier: Tier | str = Tier.SONNET,
        models: Mapping[Tier, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, fallback_tier, models)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def route(
        self, request: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> RouteDecision:
        return self.decision(await self._post("/route", *self.route_call(request, fields)))

    async def route_batch(self, requests: Sequence[Mapping[str, Any]]) -> list[RouteDecision]:
        return self.decisions(await self._post("/route/batch", *self.batch_call(requests)))

    async def report_usage(
        self,
        run_id: str,
        model: str,
        usage: Any,
        *,
        session_id: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any] | None:
        body = self.usage_body(model, usage, session_id, message_id)
        try:
            r = await self._http.post(f"/runs/{run_id}/usage", json=body)
        except httpx.HTTPError as exc:
            log.warning("usage for run %r not reported: %s", run_id, exc)
            return None
        return self.usage_result(run_id, r)

    async def _post(self, path: str, body: Any, fallback: Callable[[str], Any]) -> Any:
        try:
            r = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            return fallback(self.unreachable(exc))
        return self.answer(r, path, fallback)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTierwiseClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncRoutedMessages:
    def __init__(self, owner: AsyncRoutedAnthropic) -> None:
        self._owner = owner
        self._messages = owner.client.messages

    async def create(self, **kwargs: Any) -> Any:
        kwargs = await self._owner.route(kwargs)
        response = await self._messages.create(**kwargs)
        if not kwargs.get("stream"):
            await self._owner.after(response)
        return response

    def stream(self, **kwargs: Any) -> _AsyncReportingStream:
        """Use as `async with`; routing happens on entering."""
        return _AsyncReportingStream(self._owner, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._messages, name)


class _AsyncReportingStream:
    def __init__(self, owner: AsyncRoutedAnthropic, kwargs: dict[str, Any]) -> None:
        self._owner = owner
        self._kwargs = kwargs
        self._manager: Any = None
        self._stream: Any = None

    async def __aenter__(self) -> Any:
        kwargs = await self._owner.route(self._kwargs)
        self._manager = self._owner.client.messages.stream(**kwargs)
        self._stream = await self._manager.__aenter__()
        return self._stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        if exc_info[0] is None and self._stream is not None:
            try:
                await self._owner.after(self._stream.current_message_snapshot)
            except Exception:  # reporting must never break the caller's stream
                log.exception("tierwise: usage of a stream not recorded")
        return await self._manager.__aexit__(*exc_info)


class AsyncRoutedAnthropic:
    """An anthropic.AsyncAnthropic whose messages.create/stream pick the model with tierwise
    (see tierwise.client.RoutedAnthropic). One wrapper per agent loop (task)."""

    def __init__(self, client: Any, tierwise: AsyncTierwiseClient, state: LoopState) -> None:
        self.client = client
        self.tierwise = tierwise
        self.state = state
        self.messages = AsyncRoutedMessages(self)

    @property
    def last_decision(self) -> RouteDecision | None:
        return self.state.last_decision

    async def route(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        body, kwargs = self.state.split(kwargs)
        return self.state.decided(await self.tierwise.route(body), kwargs)

    async def after(self, message: Any) -> None:
        report = self.state.usage_report(message)
        if report is not None:
            await self.tierwise.report_usage(**report)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def wrap_async_anthropic(
    client: Any,
    tierwise: AsyncTierwiseClient | None = None,
    *,
    session_id: str | None = None,
    run_id: str | None = None,
    budget_usd: float | None = None,
) -> AsyncRoutedAnthropic:
    """Route every `messages.create`/`messages.stream` of an anthropic.AsyncAnthropic."""
    if tierwise is not None and not isinstance(tierwise, AsyncTierwiseClient):
        raise TypeError(
            f"wrap_async_anthropic needs an AsyncTierwiseClient, got {type(tierwise).__name__}"
        )
    state = LoopState(session_id, run_id, budget_usd)
    return AsyncRoutedAnthropic(client, tierwise or AsyncTierwiseClient(), state)
