"""Model roll-out without downtime: Rollout.reload loads and validates a bundle in a worker thread,
then swaps the live RoutingService in one assignment. Each request reads the service once, so
requests in flight finish on the one they started with; a refused bundle changes nothing.
POST /admin/reload (router.http.routes) and following_default (the DEFAULT-pointer watcher) call it.

The router never talks to a model registry: `tierwise deploy` (training/deploy.py) fetches a
registry version into models/<version>/ and calls this endpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
from prometheus_client import Counter
from pydantic import BaseModel, Field

from router.agent.routing import AgentRouting
from router.core.bundle import DEFAULT_POINTER, bundles_under, load_bundle, resolve_bundle_dir
from router.core.service import RoutingService
from router.core.warmup import with_measured_deadline
from router.errors import BadRequestError, BundleError, ConflictError, NotFoundError, RouterError
from router.settings import Settings

log = logging.getLogger(__name__)


class ReloadRequest(BaseModel):
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="models/<version>, <version>, or a folder inside the models folder; "
        "omitted: re-read the models folder's DEFAULT pointer.",
    )


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str | None
    path: str
    loaded_at: str
    load_ms: float


@dataclass(frozen=True)
class _Live:
    path: str
    loaded_at: str
    load_ms: float


def models_root(model_dir: Path) -> Path:
    """The folder holding bundles: model_dir itself, or its parent when it is one bundle."""
    return model_dir.parent if (model_dir / "manifest.json").is_file() else model_dir


def resolve_reload_path(model_dir: Path, path: str | None) -> Path:
    """Where to load from. Only folders inside the models folder are allowed, so an admin token
    cannot make the service open arbitrary files."""
    if path is None:
        return model_dir  # load_bundle follows its DEFAULT pointer
    root = models_root(model_dir)
    try:
        resolved, inside, exists = _locate(root, Path(path))
    except (OSError, ValueError) as exc:  # NUL bytes, symlink loops, over-long names
        raise BadRequestError(f"path {path!r} is not a usable folder name: {exc}") from None
    if not inside:
        raise BadRequestError(
            f"path {path!r} is outside the models folder; bundles there: {bundles_under(root)}"
        )
    if not exists:
        relative = str(resolved.relative_to(root.resolve()))
        raise NotFoundError(
            f"path {path!r}: no bundle folder {relative!r} in the models folder; "
            f"bundles there: {bundles_under(root)}"
        )
    return resolved


def relative_to_models(text: str, model_dir: Path) -> str:
    """`text` with the models folder's absolute path dropped from every path in it, so a
    message shows 'v2/manifest.json', never where the server keeps its files."""
    root = models_root(model_dir)
    for prefix in dict.fromkeys((str(root.resolve()), str(root.absolute()))):
        text = text.replace(prefix + os.sep, "")
    return text


def _locate(root: Path, candidate: Path) -> tuple[Path, bool, bool]:
    """(resolved path, is it inside root, is it a folder)."""
    if not candidate.is_absolute():
        parts = candidate.parts
        if len(parts) > 1 and parts[0] == root.name and not (root / candidate).exists():
            candidate = Path(*parts[1:])  # "models/v2" names root/v2 wherever root is mounted
        candidate = root / candidate
    resolved = candidate.resolve()
    inside = resolved.is_relative_to(root.resolve())
    return resolved, inside, inside and resolved.is_dir()


class ReloadBusyError(ConflictError):
    """Another reload is running."""


class ServiceSlot(Protocol):
    """Where the live service is kept (router.http.state.AppState)."""

    service: RoutingService | None
    agent: AgentRouting | None


class Rollout:
    """Serialises reloads (one at a time; a second gets 409) and remembers what is live."""

    def __init__(
        self,
        settings: Settings,
        reloads: Counter,
        swapped: Callable[[RoutingService], None] = lambda service: None,
    ) -> None:
        """`reloads` counts outcomes by label: ok, refused, busy; `swapped` hears of each new
        live service (the metrics show its measured speed and deadline)."""
        self.settings = settings
        self._lock = threading.Lock()
        self.live: _Live | None = None
        self.reloads = reloads
        self.swapped = swapped

    async def reload(self, slot: ServiceSlot, path: str | None) -> ReloadResponse:
        """Load the bundle at `path` (None: the models folder's DEFAULT) into slot.service."""
        if not self._lock.acquire(blocking=False):
            self.reloads.labels("busy").inc()
            raise ReloadBusyError("a reload is already in progress; retry when it has finished")
        try:
            return await self._reload(slot, path)
        finally:
            self._lock.release()

    async def _reload(self, slot: ServiceSlot, path: str | None) -> ReloadResponse:
        current = slot.service
        previous = current.version if current is not None else None
        target = resolve_reload_path(self.settings.model_dir, path)
        start = time.perf_counter()
        try:
            new = await anyio.to_thread.run_sync(self._load, current, slot.agent, target)
        except Exception as exc:  # a bundle that crashes the loader must not take us down
            self.reloads.labels("refused").inc()
            if isinstance(exc, BundleError):
                log.error("reload refused %s: %s", target, exc)
                why = str(exc)
            else:
                log.exception("reload of %s failed", target)
                why = f"{type(exc).__name__}: {exc}"
            # The log has the full paths; the caller gets them relative to the models folder.
            why = relative_to_models(why, self.settings.model_dir)
            raise ConflictError(
                f"refused bundle at {path or DEFAULT_POINTER!r}: {why}; still serving {previous!r}"
            ) from exc
        load_ms = (time.perf_counter() - start) * 1000
        slot.service = new  # the swap: one reference assignment
        self.live = _Live(
            str(new.bundle.path),
            datetime.now(UTC).isoformat(timespec="seconds"),
            round(load_ms, 1),
        )
        self.reloads.labels("ok").inc()
        self.swapped(new)
        log.info("reloaded model %s -> %s from %s", previous, new.version, new.bundle.path)
        return ReloadResponse(
            model_version=new.version, previous_version=previous, **asdict(self.live)
        )

    def _load(
        self, current: RoutingService | None, agent: AgentRouting | None, target: Path
    ) -> RoutingService:
        """The new service: its bundle loaded and checked, then timed (its deadline floor)."""
        bundle = load_bundle(target, self.settings.onnx_threads)
        new = (
            current.with_bundle(bundle)
            if current is not None
            else RoutingService(bundle, self.settings, agent)
        )
        return with_measured_deadline(new)

    def info(self) -> dict[str, Any]:
        """For GET /version: when the live bundle was swapped in (None: loaded at startup)."""
        return {"reloaded_at": self.live.loaded_at if self.live is not None else None}


async def _follow_default(rollout: Rollout, slot: ServiceSlot, interval_s: float) -> None:
    """Reload when the DEFAULT pointer changes to a bundle other than the live one. Acting only
    on changes keeps an explicit POST /admin/reload to another path in place."""
    model_dir = rollout.settings.model_dir

    def pointed() -> Path | None:
        try:
            target = resolve_bundle_dir(model_dir).resolve()
        except (BundleError, OSError):
            return None  # missing: look again next time
        return target if (target / "manifest.json").is_file() else None  # or mid-write

    last = await anyio.to_thread.run_sync(pointed)
    while True:
        await anyio.sleep(interval_s)
        now = await anyio.to_thread.run_sync(pointed)
        if now is None or now == last:
            continue
        live = slot.service
        if live is not None and Path(live.bundle.path).resolve() == now:
            last = now
            continue
        try:
            await rollout.reload(slot, None)
        except ReloadBusyError:
            continue  # try again next tick
        except RouterError as exc:
            log.error("%s now names %s, which was refused: %s", DEFAULT_POINTER, now, exc)
        last = now


@asynccontextmanager
async def following_default(rollout: Rollout, slot: ServiceSlot) -> AsyncIterator[None]:
    """With ROUTER_RELOAD_POLL_S > 0, follow the DEFAULT pointer while the block runs (so every
    worker process follows `tierwise deploy`)."""
    interval_s = rollout.settings.reload_poll_s
    if not interval_s:
        yield
        return
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_follow_default, rollout, slot, interval_s)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
