"""PrometheusMetrics: every series GET /metrics exports, in one CollectorRegistry per app (so apps
and tests never share counters). An Observer: counts each finished call (/route decisions and
gateway calls). With several uvicorn workers each process has its own counters; scrape each, or
run one worker per container."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from router.core.features import extract_turn
from router.core.schemas import RouteDecision, RouteRequest
from router.core.service import RoutingService
from router.core.tiers import TIER_ORDER
from router.http.calllog.record import CallRecord
from router.http.calllog.writer import CallLog
from router.settings import Settings

# Scoring takes ~1-20 ms; the deadline is 50 ms by default.
ROUTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# Whole gateway calls, streams included: up to minutes.
GATEWAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class PrometheusMetrics:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        r = self.registry
        self.routes = Counter(
            "tierwise_routes", "Routing decisions by chosen tier.", ["endpoint", "tier"], registry=r
        )
        # The fallback rate is rate(tierwise_route_fallbacks_total[5m]) /
        # rate(tierwise_routes_total[5m]) (docs/reliability.md).
        self.fallbacks = Counter(
            "tierwise_route_fallbacks",
            "Decisions that answered the fallback tier (deadline or scoring failure).",
            ["endpoint"],
            registry=r,
        )
        self.deadline = Gauge(
            "tierwise_deadline_seconds",
            "Scoring deadline per turn: as configured (ROUTER_DEADLINE_MS) and in effect "
            "(raised to ROUTER_DEADLINE_FLOOR_FACTOR x the measured long-turn time).",
            ["kind"],
            registry=r,
        )
        self.scoring_speed = Gauge(
            "tierwise_scoring_warmup_seconds",
            "Median scoring time of the live bundle measured when it loaded, by turn length.",
            ["turn"],
            registry=r,
        )
        self.route_latency = Histogram(
            "tierwise_route_latency_seconds",
            "Scoring latency per decision.",
            ["endpoint"],
            buckets=ROUTE_BUCKETS,
            registry=r,
        )
        self.saved = Counter(
            "tierwise_saved_usd",
            "Estimated input dollars saved versus sending every call to the top tier "
            "(approximate input tokens x (top tier price - chosen tier price)).",
            ["endpoint"],
            registry=r,
        )
        self.switch_cache_write = Counter(
            "tierwise_switch_cache_write_usd",
            "Prompt-cache write dollars caused by switching tier mid-session "
            "(from the decision's cost_breakdown; 0 when absent).",
            ["endpoint"],
            registry=r,
        )
        self.upstream = Counter(
            "tierwise_gateway_upstream_responses",
            "Gateway upstream answers by HTTP status ('unreachable' when none came).",
            ["status"],
            registry=r,
        )
        self.gateway_latency = Histogram(
            "tierwise_gateway_duration_seconds",
            "Whole gateway calls, until the last byte of the answer.",
            ["stream"],
            buckets=GATEWAY_BUCKETS,
            registry=r,
        )
        self.gateway_tokens = Counter(
            "tierwise_gateway_tokens",
            "Tokens reported by the upstream, by tier of the model called.",
            ["tier", "kind"],
            registry=r,
        )
        self.gateway_cost = Counter(
            "tierwise_gateway_cost_usd",
            "Dollars at list prices from upstream usage, by tier of the model called.",
            ["tier"],
            registry=r,
        )
        self.calllog_dropped = Gauge(
            "tierwise_calllog_dropped",
            "Call-log records dropped because the writer queue was full.",
            registry=r,
        )
        self.reloads = Counter(
            "tierwise_model_reloads", "POST /admin/reload outcomes.", ["outcome"], registry=r
        )
        # Created once per app, so re-entering the lifespan never registers it twice.
        self.shadow_decisions = Counter(
            "tierwise_shadow_decisions",
            "Shadow-model decisions versus the live ones: agree, disagree, skipped, error.",
            ["outcome"],
            registry=r,
        )

    def observe_speed(self, service: RoutingService) -> None:
        """A new live service: its configured and effective deadline and measured speed."""
        self.deadline.labels("configured").set(self.settings.deadline_ms / 1000)
        self.deadline.labels("effective").set(service.deadline_ms / 1000)
        if service.speed is not None:
            self.scoring_speed.labels("short").set(service.speed.short_turn_ms / 1000)
            self.scoring_speed.labels("long").set(service.speed.long_turn_ms / 1000)

    def count_decision(self, endpoint: str, request: RouteRequest, decision: RouteDecision) -> None:
        self.routes.labels(endpoint, decision.tier.value).inc()
        if decision.fallback:
            self.fallbacks.labels(endpoint).inc()
        self.route_latency.labels(endpoint).observe(decision.latency_ms / 1000)
        top = self.settings.tier_spec(TIER_ORDER[-1]).input_per_mtok
        chosen = self.settings.tier_spec(decision.tier).input_per_mtok
        tokens = extract_turn(request).approx_tokens
        self.saved.labels(endpoint).inc(max(0.0, tokens * (top - chosen) / 1e6))
        self.switch_cache_write.labels(endpoint).inc(_switch_cache_write(decision.cost_breakdown))

    def on_route(self, request: RouteRequest, decision: RouteDecision) -> None:
        """Decisions are counted from the finished call (on_call), gateway calls with usage."""

    def on_call(self, record: CallRecord) -> None:
        if record.request is not None and record.decision is not None:
            self.count_decision(record.endpoint, record.request, record.decision)
        if record.endpoint != "gateway":
            return
        status = str(record.upstream_status) if record.upstream_status else "unreachable"
        self.upstream.labels(status).inc()
        if record.total_latency_ms is not None:
            latency = record.total_latency_ms / 1000
            self.gateway_latency.labels(str(record.stream).lower()).observe(latency)
        # The model called, routed or not (x-tierwise-route: off keeps the caller's model).
        tier = record.model_tier.value if record.model_tier else "other"
        if record.usage is not None:
            u = record.usage
            for kind, value in (
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cache_creation", u.cache_creation_input_tokens or 0),
                ("cache_read", u.cache_read_input_tokens or 0),
            ):
                self.gateway_tokens.labels(tier, kind).inc(value)
        if record.cost_usd is not None:
            self.gateway_cost.labels(tier).inc(record.cost_usd)

    def render(self, calllog: CallLog | None) -> bytes:
        """The exposition text, with the call log's drop count read now."""
        self.calllog_dropped.set(calllog.dropped if calllog is not None else 0)
        return generate_latest(self.registry)


def _switch_cache_write(breakdown: dict[str, Any] | None) -> float:
    """The chosen tier's cache_usd when it must re-write a prefix another tier holds
    (router.core.economics: CostDecision.breakdown(); "cache" is read | write | none)."""
    if not breakdown:
        return 0.0
    chosen = (breakdown.get("tiers") or {}).get(breakdown.get("chosen")) or {}
    value = chosen.get("cache_usd")
    if chosen.get("cache") == "write" and isinstance(value, int | float):
        return float(value)
    return 0.0
