"""Session state for cache-aware routing: which tier served a conversation's last turn and how
much of its prompt that model now holds in Anthropic's prompt cache.

Two stores behind one SessionStore protocol: MemorySessionStore (one replica; TTL + size bound)
and RedisSessionStore (replicas share state). Both expire a session `ttl_s` after its last write.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from router.core.loop_quality import LoopQuality
from router.core.tiers import Tier
from router.errors import RouterError

KEY_PREFIX = "tierwise:"
V = TypeVar("V")


class StoreError(RouterError):
    """The session/run store (Redis) failed or timed out; routing goes on without its state."""

    status_code = 503


@dataclass(frozen=True)
class SessionState:
    tier: Tier  # tier of the model that served the session's last turn
    model: str  # that model's id
    prefix_tokens: int  # prompt tokens that model now holds in its cache for this session
    updated_at: float  # unix seconds of the last write
    # The router's P(adequate) sums over the session's pinned loop turns (heads are weighed by
    # them: router.core.loop_quality). State written before the field reads as none seen.
    loop: LoopQuality = LoopQuality()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionState:
        data = json.loads(raw)
        return cls(
            tier=Tier(data["tier"]),
            model=str(data["model"]),
            prefix_tokens=int(data["prefix_tokens"]),
            updated_at=float(data["updated_at"]),
            loop=LoopQuality(
                int(data.get("loop", {}).get("turns", 0)),
                tuple(float(x) for x in data.get("loop", {}).get("sums", ())),
            ),
        )


class SessionStore(Protocol):
    def get(self, session_id: str) -> SessionState | None:
        """The session's state, or None if unknown or expired. Raises StoreError."""
        ...

    def put(self, session_id: str, state: SessionState) -> None:
        """Write the state and restart the session's TTL. Raises StoreError."""
        ...


class TtlMap(Generic[V]):
    """Thread-safe dict whose entries expire `ttl_s` after their last write; beyond
    `max_entries` the least recently written go first. Order of the OrderedDict is write order,
    which (one TTL for all) is also expiry order, so purging only looks at the front."""

    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._data)

    def _purge(self, now: float) -> None:
        while self._data:
            key, (expires_at, _) = next(iter(self._data.items()))
            if expires_at > now:
                return
            del self._data[key]

    def _get(self, key: str, now: float) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._data[key]
            return None
        return item[1]

    def _put(self, key: str, value: V, now: float) -> None:
        self._data[key] = (now + self.ttl_s, value)
        self._data.move_to_end(key)
        self._purge(now)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._get(key, self._clock())

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._put(key, value, self._clock())

    def update(self, key: str, change: Callable[[V | None], V]) -> V:
        """Atomically replace the value with change(current or None) and restart its TTL."""
        with self._lock:
            now = self._clock()
            value = change(self._get(key, now))
            self._put(key, value, now)
            return value


class MemorySessionStore:
    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._map: TtlMap[SessionState] = TtlMap(ttl_s, max_entries, clock)

    def __len__(self) -> int:
        return len(self._map)

    def get(self, session_id: str) -> SessionState | None:
        return self._map.get(session_id)

    def put(self, session_id: str, state: SessionState) -> None:
        self._map.put(session_id, state)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect_redis(url: str, timeout_s: float) -> Any:
    """A redis-py client for `url` (no connection is made until the first command).

    redis is an optional dependency (extra `agent`), imported only when a URL is configured.
    """
    try:
        import redis
    except ImportError:
        raise StoreError(
            f"session_url {redact_url(url)!r} needs the redis package: "
            "pip install 'tierwise[agent]'"
        ) from None
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
    except ValueError as exc:
        raise StoreError(
            f"session_url {redact_url(url)!r} is not a valid redis:// URL: {exc}"
        ) from exc


def redis_error_type() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


class RedisSessionStore:
    """One JSON string per session at tierwise:session:<id>, with a Redis TTL of ttl_s."""

    def __init__(self, client: Any, ttl_s: float, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._prefix = prefix
        self._error = redis_error_type()

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    def get(self, session_id: str) -> SessionState | None:
        try:
            raw = self._client.get(self._key(session_id))
        except self._error as exc:
            raise StoreError(f"session store: GET failed: {exc}") from exc
        if raw is None:
            return None
        try:
            return SessionState.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"session {session_id!r} holds unreadable state: {exc}") from exc

    def put(self, session_id: str, state: SessionState) -> None:
        try:
            self._client.set(self._key(session_id), state.to_json(), px=self._ttl_ms)
        except self._error as exc:
            raise StoreError(f"session store: SET failed: {exc}") from exc
