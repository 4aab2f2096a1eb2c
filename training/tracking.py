"""MLflow tracking; the only training module that imports mlflow (eval.tracking is eval's).

Tracking URI: $MLFLOW_TRACKING_URI if set, else sqlite:///mlruns.db (gitignored). Each training
run logs the whole TrainConfig as params, flat metrics, the bundle folder as artifacts, and the
classifier as an ONNX model registered under cfg.registered_model.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.errors import RouterError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
# Serving needs only these to run the logged classifier.
CLASSIFIER_REQUIREMENTS = ["onnxruntime>=1.18", "onnx>=1.16", "numpy>=1.26"]
# MLflow rejects param values above 6000 characters.
MAX_PARAM_CHARS = 6000
# Run and model-version tag naming the bundle (its manifest version and folder name).
BUNDLE_TAG = "bundle_version"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def use_experiment(tracking_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store and experiment; returns the tracking URI.

    A new experiment on a sqlite:///FILE store keeps its artifacts beside FILE (in mlartifacts/),
    not in ./mlruns of whatever directory the command happened to run in.
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            location = (db.parent / "mlartifacts" / experiment).as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


@dataclass(frozen=True)
class TrackedRun:
    tracking_uri: str
    run_id: str
    model_name: str
    model_version: str


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested dicts of numbers -> {"a.b.c": value}; non-numeric leaves are skipped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, int | float):
            flat[name] = float(value)
    # MLflow metric names allow [A-Za-z0-9_\-. /]; tier mixes etc. already fit.
    return flat


def truncate_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings of at most MAX_PARAM_CHARS: long values (parity texts, path lists) are
    cut, not dropped."""
    return {k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()}


def log_training_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    bundle_dir: Path,
    experiment: str,
    model_name: str,
    tracking_uri: str | None = None,
    alias: str | None = None,
) -> TrackedRun:
    """One MLflow run: params, metrics, bundle artifacts, a registered model version tagged
    with its bundle version (and given `alias`, e.g. champion, if set)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import onnx

    uri = use_experiment(tracking_uri, experiment)
    with mlflow.start_run(run_name=bundle_dir.name) as run:
        mlflow.log_params(truncate_params(params))
        mlflow.log_metrics(flatten_metrics(metrics))
        mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
        with warnings.catch_warnings():
            # mlflow's own agent schemas warn on import inside log_model; not about our model.
            warnings.filterwarnings(
                "ignore", message=".*Any type hint is inferred", category=UserWarning
            )
            info = mlflow.onnx.log_model(
                onnx.load(str(bundle_dir / "classifier.onnx")),
                name="classifier",
                pip_requirements=CLASSIFIER_REQUIREMENTS,
                registered_model_name=model_name,
            )
        version = str(info.registered_model_version)
        mlflow.set_tag(BUNDLE_TAG, bundle_dir.name)
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.set_model_version_tag(model_name, version, BUNDLE_TAG, bundle_dir.name)
    if alias is not None:
        client.set_registered_model_alias(model_name, alias, version)
    log.info("MLflow run %s at %s; %s version %s", run.info.run_id, uri, model_name, version)
    return TrackedRun(uri, run.info.run_id, model_name, version)


class RegistryError(RouterError):
    """A registry lookup or download failed; the message names the model, alias and registry."""


@dataclass(frozen=True)
class RegisteredBundle:
    model_name: str
    model_version: str
    run_id: str
    path: Path  # the downloaded folder holding manifest.json


def download_registered_bundle(
    model_name: str,
    alias: str,
    dst: Path,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    artifact_path: str = "bundle",
) -> RegisteredBundle:
    """Download the bundle behind models:/<model_name>@<alias> into `dst`: the `artifact_path`
    artifacts of the run that produced that version, as log_training_run logs them."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    registry = registry_uri or uri
    client = MlflowClient(tracking_uri=uri, registry_uri=registry)
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        raise RegistryError(
            f"models:/{model_name}@{alias} not found in registry {registry}: {exc.message}"
        ) from None
    if not version.run_id:
        raise RegistryError(
            f"{model_name} version {version.version} has no run; its bundle cannot be found"
        )
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=artifact_path,
            dst_path=str(dst),
            tracking_uri=uri,
        )
    except (MlflowException, OSError) as exc:
        raise RegistryError(
            f"{model_name} version {version.version} (run {version.run_id}): no "
            f"'{artifact_path}' artifacts to download: {exc}"
        ) from None
    found = Path(local)
    if not (found / "manifest.json").is_file():
        raise RegistryError(
            f"{model_name} version {version.version} (run {version.run_id}): artifacts "
            f"'{artifact_path}' hold no manifest.json"
        )
    return RegisteredBundle(model_name, str(version.version), version.run_id, found)


@dataclass(frozen=True)
class Promotion:
    model_name: str
    alias: str
    model_version: str  # the registry version the alias now names
    bundle_version: str | None
    previous_version: str | None  # the one it named before, if any


def promote(
    model_name: str,
    version: str,
    alias: str,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> Promotion:
    """Point models:/<model_name>@<alias> at `version`: a registry version number, or a bundle
    version (the --version training gave it, e.g. my-v2). `tierwise deploy --alias` then
    serves it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    registry = registry_uri or uri
    client = MlflowClient(tracking_uri=uri, registry_uri=registry)
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException as exc:
        raise RegistryError(f"registry {registry}: {exc.message}") from None
    by_number = {str(v.version): v for v in versions}
    found = by_number.get(version) or next(
        (v for v in versions if v.tags.get(BUNDLE_TAG) == version), None
    )
    if found is None:
        ordered = sorted(versions, key=lambda v: int(v.version))
        known = ", ".join(f"{v.version} ({v.tags.get(BUNDLE_TAG, '?')})" for v in ordered)
        raise RegistryError(
            f"{model_name} has no version {version!r} in registry {registry}; "
            f"its versions (bundle): {known or 'none yet: train with tracking first'}"
        )
    try:
        previous = str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        previous = None
    client.set_registered_model_alias(model_name, alias, str(found.version))
    return Promotion(model_name, alias, str(found.version), found.tags.get(BUNDLE_TAG), previous)
