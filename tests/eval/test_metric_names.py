"""Subsets are named by user data (a category, "(none)" for turns without one): the MLflow
metric names built from them must be ones MLflow accepts, on a real sqlite tracking store."""

from __future__ import annotations

from pathlib import Path

from eval.summary import metric_key
from eval.tracking import log_eval_run


def test_metric_key_keeps_allowed_characters_and_replaces_the_rest() -> None:
    assert metric_key("math-l5 / v2:a_b.c") == "math-l5 / v2:a_b.c"
    assert metric_key("(none)") == "_none_"
    assert metric_key("c++ & ü") == "c__ _ _"


def test_mlflow_accepts_subset_metrics_named_from_any_category(tmp_path: Path) -> None:
    import mlflow

    names = ["(none)", "c++ & ü", "gsm"]
    metrics = {f"subset.{metric_key(n)}.router.saving": 0.1 * i for i, n in enumerate(names)}
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.json").write_text("{}")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run = log_eval_run({}, metrics, tmp_path / "report", "eval", "r", {}, tracking_uri=uri)
    logged = mlflow.MlflowClient(uri).get_run(run.run_id).data.metrics
    assert logged == metrics
