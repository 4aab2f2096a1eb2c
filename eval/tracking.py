"""MLflow for evaluation runs; the only eval module that imports mlflow.

Tracking URI: the config's, else $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db, the store and
artifact layout training.tracking uses, so train and eval runs of one bundle land together. eval
imports nothing from training but its data layer, so the few lines of store set-up live here too.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
# MLflow rejects param values above 6000 characters.
MAX_PARAM_CHARS = 6000


@dataclass(frozen=True)
class EvalRun:
    tracking_uri: str
    run_id: str


def _start(tracking_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store and experiment. A new experiment on a sqlite:///FILE store
    keeps its artifacts beside FILE (mlartifacts/), not in ./mlruns of the working directory."""
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        where = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            where = (db.parent / "mlartifacts" / experiment).as_uri()
        mlflow.create_experiment(experiment, artifact_location=where)
    mlflow.set_experiment(experiment)
    return uri


def log_eval_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Path,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    tracking_uri: str | None = None,
) -> EvalRun:
    """One run: params (cut to MLflow's limit), the finite ones of the flat `metrics` (MLflow
    cannot chart NaN) and every file under `artifacts` in the run's "report" folder."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    flat = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
    uri = _start(tracking_uri, experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()})
        mlflow.log_metrics(flat)
        mlflow.set_tags(dict(tags))
        mlflow.log_artifacts(str(artifacts), artifact_path="report")
    log.info("MLflow eval run %s at %s (%d metrics)", run.info.run_id, uri, len(flat))
    return EvalRun(uri, run.info.run_id)
