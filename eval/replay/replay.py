"""replay(cfg) -> ReplayResult: read the sessions, route and price every strategy, summarise,
and write the report when cfg.out is set. Local files only; nothing leaves the machine."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from eval.replay.costs import Pricer
from eval.replay.result import ReplayConfig, ReplayResult
from eval.replay.routing import load_service
from eval.replay.session import FIVE_MINUTES_S, ONE_HOUR_S, ReplaySession
from eval.replay.sources import load_sessions
from eval.replay.strategies import replay_session
from eval.replay.summary import (
    difficulty,
    groups,
    target_check,
)
from router.core.bundle import resolve_bundle_dir
from router.core.service import RoutingService
from router.errors import BundleError
from router.settings import Settings

log = logging.getLogger(__name__)

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
TTL_S = {"5m": FIVE_MINUTES_S, "1h": ONE_HOUR_S}


def bundle_dir_for(cfg: ReplayConfig, settings: Settings) -> Path:
    """The bundle to route with (see ReplayConfig.model_dir); BundleError names what was tried."""
    candidates = [cfg.model_dir] if cfg.model_dir else [settings.model_dir, REPO_MODELS]
    for candidate in candidates:
        try:
            return resolve_bundle_dir(candidate)
        except BundleError:
            if cfg.model_dir:
                raise
    raise BundleError(
        f"no model bundle in {[str(c) for c in candidates]}; pass --model DIR (a bundle folder, "
        "or a folder with a DEFAULT file naming one)"
    )


def _with_ttl(session: ReplaySession, ttl: str) -> ReplaySession:
    return session if ttl == "auto" else dataclasses.replace(session, ttl_s=TTL_S[ttl])


def replay(
    cfg: ReplayConfig, settings: Settings | None = None, service: RoutingService | None = None
) -> ReplayResult:
    """Replay every session under cfg.paths (see eval.replay.strategies for the strategies).
    `service`: a ready RoutingService (tests); by default replay_service on cfg's bundle."""
    settings = settings or (service.settings if service else Settings())
    loaded = load_sessions(cfg.paths, cfg.tools_file, settings.expected_output_tokens)
    sessions = [_with_ttl(s, cfg.ttl) for s in loaded.sessions]
    if service is None:
        bundle_dir = bundle_dir_for(cfg, settings)
        service = load_service(bundle_dir, settings)
    bundle_dir = service.bundle.path
    pricer = Pricer(settings)
    total = sum(s.n_calls for s in sessions)
    log.info("replaying %d sessions, %d calls, with %s", len(sessions), total, service.version)
    from tqdm import tqdm  # the eval extra; only for the progress bar

    start = time.perf_counter()
    replays = []
    with tqdm(total=total, unit="call", disable=not cfg.progress, desc="replay") as bar:
        for session in sessions:
            replays.append(replay_session(session, service, pricer, bar.update, cfg.quality_floor))
    seconds = time.perf_counter() - start
    result = ReplayResult(
        config=cfg,
        bundle=service.version,
        bundle_dir=bundle_dir,
        loaded=loaded,
        replays=replays,
        groups=groups(replays),
        target=target_check(replays),
        difficulty=difficulty(replays),
        seconds=seconds,
    )
    if cfg.out is not None:
        from eval.replay.report import write_reports  # matplotlib: only when writing

        write_reports(result, settings, cfg.out)
    return result
