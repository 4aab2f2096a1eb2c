"""Response header values tierwise writes: the one place that makes them sendable.

uvicorn refuses a header value holding a control character ("Invalid HTTP header value") and
drops the connection without any response, so the caller never learns what happened to a call
that may already be billed. Every value built from request, model or upstream data goes through
header_value (or safe_headers) before it is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Longest value written; reasons can be long and headers are not the place for essays.
MAX_HEADER_CHARS = 300
_UNSENDABLE = re.compile(r"[^\x20-\x7e]")


def header_value(text: str, limit: int | None = MAX_HEADER_CHARS) -> str:
    """Visible ASCII and single spaces only: whitespace runs (tabs, newlines) become one space,
    every other control or non-ASCII character becomes '?'; at most `limit` characters."""
    collapsed = " ".join(text.split())
    if limit is not None:
        collapsed = collapsed[:limit].rstrip()
    return _UNSENDABLE.sub("?", collapsed)


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every value made sendable, none shortened (upstream values pass through whole)."""
    return {name: header_value(value, limit=None) for name, value in headers.items()}
