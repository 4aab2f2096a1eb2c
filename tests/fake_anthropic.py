"""A real local HTTP server speaking the Anthropic Messages and Message Batches APIs.

Point the official SDK (or a gateway) at `FakeAnthropic.base_url`; every request is recorded with
its headers and JSON body, and behaviour is programmable:

    fake.script("claude-opus-4-6", "first reply", Reply(text="second", stop_reason="max_tokens"))
    fake.responder = lambda params: f"echo {params['messages'][-1]['content']}"
    fake.fail_next(429, retry_after=0.01)              # next request (or path) gets a 429
    fake.batch_item_status["ans-1"] = "expired"  # or "errored", "canceled"; a list: per attempt
    fake.batch_polls_in_progress = 2                    # batches stay in_progress for 2 retrieves

Token usage is deterministic (ceil(chars / 4)); a prompt prefix ending in a block marked
`cache_control` is "cached": cache_creation_input_tokens the first time, cache_read_input_tokens
afterwards (per model and prefix, as prompt caching works for real).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class _Server(ThreadingHTTPServer):
    # The stdlib default backlog of 5 drops connections when a load test fans out through the
    # gateway; a real upstream never refuses at that level.
    request_queue_size = 512
    daemon_threads = True


@dataclass
class Reply:
    """One scripted assistant message. `content` (Messages-API blocks) wins over `text`."""

    text: str = "ok"
    content: list[dict[str, Any]] | None = None
    stop_reason: str = "end_turn"
    usage: dict[str, int] | None = None  # overrides the computed usage fields given here
    model: str | None = None  # defaults to the requested model
    stream_error: str | None = None  # streaming only: emit an `error` event after the first delta

    def blocks(self) -> list[dict[str, Any]]:
        return self.content if self.content is not None else [{"type": "text", "text": self.text}]


@dataclass
class FakeError(Exception):
    """Returned (or raised) by a responder to answer with an API error instead of a message."""

    status: int = 500
    message: str = "injected failure"
    retry_after: float | None = None
    error_type: str | None = None

    def body(self, request_id: str) -> dict[str, Any]:
        kind = self.error_type or ERROR_TYPES.get(self.status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": self.message},
            "request_id": request_id,
        }


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    raw: bytes = b""  # the body's bytes as they arrived

    @property
    def api_key(self) -> str | None:
        """The credential sent: `x-api-key`, else the `Authorization: Bearer` token (SDK >= 2.x)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        token = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return token or None


@dataclass
class _Injected:
    error: FakeError
    times: int
    path: str | None
    method: str | None


@dataclass
class _Batch:
    id: str
    items: list[dict[str, Any]]  # {"custom_id", "result"}
    created_at: datetime
    polls: int = 0
    cancel_requested: bool = False
    ended_at: datetime | None = None


Responder = Callable[[dict[str, Any]], "Reply | str | FakeError | dict[str, Any]"]


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class FakeAnthropic:
    """State and knobs; `start()` binds 127.0.0.1 on a free port. Thread-safe."""

    responder: Responder | None = None
    batch_polls_in_progress: int = 0  # retrieves that still answer in_progress before ending
    # custom_id -> "errored" | "expired" | "canceled", or a list used up one per submission
    # (None in it: answer normally), e.g. ["expired", None] expires only the first attempt.
    batch_item_status: dict[str, Any] = field(default_factory=dict)
    require_auth: bool = (
        True  # 401 without x-api-key / authorization, 400 without anthropic-version
    )
    cache_min_tokens: int = 0  # prefixes shorter than this are not cached (real minimum: 1024+)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._scripts: dict[str, deque[Reply | str | FakeError]] = {}
        self._injected: list[_Injected] = []
        self._batches: dict[str, _Batch] = {}
        self._cache: set[str] = set()
        self._ids = itertools.count(1)
        self._clients: list[Any] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ---- knobs -------------------------------------------------------------------------
    def script(self, model: str, *replies: Reply | str | FakeError) -> None:
        """Queue replies for `model` (consumed in order; then the responder / default applies)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(replies)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str = "injected failure",
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `times` requests (matching path prefix / method, if given) get an error."""
        with self._lock:
            self._injected.append(
                _Injected(FakeError(status, message, retry_after), times, path, method)
            )

    def calls(self, path: str, method: str = "POST") -> list[RecordedRequest]:
        """Recorded requests to exactly `path` (e.g. "/v1/messages", "/v1/messages/batches")."""
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    def client(self, **kwargs: Any) -> Any:
        """An `anthropic.Anthropic` pointed here (api_key "test"), closed by `stop()`."""
        import anthropic

        kwargs.setdefault("api_key", "test")
        sdk = anthropic.Anthropic(base_url=self.base_url, **kwargs)
        self._clients.append(sdk)
        return sdk

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self._injected.clear()
            self._batches.clear()
            self._cache.clear()
            self.batch_item_status.clear()
            self.responder = None
            self.batch_polls_in_progress = 0

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for sdk in self._clients:
            sdk.close()
        self._clients.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- behaviour ---------------------------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _take_injected(self, method: str, path: str) -> FakeError | None:
        with self._lock:
            for inj in self._injected:
                if inj.path is not None and not path.startswith(inj.path):
                    continue
                if inj.method is not None and inj.method != method:
                    continue
                inj.times -= 1
                if inj.times <= 0:
                    self._injected.remove(inj)
                return inj.error
        return None

    def _reply_for(self, params: dict[str, Any]) -> Reply | FakeError:
        model = str(params.get("model", ""))
        with self._lock:
            queue = self._scripts.get(model)
            scripted = queue.popleft() if queue else None
        out: Any = scripted
        if out is None and self.responder is not None:
            try:
                out = self.responder(params)
            except FakeError as exc:
                out = exc
        if out is None:
            out = f"fake answer from {model}"
        if isinstance(out, str):
            return Reply(text=out)
        if isinstance(out, dict):
            return Reply(**out)
        return out  # type: ignore[no-any-return]

    def _usage(self, params: dict[str, Any], reply: Reply) -> dict[str, int]:
        """Input tokens split into cached prefix (read or created) and the rest."""
        parts: list[tuple[str, bool]] = []  # (text, ends a cache breakpoint)
        for tool in params.get("tools") or []:
            parts.append((json.dumps(tool, sort_keys=True), "cache_control" in tool))
        system = params.get("system")
        if isinstance(system, str):
            parts.append((system, False))
        for block in system if isinstance(system, list) else []:
            parts.append((json.dumps(block, sort_keys=True), "cache_control" in block))
        for msg in params.get("messages") or []:
            content = msg.get("content")
            if isinstance(content, str):
                parts.append((content, False))
            else:
                for block in content or []:
                    parts.append((json.dumps(block, sort_keys=True), "cache_control" in block))
        last_bp = max((i for i, (_, bp) in enumerate(parts) if bp), default=-1)
        prefix = "".join(p for p, _ in parts[: last_bp + 1])
        rest = "".join(p for p, _ in parts[last_bp + 1 :])
        prefix_tokens = approx_tokens(prefix)
        created = read = 0
        if prefix and prefix_tokens >= self.cache_min_tokens:
            key = hashlib.sha256(f"{params.get('model')}\0{prefix}".encode()).hexdigest()
            with self._lock:
                if key in self._cache:
                    read = prefix_tokens
                else:
                    self._cache.add(key)
                    created = prefix_tokens
        else:
            rest = prefix + rest
        out_text = "".join(
            b.get("text", "") or json.dumps(b.get("input", {})) for b in reply.blocks()
        )
        usage = {
            "input_tokens": approx_tokens(rest),
            "output_tokens": max(1, approx_tokens(out_text)),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }
        usage.update(reply.usage or {})
        return usage

    def message_json(self, params: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": reply.model or params.get("model", ""),
            "content": reply.blocks(),
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": self._usage(params, reply),
        }

    def create_batch(self, requests: list[dict[str, Any]]) -> _Batch:
        items = []
        for req in requests:
            custom_id, params = req["custom_id"], req["params"]
            with self._lock:
                forced = self.batch_item_status.get(custom_id)
                if isinstance(forced, list):
                    forced = forced.pop(0) if forced else None
            if forced in ("expired", "canceled"):
                result: dict[str, Any] = {"type": forced}
            elif forced == "errored":
                err = FakeError(400, f"injected item error for {custom_id}")
                result = {"type": "errored", "error": err.body(self._next_id("req"))}
            else:
                reply = self._reply_for(params)
                if isinstance(reply, FakeError):
                    result = {"type": "errored", "error": reply.body(self._next_id("req"))}
                else:
                    result = {"type": "succeeded", "message": self.message_json(params, reply)}
            items.append({"custom_id": custom_id, "result": result})
        batch = _Batch(self._next_id("msgbatch"), items, datetime.now(UTC))
        with self._lock:
            self._batches[batch.id] = batch
        return batch

    def batch_json(self, batch: _Batch, *, poll: bool = False) -> dict[str, Any]:
        with self._lock:
            if poll and batch.ended_at is None:
                batch.polls += 1
                if batch.cancel_requested or batch.polls > self.batch_polls_in_progress:
                    batch.ended_at = datetime.now(UTC)
                    if batch.cancel_requested:
                        for item in batch.items:
                            if item["result"]["type"] == "succeeded":
                                item["result"] = {"type": "canceled"}
            ended = batch.ended_at is not None
            counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
            for item in batch.items:
                counts[item["result"]["type"] if ended else "processing"] += 1
            status = (
                "ended" if ended else ("canceling" if batch.cancel_requested else "in_progress")
            )
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + timedelta(hours=24)),
            "ended_at": _iso(batch.ended_at) if batch.ended_at else None,
            "cancel_initiated_at": _iso(batch.created_at) if batch.cancel_requested else None,
            "archived_at": None,
            "results_url": (
                f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def stream_events(message: dict[str, Any], reply: Reply) -> Iterator[bytes]:
    """The real event order: message_start, per block start/delta.../stop, message_delta, stop."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            first = dict(block, input={})
            raw = json.dumps(block.get("input", {}))
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[i : i + 16]}
                for i in range(0, len(raw), 16)
            ]
        else:
            first = dict(block, text="")
            text = block.get("text", "")
            words = re.findall(r"\S+\s*|\s+", text) or [""]
            deltas = [{"type": "text_delta", "text": w} for w in words]
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": first},
        )
        for n, delta in enumerate(deltas):
            yield _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
            if n == 0 and reply.stream_error:
                err = FakeError(529, reply.stream_error).body("req_stream")
                yield _sse("error", {"type": "error", "error": err["error"]})
                return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    delta_usage = {"output_tokens": usage["output_tokens"]}
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": delta_usage,
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


class _Handler(BaseHTTPRequestHandler):
    state: FakeAnthropic
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    # ---- plumbing ----------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", self.state._next_id("req"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, err: FakeError) -> None:
        headers = {}
        if err.retry_after is not None:
            headers["retry-after"] = f"{err.retry_after:g}"
            headers["retry-after-ms"] = f"{err.retry_after * 1000:g}"
        self._send_json(err.status, err.body(self.state._next_id("req")), headers)

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except (json.JSONDecodeError, RecursionError):  # RecursionError: 1,000+ deep
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(method, split.path, split.query, headers, body, raw)
        with self.state._lock:
            self.state.requests.append(record)
        if raw and body is None:
            return self._send_error(FakeError(400, "request body is not valid JSON"))
        if self.state.require_auth:
            if record.api_key is None:
                return self._send_error(FakeError(401, "x-api-key header is required"))
            if "anthropic-version" not in headers:
                return self._send_error(FakeError(400, "anthropic-version header is required"))
        injected = self.state._take_injected(method, split.path)
        if injected is not None:
            return self._send_error(injected)
        self._route(method, split.path, body)

    def _route(self, method: str, path: str, body: Any) -> None:
        state = self.state
        parts = [p for p in path.split("/") if p]
        if method == "POST" and path == "/v1/messages":
            return self._messages(body)
        if method == "POST" and path == "/v1/messages/count_tokens":
            usage = state._usage(body or {}, Reply(text=""))
            total = usage["input_tokens"] + usage["cache_read_input_tokens"]
            return self._send_json(
                200, {"input_tokens": total + usage["cache_creation_input_tokens"]}
            )
        if method == "POST" and path == "/v1/messages/batches":
            return self._create_batch(body)
        if method == "GET" and path == "/v1/messages/batches":
            with state._lock:
                batches = list(state._batches.values())
            data = [state.batch_json(b) for b in reversed(batches)]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            page = {"data": data, "has_more": False, "first_id": first, "last_id": last}
            return self._send_json(200, page)
        if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"]:
            batch = state._batches.get(parts[3])
            if batch is None:
                return self._send_error(FakeError(404, f"batch {parts[3]!r} not found"))
            tail = parts[4:]
            if method == "GET" and not tail:
                return self._send_json(200, state.batch_json(batch, poll=True))
            if method == "POST" and tail == ["cancel"]:
                with state._lock:
                    batch.cancel_requested = batch.ended_at is None or batch.cancel_requested
                return self._send_json(200, state.batch_json(batch))
            if method == "GET" and tail == ["results"]:
                if batch.ended_at is None:
                    return self._send_error(FakeError(400, "batch has not ended yet"))
                lines = "".join(json.dumps(item) + "\n" for item in batch.items).encode()
                self.send_response(200)
                self.send_header("content-type", "application/binary")
                self.send_header("content-length", str(len(lines)))
                self.end_headers()
                self.wfile.write(lines)
                return None
            if method == "DELETE" and not tail:
                with state._lock:
                    state._batches.pop(batch.id, None)
                return self._send_json(200, {"id": batch.id, "type": "message_batch_deleted"})
        return self._send_error(FakeError(404, f"no route for {method} {path}"))

    def _check_params(self, params: Any) -> FakeError | None:
        if not isinstance(params, dict):
            return FakeError(400, "body must be a JSON object")
        for key in ("model", "max_tokens", "messages"):
            if key not in params:
                return FakeError(400, f"{key}: Field required")
        if not params["messages"]:
            return FakeError(400, "messages: at least one message is required")
        return None

    def _messages(self, params: Any) -> None:
        bad = self._check_params(params)
        if bad is not None:
            return self._send_error(bad)
        reply = self.state._reply_for(params)
        if isinstance(reply, FakeError):
            return self._send_error(reply)
        message = self.state.message_json(params, reply)
        if not params.get("stream"):
            return self._send_json(200, message)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", self.state._next_id("req"))
        self.end_headers()
        for chunk in stream_events(message, reply):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        return None

    def _create_batch(self, body: Any) -> None:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not requests:
            return self._send_error(FakeError(400, "requests: at least one request is required"))
        seen: set[str] = set()
        for n, req in enumerate(requests):
            custom_id = req.get("custom_id", "")
            if not CUSTOM_ID.match(str(custom_id)):
                msg = f"requests.{n}.custom_id: {custom_id!r} must match {CUSTOM_ID.pattern}"
                return self._send_error(FakeError(400, msg))
            if custom_id in seen:
                return self._send_error(FakeError(400, f"duplicate custom_id {custom_id!r}"))
            seen.add(custom_id)
            bad = self._check_params(req.get("params"))
            if bad is not None:
                return self._send_error(FakeError(400, f"requests.{n}.params.{bad.message}"))
        batch = self.state.create_batch(requests)
        return self._send_json(200, self.state.batch_json(batch))

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")
