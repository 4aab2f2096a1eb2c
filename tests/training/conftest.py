from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fakes import (  # noqa: F401  (re-exported for the training tests)
    SHIPPED,
    FakeBundleEmbedder,
    FakeEmbedder,
    ShippedBundleEmbedder,
    synthetic_turns,
)
from training.config import TrainConfig
from training.data.logs import write_labeled


class CountingEmbedder(FakeEmbedder):
    """FakeEmbedder that counts the texts it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.texts = 0

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.texts += len(texts)
        return super().embed(texts)


@pytest.fixture(scope="session")
def synthetic_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 synthetic turns, every 4th without a sonnet label. Read-only."""
    path = tmp_path_factory.mktemp("logs") / "synthetic.jsonl"
    write_labeled(synthetic_turns(400, partial_every=4), path)
    return path


@pytest.fixture
def fast_cfg(synthetic_log: Path, tmp_path: Path) -> TrainConfig:
    return TrainConfig(
        logs=(synthetic_log,),
        out_dir=tmp_path / "models",
        version="syn-v1",
        cache_dir=tmp_path / "cache",
        heads=("logreg_c1", "logreg_c10"),
        compare_quantizations=("fp32", "int8"),
        track=False,
        progress=False,
    )


def rng_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture(scope="session")
def zeroeval_log(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real zeroeval Claude 3 outcomes as one labeled log (tests/training/zeroeval.py)."""
    from tests.training.zeroeval import zeroeval_turns

    path = tmp_path_factory.mktemp("zeroeval") / "zeroeval.jsonl"
    write_labeled(zeroeval_turns(shared_data), path)
    return path
