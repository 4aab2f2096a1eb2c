"""Deterministic stand-ins with real interfaces: FakeEmbedder and a tiny real bundle builder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from router.core.bundle import write_bundle
from router.core.features import Turn, structure_matrix
from router.core.manifest import ClassifierSpec, CurvePoint, EmbedderSpec, Manifest
from router.core.tiers import TIER_ORDER
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
