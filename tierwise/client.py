"""A small Python client for a tierwise server, and a wrapper that routes an Anthropic client.

    tw = TierwiseClient("http://tierwise:8000", token="...")
    decision = tw.route(messages=[{"role": "user", "content": "hi"}])   # RouteDecision

    client = wrap_anthropic(anthropic.Anthropic(), tw, run_id="job-42")
    client.messages.create(model="claude-opus-4-6", max_tokens=512, messages=[...])

When tierwise is unreachable (connection error, timeout, 5xx) route() does not raise: it answers
the fallback tier with `fallback=True`, `model_version="unreachable"` and a reason starting
"client fallback:", and logs a warning. A 4xx is the caller's mistake and raises TierwiseError.
asyncio code: tierwise.aclient (AsyncTierwiseClient, wrap_async_anthropic).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from tierwise.contract import (
    RouteDecision,
    Tier,
    TierwiseError,
    default_models,
    parse_tier,
    rank,
)

log = logging.getLogger(__name__)

UNREACHABLE_VERSION = "unreachable"
# Messages-API arguments that say what the turn is; everything else (extra_headers, timeout,
# stream, metadata...) stays between the caller and Anthropic.
ROUTED_KWARGS = ("model", "system", "messages", "tools", "tool_choice", "max_tokens")
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def jsonable(value: Any) -> Any:
    """Plain JSON from SDK objects (e.g. a previous response's content blocks)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class ClientCore:
    """What the sync and async clients share: headers, fallback decisions, answer handling."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        fallback_tier: Tier | str,
        models: Mapping[Tier, str] | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.fallback_tier = parse_tier(str(fallback_tier), "fallback_tier")
        self.models = dict(models or default_models())

    def unreachable(self, exc: httpx.HTTPError) -> str:
        return f"tierwise unreachable at {self.base_url}: {type(exc).__name__}: {exc}"

    def answer(self, r: httpx.Response, path: str, fallback: Callable[[str], Any]) -> Any:
        """The JSON of a 2xx; a fallback for a 5xx; TierwiseError for a 4xx."""
        if r.status_code >= 500:
            return fallback(f"tierwise answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:500]
            raise TierwiseError(f"tierwise {path} answered {r.status_code}: {message}")
        return r.json()

    def fallback(self, body: Mapping[str, Any], why: str, started: float) -> RouteDecision:
        """The fallback tier clamped to the request's min/max tier, flagged as a fallback."""
        tier = self.fallback_tier
        lo, hi = body.get("min_tier"), body.get("max_tier")
        if lo and rank(tier) < rank(parse_tier(str(lo), "min_tier")):
            tier = parse_tier(str(lo), "min_tier")
        if hi and rank(tier) > rank(parse_tier(str(hi), "max_tier")):
            tier = parse_tier(str(hi), "max_tier")
        log.warning("tierwise client fallback to %s: %s", tier.value, why)
        return RouteDecision(
            tier=tier,
            model=self.models[tier],
            probabilities={},
            threshold=0.0,
            reason=f"client fallback: {why}",
            model_version=UNREACHABLE_VERSION,
            estimated_cost_usd=0.0,
            latency_ms=(time.perf_counter() - started) * 1000,
            fallback=True,
        )

    def route_call(
        self, request: Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> tuple[Any, Callable[[str], RouteDecision]]:
        """(body, fallback) of a POST /route; the fallback's latency counts from now."""
        body = jsonable({**(request or {}), **fields})
        started = time.perf_counter()
        return body, lambda why: self.fallback(body, why, started)

    def batch_call(
        self, requests: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], Callable[[str], list[RouteDecision]]]:
        """(body, fallback) of a POST /route/batch: one fallback decision per request."""
        bodies = [jsonable(r) for r in requests]
        started = time.perf_counter()
        return {"requests": bodies}, lambda why: [self.fallback(b, why, started) for b in bodies]

    def decision(self, data: Any) -> RouteDecision:
        return data if isinstance(data, RouteDecision) else RouteDecision.from_json(data)

    def decisions(self, data: Any) -> list[RouteDecision]:
        if isinstance(data, list):
            return data  # fallbacks already
        return [RouteDecision.from_json(d) for d in data["decisions"]]

    @staticmethod
    def usage_body(
        model: str, usage: Any, session_id: str | None, message_id: str | None
    ) -> dict[str, Any]:
        return {
            "model": model,
            "usage": jsonable(usage),
            "session_id": session_id,
            "message_id": message_id,
        }

    @staticmethod
    def usage_result(run_id: str, r: httpx.Response) -> dict[str, Any] | None:
        if r.status_code >= 400:
            log.warning("usage for run %r not reported: %s %s", run_id, r.status_code, r.text)
            return None
        result: dict[str, Any] = r.json()
        return result


class TierwiseClient(ClientCore):
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout_s: float = 2.0,
        fallback_tier: Tier | str = Tier.SONNET,
        models: Mapping[Tier, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`timeout_s` bounds each call, connect included: routing must never stall the caller
        longer than that. `models` maps tiers to model ids for fallback decisions."""
        super().__init__(base_url, token, fallback_tier, models)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    def route(self, request: Mapping[str, Any] | None = None, /, **fields: Any) -> RouteDecision:
        """Route one turn: a RouteRequest as a dict and/or keyword fields (prompt=..., or
        messages=..., plus knobs like min_tier, session_id)."""
        return self.decision(self._post("/route", *self.route_call(request, fields)))

    def route_batch(self, requests: Sequence[Mapping[str, Any]]) -> list[RouteDecision]:
        return self.decisions(self._post("/route/batch", *self.batch_call(requests)))

    def report_usage(
        self,
        run_id: str,
        model: str,
        usage: Any,
        *,
        session_id: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any] | None:
        """POST /runs/{run_id}/usage (run budgets); None, logged, if tierwise is unreachable."""
        body = self.usage_body(model, usage, session_id, message_id)
        try:
            r = self._http.post(f"/runs/{run_id}/usage", json=body)
        except httpx.HTTPError as exc:
            log.warning("usage for run %r not reported: %s", run_id, exc)
            return None
        return self.usage_result(run_id, r)

    def _post(self, path: str, body: Any, fallback: Callable[[str], Any]) -> Any:
        try:
            r = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            return fallback(self.unreachable(exc))
        return self.answer(r, path, fallback)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TierwiseClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LoopState:
    """One agent loop's routing context, shared by the sync and async wrappers: builds each
    route body (with the previous call's model and usage when there is a session) and keeps
    the latest decision."""

    def __init__(
        self, session_id: str | None, run_id: str | None, budget_usd: float | None
    ) -> None:
        self.session_id = session_id
        self.run_id = run_id
        self.budget_usd = budget_usd
        self.last_decision: RouteDecision | None = None
        self.previous: tuple[str, dict[str, Any]] | None = None  # (model, usage)

    def split(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(route body, the kwargs for the real call without `tierwise` knobs)."""
        kwargs = dict(kwargs)
        knobs = kwargs.pop("tierwise", None) or {}
        body = {k: kwargs[k] for k in ROUTED_KWARGS if k in kwargs}
        context: dict[str, Any] = {
            "session_id": self.session_id,
            "run_id": self.run_id,
            "budget_usd": self.budget_usd,
        }
        if self.previous is not None and self.session_id is not None:
            context["previous_model"], context["previous_usage"] = self.previous
        body |= {k: v for k, v in context.items() if v is not None} | dict(knobs)
        return body, kwargs

    def decided(self, decision: RouteDecision, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.last_decision = decision
        return kwargs | {"model": decision.model}

    def remember(self, message: Any) -> tuple[str, dict[str, Any]] | None:
        """(model, usage) of a finished call, kept for the next route; None without usage."""
        usage = getattr(message, "usage", None)
        # The model we asked for, not the dated id the API echoes: that is what tierwise knows.
        model = self.last_decision.model if self.last_decision else getattr(message, "model", None)
        if usage is None or not model:
            return None
        usage_dict = {k: v for k, v in jsonable(usage).items() if k in USAGE_FIELDS}
        self.previous = (str(model), usage_dict)
        return self.previous

    def usage_report(self, message: Any) -> dict[str, Any] | None:
        """Remember a finished call; the report_usage arguments for it, or None when there is
        no run to report to (or no usage)."""
        remembered = self.remember(message)
        if remembered is None or self.run_id is None:
            return None
        model, usage = remembered
        return {
            "run_id": self.run_id,
            "model": model,
            "usage": usage,
            "session_id": self.session_id,
            "message_id": getattr(message, "id", None),
        }


class RoutedMessages:
    """`messages` of a wrapped client: create() and stream() route first; the rest is the
    real client's (count_tokens, batches, ...)."""

    def __init__(self, owner: RoutedAnthropic) -> None:
        self._owner = owner
        self._messages = owner.client.messages

    def create(self, **kwargs: Any) -> Any:
        """Route (same arguments), call with the chosen model, report usage. `tierwise={...}`
        adds routing knobs for this call (min_tier, max_tier, threshold, ...)."""
        kwargs = self._owner.route(kwargs)
        response = self._messages.create(**kwargs)
        if not kwargs.get("stream"):
            self._owner.after(response)
        return response

    def stream(self, **kwargs: Any) -> _ReportingStream:
        return _ReportingStream(self._messages.stream(**self._owner.route(kwargs)), self._owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._messages, name)


class _ReportingStream:
    """Wraps the SDK's MessageStreamManager: reports the final usage when the block exits."""

    def __init__(self, manager: Any, owner: RoutedAnthropic) -> None:
        self._manager = manager
        self._owner = owner
        self._stream: Any = None

    def __enter__(self) -> Any:
        self._stream = self._manager.__enter__()
        return self._stream

    def __exit__(self, *exc_info: Any) -> Any:
        if exc_info[0] is None and self._stream is not None:
            try:
                self._owner.after(self._stream.current_message_snapshot)
            except Exception:  # reporting must never break the caller's stream
                log.exception("tierwise: usage of a stream not recorded")
        return self._manager.__exit__(*exc_info)


class RoutedAnthropic:
    """An anthropic.Anthropic whose messages.create/stream pick the model with tierwise.

    Agent loops: with `session_id`, each call sends the previous call's model and usage so
    tierwise can weigh the prompt cache; with `run_id`, usage is also reported to
    POST /runs/{run_id}/usage for the run's budget. `last_decision` is the latest RouteDecision.
    Not thread-safe: use one wrapper per agent loop.
    """

    def __init__(self, client: Any, tierwise: TierwiseClient, state: LoopState) -> None:
        self.client = client
        self.tierwise = tierwise
        self.state = state
        self.messages = RoutedMessages(self)

    @property
    def last_decision(self) -> RouteDecision | None:
        return self.state.last_decision

    def route(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The kwargs for the real call: `tierwise` knobs removed, `model` chosen."""
        body, kwargs = self.state.split(kwargs)
        return self.state.decided(self.tierwise.route(body), kwargs)

    def after(self, message: Any) -> None:
        """Remember the call's model and usage for the next route; report it for the run."""
        report = self.state.usage_report(message)
        if report is not None:
            self.tierwise.report_usage(**report)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def wrap_anthropic(
    client: Any,
    tierwise: TierwiseClient | None = None,
    *,
    session_id: str | None = None,
    run_id: str | None = None,
    budget_usd: float | None = None,
) -> RoutedAnthropic:
    """Route every `messages.create`/`messages.stream` of an anthropic.Anthropic through
    tierwise (default: TierwiseClient() on 127.0.0.1:8000). For anthropic.AsyncAnthropic use
    tierwise.aclient.wrap_async_anthropic."""
    if tierwise is not None and not isinstance(tierwise, TierwiseClient):
        raise TypeError(
            f"wrap_anthropic needs a TierwiseClient, got {type(tierwise).__name__}; "
            "for AsyncAnthropic use tierwise.aclient.wrap_async_anthropic"
        )
    state = LoopState(session_id, run_id, budget_usd)
    return RoutedAnthropic(client, tierwise or TierwiseClient(), state)
