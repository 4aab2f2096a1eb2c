"""AppState: everything an app's handlers and lifespan share, typed, at app.state.tierwise.

Handlers read `service` once per request: a reload (router.http.rollout) swaps it in one
assignment, so a request in flight finishes on the service it started with.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request

from router.agent.routing import AgentRouting
from router.core.service import RoutingService
from router.errors import NotReadyError
from router.http.calllog.writer import CallLog
from router.http.inflight import InFlight
from router.http.observers import Observers
from router.http.prometheus import PrometheusMetrics
from router.http.rollout import Rollout
from router.http.shadow import Shadow
from router.http.upstream import Upstream
from router.settings import Settings


@dataclass(eq=False)
class AppState:
    settings: Settings
    observers: Observers
    # Scoring calls running at once, counting ones abandoned past their deadline.
    inflight: InFlight
    metrics: PrometheusMetrics
    rollout: Rollout
    # The live routing service; None until the lifespan has loaded a bundle.
    service: RoutingService | None = None
    # The agent state (sessions, runs) of the live service; None without one.
    agent: AgentRouting | None = None
    # Set by the lifespan: the shadow model, the upstream client, the call log.
    shadow: Shadow | None = None
    upstream: Upstream | None = None
    calllog: CallLog | None = None


def app_state(app: Starlette) -> AppState:
    state = app.state.tierwise
    if not isinstance(state, AppState):
        raise TypeError(f"app.state.tierwise is {type(state).__name__}, not AppState")
    return state


def request_state(request: Request) -> AppState:
    return app_state(request.app)


def current_service(request: Request) -> RoutingService:
    """The app's live service (read once per request); 503 while none is loaded."""
    service = request_state(request).service
    if service is None:
        raise NotReadyError("no model bundle is loaded yet; see GET /readyz")
    return service
