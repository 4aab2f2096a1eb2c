"""The shipped models/DEFAULT bundle loads, passes its parity probe and routes sensibly (slow:
real int8 MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.core.bundle import load_bundle, resolve_bundle_dir
from router.http.app import create_app
from router.settings import Settings

MODELS = Path(__file__).resolve().parents[2] / "models"
pytestmark = pytest.mark.slow

TRIVIA = "What is 7 + 5?"
PHYSICS = (
    "Derive the expression for the energy levels of a quantum particle in a one-dimensional "
    "infinite square well, then use first-order perturbation theory to compute the shift of the "
    "ground state energy when a small linear potential V(x) = eps*x is added inside the well."
)


def test_default_bundle_loads_and_routes() -> None:
    if not (MODELS / "DEFAULT").is_file():
        pytest.skip("no shipped models/DEFAULT in this checkout")
    bundle = load_bundle(MODELS)  # checks hashes and the parity probe
    assert resolve_bundle_dir(MODELS).name == bundle.version
    assert bundle.manifest.embedder.quantization == "int8"
    assert bundle.manifest.metrics["routing"]["int8"]["router"]["quality_share"] >= 0.95

    # A generous deadline: a loaded CI box must not turn this into a fallback test.
    settings = Settings(model_dir=MODELS, deadline_ms=10_000)
    with TestClient(create_app(settings)) as client:
        easy = client.post("/route", json={"prompt": TRIVIA})
        hard = client.post("/route", json={"prompt": PHYSICS})
    assert easy.status_code == hard.status_code == 200
    easy_d, hard_d = easy.json(), hard.json()
    assert easy_d["tier"] == "haiku" and not easy_d["fallback"]
    assert hard_d["tier"] in ("sonnet", "opus") and not hard_d["fallback"]
    assert hard_d["probabilities"]["haiku"] < easy_d["probabilities"]["haiku"]
    assert easy_d["model_version"] == bundle.version


def test_shipped_manifests_name_no_paths_of_the_building_machine() -> None:
    manifests = sorted(MODELS.glob("*/manifest.json"))
    assert manifests
    for path in manifests:
        training = json.loads(path.read_text())["training"]
        assert all(log == Path(log).name for log in training["logs"]), (path, training["logs"])
