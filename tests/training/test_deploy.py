"""`tierwise deploy` end to end: a real MLflow sqlite registry (bundle logged by
log_training_run, alias set), a real uvicorn service, and the CLI fetching the champion into
models/<version>/ and hot-reloading it; a bad champion is refused and the old model keeps serving."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from benchmarks.load_test import serve
from tests.tiny_bundle import build_tiny_bundle
from tierwise.cli import main

ADMIN = "tw-admin-deploy-0c7e1f"
NAME = "tierwise-test"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)  # MLflow's ./mlruns artifact store lands in tmp_path
    return uri


def register(uri: str, bundle: Path, alias: str = "champion") -> str:
    """Log `bundle` the way training does and point `alias` at the new registry version."""
    import mlflow

    from training.tracking import log_training_run

    run = log_training_run({"seed": 0}, {"auc": 0.9}, bundle, "deploy-test", NAME, uri)
    mlflow.MlflowClient(tracking_uri=uri).set_registered_model_alias(NAME, alias, run.model_version)
    return run.model_version


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    models = tmp_path / "models"
    build_tiny_bundle(models / "tiny-v1", "tiny-v1")
    (models / "DEFAULT").write_text("tiny-v1\n")
    with serve(models, {"ROUTER_ADMIN_TOKENS": ADMIN}) as server:
        yield server.url, models


def deploy(models: Path, base: str, *extra: str) -> object:
    args = ["deploy", "--alias", "champion", "--model-name", NAME, "--models-dir", str(models)]
    return CliRunner().invoke(
        main, [*args, "--url", base, *extra], env={"TIERWISE_ADMIN_TOKEN": ADMIN}
    )


def live(base: str) -> str:
    version: str = httpx.get(f"{base}/version").json()["model_version"]
    return version


def test_deploy_champion_hot_reloads_the_service(
    registry: str, service: tuple[str, Path], tmp_path: Path
) -> None:
    base, models = service
    assert register(registry, build_tiny_bundle(tmp_path / "out" / "tiny-v2", "tiny-v2", 1)) == "1"
    result = deploy(models, base)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "registry version 1 = bundle tiny-v2" in result.output  # type: ignore[attr-defined]
    assert "now serves tiny-v2 (was tiny-v1)" in result.output  # type: ignore[attr-defined]
    assert live(base) == "tiny-v2"
    assert (models / "DEFAULT").read_text().strip() == "tiny-v2"
    assert json.loads((models / "tiny-v2" / "manifest.json").read_text())["version"] == "tiny-v2"
    assert not list(models.glob(".deploy-*"))  # staging cleaned up
    # Deploying the same champion again is a no-op reload, not an error.
    again = deploy(models, base)
    assert again.exit_code == 0, again.output  # type: ignore[attr-defined]


def test_bad_champion_is_refused_and_old_model_serves(
    registry: str, service: tuple[str, Path], tmp_path: Path
) -> None:
    base, models = service
    bad = build_tiny_bundle(tmp_path / "out" / "tiny-bad", "tiny-bad", 2)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["parity"]["probs"] = [[p + 0.3 for p in row] for row in manifest["parity"]["probs"]]
    (bad / "manifest.json").write_text(json.dumps(manifest))
    register(registry, bad)

    checked_here = deploy(models, base)  # --verify (default) refuses before calling the service
    assert checked_here.exit_code == 1  # type: ignore[attr-defined]
    assert "parity check" in checked_here.output  # type: ignore[attr-defined]
    assert not (models / "tiny-bad").exists()

    sent = deploy(models, base, "--no-verify")  # the service refuses it itself: 409
    assert sent.exit_code == 1  # type: ignore[attr-defined]
    assert "HTTP 409" in sent.output and "parity check" in sent.output  # type: ignore[attr-defined]
    assert "still serving 'tiny-v1'" in sent.output  # type: ignore[attr-defined]
    assert live(base) == "tiny-v1"
    assert (models / "DEFAULT").read_text().strip() == "tiny-v1"


def test_deploy_errors_name_the_problem(
    registry: str, service: tuple[str, Path], tmp_path: Path
) -> None:
    base, models = service
    missing = deploy(models, base)
    assert missing.exit_code == 1  # type: ignore[attr-defined]
    assert f"models:/{NAME}@champion not found" in missing.output  # type: ignore[attr-defined]

    register(registry, build_tiny_bundle(tmp_path / "out" / "tiny-v3", "tiny-v3", 3))
    no_token = CliRunner().invoke(
        main,
        ["deploy", "--model-name", NAME, "--models-dir", str(models), "--url", base],
        env={"TIERWISE_ADMIN_TOKEN": ""},
    )
    assert no_token.exit_code == 1 and "HTTP 401" in no_token.output  # type: ignore[attr-defined]
    assert live(base) == "tiny-v1"
    shutil.rmtree(models / "tiny-v3")


def test_promote_by_bundle_or_registry_version_then_deploy(
    registry: str, service: tuple[str, Path], tmp_path: Path
) -> None:
    """Training registers without an alias; `tierwise promote` names the champion (by the
    bundle version training was given, or the registry number); deploy serves it."""
    base, models = service
    from training.tracking import log_training_run

    for n, version in enumerate(("tiny-v2", "tiny-v3"), start=1):
        bundle = build_tiny_bundle(tmp_path / "out" / version, version, n)
        log_training_run({"seed": n}, {"auc": 0.9}, bundle, "deploy-test", NAME, registry)

    runner = CliRunner()
    by_name = runner.invoke(
        main, ["promote", "tiny-v2", "--alias", "champion", "--model-name", NAME]
    )
    assert by_name.exit_code == 0, by_name.output  # type: ignore[attr-defined]
    assert by_name.output.strip() == f"{NAME}@champion -> version 1 (bundle tiny-v2)"
    assert deploy(models, base).exit_code == 0  # type: ignore[attr-defined]
    assert live(base) == "tiny-v2"

    by_number = runner.invoke(main, ["promote", "2", "--alias", "champion", "--model-name", NAME])
    assert by_number.output.strip() == (
        f"{NAME}@champion -> version 2 (bundle tiny-v3) (was version 1)"
    )
    assert deploy(models, base).exit_code == 0  # type: ignore[attr-defined]
    assert live(base) == "tiny-v3"

    missing = runner.invoke(
        main, ["promote", "tiny-v9", "--alias", "champion", "--model-name", NAME]
    )
    assert missing.exit_code == 1  # type: ignore[attr-defined]
    assert "has no version 'tiny-v9'" in missing.output  # type: ignore[attr-defined]
    assert "1 (tiny-v2), 2 (tiny-v3)" in missing.output  # type: ignore[attr-defined]


def test_train_alias_names_the_new_version(
    registry: str, synthetic_log: Path, tmp_path: Path
) -> None:
    from tests.training.conftest import FakeBundleEmbedder
    from training.config import TrainConfig
    from training.tracking import download_registered_bundle
    from training.train import train

    cfg = TrainConfig(
        logs=(synthetic_log,),
        out_dir=tmp_path / "models",
        version="syn-champ",
        cache_dir=tmp_path / "cache",
        heads=("logreg_c1",),
        compare_quantizations=("int8",),
        registered_model=NAME,
        alias="champion",
        progress=False,
    )
    result = train(cfg, FakeBundleEmbedder())
    assert result.alias == "champion" and result.registered_version == "1"
    fetched = download_registered_bundle(NAME, "champion", tmp_path / "dl", registry)
    assert fetched.model_version == "1"
    assert json.loads((fetched.path / "manifest.json").read_text())["version"] == "syn-champ"
    with pytest.raises(ValueError, match="alias 'champion' needs MLflow tracking"):
        cfg.model_copy(update={"track": False}).model_validate({**cfg.model_dump(), "track": False})
