import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from router.core.bundle import load_bundle
from router.errors import BundleError
from tests.fakes import FakeEmbedder, build_fake_bundle


def test_onnx_probabilities_match_sklearn(tmp_path: Path) -> None:
    out, heads, x = build_fake_bundle(tmp_path / "b")
    session = ort.InferenceSession(str(out / "classifier.onnx"))
    (onnx_probs,) = session.run(["probabilities"], {"input": x})
    want = np.column_stack([h.predict_proba(x)[:, 1] for h in heads])
    assert onnx_probs.shape == (len(x), 3)
    assert np.allclose(onnx_probs, want, atol=1e-5)


def _edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        target = data
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("embedder.dim", 32, "embedder dim 16 does not match manifest embedder.dim 32"),
        (
            "labels",
            ["haiku", "opus", "sonnet"],
            "manifest labels ['haiku', 'opus', 'sonnet'] do not match the tiers "
            "['haiku', 'sonnet', 'opus']",
        ),
        (
            "labels",
            ["small", "medium", "large"],
            "manifest labels ['small', 'medium', 'large'] do not match the tiers",
        ),
        ("classifier.opset", 99, "classifier opset 99 is newer than supported opset"),
        ("features", ["log_turns"], "manifest features ['log_turns'] differ from this server's"),
    ],
)
def test_mismatched_bundle_is_refused(
    bundle_copy: Path, key: str, value: object, message: str
) -> None:
    _edit_manifest(bundle_copy, **{key: value})
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(bundle_copy, embedder=FakeEmbedder())


def test_corrupt_file_is_refused(bundle_copy: Path) -> None:
    """The refusal names the file and both digests. Not a match on "corrupt" alone: the message
    of any other failure carries pytest's temp path, .../test_corrupt_file_is_refused0/..."""
    target = bundle_copy / "classifier.onnx"
    listed = json.loads((bundle_copy / "manifest.json").read_text())["files"]["classifier.onnx"]
    assert listed == hashlib.sha256(target.read_bytes()).hexdigest()
    with target.open("ab") as fh:
        fh.write(b"garbage")
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_copy, embedder=FakeEmbedder())
    assert info.type is BundleError
    assert str(info.value) == (
        f"bundle file 'classifier.onnx' is corrupt: sha256 {actual} != {listed}"
    )


def test_default_pointer_and_missing_manifest(bundle_copy: Path, tmp_path: Path) -> None:
    parent = bundle_copy.parent
    (parent / "DEFAULT").write_text("bundle\n")
    assert load_bundle(parent, embedder=FakeEmbedder()).version == "fake-v1"
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path / "nowhere", embedder=FakeEmbedder())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("classifier.file", "/etc/passwd"),
        ("embedder.tokenizer", "../../outside/tokenizer.json"),
        ("files", {"../classifier.onnx": "0" * 64}),
    ],
)
def test_files_named_outside_the_bundle_are_refused_at_load(
    bundle_copy: Path, key: str, value: object
) -> None:
    _edit_manifest(bundle_copy, **{key: value})
    entry = "files entry" if key == "files" else key
    with pytest.raises(BundleError, match=f"manifest {entry} .* is outside the bundle folder"):
        load_bundle(bundle_copy, embedder=FakeEmbedder())
