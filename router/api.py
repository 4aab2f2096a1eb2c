"""HTTP app: create_app(settings, router) -> FastAPI. Serve with
`uvicorn --factory router.api:create_app`."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router import __version__
from router.agent.routing import AgentRouting
from router.agent.stores import open_stores
from router.asgi import error_content
from router.auth import BearerAuth, auth_options
from router.calllog import calllog_lifespan
from router.core.bundle import load_bundle
from router.core.schemas import (
    ErrorResponse,
    RouteBatchRequest,
    RouteBatchResponse,
    RouteDecision,
    RouteRequest,
)
from router.core.service import RoutingService, current_router
from router.errors import BadRequestError, RouterError, ScoringError
from router.inflight import InFlight, Ticket
from router.jsonbody import StrictJsonBody
from router.limits import BodySizeLimit
from router.lograte import RateLimitedLog
from router.metrics import install_metrics
from router.pathguard import PrintablePath
from router.rollout import install_rollout, watch_default_lifespan
from router.runs_api import install_runs
from router.settings import Settings, get_settings
from router.shadow import shadow_lifespan

log = logging.getLogger(__name__)
# Under overload every request falls back: one WARNING a second (with a count) keeps the log
# readable; GET /metrics still counts each fallback.
_fallback_log = RateLimitedLog(log, interval_s=1.0)

# Called after every routing decision (call log, metrics, sessions). Must be fast and not raise;
# failures are logged and never reach the caller.
RouteObserver = Callable[[RouteRequest, RouteDecision], None]


def notify(
    request: Request, pairs: list[tuple[RouteRequest, RouteDecision]], *, gateway: bool = False
) -> None:
    observers: list[RouteObserver] = request.app.state.observers
    for observer in observers:
        if gateway and getattr(observer, "records_gateway_calls", False):
            continue  # it gets the finished call, with usage, from app.state.call_observers
        for body, decision in pairs:
            try:
                observer(body, decision)
            except Exception:  # an observer bug must not fail routing
                log.exception("route observer %r failed", observer)


# pydantic names the branch of a union it tried in `loc` ("str", "list[function-after[...]]");
# callers know fields, not branches, so those are dropped from the path.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _field_path(loc: tuple[object, ...]) -> str:
    parts = [
        str(p)
        for p in loc
        if p != "body" and not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p))
    ]
    return ".".join(parts) or "body"


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_content(kind, message))


def _score(
    router: RoutingService, requests: list[RouteRequest], ticket: Ticket | None
) -> list[RouteDecision]:
    if ticket is None:
        return router.route_many(requests)
    decisions = ticket.run(partial(router.route_many, requests))
    if decisions is None:
        raise ScoringError("scoring was dropped before it started")
    return decisions


async def score_with_deadline(
    router: RoutingService, requests: list[RouteRequest], inflight: InFlight | None = None
) -> list[RouteDecision]:
    """Score in a worker thread; past the deadline or on a scoring failure, answer the fallback
    tier for each request (fallback=True) instead of making the caller wait or fail. The caller
    gets its answer at the deadline even if the model hangs (the thread is abandoned, and counted
    against `inflight`, app.state.inflight: when that many run, answer the fallback at once)."""
    start = time.perf_counter()
    # Each turn is embedded on its own (router/core/embedder.py), so a batch's work grows linearly.
    deadline_s = router.settings.deadline_ms / 1000 * max(1, len(requests))
    ticket = inflight.admit() if inflight is not None else None
    if inflight is not None and ticket is None:
        reason = (
            f"overloaded: {inflight.limit} scoring calls already running "
            "(ROUTER_MAX_INFLIGHT_SCORING)"
        )
    else:
        try:
            with anyio.fail_after(deadline_s):
                return await anyio.to_thread.run_sync(
                    _score, router, requests, ticket, abandon_on_cancel=True
                )
        except TimeoutError:
            reason = f"scoring exceeded the {deadline_s * 1000:.0f} ms deadline"
        except RouterError as exc:
            if isinstance(exc, BadRequestError):
                raise
            reason = f"scoring failed: {exc}"
        except Exception as exc:  # any runtime failure of the model must not fail the caller
            log.exception("scoring failed")
            reason = f"scoring failed: {type(exc).__name__}: {exc}"
        finally:
            if ticket is not None:
                ticket.drop()  # gives the slot back only if the thread never started
    elapsed = (time.perf_counter() - start) * 1000
    _fallback_log.log(logging.WARNING, "fallback for %d turn(s): %s", len(requests), reason)
    return [router.fallback(r, reason, elapsed) for r in requests]


def create_app(settings: Settings | None = None, router: RoutingService | None = None) -> FastAPI:
    # Imported here because the gateway imports notify/score_with_deadline from this module.
    from router.gateway import api_router as gateway_routes
    from router.gateway import upstream_client

    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.router is None:
            bundle = load_bundle(settings.model_dir, threads=settings.onnx_threads)
            app.state.agent = AgentRouting(settings, open_stores(settings))
            app.state.router = RoutingService(bundle, settings, app.state.agent)
        async with (
            upstream_client(app, settings),
            calllog_lifespan(app, settings.calllog_url, settings.redact_prompts),
            shadow_lifespan(app),
            watch_default_lifespan(app),
        ):
            yield

    app = FastAPI(
        title="tierwise",
        version=__version__,
        description="Picks the cheapest Claude tier that will still answer a turn adequately.",
        lifespan=lifespan,
        responses={
            400: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
        },
    )
    app.state.settings = settings
    app.state.router = router
    # The agent state (sessions, runs) the runs API reads: the given service's, or the one the
    # lifespan opens with the service it builds.
    app.state.agent = (
        router.agent if router is not None and isinstance(router.agent, AgentRouting) else None
    )
    app.state.observers = []
    # Receive each finished gateway call (router.calls.CallRecord, with upstream usage).
    app.state.call_observers = []
    app.state.inflight = InFlight(settings.max_inflight_scoring)
    # Order matters: add_middleware wraps, so the last added runs first. Auth refuses before any
    # body is read; the size limit bounds what StrictJsonBody buffers and checks.
    app.add_middleware(StrictJsonBody)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        gateway_max_bytes=settings.gateway_max_body_bytes,
    )
    app.add_middleware(BearerAuth, **auth_options(settings))
    app.add_middleware(PrintablePath)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_field_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
        return _error(422, "invalid_request", "; ".join(dict.fromkeys(problems)))

    @app.exception_handler(RouterError)
    async def _router_error(_: Request, exc: RouterError) -> JSONResponse:
        return _error(exc.status_code, type(exc).__name__, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404, 405 and FastAPI's own body errors in the service's error shape."""
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:  # a non-standard status code
            phrase = "error"
        kind = phrase.lower().replace(" ", "_").replace("-", "_")
        response = _error(exc.status_code, kind, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.post("/route", response_model=RouteDecision)
    async def route(body: RouteRequest, request: Request) -> RouteDecision:
        router = current_router(request)
        (decision,) = await score_with_deadline(router, [body], request.app.state.inflight)
        notify(request, [(body, decision)])
        return decision

    @app.post("/route/batch", response_model=RouteBatchResponse)
    async def route_batch(body: RouteBatchRequest, request: Request) -> RouteBatchResponse:
        router = current_router(request)
        if len(body.requests) > settings.max_batch:
            raise BadRequestError(
                f"requests: {len(body.requests)} turns exceed max_batch {settings.max_batch} "
                "(ROUTER_MAX_BATCH)"
            )
        decisions = await score_with_deadline(router, body.requests, request.app.state.inflight)
        notify(request, list(zip(body.requests, decisions, strict=True)))
        return RouteBatchResponse(decisions=decisions)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        router: RoutingService | None = request.app.state.router
        if router is None:
            return _error(503, "not_ready", "no model bundle loaded")
        return JSONResponse({"status": "ready", "model_version": router.version})

    @app.get("/version")
    async def version(request: Request) -> dict[str, object]:
        router = current_router(request)
        m = router.bundle.manifest
        return {
            "service": __version__,
            "model_version": m.version,
            "model_path": str(router.bundle.path),
            "created_at": m.created_at,
            "embedder": m.embedder.model_dump(),
            "labels": m.labels,
            "default_threshold": m.default_threshold,
            "tiers": {t.value: spec.model for t, spec in settings.tiers.items()},
            "shadow_model_version": getattr(request.app.state.shadow, "version", None),
            **request.app.state.rollout.info(),
        }

    app.include_router(gateway_routes)
    install_metrics(app)
    install_runs(app)  # GET /runs/{id}, POST /runs/{id}/usage; gateway usage -> runs
    install_rollout(app)
    return app
