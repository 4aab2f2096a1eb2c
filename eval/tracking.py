"""MLflow for evaluation runs; the only eval module that imports mlflow.

Tracking URI: the config's, else $MLFLOW_TRACKING_URI, else training's default (sqlite:///mlruns.db),
so train and eval runs of one bundle land in the same store.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.tracking import flatten_metrics, truncate_params, use_experiment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalRun:
    tracking_uri: str
    run_id: str


def log_eval_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts: Path,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str],
    tracking_uri: str | None = None,
) -> EvalRun:
    """One run: params, numeric metrics (nested dicts flattened to "a.b.c"; NaN left out, MLflow
    cannot chart it) and every file under `artifacts` in the run's "report" folder."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    flat = {k: v for k, v in flatten_metrics(metrics).items() if math.isfinite(v)}
    uri = use_experiment(tracking_uri, experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(truncate_params(params))
        mlflow.log_metrics(flat)
        mlflow.set_tags(dict(tags))
        mlflow.log_artifacts(str(artifacts), artifact_path="report")
    log.info("MLflow eval run %s at %s (%d metrics)", run.info.run_id, uri, len(flat))
    return EvalRun(uri, run.info.run_id)
