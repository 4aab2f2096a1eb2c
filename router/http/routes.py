"""The service's own endpoints: /route, /route/batch, the probes, /version, /metrics and
/admin/reload. The gateway (/v1/*) and the runs API (/runs/*) have their own modules."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from router import __version__
from router.core.schemas import RouteDecision, RouteRequest
from router.errors import BadRequestError
from router.http.error_responses import json_error
from router.http.json_body import ParsedJsonRoute
from router.http.rollout import ReloadRequest, ReloadResponse
from router.http.schemas import RouteBatchRequest, RouteBatchResponse
from router.http.scoring import score_with_deadline
from router.http.state import current_service, request_state

# ParsedJsonRoute: bodies are validated from the value StrictJsonBody parsed, never parsed again.
routing_routes = APIRouter(route_class=ParsedJsonRoute)
ops_routes = APIRouter(route_class=ParsedJsonRoute)
admin_routes = APIRouter(prefix="/admin", tags=["admin"], route_class=ParsedJsonRoute)


@routing_routes.post("/route", response_model=RouteDecision)
async def route(body: RouteRequest, request: Request) -> RouteDecision:
    state = request_state(request)
    service = current_service(request)
    (decision,) = await score_with_deadline(service, [body], state.inflight)
    state.observers.routed([(body, decision)])
    return decision


@routing_routes.post("/route/batch", response_model=RouteBatchResponse)
async def route_batch(body: RouteBatchRequest, request: Request) -> RouteBatchResponse:
    state = request_state(request)
    service = current_service(request)
    max_batch = state.settings.max_batch
    if len(body.requests) > max_batch:
        raise BadRequestError(
            f"requests: {len(body.requests)} turns exceed max_batch {max_batch} (ROUTER_MAX_BATCH)"
        )
    decisions = await score_with_deadline(service, body.requests, state.inflight)
    state.observers.routed(list(zip(body.requests, decisions, strict=True)))
    return RouteBatchResponse(decisions=decisions)


@ops_routes.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops_routes.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    service = request_state(request).service
    if service is None:
        return json_error(503, "not_ready", "no model bundle loaded")
    return JSONResponse({"status": "ready", "model_version": service.version})


@ops_routes.get("/version")
async def version(request: Request) -> dict[str, object]:
    state = request_state(request)
    service = current_service(request)
    m = service.bundle.manifest
    return {
        "service": __version__,
        "model_version": m.version,
        "model_path": str(service.bundle.path),
        "created_at": m.created_at,
        "embedder": m.embedder.model_dump(),
        "labels": m.labels,
        "default_threshold": m.default_threshold,
        "policy": m.policy,
        "default_knob": m.knob,
        "tiers": {t.value: spec.model for t, spec in state.settings.tiers.items()},
        "shadow_model_version": state.shadow.version if state.shadow is not None else None,
        **state.rollout.info(),
        "deadline_ms": {
            "configured": state.settings.deadline_ms,
            "effective": service.deadline_ms,
            "floor_factor": state.settings.deadline_floor_factor,
        },
        # Measured when the live bundle loaded (router.core.warmup); None for a service
        # handed to create_app.
        "scoring_ms": asdict(service.speed) if service.speed is not None else None,
    }


@ops_routes.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    state = request_state(request)
    return Response(state.metrics.render(state.calllog), media_type=CONTENT_TYPE_LATEST)


@admin_routes.post("/reload", response_model=ReloadResponse)
async def reload_model(
    request: Request, body: Annotated[ReloadRequest | None, Body()] = None
) -> ReloadResponse:
    """Load, validate and swap in a bundle; 409 (naming the problem) leaves the live one serving."""
    state = request_state(request)
    return await state.rollout.reload(state, body.path if body is not None else None)
