"""Embedder export: the ONNX graph (pooling + L2 norm inside) served by OnnxEmbedder matches
sentence-transformers' encode(normalize_embeddings=True). Fast tests use a tiny offline BERT
with a WordLevel tokenizer; `slow` ones use the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from tokenizers import Tokenizer

from router.core.bundle import load_bundle, sha256_file
from router.core.embedder import OnnxEmbedder
from router.core.manifest import EmbedderSpec
from router.http.app import create_app
from router.settings import Settings
from training import embedder_export
from training.embedder_export import (
    EMBEDDER_FILE,
    EMBEDDER_NAME,
    SPEC_FILE,
    TOKENIZER_FILE,
    Quantization,
    cached_embedder,
    export_sentence_transformer,
    load_minilm,
    read_cached_spec,
)
from training.synthetic_bundle import build_synthetic_bundle

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# int8 dynamic quantisation costs a little accuracy; fp32 must be the same model.
MIN_COSINE = {"fp32": 0.9999, "int8": 0.95}
TINY_WORDS = (
    "the a quick brown fox jumps over lazy dog prove integral theorem hello world what time is it"
)
TINY_MAX_LENGTH = 16

LONG = " ".join(["Explain why the quick brown fox jumps over the lazy dog in detail."] * 40)
TEXTS = [
    "",
    "hi",
    "What time is it?",
    "Thanks!",
    "Prove that there are infinitely many primes.",
    "Write a Python function that merges two sorted lists in O(n) time.",
    "Derive the closed form of the integral of exp(-x^2) over the real line.",
    "Résumé: naïve café owner, coöperate — “smart quotes” and ellipsis…",
    "日本語のテキストを英語に翻訳してください。",
    "Переведи этот текст на английский, пожалуйста.",
    "emoji 🤖🚀✨ and math ∑∫√π≈3.14",
    "   leading and trailing whitespace   ",
    "UPPER CASE SHOUTING REQUEST FOR HELP",
    "def f(x):\n    return x ** 2  # tabs\tand newlines\n",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "a " * 300,
    LONG,
    LONG + " This tail lies beyond the truncation point and must not matter.",
    "Design a distributed rate limiter for a multi-region API gateway; discuss consistency.",
    "ok",
]


def embed_each(embedder: OnnxEmbedder, texts: list[str]) -> NDArray[np.float32]:
    return np.vstack([embedder.embed([t]) for t in texts])


def onnx_embedder(export_dir: Path, spec: EmbedderSpec) -> OnnxEmbedder:
    return OnnxEmbedder(export_dir / spec.file, export_dir / spec.tokenizer, spec.max_length)


def build_tiny_model(model_dir: Path) -> SentenceTransformer:
    """A 2-layer, 32-dim BERT with a WordLevel tokenizer, random weights, all offline."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate([*specials, *TINY_WORDS.split()])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(model_dir)
    fast.save_pretrained(model_dir)
    modules = [
        Transformer(str(model_dir), max_seq_length=TINY_MAX_LENGTH),
        Pooling(32, pooling_mode="mean"),
        Normalize(),
    ]
    return SentenceTransformer(modules=modules, device="cpu").eval()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformer:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session", params=["fp32", "int8"])
def tiny_export(
    request: pytest.FixtureRequest,
    tiny_model: SentenceTransformer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, EmbedderSpec]:
    quantization: Quantization = request.param
    out = tmp_path_factory.mktemp(f"tiny-{quantization}")
    spec = export_sentence_transformer(tiny_model, out, quantization, TINY_MAX_LENGTH, "tiny")
    return out, spec


def test_tiny_export_matches_sentence_transformers(
    tiny_export: tuple[Path, EmbedderSpec], tiny_model: SentenceTransformer
) -> None:
    out, spec = tiny_export
    want = tiny_model.encode(TEXTS, normalize_embeddings=True)
    got = onnx_embedder(out, spec).embed(TEXTS)
    assert got.shape == (len(TEXTS), 32) and got.dtype == np.float32
    assert np.min(np.sum(got * want, axis=1)) > MIN_COSINE[spec.quantization]
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_tiny_batch_equals_single(tiny_export: tuple[Path, EmbedderSpec]) -> None:
    embedder = onnx_embedder(*tiny_export)
    assert np.array_equal(embedder.embed(TEXTS), embed_each(embedder, TEXTS))
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_tiny_spec_and_files(tiny_export: tuple[Path, EmbedderSpec]) -> None:
    out, spec = tiny_export
    assert (spec.file, spec.tokenizer) == (EMBEDDER_FILE, TOKENIZER_FILE)
    assert (spec.dim, spec.max_length, spec.opset, spec.name) == (32, TINY_MAX_LENGTH, 17, "tiny")
    assert (out / EMBEDDER_FILE).is_file() and (out / TOKENIZER_FILE).is_file()


def test_tokenizer_json_truncates_and_never_pads(tiny_export: tuple[Path, EmbedderSpec]) -> None:
    out, _ = tiny_export
    config = json.loads((out / TOKENIZER_FILE).read_text())
    assert config["padding"] is None
    assert config["truncation"]["max_length"] == TINY_MAX_LENGTH
    tokenizer = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    assert len(tokenizer.encode("hello world").ids) == 4  # [CLS] hello world [SEP]
    assert len(tokenizer.encode("the fox " * 50).ids) == TINY_MAX_LENGTH


def test_embedder_overrides_padding_and_truncation_in_tokenizer_json(
    tiny_export: tuple[Path, EmbedderSpec], tmp_path: Path
) -> None:
    """The packaged MiniLM tokenizer.json pads to a fixed 128 and truncates at 128: serving
    must ignore both and use max_length from the manifest."""
    out, spec = tiny_export
    config = json.loads((out / TOKENIZER_FILE).read_text())
    config["padding"] = {
        "strategy": {"Fixed": 32},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    config["truncation"] = {
        "direction": "Right",
        "max_length": 4,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    odd = tmp_path / "tokenizer.json"
    odd.write_text(json.dumps(config))
    texts = ["hello world", "the quick brown fox jumps over the lazy dog " * 3, ""]
    clean = onnx_embedder(out, spec).embed(texts)
    served = OnnxEmbedder(out / spec.file, odd, spec.max_length)
    assert np.array_equal(served.embed(texts), clean)
    assert np.array_equal(embed_each(served, texts), clean)


def test_text_beyond_max_length_is_ignored(tiny_export: tuple[Path, EmbedderSpec]) -> None:
    embedder = onnx_embedder(*tiny_export)
    head = "the quick brown fox " * 10
    assert np.array_equal(embedder.embed([head]), embedder.embed([head + "theorem integral"]))


@pytest.mark.parametrize("quantization", ["fp32", "int8"])
def test_export_is_byte_identical_on_rerun(
    tiny_model: SentenceTransformer, quantization: Quantization, tmp_path: Path
) -> None:
    a = export_sentence_transformer(tiny_model, tmp_path / "a", quantization, 16, "tiny")
    b = export_sentence_transformer(tiny_model, tmp_path / "b", quantization, 16, "tiny")
    assert a == b
    for name in (EMBEDDER_FILE, TOKENIZER_FILE):
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name)


def test_unknown_quantization_names_the_choices(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"'fp16'.*'fp32', 'int8'"):
        export_sentence_transformer(tiny_model, tmp_path, "fp16", 16, "tiny")  # type: ignore[arg-type]


def test_non_mean_pooling_is_refused(tiny_model: SentenceTransformer, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    cls_model = SentenceTransformer(modules=[tiny_model[0], Pooling(32, pooling_mode="cls")])
    with pytest.raises(ValueError, match="pooling mode 'cls'"):
        export_sentence_transformer(cls_model, tmp_path, "fp32", 16, "tiny")


def test_synthetic_bundle_with_tiny_embedder_loads(
    tiny_export: tuple[Path, EmbedderSpec], tmp_path: Path
) -> None:
    out, spec = tiny_export
    bundle_dir = build_synthetic_bundle(tmp_path / "b", out, spec, "tiny-synthetic")
    bundle = load_bundle(bundle_dir)  # runs the hash and parity checks
    assert isinstance(bundle.embedder, OnnxEmbedder)
    assert bundle.manifest.embedder == spec
    assert set(bundle.manifest.files) == {EMBEDDER_FILE, TOKENIZER_FILE, "classifier.onnx"}


@pytest.fixture(scope="session")
def tiny_static_model() -> SentenceTransformer:
    """A StaticEmbedding (EmbeddingBag mean) over the same WordLevel vocabulary."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import models, normalizers, pre_tokenizers

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", *TINY_WORDS.split()])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    torch.manual_seed(0)
    return SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=16)], device="cpu")


@pytest.mark.parametrize("quantization", ["fp32", "int8"])
def test_static_embedding_export_matches_sentence_transformers(
    tiny_static_model: SentenceTransformer, quantization: Quantization, tmp_path: Path
) -> None:
    # StaticEmbedding never truncates, so compare on texts well inside max_length.
    texts = [t for t in TEXTS if t.strip() and len(t) < 100]
    spec = export_sentence_transformer(tiny_static_model, tmp_path, quantization, 64, "static")
    embedder = onnx_embedder(tmp_path, spec)
    want = tiny_static_model.encode(texts, normalize_embeddings=True)
    got = embedder.embed(texts)
    assert np.min(np.sum(got * want, axis=1)) > MIN_COSINE[quantization]
    assert np.array_equal(got, embed_each(embedder, texts))
    # No [CLS]/[SEP]: sentence-transformers tokenizes static models without special tokens.
    assert len(Tokenizer.from_file(str(tmp_path / spec.tokenizer)).encode("the fox").ids) == 2


def test_cached_embedder_exports_once_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []

    def fake_export(
        out_dir: Path, quantization: Quantization, max_length: int = 256
    ) -> EmbedderSpec:
        calls.append((quantization, max_length))
        (out_dir / EMBEDDER_FILE).write_bytes(b"not really onnx")
        (out_dir / TOKENIZER_FILE).write_text("{}")
        return EmbedderSpec(name="fake", dim=4, max_length=max_length, quantization=quantization)

    monkeypatch.setattr(embedder_export, "export_embedder", fake_export)
    first = cached_embedder(tmp_path, "int8")
    assert cached_embedder(tmp_path, "int8") == first == tmp_path / "int8"
    assert calls == [("int8", 256)]
    assert read_cached_spec(first).quantization == "int8"
    cached_embedder(tmp_path, "int8", max_length=128)
    assert read_cached_spec(first).max_length == 128
    monkeypatch.setattr(embedder_export, "EXPORT_REVISION", embedder_export.EXPORT_REVISION + 1)
    cached_embedder(tmp_path, "int8", max_length=128)
    assert calls == [("int8", 256), ("int8", 128), ("int8", 128)]
    assert [p.name for p in tmp_path.iterdir()] == ["int8"]  # no staging folders left behind


# --- the real all-MiniLM-L6-v2 -------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.fixture(scope="session", params=["fp32", "int8"])
def minilm_export(request: pytest.FixtureRequest, embedder_cache: Path) -> Path:
    """One export per quantization per session, through the same cache training uses."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        return cached_embedder(embedder_cache, request.param)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformer:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        return load_minilm(256)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(
    minilm_export: Path, minilm: SentenceTransformer
) -> None:
    spec = read_cached_spec(minilm_export)
    assert minilm.tokenizer(LONG)["input_ids"].__len__() > 256  # truncation is exercised
    want = minilm.encode(TEXTS, normalize_embeddings=True)
    got = onnx_embedder(minilm_export, spec).embed(TEXTS)
    assert got.shape == (len(TEXTS), 384)
    cosine = np.sum(got * want, axis=1)
    assert np.min(cosine) > MIN_COSINE[spec.quantization], dict(zip(TEXTS, cosine, strict=True))


@pytest.mark.slow
def test_minilm_batch_equals_single(minilm_export: Path) -> None:
    embedder = onnx_embedder(minilm_export, read_cached_spec(minilm_export))
    assert np.array_equal(embedder.embed(TEXTS), embed_each(embedder, TEXTS))
    # The two LONG variants differ only past token 256.
    assert np.array_equal(embedder.embed([TEXTS[-4]]), embedder.embed([TEXTS[-3]]))


@pytest.mark.slow
def test_minilm_spec(minilm_export: Path) -> None:
    spec = read_cached_spec(minilm_export)
    assert spec.name == EMBEDDER_NAME
    assert (spec.dim, spec.max_length, spec.opset) == (384, 256, 17)
    assert spec.quantization == minilm_export.name
    config = json.loads((minilm_export / TOKENIZER_FILE).read_text())
    assert config["padding"] is None and config["truncation"]["max_length"] == 256


@pytest.mark.slow
def test_cached_embedder_reuses_the_export(minilm_export: Path, embedder_cache: Path) -> None:
    before = (minilm_export / EMBEDDER_FILE).stat().st_mtime_ns
    spec: Quantization = read_cached_spec(minilm_export).quantization  # type: ignore[assignment]
    again = cached_embedder(embedder_cache, spec)
    assert again == minilm_export
    assert (again / EMBEDDER_FILE).stat().st_mtime_ns == before
    assert (again / SPEC_FILE).is_file()


@pytest.mark.slow
def test_minilm_bundle_serves_route(minilm_export: Path, tmp_path: Path) -> None:
    spec = read_cached_spec(minilm_export)
    bundle_dir = build_synthetic_bundle(tmp_path / "bundle", minilm_export, spec, "minilm-test")
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle.embedder, OnnxEmbedder) and bundle.embedder.dim == 384
    # A generous deadline: this test checks the wiring, not the speed of a busy CI box.
    settings = Settings(model_dir=bundle_dir, deadline_ms=5000)
    with TestClient(create_app(settings)) as client:
        resp = client.post("/route", json={"messages": [{"role": "user", "content": TEXTS[4]}]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_version"] == "minilm-test" and body["fallback"] is False
    assert set(body["probabilities"]) == {"haiku", "sonnet", "opus"}
