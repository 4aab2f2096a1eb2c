"""Write models/<version>/'s model files: classifier.onnx, embedder.onnx, tokenizer.json.

A bundle is assembled in a hidden staging folder beside its destination (router.core.bundle's
write_bundle then writes manifest.json there) and renamed into place only once the manifest is
written, so a failed export never leaves a half bundle that load_bundle could pick up. The
classifier must match sklearn within CLASSIFIER_ATOL or the export is refused.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from router.core.embedder import Embedder, OnnxEmbedder
from router.core.manifest import ClassifierSpec, EmbedderSpec
from router.core.tiers import TIER_ORDER
from router.errors import RouterError
from training.data.embed_cache import EmbedCache
from training.fit import TierHead, predict_proba
from training.onnx_heads import OPSET, heads_to_onnx

log = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.onnx"
# ONNX (float32) vs sklearn (float64) predict_proba: anything larger is a conversion bug.
CLASSIFIER_ATOL = 1e-5


class ExportError(RouterError):
    """The exported bundle does not reproduce the trained model."""


class BundleEmbedder(Protocol):
    """Puts the serving embedder into a bundle folder and loads it back (tests use a fake)."""

    def export(self, out_dir: Path, quantization: str) -> EmbedderSpec: ...

    def load(self, bundle_dir: Path, spec: EmbedderSpec) -> Embedder: ...


class MiniLMBundleEmbedder:
    """all-MiniLM-L6-v2 via training.embedder_export, exported once per precision into
    `cache_dir` and copied into each bundle."""

    def __init__(self, cache_dir: Path, max_length: int = 256) -> None:
        self.cache_dir = cache_dir
        self.max_length = max_length

    def export(self, out_dir: Path, quantization: str) -> EmbedderSpec:
        from training.embedder_export import QUANTIZATIONS, cached_embedder, read_cached_spec

        if quantization not in QUANTIZATIONS:
            raise ExportError(
                f"quantization {quantization!r} unsupported; expected one of {QUANTIZATIONS}"
            )
        entry = cached_embedder(self.cache_dir, quantization, self.max_length)
        spec = read_cached_spec(entry)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in (spec.file, spec.tokenizer):
            shutil.copyfile(entry / name, out_dir / name)
        return spec

    def load(self, bundle_dir: Path, spec: EmbedderSpec) -> Embedder:
        return OnnxEmbedder(bundle_dir / spec.file, bundle_dir / spec.tokenizer, spec.max_length)


def write_classifier(
    heads: Sequence[TierHead], out_dir: Path, x_check: NDArray[np.float32]
) -> ClassifierSpec:
    """Fuse the heads into out_dir/classifier.onnx after checking it against sklearn on x_check."""
    model = heads_to_onnx(
        [h.estimator for h in heads], [t.value for t in TIER_ORDER], x_check.shape[1]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_probs,) = session.run(["probabilities"], {"input": x_check.astype(np.float32)})
    sk_probs = predict_proba(heads, x_check)
    worst = float(np.max(np.abs(onnx_probs - sk_probs))) if len(x_check) else 0.0
    if not np.allclose(onnx_probs, sk_probs, atol=CLASSIFIER_ATOL):
        raise ExportError(
            f"ONNX classifier differs from sklearn predict_proba by {worst:.2e} "
            f"> atol {CLASSIFIER_ATOL}; refusing to write the bundle"
        )
    log.info("classifier ONNX parity on %d rows: max |diff| %.2e", len(x_check), worst)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out_dir / CLASSIFIER_FILE)
    head_names = ",".join(f"{h.tier}={h.name}" for h in heads)
    return ClassifierSpec(file=CLASSIFIER_FILE, head=head_names, opset=OPSET)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CachedEmbedder:
    """An Embedder whose results go through an EmbedCache keyed by text: scoring held-out turns
    with an exported embedder twice (rebuilds, fp32 vs int8) embeds them once."""

    def __init__(self, cache: EmbedCache) -> None:
        self._cache = cache
        self.dim = cache.embedder.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self._cache.embed_texts([text_key(t) for t in texts], list(texts))


# Load-time parity tolerance. int8 matmuls run on different kernels per CPU (VNNI/AMX vs AVX2,
# whose u8*s8 pairs can saturate), so the same int8 bundle need not give bit-identical
# probabilities on another machine (int8 vs fp32 embedders differ by up to ~0.04 on MMLU-Pro).
# 1e-2 still catches a wrong tokenizer, embedder or classifier, which move them by far more.
PARITY_ATOL = {"fp32": 1e-3, "int8": 1e-2}


def staging_dir(out_dir: Path, version: str) -> Path:
    staging = out_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def move_into_place(staging: Path, out_dir: Path, version: str) -> Path:
    """Rename the checked staging folder to out_dir/<version>, replacing an older build."""
    final = out_dir / version
    if final.exists():
        log.info("replacing existing bundle %s", final)
        shutil.rmtree(final)
    staging.rename(final)
    return final
