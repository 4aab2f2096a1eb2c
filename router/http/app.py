"""create_app(settings, service) -> FastAPI. Serve with
`uvicorn --factory router.http.app:create_app`.

The app is wired here and only here: middleware in order, the routers, the observers, and a
lifespan that loads the bundle, opens the agent stores, the upstream client, the call log and
the shadow model, and follows the models folder's DEFAULT pointer.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from router import __version__
from router.agent.routing import AgentRouting
from router.agent.stores import open_stores
from router.core.bundle import load_bundle
from router.core.service import RoutingService
from router.core.warmup import with_measured_deadline
from router.errors import RouterError
from router.http.calllog.writer import open_calllog
from router.http.error_responses import json_error
from router.http.gateway import gateway_routes
from router.http.inflight import InFlight
from router.http.middleware.auth import BearerAuth, auth_options
from router.http.middleware.body_limit import BodySizeLimit
from router.http.middleware.body_timeout import BodyTimeout
from router.http.middleware.printable_path import PrintablePath
from router.http.middleware.strict_json import StrictJsonBody
from router.http.observers import Observers
from router.http.prometheus import PrometheusMetrics
from router.http.rollout import Rollout, following_default
from router.http.routes import admin_routes, ops_routes, routing_routes
from router.http.runs import runs_routes
from router.http.schemas import ErrorResponse
from router.http.shadow import load_shadow
from router.http.startup import startup_settings
from router.http.state import AppState, app_state
from router.http.upstream import upstream_client
from router.settings import Settings

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


# Young objects (net of those already freed) between collections of the youngest generation. At
# Python's 700 an agent turn's parsed body (~10,000 containers) set off a dozen collections that
# walked its live tree again and again; at 50,000 the rare collection walked so much it paused
# for tens of ms. benchmarks/gc_pauses.py measures both.
GC_YOUNG_THRESHOLD = 10_000
_collector_tuned = False


def tune_collector() -> None:
    """Once per process, after start-up: freeze what is alive (the bundle, FastAPI's routes,
    pydantic's validators: most of the heap), so a full collection walks only what requests
    allocated, and collect the young generation less often. Full collections of the start-up
    heap made the p99 (benchmarks/gc_pauses.py: ~100 ms each before, under 1 ms frozen)."""
    global _collector_tuned
    if _collector_tuned:
        return
    _collector_tuned = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first, as Starlette runs them: the body deadline (bounds every read below, and
    closes a connection answered before its body was read), path check, then auth (refuses
    before any body is read), then the size limit, which bounds what StrictJsonBody buffers."""
    return [
        Middleware(
            BodyTimeout,
            timeout_s=settings.body_timeout_s,
            max_pending=settings.max_pending_bodies,
        ),
        Middleware(PrintablePath),
        Middleware(BearerAuth, **auth_options(settings)),
        Middleware(
            BodySizeLimit,
            max_bytes=settings.max_body_bytes,
            gateway_max_bytes=settings.gateway_max_body_bytes,
        ),
        Middleware(StrictJsonBody),
    ]


@asynccontextmanager
async def _upstream(state: AppState) -> AsyncIterator[None]:
    async with upstream_client(state.settings) as client:
        state.upstream = client
        try:
            yield
        finally:
            state.upstream = None


@asynccontextmanager
async def _calllog(state: AppState) -> AsyncIterator[None]:
    settings = state.settings
    async with open_calllog(settings.calllog_url, settings.redact_prompts) as calllog:
        if calllog is None:
            yield
            return
        state.calllog = calllog
        state.observers.add(calllog)
        try:
            yield
        finally:
            state.observers.remove(calllog)


@asynccontextmanager
async def _shadow(state: AppState) -> AsyncIterator[None]:
    """Load the shadow model (off the event loop) and let it hear decisions while the app runs."""
    outcomes = state.metrics.shadow_decisions
    shadow = await anyio.to_thread.run_sync(load_shadow, state.settings, outcomes)
    state.shadow = shadow
    if shadow is None:
        yield
        return
    state.observers.add(shadow)
    try:
        yield
    finally:
        state.observers.remove(shadow)
        shadow.close()


def create_app(settings: Settings | None = None, service: RoutingService | None = None) -> FastAPI:
    """Without `service` the lifespan loads settings.model_dir and opens the session and run
    stores settings.session_url names; a given service keeps its own agent state. Without
    `settings` (how a server calls the factory) they are read from the environment and checked
    first: a bad configuration logs one line and exits (router.http.startup)."""
    settings = settings or startup_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app_state(app)
        stores = None
        if state.service is None:
            bundle = load_bundle(settings.model_dir, threads=settings.onnx_threads)
            stores = open_stores(settings)
            state.agent = AgentRouting(settings, stores)
            service = RoutingService(bundle, settings, state.agent)
            # Timed on this machine: the deadline is one it can meet (router.core.warmup).
            state.service = await anyio.to_thread.run_sync(with_measured_deadline, service)
        state.metrics.observe_speed(state.service)
        try:
            async with (
                _upstream(state),
                _calllog(state),
                _shadow(state),
                following_default(state.rollout, state),
            ):
                tune_collector()
                yield
        finally:
            if stores is not None:
                stores.close()

    app = FastAPI(
        title="tierwise",
        version=__version__,
        description="Picks the cheapest Claude tier that will still answer a turn adequately.",
        lifespan=lifespan,
        middleware=middleware(settings),
        responses={
            400: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            415: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
        },
    )
    metrics = PrometheusMetrics(settings)
    state = AppState(
        settings=settings,
        observers=Observers([metrics]),
        inflight=InFlight(settings.max_inflight_scoring),
        metrics=metrics,
        rollout=Rollout(settings, metrics.reloads, metrics.observe_speed),
        service=service,
        # The runs API reads the given service's agent state (the lifespan opens its own).
        agent=service.agent
        if service is not None and isinstance(service.agent, AgentRouting)
        else None,
    )
    app.state.tierwise = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_field_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
        return json_error(422, "invalid_request", "; ".join(dict.fromkeys(problems)))

    @app.exception_handler(RouterError)
    async def _router_error(_: Request, exc: RouterError) -> JSONResponse:
        return json_error(exc.status_code, type(exc).__name__, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404, 405 and FastAPI's own body errors in the service's error shape."""
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:  # a non-standard status code
            phrase = "error"
        kind = phrase.lower().replace(" ", "_").replace("-", "_")
        response = json_error(exc.status_code, kind, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    for routes in (routing_routes, ops_routes, gateway_routes, runs_routes, admin_routes):
        app.include_router(routes)
    return app
