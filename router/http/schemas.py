"""HTTP-only bodies around the routing contract (router.core.schemas): batches and the error shape."""

from __future__ import annotations

from pydantic import BaseModel, Field

from router.core.schemas import RouteDecision, RouteRequest


class RouteBatchRequest(BaseModel):
    requests: list[RouteRequest] = Field(min_length=1)


class RouteBatchResponse(BaseModel):
    decisions: list[RouteDecision]


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
