"""What a lane returns for Messages-API requests keyed by custom_id: Outcome, and the ResultStore
that keeps the succeeded ones (append-only JSONL), so a re-run never pays twice.

A lane (RequestLane) takes {custom_id: params} and returns {custom_id: Outcome} for every id it
was given: labeling.live sends one Messages call per request, labeling.batches uses batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Status = Literal["succeeded", "errored", "expired", "canceled"]
Params = dict[str, Any]


def custom_id(kind: str, *parts: Any) -> str:
    """A Batches-API-valid id ([a-zA-Z0-9_-]{1,64}) that changes whenever any part changes, so a
    cached result is reused only for the very same request."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{digest[:40]}"


@dataclass(frozen=True)
class Outcome:
    custom_id: str
    status: Status
    message: dict[str, Any] | None = None  # the Message, as JSON, when succeeded
    error: str | None = None  # "<error type>: <message>" when errored, else why it is missing
    error_type: str | None = None
    lane: Literal["batch", "live"] = "batch"
    reused: bool = False  # read from the ResultStore: paid for by an earlier run

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and self.message is not None

    @property
    def text(self) -> str:
        """The reply's text blocks joined; tool_use blocks rendered as JSON."""
        parts = []
        for block in (self.message or {}).get("content") or []:
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                parts.append(f"[tool_use {block.get('name')}] {json.dumps(block.get('input'))}")
        return "\n".join(parts)

    @property
    def usage(self) -> dict[str, Any]:
        return dict((self.message or {}).get("usage") or {})

    @property
    def stop_reason(self) -> str | None:
        return (self.message or {}).get("stop_reason")

    @property
    def model(self) -> str:
        return str((self.message or {}).get("model") or "")

    def describe(self) -> str:
        return self.error or self.status


class ResultStore:
    """Succeeded outcomes by custom_id, persisted as JSONL (one line per result, appended;
    a {"custom_id", "discarded": true} line forgets an earlier one)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._items: dict[str, Outcome] = {}
        if path is not None and path.is_file():
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    try:
                        data = json.loads(line)
                        if data.get("discarded"):
                            self._items.pop(data["custom_id"], None)
                            continue
                        self._items[data["custom_id"]] = Outcome(**data)
                    except (json.JSONDecodeError, KeyError, TypeError) as exc:
                        log.warning(
                            "%s:%d: unreadable cached result skipped (%s)", path, lineno, exc
                        )

    def get(self, cid: str) -> Outcome | None:
        found = self._items.get(cid)
        if found is None:
            return None
        return Outcome(**{**asdict(found), "reused": True})

    def reused(self, cids: Iterable[str]) -> dict[str, Outcome]:
        """The outcomes of `cids` already paid for (marked reused); the others are absent."""
        return {cid: found for cid in cids if (found := self.get(cid)) is not None}

    def __contains__(self, cid: object) -> bool:
        return cid in self._items

    def add(self, outcome: Outcome) -> None:
        if not outcome.ok or outcome.custom_id in self._items:
            return
        self._items[outcome.custom_id] = outcome
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            record = asdict(outcome)
            record.pop("reused")
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def discard(self, cid: str) -> None:
        """Forget a result (e.g. a judge reply that did not parse) so a re-run asks again."""
        if self._items.pop(cid, None) is not None and self.path is not None:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"custom_id": cid, "discarded": True}) + "\n")


class RequestLane(Protocol):
    def run(self, requests: Mapping[str, Params], desc: str = "") -> dict[str, Outcome]: ...


def error_outcome(cid: str, exc: Exception, lane: Literal["batch", "live"]) -> Outcome:
    """An errored Outcome from an SDK exception, keeping the API's error type when there is one."""
    import anthropic

    kind = type(exc).__name__
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        kind = str((body.get("error") or {}).get("type") or f"http_{exc.status_code}")
    return Outcome(cid, "errored", error=f"{kind}: {exc}", error_type=kind, lane=lane)
