"""CallRecord: one routed call as the call log, the metrics and the runs API see it, and the
request hash they share. The tier of a model id and the price of usage are in router.core.economics."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import orjson

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
    def request_document(self) -> dict[str, Any] | None:
        """request_document(request); read by the call log's writer thread, not the event loop."""
        return None if self.request is None else request_document(self.request)

    @cached_property
    def request_hash(self) -> str:
        """request_hash of the request, else body_hash. Computed when first read, by the call
        log's writer thread: dumping a big request costs time the event loop should not spend."""
        if self.request_document is not None:
            return content_hash(self.request_document)
        assert self.body_hash is not None, "a record without a request carries its body's hash"
        return self.body_hash


def request_document(request: RouteRequest) -> dict[str, Any]:
    """The request as JSON values without None fields: model_dump(mode="json",
    exclude_none=True) as a value (key order aside), its messages taken from the parsed body."""
    document = request.model_dump(mode="json", exclude_none=True, exclude={"messages"})
    if request.messages is not None:
        document["messages"] = request.messages.json_values()
    return document


def request_hash(request: RouteRequest) -> str:
    """sha256 of the turn's content (prompt/system/messages/tools) as canonical JSON."""
    return content_hash(request_document(request))


def content_hash(document: dict[str, Any]) -> str:
    """sha256 of a request document's content fields as canonical JSON (keys sorted, no spaces)."""
    content = {k: v for k, v in document.items() if k in CONTENT_FIELDS}
    return hash_bytes(json_bytes(content, sort_keys=True))


def json_bytes(value: Any, sort_keys: bool = False) -> bytes:
    """Compact JSON (UTF-8, no spaces) by orjson; the stdlib for what orjson refuses (an integer
    past 64 bits from a Python caller)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
        return text.encode()


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
