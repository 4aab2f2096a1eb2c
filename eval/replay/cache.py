"""Anthropic's prompt cache, simulated call by call for any choice of model per call.

Pure: token arrays in, token arrays out (dollars are router.core.economics' job). The rules:
- the cache is per model; a call reads the longest prefix of its prompt that its model holds
  (written by an earlier call, not expired), writes the rest of its cacheable prompt, and pays
  the tail after the last breakpoint (`tail`) uncached;
- a prompt shorter than the model's minimum cacheable length is neither read nor written;
- an entry expires when the gap since its model last used it exceeds the TTL (every read or
  write refreshes it); a switch therefore re-writes the prefix on the new model.

Which prefix two calls share is a property of the prompts, not of the model, so it is taken
from the recording (`SessionShape.shared`): the recorded cache read where the recorded model
was live across the two calls, else the whole previous prompt (append-only history), else,
after a compaction, the session's first cached prefix (system prompt and tools).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eval.replay.session import FIVE_MINUTES_S, CallTokens, ReplayCall

Tokens = NDArray[np.int64]
ALL = math.inf  # a model that served the previous call holds all of that call's prompt
SHARED = "*"  # the one cache of the "every model shares one cache" what-if


@dataclass(frozen=True)
class SessionShape:
    """A session's token counts, whichever model serves it; every array has one row per call."""

    prompt: Tokens  # whole prompt (cache read + cache write + uncached tail)
    tail: Tokens  # uncached tail after the last cache breakpoint
    output: Tokens
    shared: Tokens  # prefix shared with the previous call's prompt (row 0 unused)
    warm: Tokens  # prefix warm from outside the session (other sessions, before the first call)
    times: NDArray[np.float64]  # seconds since the epoch; NaN when unknown (never expires)
    ttl_s: float

    @property
    def n(self) -> int:
        return len(self.prompt)

    @property
    def cacheable(self) -> Tokens:
        return self.prompt - self.tail

    @property
    def one_hour(self) -> bool:
        """Writes are 1-hour ones (2x), else 5-minute ones (1.25x): the TTL the client used."""
        return self.ttl_s > FIVE_MINUTES_S


@dataclass(frozen=True)
class CallCache:
    read: int
    write: int
    uncached: int
    lost: int  # prefix the previous call's model held warm that this call (on another model) wrote


@dataclass(frozen=True)
class CacheTrace:
    """Per call: tokens read, written and paid uncached; `lost` is the switch loss (above)."""

    models: tuple[str, ...]
    read: Tokens
    write: Tokens
    uncached: Tokens
    output: Tokens
    lost: Tokens
    one_hour: bool  # writes are 1-hour (2x) ones, else 5-minute (1.25x)

    @property
    def switched(self) -> NDArray[np.bool_]:
        m = np.asarray(self.models, dtype=object)
        out = np.zeros(len(m), dtype=bool)
        out[1:] = m[1:] != m[:-1]
        return out

    def tokens(self, k: int) -> CallTokens:
        step = CallCache(int(self.read[k]), int(self.write[k]), int(self.uncached[k]), 0)
        return call_tokens(step, int(self.output[k]), self.one_hour)

    def lost_tokens(self, k: int) -> CallTokens:
        """The switch loss of call k as a cache write, for pricing what a switch caused."""
        lost = int(self.lost[k])
        return CallTokens(0, 0, 0, 0 if self.one_hour else lost, lost if self.one_hour else 0)


def call_tokens(step: CallCache, output: int, one_hour: bool) -> CallTokens:
    """A simulated call as the usage block the API would have returned."""
    return CallTokens(
        input_tokens=step.uncached,
        output_tokens=output,
        cache_read=step.read,
        cache_write_5m=0 if one_hour else step.write,
        cache_write_1h=step.write if one_hour else 0,
    )


class CacheSim:
    """Steps through a session one call at a time (the cache-aware router needs each call's
    outcome before it routes the next). `min_tokens(model)`: the model's minimum cacheable
    prompt. `shared_cache`: every model reads every model's cache (what naive routing assumes)."""

    def __init__(
        self,
        shape: SessionShape,
        min_tokens: Callable[[str], int],
        *,
        shared_cache: bool = False,
        use_warm: bool = True,
    ) -> None:
        self.shape = shape
        self.min_tokens = min_tokens
        self.shared_cache = shared_cache
        self.use_warm = use_warm
        self._reach: dict[str, float] = {}  # model -> prefix of the next prompt it holds
        self._last: dict[str, float] = {}  # model -> when it last read or wrote
        self._prev: str | None = None
        self.k = 0

    def _live(self, key: str, now: float) -> float:
        """What `key` still holds at `now`: nothing once the gap since its last use > TTL."""
        last = self._last.get(key, math.nan)
        if not math.isnan(now) and not math.isnan(last) and now - last > self.shape.ttl_s:
            self._reach[key] = 0.0
        return self._reach.get(key, 0.0)

    def step(self, model: str) -> CallCache:
        s, k = self.shape, self.k
        if k >= s.n:
            raise IndexError(f"session has {s.n} calls; call {k} does not exist")
        if k > 0:  # every cached entry now covers at most what this prompt shares with the last
            for key, reach in self._reach.items():
                self._reach[key] = min(reach, float(s.shared[k]))
        now = float(s.times[k])
        key = SHARED if self.shared_cache else model
        warm = max(self._live(key, now), float(s.warm[k]) if self.use_warm else 0.0)
        cacheable, floor = int(s.cacheable[k]), self.min_tokens(model)
        if cacheable < floor:
            read, write, uncached = 0, 0, int(s.prompt[k])
        else:
            read = int(min(warm, cacheable))
            read = read if read >= floor else 0
            write, uncached = cacheable - read, int(s.tail[k])
            self._reach[key], self._last[key] = ALL, now
        lost = 0
        prev = self._prev
        if prev is not None and prev != model and not self.shared_cache:
            held = min(self._live(prev, now), float(cacheable))
            if held >= self.min_tokens(prev):
                lost = max(0, int(held) - read)
        self._prev, self.k = model, k + 1
        return CallCache(read, write, uncached, lost)


def simulate(
    shape: SessionShape,
    models: Sequence[str],
    min_tokens: Callable[[str], int],
    *,
    shared_cache: bool = False,
    use_warm: bool = True,
) -> CacheTrace:
    """Every call of the session on `models[k]`; see the module docstring for the rules."""
    if len(models) != shape.n:
        raise ValueError(f"{len(models)} models for {shape.n} calls")
    sim = CacheSim(shape, min_tokens, shared_cache=shared_cache, use_warm=use_warm)
    return trace_of(shape, tuple(models), [sim.step(m) for m in models])


def trace_of(
    shape: SessionShape, models: tuple[str, ...], steps: Sequence[CallCache]
) -> CacheTrace:
    def col(name: str) -> Tokens:
        return np.asarray([getattr(c, name) for c in steps], dtype=np.int64).reshape(len(steps))

    return CacheTrace(
        models=models,
        read=col("read"),
        write=col("write"),
        uncached=col("uncached"),
        output=shape.output.copy(),
        lost=col("lost"),
        one_hour=shape.one_hour,
    )


def shape_of(
    calls: Sequence[ReplayCall],
    ttl_s: float,
    usage_recorded: bool,
    min_tokens: Callable[[str], int],
) -> SessionShape:
    """The session's SessionShape from its calls (see the module docstring for `shared`); with
    recorded usage, `warm` is whatever the recorded reads show warm that the recorded models'
    own earlier calls do not explain (a first call's system prompt, another session's cache)."""
    n = len(calls)
    prompt = np.asarray([c.tokens.prompt_tokens for c in calls], dtype=np.int64).reshape(n)
    # Estimated usage has no breakpoint position: assume one at the end (agent SDKs put it there).
    tail = np.asarray([c.tokens.input_tokens for c in calls], dtype=np.int64).reshape(n)
    tail = tail if usage_recorded else np.zeros(n, dtype=np.int64)
    output = np.asarray([c.tokens.output_tokens for c in calls], dtype=np.int64).reshape(n)
    times = np.asarray(
        [math.nan if c.timestamp is None else c.timestamp for c in calls], dtype=np.float64
    ).reshape(n)
    cacheable = prompt - tail
    first_prefix = calls[0].tokens.cache_read if n and usage_recorded else 0
    shared = np.zeros(n, dtype=np.int64)
    for k in range(1, n):
        prev, call = calls[k - 1], calls[k]
        gap = times[k] - times[k - 1]
        live = prev.model == call.model and not gap > ttl_s  # NaN gap: no expiry
        if usage_recorded and live:
            shared[k] = call.tokens.cache_read
        elif call.compacted:
            shared[k] = min(first_prefix, cacheable[k - 1], cacheable[k])
        else:
            shared[k] = min(cacheable[k - 1], cacheable[k])
    shape = SessionShape(prompt, tail, output, shared, np.zeros(n, dtype=np.int64), times, ttl_s)
    if not usage_recorded:
        return shape
    cold = simulate(shape, [c.model for c in calls], min_tokens, use_warm=False)
    reads = np.asarray([c.tokens.cache_read for c in calls], dtype=np.int64).reshape(n)
    warm = np.where(reads > cold.read, reads, 0).astype(np.int64)
    return SessionShape(prompt, tail, output, shared, warm, times, ttl_s)
