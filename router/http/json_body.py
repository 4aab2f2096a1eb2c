"""The JSON body StrictJsonBody already parsed, handed to FastAPI's body validation (and to the
gateway) so no request body is parsed twice; and one clear error for a body sent without a JSON
content-type."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from router.errors import UnsupportedMediaTypeError
from router.http.middleware.strict_json import PARSED_JSON, is_json_content_type


class ParsedJsonRequest(Request):
    """A Request whose json() is the value StrictJsonBody parsed (parsing only if it did not)."""

    async def json(self) -> Any:
        if PARSED_JSON in self.scope:
            return self.scope[PARSED_JSON]
        return await super().json()


class ParsedJsonRoute(APIRoute):
    """An APIRoute (FastAPI's documented extension point) that validates the already parsed body
    and refuses a body in another media type with 415 saying what to send, instead of pydantic's
    "Input should be a valid dictionary"."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def parsed_json_handler(request: Request) -> Response:
            request = ParsedJsonRequest(request.scope, request.receive)
            content_type = request.headers.get("content-type", "")
            # FastAPI reads a body without a content-type as bytes, not JSON: a 415 too.
            if takes_body and not (content_type and is_json_content_type(content_type)):
                if await request.body():
                    sent = f"'s content-type is {content_type!r}" if content_type else " has none"
                    raise UnsupportedMediaTypeError(
                        "body: send it as JSON with the header 'content-type: application/json' "
                        f"(this request{sent})"
                    )
            return await handler(request)

        return parsed_json_handler


async def json_body(request: Request) -> Any:
    """The parsed JSON body (None when empty or not JSON), for handlers that read it themselves."""
    if PARSED_JSON in request.scope:
        return request.scope[PARSED_JSON]
    return None
