"""The configuration a server starts from, read from the environment and checked before anything
loads: a wrong ROUTER_MODEL_DIR or ROUTER_SESSION_URL is one clear line, not a traceback.

`uvicorn --factory router.http.app:create_app` (scripts/serve, `tierwise serve`) builds the app
with startup_settings(); on a bad configuration it exits with uvicorn's start-up failure code,
so a multi-worker supervisor stops instead of restarting workers that cannot start.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from router.agent.stores import Workers, check_session_url
from router.core.bundle import check_bundle_dir
from router.errors import BundleError, RouterError
from router.settings import Settings, get_settings

log = logging.getLogger(__name__)

# uvicorn's STARTUP_FAILURE: a worker exiting with it makes the supervisor stop.
STARTUP_FAILURE = 3


class ConfigError(RouterError):
    """A ROUTER_* setting the service cannot start with; the message names it."""


def settings_error(exc: ValidationError) -> ConfigError:
    """pydantic's multi-line report as one line naming each ROUTER_* variable."""
    problems = [
        f"ROUTER_{'__'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {e['msg']}"
        for e in exc.errors()
    ]
    return ConfigError("; ".join(problems))


def check_startup(settings: Settings, workers: Workers | None = None) -> None:
    """ConfigError, in one line, when the service could not start with `settings`: the model
    folder names no valid bundle, or the session store does not fit the worker processes."""
    model_dir = settings.model_dir
    if not model_dir.is_dir():
        where = "" if model_dir.is_absolute() else f" (relative to {str(Path.cwd())!r})"
        raise ConfigError(f"ROUTER_MODEL_DIR={str(model_dir)!r}: no such folder{where}")
    try:
        check_bundle_dir(model_dir)
    except BundleError as exc:
        raise ConfigError(f"ROUTER_MODEL_DIR={str(settings.model_dir)!r}: {exc}") from None
    try:
        check_session_url(settings, workers)
    except RouterError as exc:
        raise ConfigError(str(exc)) from None


def load_settings() -> Settings:
    """get_settings(), with a ConfigError naming the variables instead of a ValidationError."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


def startup_settings() -> Settings:
    """The checked settings of a server process, or exit(STARTUP_FAILURE) after one log line."""
    try:
        settings = load_settings()
        check_startup(settings)
    except RouterError as exc:
        log.error("tierwise cannot start: %s", exc)
        raise SystemExit(STARTUP_FAILURE) from None
    return settings
