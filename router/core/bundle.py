"""ModelBundle: models/<version>/{manifest.json, embedder.onnx, tokenizer.json, classifier.onnx}.

load_bundle checks everything that must match (labels, dims, opset, file hashes, a parity probe)
and refuses the bundle with a BundleError naming what is wrong, so a bad bundle never serves.
write_bundle is the one writer of manifest.json (training, synthetic and test bundles alike).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from router.core.embedder import Embedder, OnnxEmbedder
from router.core.features import (
    CHARS_PER_TOKEN,
    HAND_FEATURES,
    STRUCT_FEATURES,
    Turn,
    feature_matrix,
)
from router.core.heads import HeadScores, OnnxHeads
from router.core.manifest import (
    DEFAULT_PARITY_ATOL,
    MANIFEST_FORMAT,
    MAX_OPSET,
    Manifest,
    ParityProbe,
)
from router.core.policy import POLICIES
from router.core.tiers import TIER_ORDER
from router.errors import BundleError

log = logging.getLogger(__name__)
DEFAULT_POINTER = "DEFAULT"
# Relative tolerance of the probe's expected output tokens per unit of its probability atol
# (int8: 1e-2 -> 10%).
TOKENS_RTOL_PER_ATOL = 10.0
MANIFEST_FILE = "manifest.json"


def bundles_under(folder: Path) -> list[str]:
    """Names of the bundle folders (those holding a manifest.json) directly inside `folder`."""
    return sorted(p.parent.name for p in folder.glob("*/manifest.json"))


def resolve_bundle_dir(model_dir: Path) -> Path:
    """A bundle folder itself, or a folder of bundles whose DEFAULT file names the one to serve
    (a folder name in it: DEFAULT cannot point elsewhere)."""
    if (model_dir / MANIFEST_FILE).is_file():
        return model_dir
    pointer = model_dir / DEFAULT_POINTER
    if pointer.is_file():
        name = pointer.read_text().strip()
        if not _is_folder_name(name):
            raise BundleError(
                f"{DEFAULT_POINTER} names {name!r}, which is not a folder name in the models "
                f"folder; bundles there: {bundles_under(model_dir)}"
            )
        return model_dir / name
    if not model_dir.is_dir():
        raise BundleError(f"no {MANIFEST_FILE} in {str(model_dir)!r}: no such folder")
    found = bundles_under(model_dir)
    raise BundleError(
        f"no {MANIFEST_FILE} in {str(model_dir)!r} and no {DEFAULT_POINTER} file naming a bundle "
        "there" + (f"; bundles there: {found}" if found else "")
    )


def _is_folder_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def bundle_file(bundle_dir: Path, name: str, entry: str) -> Path:
    """The file manifest `entry` names, resolved; BundleError naming the entry unless it is
    inside `bundle_dir` (no absolute path, no '..', no symlink pointing out), so a manifest can
    never make the service read, hash or serve a file elsewhere."""
    root = bundle_dir.resolve()
    try:
        path = (bundle_dir / name).resolve()
        inside = path != root and path.is_relative_to(root)
    except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes
        inside = False
    if not inside:
        raise BundleError(
            f"manifest {entry} {name!r} is outside the bundle folder; every file a manifest "
            "names must be inside it"
        )
    return path


def _named_files(m: Manifest) -> list[tuple[str, str]]:
    """(manifest entry, file name) of every file the manifest names."""
    return [
        ("embedder.file", m.embedder.file),
        ("embedder.tokenizer", m.embedder.tokenizer),
        ("classifier.file", m.classifier.file),
        *(("files entry", name) for name in m.files),
    ]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILE
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise BundleError(f"no {MANIFEST_FILE} in {str(bundle_dir)!r}") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise BundleError(f"manifest {str(path)!r} is invalid: {exc}") from exc


def _check_manifest(m: Manifest, bundle_dir: Path) -> None:
    expected = [t.value for t in TIER_ORDER]
    if m.format != MANIFEST_FORMAT:
        raise BundleError(f"manifest format {m.format!r} unsupported; expected {MANIFEST_FORMAT}")
    if m.labels != expected:
        raise BundleError(f"manifest labels {m.labels!r} do not match the tiers {expected!r}")
    if m.features != list(STRUCT_FEATURES):
        raise BundleError(
            f"manifest features {m.features!r} differ from this server's {list(STRUCT_FEATURES)!r}"
        )
    if m.hand_features and m.hand_features != list(HAND_FEATURES):
        raise BundleError(
            f"manifest hand_features {m.hand_features!r} differ from this server's "
            f"{list(HAND_FEATURES)!r}"
        )
    if m.policy not in POLICIES:
        raise BundleError(
            f"manifest policy {m.policy!r} unknown; expected one of {sorted(POLICIES)}"
        )
    for name, opset in (("embedder", m.embedder.opset), ("classifier", m.classifier.opset)):
        if opset > MAX_OPSET:
            raise BundleError(f"{name} opset {opset} is newer than supported opset {MAX_OPSET}")
    paths = {name: bundle_file(bundle_dir, name, entry) for entry, name in _named_files(m)}
    for name, digest in m.files.items():
        path = paths[name]
        if not path.is_file():
            raise BundleError(f"bundle file {name!r} listed in the manifest is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(f"bundle file {name!r} is corrupt: sha256 {actual} != {digest}")


def check_bundle_dir(model_dir: Path) -> Manifest:
    """The checks load_bundle makes before running anything (the folder, DEFAULT, the manifest,
    every named file inside the bundle and matching its sha256), without loading a model: a
    start-up check that names a misconfigured folder in one line."""
    bundle_dir = resolve_bundle_dir(model_dir)
    manifest = read_manifest(bundle_dir)
    _check_manifest(manifest, bundle_dir)
    return manifest


@dataclass
class ModelBundle:
    manifest: Manifest
    embedder: Embedder
    heads: OnnxHeads
    path: Path

    @property
    def version(self) -> str:
        return self.manifest.version

    def features(self, turns: Sequence[Turn]) -> NDArray[np.float32]:
        """(n, input_dim): embedding of each turn's text, then STRUCT_FEATURES columns, then
        HAND_FEATURES columns when the manifest has them."""
        embeddings = self.embedder.embed([t.text for t in turns])
        return feature_matrix(embeddings, turns, bool(self.manifest.hand_features))

    def predict(self, turns: Sequence[Turn]) -> HeadScores:
        """Per-tier quality (n, n_tiers) and, if the bundle predicts them, expected answer
        tokens (n, n_tiers); columns in manifest.labels order."""
        return self.heads.scores(self.features(turns))

    def score(self, turns: Sequence[Turn]) -> NDArray[np.float32]:
        """(n, n_tiers) P(adequate), columns in manifest.labels order."""
        return self.predict(turns).quality


def parity_turns(texts: Sequence[str]) -> list[Turn]:
    """The turns a parity probe's texts stand for: each a one-turn plain prompt. load_bundle
    re-scores manifest.parity on these, so whatever wrote the probe must score the same turns."""
    return [Turn(t, 1, int(len(t) / CHARS_PER_TOKEN), False, False) for t in texts]


def _check_parity(bundle: ModelBundle) -> None:
    probe = bundle.manifest.parity
    if probe is None or not probe.texts:
        return
    scores = bundle.predict(parity_turns(probe.texts))
    got = scores.quality
    want = np.asarray(probe.probs, dtype=np.float32)
    if got.shape != want.shape or not np.allclose(got, want, atol=probe.atol):
        worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        raise BundleError(
            f"bundle {bundle.version!r} failed its parity check: max |diff| {worst:.2e} "
            f"> atol {probe.atol}"
        )
    if probe.tokens is not None:
        want_tokens = np.asarray(probe.tokens, dtype=np.float32)
        got_tokens = scores.output_tokens
        # Tokens are exp() of a linear map: compare relatively, as loosely as the probabilities.
        rtol = TOKENS_RTOL_PER_ATOL * probe.atol
        if got_tokens is None or not np.allclose(got_tokens, want_tokens, rtol=rtol, atol=1.0):
            raise BundleError(
                f"bundle {bundle.version!r} failed its parity check on expected output tokens: "
                f"got {None if got_tokens is None else got_tokens.round(1).tolist()}, "
                f"want {want_tokens.round(1).tolist()} (rtol {rtol})"
            )


def assemble_bundle(
    bundle_dir: Path, manifest: Manifest, embedder: Embedder | None = None, threads: int = 1
) -> ModelBundle:
    """The bundle in `bundle_dir` under `manifest`, unchecked: for a folder being written
    (training's staging folder, write_bundle's parity probe). `embedder` replaces its own."""
    if embedder is None:
        embedder = _own_embedder(bundle_dir, manifest, threads)
    return ModelBundle(manifest, embedder, _own_heads(bundle_dir, manifest, threads), bundle_dir)


def _own_embedder(bundle_dir: Path, manifest: Manifest, threads: int) -> OnnxEmbedder:
    spec = manifest.embedder
    return OnnxEmbedder(
        bundle_file(bundle_dir, spec.file, "embedder.file"),
        bundle_file(bundle_dir, spec.tokenizer, "embedder.tokenizer"),
        spec.max_length,
        threads,
    )


def _own_heads(bundle_dir: Path, manifest: Manifest, threads: int) -> OnnxHeads:
    spec = manifest.classifier
    path = bundle_file(bundle_dir, spec.file, "classifier.file")
    return OnnxHeads(path, spec.output_name, threads, spec.tokens_output)


def load_bundle(model_dir: Path, threads: int = 1, embedder: Embedder | None = None) -> ModelBundle:
    """Load and validate a bundle. Pass `embedder` to replace the bundle's own (tests, fakes);
    the parity probe only runs with the bundle's own embedder."""
    bundle_dir = resolve_bundle_dir(model_dir)
    manifest = read_manifest(bundle_dir)
    _check_manifest(manifest, bundle_dir)
    own_embedder = embedder is None
    if embedder is None:
        embedder = _own_embedder(bundle_dir, manifest, threads)
    if embedder.dim != manifest.embedder.dim:
        raise BundleError(
            f"embedder dim {embedder.dim} does not match manifest embedder.dim "
            f"{manifest.embedder.dim}"
        )
    heads = _own_heads(bundle_dir, manifest, threads)
    if heads.input_dim != manifest.input_dim:
        raise BundleError(
            f"classifier input dim {heads.input_dim} != embedder dim "
            f"{manifest.embedder.dim} + {len(manifest.features)} features"
            f" + {len(manifest.hand_features)} hand features"
        )
    if heads.n_outputs != len(manifest.labels):
        raise BundleError(
            f"classifier gives {heads.n_outputs} columns, manifest has "
            f"{len(manifest.labels)} labels {manifest.labels}"
        )
    bundle = ModelBundle(manifest, embedder, heads, bundle_dir)
    if own_embedder:
        _check_parity(bundle)
    log.info("loaded bundle %s from %s", manifest.version, bundle_dir)
    return bundle


def file_hashes(bundle_dir: Path) -> dict[str, str]:
    """sha256 of every file in the bundle folder except manifest.json itself."""
    return {
        p.name: sha256_file(p)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }


def write_bundle(
    bundle_dir: Path,
    manifest: Manifest,
    parity_texts: Sequence[str] = (),
    parity_atol: float = DEFAULT_PARITY_ATOL,
    embedder: Embedder | None = None,
) -> Manifest:
    """The one writer of manifest.json, for a folder that already holds the bundle's other files.
    Hashes them into manifest.files, scores `parity_texts` through the bundle exactly as
    load_bundle re-scores them (with `embedder`, else the bundle's own) into manifest.parity,
    and writes manifest.json last. Returns the manifest written."""
    manifest = manifest.model_copy(update={"files": file_hashes(bundle_dir), "parity": None})
    if parity_texts:
        bundle = assemble_bundle(bundle_dir, manifest, embedder)
        scores = bundle.predict(parity_turns(parity_texts))
        tokens = scores.output_tokens
        probe = ParityProbe(
            texts=list(parity_texts),
            probs=[[float(p) for p in row] for row in scores.quality],
            atol=parity_atol,
            tokens=None if tokens is None else [[float(v) for v in row] for row in tokens],
        )
        manifest = manifest.model_copy(update={"parity": probe})
    (bundle_dir / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest
