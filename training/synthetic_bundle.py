"""A servable bundle from a real exported embedder plus a classifier fitted on random data.

Its routing decisions are meaningless; it exists so latency benchmarks and serving tests run the
real embedder and a real skl2onnx head before a trained bundle is in models/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from sklearn.linear_model import LogisticRegression

from router.core.bundle import write_bundle
from router.core.features import STRUCT_FEATURES
from router.core.manifest import ClassifierSpec, CurvePoint, EmbedderSpec, Manifest
from router.core.tiers import TIER_ORDER
from training.onnx_heads import OPSET, heads_to_onnx

PARITY_TEXTS = ("hi", "Prove that the integral of exp(-x^2) over the real line is sqrt(pi).")


def build_synthetic_bundle(
    out_dir: Path, embedder_dir: Path, spec: EmbedderSpec, version: str, seed: int = 0
) -> Path:
    """Copy embedder_dir/{spec.file, spec.tokenizer} into out_dir, fit one LogisticRegression
    per tier on random (n, dim + n_features) vectors, and write the manifest (file hashes and a
    parity probe scored by the real embedder) with write_bundle, so load_bundle checks it like a
    trained bundle."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (spec.file, spec.tokenizer):
        shutil.copyfile(embedder_dir / name, out_dir / name)
    rng = np.random.default_rng(seed)
    input_dim = spec.dim + len(STRUCT_FEATURES)
    x = rng.normal(size=(256, input_dim)).astype(np.float32)
    # Nested adequacy (a stronger tier is adequate whenever a weaker one is), like real labels.
    difficulty = rng.integers(0, len(TIER_ORDER), size=len(x))
    labels = (difficulty[:, None] <= np.arange(len(TIER_ORDER))[None, :]).astype(np.int64)
    labels[0], labels[1] = 0, 1  # every head sees both classes
    heads = [LogisticRegression(max_iter=200).fit(x, labels[:, j]) for j in range(labels.shape[1])]
    tiers = [t.value for t in TIER_ORDER]
    onnx.save(heads_to_onnx(heads, tiers, input_dim), out_dir / "classifier.onnx")

    classifier = ClassifierSpec(file="classifier.onnx", head="logreg-random", opset=OPSET)
    curve = [CurvePoint(0.3, 0.8, 0.3), CurvePoint(0.5, 0.9, 0.5), CurvePoint(0.8, 0.97, 0.8)]
    manifest = Manifest.create(
        version,
        spec,
        classifier,
        default_threshold=0.5,
        curve=curve,
        training={"synthetic": True, "seed": seed},
    )
    write_bundle(out_dir, manifest, PARITY_TEXTS)
    return out_dir
