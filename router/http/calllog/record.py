"""CallRecord: one routed call as the call log, the metrics and the runs API see it, and the
request hash they share. The tier of a model id and the price of usage are in router.core.economics."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from router.core.schemas import RouteDecision, RouteRequest, Usage
from router.core.tiers import Tier

Endpoint = Literal["route", "gateway"]

# The fields that say what the turn is; knobs (threshold, tiers, session...) are left out so the
# same conversation hashes the same however it was routed.
CONTENT_FIELDS = frozenset({"prompt", "system", "messages", "tools"})


@dataclass(frozen=True)
class CallRecord:
    """A routed call. `decision` is None when the gateway forwarded without routing (opt-out
    header, or a body routing cannot read); `usage`/`upstream_status` are gateway-only."""

    endpoint: Endpoint
    request: RouteRequest | None
    decision: RouteDecision | None
    # sha256 of the raw body, for a gateway body routing could not read (request is None).
    body_hash: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    model: str | None = None  # the model actually called (gateway) or chosen (route)
    model_tier: Tier | None = None  # the tier `model` belongs to; None: no configured tier
    reason: str | None = None  # why the gateway did not route, when decision is None
    total_latency_ms: float | None = None
    upstream_status: int | None = None  # None: upstream never answered (see upstream_error)
    upstream_error: str | None = None
    usage: Usage | None = None
    message_id: str | None = None  # the upstream's msg_... id, when it answered one
    answer: str | None = None  # the reply's text when all text and ended by end_turn
    cost_usd: float | None = None  # from usage at list prices; None if the model is unknown
    stream: bool = False

    @classmethod
    def routed(cls, request: RouteRequest, decision: RouteDecision) -> CallRecord:
        """The record for /route and /route/batch: a decision and nothing else."""
        return cls(
            endpoint="route",
            request=request,
            decision=decision,
            model=decision.model,
            model_tier=decision.tier,
        )

    @cached_property
    def request_hash(self) -> str:
        """request_hash(request), else body_hash. Computed when first read, by the call log's
        writer thread: dumping a big request costs milliseconds the event loop should not spend."""
        if self.request is not None:
            return request_hash(self.request)
        assert self.body_hash is not None, "a record without a request carries its body's hash"
        return self.body_hash


def request_hash(request: RouteRequest) -> str:
    """sha256 of the turn's content (prompt/system/messages/tools) as canonical JSON."""
    content = request.model_dump(mode="json", include=set(CONTENT_FIELDS), exclude_none=True)
    return hash_bytes(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
