"""Deterministic stand-ins with real interfaces: FakeEmbedder and a tiny real bundle builder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from router.core.bundle import write_bundle
from router.core.embedder import Embedder, OnnxEmbedder
from router.core.features import Turn, structure_matrix
from router.core.manifest import ClassifierSpec, CurvePoint, EmbedderSpec, Manifest
from router.core.schemas import RouteRequest
from router.core.tiers import TIER_ORDER
from training.data.logs import LabeledTurn, TierScore
from training.onnx_heads import OPSET, heads_to_onnx

FAKE_DIM = 16
HARD_WORDS = ("prove", "derive", "optimize", "theorem", "integral", "architecture")


class FakeEmbedder:
    """Hashed word counts into `dim` buckets, L2-normalised: same text -> same vector."""

    def __init__(self, dim: int = FAKE_DIM) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim
                out[row, bucket] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def synthetic_texts(n: int, seed: int = 0) -> tuple[list[str], NDArray[np.int64]]:
    """Texts with a hidden difficulty 0..2: more HARD_WORDS -> harder."""
    rng = np.random.default_rng(seed)
    easy = ["hi", "thanks", "what", "time", "is", "it", "hello", "list", "name", "color"]
    texts, difficulty = [], []
    for _ in range(n):
        d = int(rng.integers(0, 3))
        words = list(rng.choice(easy, size=6)) + list(rng.choice(HARD_WORDS, size=2 * d))
        rng.shuffle(words)
        texts.append(" ".join(words))
        difficulty.append(d)
    return texts, np.asarray(difficulty)


def synthetic_labels(difficulty: NDArray[np.int64], seed: int = 0) -> NDArray[np.int64]:
    """(n, n_tiers) 0/1 adequacy: tier k handles difficulty <= k, with 10% label noise."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(len(TIER_ORDER))
    clean = (difficulty[:, None] <= ranks[None, :]).astype(np.int64)
    flip = rng.random(clean.shape) < 0.1
    return np.where(flip, 1 - clean, clean)


def write_trained_bundle(
    out_dir: Path,
    embed: Callable[[list[str]], NDArray[np.float32]],
    spec: EmbedderSpec,
    version: str,
    n: int = 400,
    seed: int = 0,
    parity: tuple[Sequence[str], float] | None = None,
) -> tuple[list[LogisticRegression], NDArray[np.float32]]:
    """Fit one LogisticRegression per tier on `embed`'s features of synthetic turns, export them
    to out_dir/classifier.onnx and write the manifest with write_bundle (with a parity probe of
    (texts, atol) when given). Returns (heads, X)."""
    texts, difficulty = synthetic_texts(n, seed)
    labels = synthetic_labels(difficulty, seed)
    turns = [Turn(t, 1, len(t) // 4, False, False) for t in texts]
    x = np.hstack([embed(texts), structure_matrix(turns)]).astype(np.float32)
    heads = [LogisticRegression(max_iter=500).fit(x, labels[:, j]) for j in range(labels.shape[1])]
    out_dir.mkdir(parents=True, exist_ok=True)
    tiers = [t.value for t in TIER_ORDER]
    onnx.save(heads_to_onnx(heads, tiers, x.shape[1]), out_dir / "classifier.onnx")
    classifier = ClassifierSpec(file="classifier.onnx", head="logreg", opset=OPSET)
    curve = [CurvePoint(0.3, 0.8, 0.3), CurvePoint(0.5, 0.9, 0.5), CurvePoint(0.8, 0.97, 0.8)]
    manifest = Manifest.create(version, spec, classifier, default_threshold=0.5, curve=curve)
    texts_, atol = parity or ((), 0.0)
    write_bundle(out_dir, manifest, texts_, atol)
    return heads, x


def build_fake_bundle(
    out_dir: Path, version: str = "fake-v1", n: int = 400, seed: int = 0
) -> tuple[Path, list[LogisticRegression], NDArray[np.float32]]:
    """A bundle whose manifest says dim=FAKE_DIM and which has no embedder file or parity probe
    (load it with embedder=FakeEmbedder()). Returns (dir, heads, X)."""
    spec = EmbedderSpec(name="fake-hash", dim=FAKE_DIM, opset=OPSET)
    heads, x = write_trained_bundle(out_dir, FakeEmbedder().embed, spec, version, n, seed)
    return out_dir, heads, x


class FakeBundleEmbedder:
    """BundleEmbedder that writes no files and serves FakeEmbedder (dim FAKE_DIM)."""

    def export(self, out_dir: Path, quantization: str) -> EmbedderSpec:
        out_dir.mkdir(parents=True, exist_ok=True)
        return EmbedderSpec(name="fake-hash", dim=FAKE_DIM, quantization=quantization)

    def load(self, bundle_dir: Path, spec: EmbedderSpec) -> Embedder:
        return FakeEmbedder()


def synthetic_turns(
    n: int, seed: int = 0, partial_every: int = 0, lengths: bool = False
) -> list[LabeledTurn]:
    """Labeled turns whose adequacy follows the hidden difficulty of synthetic_texts; every
    `partial_every`-th turn lacks its sonnet label (RouteLLM-style two-tier rows); with
    `lengths`, each tier's answer tokens grow with the difficulty (cheap tiers ramble more)."""
    texts, difficulty = synthetic_texts(n, seed)
    labels = synthetic_labels(difficulty, seed)
    rng = np.random.default_rng(seed + 1)
    turns = []
    for i, (text, row) in enumerate(zip(texts, labels, strict=True)):
        scores = {
            tier: TierScore(
                score=float(row[j]),
                source="ground_truth:synthetic",
                output_tokens=int(80 + 150 * difficulty[i] + 40 * (2 - j) + rng.integers(0, 40))
                if lengths
                else None,
            )
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


MODELS = Path(__file__).resolve().parents[1] / "models"
# The shipped default bundle (models/DEFAULT names it): its int8 MiniLM is what tests embed with.
SHIPPED = MODELS / (MODELS / "DEFAULT").read_text().strip()


class ShippedBundleEmbedder:
    """BundleEmbedder that copies the shipped bundle's real int8 MiniLM (embedder.onnx +
    tokenizer.json) into a bundle, without exporting from torch."""

    def export(self, out_dir: Path, quantization: str) -> EmbedderSpec:
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = EmbedderSpec.model_validate(
            json.loads((SHIPPED / "manifest.json").read_text())["embedder"]
        )
        for name in (spec.file, spec.tokenizer):
            shutil.copyfile(SHIPPED / name, out_dir / name)
        return spec

    def load(self, bundle_dir: Path, spec: EmbedderSpec) -> Embedder:
        return OnnxEmbedder(bundle_dir / spec.file, bundle_dir / spec.tokenizer, spec.max_length)
