"""`tierwise deploy`: put the registry's champion into service without restarting it.

Fetches the bundle behind models:/<name>@<alias> (MLflow; via training.tracking, the only
module that imports mlflow) into <models-dir>/<manifest version>/, validates it here with the
router's own loader, asks the running service to load it (POST /admin/reload: validated again,
swapped atomically, refused with 409 if wrong) and only then points <models-dir>/DEFAULT at it,
so a restart serves the same model. The router itself never talks to the registry.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from router.core.bundle import DEFAULT_POINTER, load_bundle, read_manifest
from router.errors import RouterError
from training.config import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME: str = TrainConfig.model_fields["registered_model"].default


class DeployError(RouterError):
    """Deploying failed; the message says at which step and what the service answered."""


class DeployConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    alias: str = Field(default="champion", min_length=1)
    # The registered model log_training_run registers (TrainConfig.registered_model).
    model_name: str = DEFAULT_MODEL_NAME
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db
    registry_uri: str | None = None  # None: the tracking URI
    models_dir: Path = Path("models")
    # The running service; None only downloads and moves DEFAULT (a restart picks it up).
    url: str | None = None
    # Admin bearer token for /admin/reload (ROUTER_ADMIN_TOKENS on the service); never logged.
    token: str | None = Field(default=None, repr=False)
    # Load the bundle here first (same checks as the service) so a bad one never gets sent.
    verify: bool = True
    set_default: bool = True
    # Loading a real MiniLM bundle takes seconds; leave room on a busy host.
    timeout_s: float = Field(default=120.0, gt=0)


@dataclass(frozen=True)
class DeployResult:
    model_version: str  # the bundle's manifest version (its folder name)
    registry_version: str
    path: Path
    reloaded: bool
    previous_version: str | None


def _same_bundle(a: Path, b: Path) -> bool:
    return read_manifest(a).files == read_manifest(b).files


def _place(downloaded: Path, models_dir: Path) -> Path:
    """Move the download to models_dir/<version>/ (atomic rename); an identical copy already
    there is kept, a different one is an error rather than silently overwritten."""
    version = read_manifest(downloaded).version
    target = models_dir / version
    if target.exists():
        if not _same_bundle(downloaded, target):
            raise DeployError(
                f"{target} exists with different files than registry bundle {version!r}; "
                "remove it or give the new bundle a new version"
            )
        return target
    downloaded.rename(target)
    return target


def _reload(cfg: DeployConfig, relative: str) -> dict[str, object]:
    assert cfg.url is not None
    headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
    try:
        r = httpx.post(
            f"{cfg.url.rstrip('/')}/admin/reload",
            json={"path": relative},
            headers=headers,
            timeout=cfg.timeout_s,
        )
    except httpx.HTTPError as exc:
        raise DeployError(f"cannot reach {cfg.url}: {type(exc).__name__}: {exc}") from None
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:500]
        raise DeployError(f"{cfg.url} refused the reload (HTTP {r.status_code}): {message}")
    body: dict[str, object] = r.json()
    return body


def _write_default(models_dir: Path, version: str) -> None:
    tmp = models_dir / f".{DEFAULT_POINTER}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, models_dir / DEFAULT_POINTER)


def deploy(cfg: DeployConfig) -> DeployResult:
    from training.tracking import download_registered_bundle

    cfg.models_dir.mkdir(parents=True, exist_ok=True)
    # Staged inside models_dir so the final move is a same-filesystem rename.
    staging = Path(tempfile.mkdtemp(prefix=".deploy-", dir=cfg.models_dir))
    try:
        fetched = download_registered_bundle(
            cfg.model_name, cfg.alias, staging, cfg.tracking_uri, cfg.registry_uri
        )
        if cfg.verify:
            load_bundle(fetched.path)  # raises BundleError naming the problem
        path = _place(fetched.path, cfg.models_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    version = path.name
    log.info(
        "%s@%s is %s (registry version %s)",
        cfg.model_name,
        cfg.alias,
        version,
        fetched.model_version,
    )
    previous = None
    if cfg.url is not None:
        # The bare version: the service resolves it inside its own models folder, whatever
        # that folder is called or wherever it is mounted.
        answer = _reload(cfg, version)
        previous = answer.get("previous_version")
        if answer.get("model_version") != version:
            raise DeployError(
                f"{cfg.url} reloaded {answer.get('model_version')!r}, not {version!r}"
            )
    if cfg.set_default:
        _write_default(cfg.models_dir, version)
    return DeployResult(
        model_version=version,
        registry_version=fetched.model_version,
        path=path,
        reloaded=cfg.url is not None,
        previous_version=str(previous) if previous is not None else None,
    )
