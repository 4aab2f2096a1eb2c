from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.core.embedder import Embedder
from router.core.manifest import EmbedderSpec
from router.core.schemas import RouteRequest
from router.core.tiers import TIER_ORDER
from tests.fakes import FAKE_DIM, FakeEmbedder, synthetic_labels, synthetic_texts
from training.config import TrainConfig
from training.data.logs import LabeledTurn, TierScore, write_labeled


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


class FakeBundleEmbedder:
    """BundleEmbedder that writes no files and serves FakeEmbedder (dim FAKE_DIM)."""

    def export(self, out_dir: Path, quantization: str) -> EmbedderSpec:
        out_dir.mkdir(parents=True, exist_ok=True)
        return EmbedderSpec(name="fake-hash", dim=FAKE_DIM, quantization=quantization)

    def load(self, bundle_dir: Path, spec: EmbedderSpec) -> Embedder:
        return FakeEmbedder()


def synthetic_turns(n: int, seed: int = 0, partial_every: int = 0) -> list[LabeledTurn]:
    """Labeled turns whose adequacy follows tests.fakes' hidden difficulty; every
    `partial_every`-th turn lacks its sonnet label (RouteLLM-style two-tier rows)."""
    texts, difficulty = synthetic_texts(n, seed)
    labels = synthetic_labels(difficulty, seed)
    turns = []
    for i, (text, row) in enumerate(zip(texts, labels, strict=True)):
        scores = {
            tier: TierScore(score=float(row[j]), source="ground_truth:synthetic")
            for j, tier in enumerate(TIER_ORDER)
            if not (partial_every and i % partial_every == 0 and j == 1)
        }
        turns.append(
            LabeledTurn(
                id=f"syn:{seed}:{i}",
                request=RouteRequest(prompt=f"{text} #{i}"),
                scores=scores,
                category="synthetic",
                source="synthetic",
            )
        )
    return turns


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
