"""Soak: a real uvicorn server under 16 closed-loop clients for ~10 s with a model reload in the
middle loses no request: zero errors, every response a valid decision, both models seen.
(benchmarks/load_test.py --soak does the same against any bundle, for as long as you like.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.load_test import render, run_load, serve
from tests.tiny_bundle import build_tiny_bundle


@pytest.mark.slow
def test_reload_under_load_loses_no_request(tmp_path: Path) -> None:
    models = tmp_path / "models"
    build_tiny_bundle(models / "tiny-v1", "tiny-v1", seed=0)
    build_tiny_bundle(models / "tiny-v2", "tiny-v2", seed=1)
    (models / "DEFAULT").write_text("tiny-v1\n")
    with serve(models) as server:
        result = asyncio.run(
            run_load(server.url, clients=16, duration_s=10, reload_targets=["models/tiny-v2"])
        )
    print(render([result]))
    assert result.error_count == 0, result.errors
    assert result.reloads == ["models/tiny-v2: HTTP 200 tiny-v2"]
    assert set(result.versions) == {"tiny-v1", "tiny-v2"}
    assert result.requests > 100
