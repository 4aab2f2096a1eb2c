"""A self-contained bundle: tiny ONNX embedder + WordLevel tokenizer + skl2onnx heads, so
load_bundle serves it with its own embedder (sha256 and parity checks run for real) in a
subprocess or after POST /admin/reload, in milliseconds and without MiniLM."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from router.core.manifest import EmbedderSpec
from tests.fakes import HARD_WORDS, write_trained_bundle
from training.onnx_heads import OPSET

TINY_DIM = 16
WORDS = (
    "hi thanks what time is it hello list name color please write code fix bug test "
    "explain summarize translate why how".split()
) + list(HARD_WORDS)
PARITY_TEXTS = ["hello what time is it", "prove the theorem and derive the integral", ""]


def _embedder_graph(vocab: dict[str, int], dim: int) -> onnx.ModelProto:
    """input_ids, attention_mask (n, L) int64 -> (n, dim) float32: masked sum of one-hot word
    buckets (md5, as FakeEmbedder), L2-normalised; [UNK] maps to a fixed small vector."""
    table = np.zeros((len(vocab), dim), dtype=np.float32)
    for word, idx in vocab.items():
        if word == "[UNK]":
            table[idx, 0] = 0.25
        elif word != "[CLS]":
            table[idx, int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] = 1.0
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("Mul", ["summed", "summed"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axis1"], ["sqsum"], keepdims=1),
        helper.make_node("Sqrt", ["sqsum"], ["norm"]),
        helper.make_node("Max", ["norm", "eps"], ["safe"]),
        helper.make_node("Div", ["summed", "safe"], ["sentence_embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_embedder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "L"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["n", "L"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["n", dim])],
        initializer=[
            helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.flatten()),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
            helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-9]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tokenizer(vocab: dict[str, int]) -> Tokenizer:
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", vocab["[CLS]"])]
    )
    return tok


def build_tiny_bundle(out_dir: Path, version: str = "tiny-v1", seed: int = 0) -> Path:
    """Write out_dir/{embedder.onnx, tokenizer.json, classifier.onnx, manifest.json}; `seed`
    changes the training sample, so two versions give (slightly) different probabilities."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {"[UNK]": 0, "[CLS]": 1, **{w: i + 2 for i, w in enumerate(dict.fromkeys(WORDS))}}
    onnx.save(_embedder_graph(vocab, TINY_DIM), out_dir / "embedder.onnx")
    _tokenizer(vocab).save(str(out_dir / "tokenizer.json"))

    from router.core.embedder import OnnxEmbedder

    embedder = OnnxEmbedder(out_dir / "embedder.onnx", out_dir / "tokenizer.json", 64)
    spec = EmbedderSpec(name="tiny-wordlevel", dim=TINY_DIM, opset=OPSET, max_length=64)
    write_trained_bundle(
        out_dir, embedder.embed, spec, version, seed=seed, parity=(PARITY_TEXTS, 1e-4)
    )
    return out_dir
