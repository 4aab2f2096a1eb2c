"""Text -> unit-norm sentence embeddings, (n, dim) float32, without torch.

OnnxEmbedder runs a MiniLM graph that already contains mean pooling and L2 normalisation, so
the output equals sentence-transformers' encode(normalize_embeddings=True) up to quantisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

from router.errors import BundleError


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, dim) float32, rows L2-normalised."""
        ...


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


# Characters kept per allowed token before tokenising: the first max_length tokens of any
# non-pathological text fit well inside (English averages ~4 chars a token), and a 1 MB prompt
# then costs ~1 ms of tokenising instead of ~300 ms (which would blow the deadline).
MAX_CHARS_PER_TOKEN = 32


class OnnxEmbedder:
    def __init__(
        self, model_path: Path, tokenizer_path: Path, max_length: int = 256, threads: int = 1
    ) -> None:
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
            self._session = ort.InferenceSession(
                str(model_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime/tokenizers raise their own untyped errors
            raise BundleError(f"cannot load embedder {str(model_path)!r}: {exc}") from exc
        self._tokenizer.enable_truncation(max_length=max_length)
        self.max_chars = max_length * MAX_CHARS_PER_TOKEN
        self._tokenizer.no_padding()
        self._inputs = {i.name for i in self._session.get_inputs()}
        out = self._session.get_outputs()[0]
        self._output = out.name
        dim = out.shape[-1]
        if not isinstance(dim, int):
            raise BundleError(f"embedder {str(model_path)!r} has no static output dim: {out.shape}")
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, dim) float32. Each text runs alone, so a row never depends on its batch-mates:
        no padding, and int8 graphs quantise activations over the whole input tensor (a padded
        batch would shift every row). On one thread this is also faster than a padded batch."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._embed_one(text)
        return out

    def _embed_one(self, text: str) -> NDArray[np.float32]:
        enc = self._tokenizer.encode(text[: self.max_chars])
        ids = np.asarray([enc.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.asarray([enc.type_ids], dtype=np.int64)
        (emb,) = self._session.run([self._output], feeds)
        row: NDArray[np.float32] = np.asarray(emb, dtype=np.float32)[0]
        return row
