"""Model roll-out without downtime: POST /admin/reload loads and validates a bundle in a worker
thread, then swaps app.state.router in one assignment. Each request reads app.state.router once,
so requests in flight finish on the RoutingService they started with; a refused bundle changes nothing.

The router never talks to a model registry: `tierwise deploy` (training/deploy.py) fetches a
registry version into models/<version>/ and calls this endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field

from router.core.bundle import DEFAULT_POINTER, bundles_under, load_bundle, resolve_bundle_dir
from router.core.service import RoutingService
from router.errors import BadRequestError, BundleError, ConflictError, NotFoundError, RouterError
from router.settings import Settings
from router.shadow import shadow_counter

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
            f"path {path!r} is outside the models folder {str(root)!r}; "
            f"bundles there: {bundles_under(root)}"
        )
    if not exists:
        raise NotFoundError(
            f"path {path!r}: no bundle folder at {str(resolved)!r}; "
            f"bundles under {str(root)!r}: {bundles_under(root)}"
        )
    return resolved


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


class Rollout:
    """Serialises reloads (one at a time; a second gets 409) and remembers what is live."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.live: _Live | None = None
        self.reloads = Counter(
            "tierwise_model_reloads",
            "POST /admin/reload outcomes.",
            ["outcome"],
            registry=registry,
        )

    async def reload(self, app: FastAPI, path: str | None) -> ReloadResponse:
        if not self._lock.acquire(blocking=False):
            self.reloads.labels("busy").inc()
            raise ReloadBusyError("a reload is already in progress; retry when it has finished")
        try:
            return await self._reload(app, path)
        finally:
            self._lock.release()

    async def _reload(self, app: FastAPI, path: str | None) -> ReloadResponse:
        current: RoutingService | None = app.state.router
        previous = current.version if current is not None else None
        target = resolve_reload_path(self.settings.model_dir, path)
        start = time.perf_counter()
        try:
            bundle = await anyio.to_thread.run_sync(load_bundle, target, self.settings.onnx_threads)
        except BundleError as exc:
            self.reloads.labels("refused").inc()
            log.error("reload refused %s: %s", target, exc)
            raise ConflictError(
                f"refused bundle at {path or DEFAULT_POINTER!r}: {exc}; still serving {previous!r}"
            ) from exc
        except Exception as exc:  # a bundle that crashes the loader must not take us down
            self.reloads.labels("refused").inc()
            log.exception("reload of %s failed", target)
            raise ConflictError(
                f"refused bundle at {path or DEFAULT_POINTER!r}: {type(exc).__name__}: {exc}; "
                f"still serving {previous!r}"
            ) from exc
        load_ms = (time.perf_counter() - start) * 1000
        new = (
            current.with_bundle(bundle)
            if current is not None
            else RoutingService(bundle, self.settings, app.state.agent)
        )
        app.state.router = new  # the swap: one reference assignment
        self.live = _Live(
            str(bundle.path), datetime.now(UTC).isoformat(timespec="seconds"), round(load_ms, 1)
        )
        self.reloads.labels("ok").inc()
        log.info("reloaded model %s -> %s from %s", previous, new.version, bundle.path)
        return ReloadResponse(
            model_version=new.version, previous_version=previous, **asdict(self.live)
        )

    def info(self) -> dict[str, Any]:
        """For GET /version: when the live bundle was swapped in (None: loaded at startup)."""
        return {"reloaded_at": self.live.loaded_at if self.live is not None else None}


async def _watch_default(app: FastAPI, interval_s: float) -> None:
    """Reload when the DEFAULT pointer changes to a bundle other than the live one. Acting only
    on changes keeps an explicit POST /admin/reload to another path in place."""
    rollout: Rollout = app.state.rollout
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
        router: RoutingService | None = app.state.router
        if router is not None and Path(router.bundle.path).resolve() == now:
            last = now
            continue
        try:
            await rollout.reload(app, None)
        except ReloadBusyError:
            continue  # try again next tick
        except RouterError as exc:
            log.error("%s now names %s, which was refused: %s", DEFAULT_POINTER, now, exc)
        last = now


@asynccontextmanager
async def watch_default_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With ROUTER_RELOAD_POLL_S > 0, follow the DEFAULT pointer while the app runs."""
    interval_s = app.state.settings.reload_poll_s
    if not interval_s:
        yield
        return
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_watch_default, app, interval_s)
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()


admin_routes = APIRouter(prefix="/admin", tags=["admin"])


@admin_routes.post("/reload", response_model=ReloadResponse)
async def reload_model(
    request: Request, body: Annotated[ReloadRequest | None, Body()] = None
) -> ReloadResponse:
    """Load, validate and swap in a bundle; 409 (naming the problem) leaves the live one serving."""
    rollout: Rollout = request.app.state.rollout
    return await rollout.reload(request.app, body.path if body is not None else None)


def install_rollout(app: FastAPI) -> Rollout:
    """Create app.state.rollout (and the shadow counter) and mount /admin/*; call after
    install_metrics so the counters join app.state.metrics' registry."""
    metrics = getattr(app.state, "metrics", None)
    registry = metrics.registry if metrics is not None else None
    rollout = Rollout(app.state.settings, registry)
    app.state.rollout = rollout
    app.state.shadow_outcomes = shadow_counter(registry)
    app.state.shadow = None
    app.include_router(admin_routes)
    return rollout
