"""Run budgets over HTTP: GET /runs/{run_id} and POST /runs/{run_id}/usage, and gateway_spend,
which the gateway calls to record the usage of every call it forwards, so gateway clients never
post usage themselves. docs/agent-routing.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from router.agent.budgets import RunState, budget_cap
from router.agent.routing import AgentRouting
from router.core.schemas import Usage
from router.core.tiers import Tier
from router.errors import NotFoundError, NotReadyError, RouterError
from router.http.calllog.record import CallRecord
from router.http.json_body import ParsedJsonRoute
from router.http.state import AppState, current_service, request_state
from router.settings import Settings

log = logging.getLogger(__name__)

RunId = Path(min_length=1, max_length=256, description="The run_id sent on /route.")


class UsageReport(BaseModel):
    """One Messages-API call of the run, as the API answered it."""

    model: str = Field(min_length=1, max_length=256, description="The model that was called.")
    usage: Usage = Field(description="The response's `usage` block, unchanged.")
    session_id: str | None = Field(
        default=None,
        max_length=256,
        description="Also record which model now caches how much of this session's prompt.",
    )
    message_id: str | None = Field(
        default=None,
        max_length=256,
        description="The response's `id` (msg_...): a repeated id is not counted twice.",
    )


class RunStatus(BaseModel):
    run_id: str
    budget_usd: float | None = Field(description="None: the run has no budget, spend is tracked.")
    spent_usd: float
    remaining_usd: float | None
    spent_fraction: float | None
    cap: Tier | None = Field(description="The most capable tier the budget still allows.")
    exhausted: bool
    calls: dict[Tier, int] = Field(description="Usage reports (calls made) per tier.")
    routed: dict[Tier, int] = Field(description="Routing decisions per tier.")
    updated_at: datetime


class UsageReceipt(BaseModel):
    tier: Tier
    cost_usd: float = Field(description="This call at list prices, cache reads/writes included.")
    counted: bool = Field(description="False when message_id had been counted before.")
    run: RunStatus


def run_status(run: RunState, settings: Settings) -> RunStatus:
    cap = budget_cap(run, settings.budget_cap_sonnet_at, settings.budget_cap_haiku_at)
    return RunStatus(
        run_id=run.run_id,
        budget_usd=run.budget_usd,
        spent_usd=run.spent_usd,
        remaining_usd=run.remaining_usd,
        spent_fraction=run.spent_fraction,
        cap=cap.tier,
        exhausted=cap.exhausted,
        calls=run.calls,
        routed=run.routed,
        updated_at=datetime.fromtimestamp(run.updated_at, UTC),
    )


runs_routes = APIRouter(tags=["runs"], route_class=ParsedJsonRoute)


def current_agent(request: Request) -> AgentRouting:
    """The app's agent state; 503 before the lifespan opened it (or for a service without one)."""
    current_service(request)  # no bundle yet: the same 503 as /route
    agent = request_state(request).agent
    if agent is None:
        raise NotReadyError("no session and run state: the routing service has no agent hook")
    return agent


# Plain `def`: store calls may block on Redis, so FastAPI runs these in its thread pool.
@runs_routes.get("/runs/{run_id}", response_model=RunStatus)
def get_run(request: Request, run_id: str = RunId) -> RunStatus:
    agent = current_agent(request)
    run = agent.runs.get(run_id)
    if run is None:
        raise NotFoundError(
            f"run_id {run_id!r} is unknown or expired (runs expire "
            f"{agent.settings.run_ttl_s:.0f} s after their last call)"
        )
    return run_status(run, agent.settings)


@runs_routes.post("/runs/{run_id}/usage", response_model=UsageReceipt)
def post_usage(body: UsageReport, request: Request, run_id: str = RunId) -> UsageReceipt:
    agent = current_agent(request)
    record = agent.record_usage(body.model, body.usage, run_id, body.session_id, body.message_id)
    assert record.run is not None  # a run_id was given
    return UsageReceipt(
        tier=record.tier,
        cost_usd=record.cost_usd,
        counted=record.counted,
        run=run_status(record.run, agent.settings),
    )


def gateway_spend(state: AppState, record: CallRecord) -> Callable[[], None] | None:
    """The store write that counts a finished gateway call's usage for its run and session
    (message_id: a call is counted once), or None when there is nothing to count. It may block
    on the store: the gateway runs it in a worker thread."""
    request, usage, model, agent = record.request, record.usage, record.model, state.agent
    if record.endpoint != "gateway" or request is None or usage is None or model is None:
        return None
    if agent is None or (request.run_id is None and request.session_id is None):
        return None

    def write() -> None:
        try:
            agent.record_usage(model, usage, request.run_id, request.session_id, record.message_id)
        except RouterError as exc:  # unknown model (route: off) or store down: spend not counted
            log.warning("usage of gateway call not recorded: %s", exc)

    return write
