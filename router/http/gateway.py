"""Anthropic Messages API gateway: POST /v1/messages is routed, its `model` rewritten to the
chosen tier's model id, and forwarded to ROUTER_UPSTREAM_URL; streams are relayed chunk by chunk.

Point ANTHROPIC_BASE_URL at tierwise and nothing else changes. Caller headers (x-tierwise-*):
  route: off            forward unchanged (model kept), still logged
  min-tier / max-tier   haiku|sonnet|opus bounds for this call
  threshold / quality-target / failed-turn-usd / session-id / run-id / budget-usd
                        the RouteRequest knobs
Response headers: x-tierwise-tier, -model, -reason, -model-version, -fallback.
Every other /v1/* call (count_tokens, models, batches) is passed through unchanged.
API keys are forwarded to the upstream and never logged or stored. docs/gateway.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from router.core.economics import tier_for_model, usage_cost_usd
from router.core.schemas import RouteDecision, RouteRequest, Usage
from router.core.tiers import Tier
from router.errors import BadRequestError, InvalidJsonError
from router.http.calllog.record import CallRecord, hash_bytes
from router.http.error_responses import anthropic_error, anthropic_error_content
from router.http.headers import header_value, safe_headers
from router.http.json_scan import top_level_string
from router.http.middleware.strict_json import PARSED_JSON, parse_json
from router.http.model_ids import check_model
from router.http.offload import offload
from router.http.runs import gateway_spend
from router.http.scoring import score_with_deadline
from router.http.state import AppState, request_state
from router.http.upstream_errors import describe, timed_out
from router.http.upstream_reply import Reply, UsageTracker, reply_from_json
from router.settings import Settings

log = logging.getLogger(__name__)

gateway_routes = APIRouter(tags=["gateway"])

ROUTE_HEADER = "x-tierwise-route"
ROUTE_OFF = frozenset({"off", "false", "0", "no"})
# x-tierwise-<name> request header -> RouteRequest field.
KNOB_HEADERS = {
    "min-tier": "min_tier",
    "max-tier": "max_tier",
    "threshold": "threshold",
    "quality-target": "quality_target",
    "failed-turn-usd": "failed_turn_usd",
    "session-id": "session_id",
    "run-id": "run_id",
    "budget-usd": "budget_usd",
}
# RouteRequest fields that are tierwise knobs, not Messages fields: taken from headers only.
KNOB_FIELDS = frozenset(KNOB_HEADERS.values()) | {"prompt", "previous_model", "previous_usage"}
# Request headers forwarded upstream (plus every anthropic-*). Nothing else, so no x-tierwise-*.
FORWARD_HEADERS = frozenset({"x-api-key", "authorization", "content-type", "accept", "user-agent"})
# Response headers passed back (plus every anthropic-*): what the SDK reads for ids and retries.
PASS_HEADERS = frozenset(
    {
        "content-type",
        "request-id",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
        "cache-control",
    }
)


def _pick_headers(headers: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    """The headers in `names` plus every anthropic-* one (lower-case names, as httpx and
    Starlette give them)."""
    return {
        name: value
        for name, value in headers.items()
        if name in names or name.startswith("anthropic-")
    }


def _response_headers(upstream: httpx.Response) -> dict[str, str]:
    return safe_headers(_pick_headers(upstream.headers, PASS_HEADERS))


def _knobs(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        field: headers[f"x-tierwise-{name}"]
        for name, field in KNOB_HEADERS.items()
        if f"x-tierwise-{name}" in headers
    }


def _route_request(body: dict[str, Any], knobs: dict[str, str]) -> RouteRequest | str:
    """The RouteRequest for a Messages body, or why routing cannot read it (not an error: the
    upstream is the judge of a Messages body; e.g. an assistant prefill turn is valid there).
    Bad knob headers are the caller's error: BadRequestError naming the header."""
    fields = {k: v for k, v in body.items() if k not in KNOB_FIELDS}
    try:
        return RouteRequest.model_validate({**fields, **knobs})
    except ValidationError as exc:
        err = exc.errors()[0]
    # Only after a failure is the body validated alone, to tell its faults from a bad knob's.
    if knobs:
        try:
            RouteRequest.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
        else:
            field = str(err["loc"][0]) if err["loc"] else "body"
            header = next((f"x-tierwise-{n}" for n, f in KNOB_HEADERS.items() if f == field), field)
            raise BadRequestError(f"header {header}: {err['msg']}") from None
    return f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"


class _Call:
    """What the gateway knows about one call, finished into a CallRecord exactly once."""

    def __init__(self, request: Request, raw: bytes) -> None:
        self.state: AppState = request_state(request)
        self.settings: Settings = self.state.settings
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)
        self.raw = raw
        self.route_request: RouteRequest | None = None
        self.decision: RouteDecision | None = None
        self.model: str | None = None
        self.reason = ""
        self.stream = False
        self.finished = False

    def tierwise_headers(self) -> dict[str, str]:
        d = self.decision
        tier = d.tier if d else self._model_tier()
        headers = {"x-tierwise-reason": header_value(self.reason)}
        if tier is not None:
            headers["x-tierwise-tier"] = tier.value
        if self.model:
            headers["x-tierwise-model"] = header_value(self.model)
        if d is not None:
            headers["x-tierwise-model-version"] = header_value(d.model_version)
            headers["x-tierwise-fallback"] = "true" if d.fallback else "false"
        return headers

    def _model_tier(self) -> Tier | None:
        return tier_for_model(self.model, self.settings.tiers) if self.model else None

    def _cost_usd(self, usage: Usage | None, tier: Tier | None) -> float | None:
        """List-price dollars of the upstream call; None for a model no tier is configured for."""
        if usage is None or tier is None:
            return None
        return usage_cost_usd(usage, self.settings.tier_spec(tier), self.settings.prices)

    async def finish(
        self, status: int | None, reply: Reply | None = None, error: str | None = None
    ) -> None:
        """Tell the observers (call log, metrics), then add the usage to the call's run and
        session in a worker thread, before the caller's response ends: GET /runs/{id} then
        shows it at once, and a slow store never holds the event loop."""
        if self.finished:
            return
        self.finished = True
        reply = reply or Reply()
        tier = self._model_tier()
        record = CallRecord(
            endpoint="gateway",
            request=self.route_request,
            decision=self.decision,
            body_hash=None if self.route_request else hash_bytes(self.raw),
            started_at=self.started_at,
            model=self.model,
            model_tier=tier,
            reason=None if self.decision else self.reason,
            total_latency_ms=(time.perf_counter() - self.started) * 1000,
            upstream_status=status,
            upstream_error=error,
            usage=reply.usage,
            message_id=reply.message_id,
            answer=reply.answer,
            cost_usd=self._cost_usd(reply.usage, tier),
            stream=self.stream,
        )
        self.state.observers.finished(record)
        spend = gateway_spend(self.state, record)
        if spend is not None:
            await anyio.to_thread.run_sync(spend)


async def _decide(call: _Call, request: Request, body: dict[str, Any] | None) -> None:
    """Fill call.decision/model/reason; leaves decision None when not routing."""
    call.model = body.get("model") if body and isinstance(body.get("model"), str) else None
    if body is None:
        call.reason = "not routed: the body is not a JSON object"
        return
    off = request.headers.get(ROUTE_HEADER, "").strip().lower() in ROUTE_OFF
    knobs = {} if off else _knobs(request.headers)
    parsed = await offload(len(call.raw), _route_request, body, knobs)
    if not isinstance(parsed, str):
        call.route_request = parsed  # logged (and exportable for labeling) even when not routed
    if off:
        call.reason = f"not routed: {ROUTE_HEADER}: off"
        return
    if isinstance(parsed, str):
        call.reason = f"not routed: {parsed}"
        return
    service = call.state.service
    if service is None:
        call.reason = "not routed: no model bundle is loaded"
        return
    (decision,) = await score_with_deadline(service, [parsed], call.state.inflight)
    call.state.observers.decided([(parsed, decision)])
    call.decision, call.model, call.reason = decision, decision.model, decision.reason


async def _send(
    request: Request, path: str, content: bytes, method: str = "POST"
) -> httpx.Response | JSONResponse:
    """Open the upstream response (streamed), or an Anthropic-shaped 502/504 if unreachable."""
    client = request_state(request).upstream
    if client is None:
        return anthropic_error(
            503, "api_error", "tierwise: the upstream client is not running (lifespan not started)"
        )
    upstream_request = client.build_request(
        method, path, request.url.query, _pick_headers(request.headers, FORWARD_HEADERS), content
    )
    try:
        return await client.send(upstream_request)
    except httpx.TimeoutException as exc:
        log.warning("upstream %s timed out: %s", path, type(exc).__name__)
        settings = request_state(request).settings
        return anthropic_error(504, "timeout_error", f"tierwise: {timed_out(exc, settings)}")
    except httpx.HTTPError as exc:
        log.warning("upstream %s unreachable: %s", path, describe(exc))
        return anthropic_error(
            502, "api_error", f"tierwise could not reach the upstream: {describe(exc)}"
        )


async def _relay(upstream: httpx.Response, call: _Call) -> AsyncGenerator[bytes, None]:
    """Yield upstream chunks as they arrive; record the call when the stream ends (or the
    caller goes away). A mid-stream upstream failure becomes an SSE `error` event."""
    tracker = UsageTracker(capture_text=not call.settings.redact_prompts)
    error: str | None = "the caller disconnected mid-stream"  # unless the loop ends
    try:
        async for chunk in upstream.aiter_bytes():
            tracker.feed(chunk)
            yield chunk
        error = None
    except httpx.HTTPError as exc:
        error = f"stream interrupted: {describe(exc)}"
        log.warning("upstream %s", error)
        payload = anthropic_error_content("api_error", f"tierwise: {error}")
        yield f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
            await call.finish(upstream.status_code, tracker.reply(), error)


class _UpstreamStream(StreamingResponse):
    """Relays an upstream SSE stream; closes it and records the call even when the caller is
    gone before the first chunk (the relay generator then never starts)."""

    def __init__(self, upstream: httpx.Response, call: _Call, headers: dict[str, str]) -> None:
        self.relay = _relay(upstream, call)
        super().__init__(self.relay, status_code=upstream.status_code, headers=headers)
        self.upstream = upstream
        self.call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.relay.aclose()  # runs the relay's cleanup if it stopped mid-stream
                if not self.call.finished:  # it never started
                    await self.upstream.aclose()
                await self.call.finish(self.upstream.status_code, error="the caller disconnected")


async def _forward(call: _Call, request: Request, path: str, content: bytes) -> Response:
    upstream = await _send(request, path, content)
    if isinstance(upstream, JSONResponse):
        await call.finish(None, error=bytes(upstream.body).decode())
        upstream.headers.update(call.tierwise_headers())
        return upstream
    headers = _response_headers(upstream) | call.tierwise_headers()
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        call.stream = True
        return _UpstreamStream(upstream, call, headers)
    try:
        data = await upstream.aread()
    except httpx.HTTPError as exc:
        await call.finish(None, error=describe(exc))
        return anthropic_error(502, "api_error", f"tierwise: upstream body failed: {describe(exc)}")
    finally:
        await upstream.aclose()
    capture = not call.settings.redact_prompts
    await call.finish(
        upstream.status_code, reply_from_json(data, capture) if upstream.is_success else None
    )
    return Response(content=data, status_code=upstream.status_code, headers=headers)


def _parse_object(raw: bytes) -> dict[str, Any] | None:
    """The same strict parse StrictJsonBody gives a JSON content-type (no NaN, no RecursionError
    on deep nesting); what it refuses is not routed, and goes upstream as sent."""
    try:
        body = parse_json(raw)
    except InvalidJsonError:
        return None
    return body if isinstance(body, dict) else None


def _with_model(raw: bytes, body: dict[str, Any], model: str) -> bytes:
    """The caller's bytes with only the top-level model's value replaced (or added first), so
    what goes upstream is what the caller sent; re-serialised only for an odd body (a duplicate
    or escaped "model" key, a non-string model)."""
    value = json.dumps(model).encode()
    span = top_level_string(raw, "model")
    if span is not None:
        return raw[: span[0]] + value + raw[span[1] :]
    if "model" not in body:
        brace = raw.index(b"{") + 1
        return raw[:brace] + b'"model":' + value + (b"," if body else b"") + raw[brace:]
    return json.dumps({**body, "model": model}, ensure_ascii=False).encode()


async def _body_object(request: Request, raw: bytes) -> dict[str, Any] | None:
    """The JSON object StrictJsonBody parsed (a body sent as another media type is parsed here)."""
    if PARSED_JSON in request.scope:
        body = request.scope[PARSED_JSON]
        return body if isinstance(body, dict) else None
    return await offload(len(raw), _parse_object, raw) if raw.strip() else None


@gateway_routes.post("/v1/messages", summary="Anthropic Messages API, routed")
async def messages(request: Request) -> Response:
    raw = await request.body()
    call = _Call(request, raw)
    body = await _body_object(request, raw)
    try:
        if body is not None:
            check_model(body)
        await _decide(call, request, body)
    except BadRequestError as exc:
        return anthropic_error(400, "invalid_request_error", f"tierwise: {exc}")
    content = raw
    if call.decision is not None and body is not None and body.get("model") != call.model:
        assert call.model is not None  # a decision always names its model
        content = await offload(len(raw), _with_model, raw, body, call.model)
    return await _forward(call, request, "/v1/messages", content)


class _PassthroughStream(StreamingResponse):
    """An upstream answer relayed as it arrives (batch results can be large); always closed."""

    def __init__(self, upstream: httpx.Response) -> None:
        headers = _response_headers(upstream)
        super().__init__(upstream.aiter_bytes(), upstream.status_code, headers=headers)
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()


async def passthrough(request: Request, path: str) -> Response:
    """count_tokens, models, message batches...: forwarded unchanged (no routing, not logged),
    so a client whose ANTHROPIC_BASE_URL is tierwise keeps working for them too."""
    body = await request.body()
    upstream = await _send(request, request.url.path, body, request.method)
    if isinstance(upstream, JSONResponse):
        return upstream
    return _PassthroughStream(upstream)


# One route per method, so each has its own OpenAPI operation id.
for _method in ("GET", "POST", "DELETE"):
    gateway_routes.add_api_route(
        "/v1/{path:path}",
        passthrough,
        methods=[_method],
        operation_id=f"passthrough_{_method.lower()}",
        summary="Every other Anthropic endpoint, passed through",
    )
