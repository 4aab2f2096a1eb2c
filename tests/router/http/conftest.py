"""Fixtures the HTTP tests share: two tiny real bundles in a models folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tiny_bundle import build_tiny_bundle


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/{tiny-v1, tiny-v2} with DEFAULT -> tiny-v1. Read-only: use `models`."""
    root = tmp_path_factory.mktemp("tiny") / "models"
    build_tiny_bundle(root / "tiny-v1", "tiny-v1", seed=0)
    build_tiny_bundle(root / "tiny-v2", "tiny-v2", seed=1)
    (root / "DEFAULT").write_text("tiny-v1\n")
    return root


@pytest.fixture
def models(tiny_models: Path, tmp_path: Path) -> Path:
    """A copy of tiny_models a test may change (reloads, DEFAULT, bad bundles beside them)."""
    dst = tmp_path / "models"
    shutil.copytree(tiny_models, dst)
    return dst
