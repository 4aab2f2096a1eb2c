"""ParallelEmbedder: any Embedder, one text per call, in a pool of threads.

An int8 ONNX embedder quantises activations over its whole input tensor, so a text embedded in a
padded batch gets a (slightly) different vector than alone. Serving embeds each text alone;
training does the same, so a vector never depends on its batch-mates, or on which texts an
embedding cache already held. onnxruntime releases the GIL while a session runs (one
intra-op thread each), so threads give a near-linear speed-up per core.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from router.core.embedder import Embedder


class ParallelEmbedder:
    def __init__(self, inner: Embedder, workers: int = 2) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.workers = workers

    def _one(self, text: str) -> NDArray[np.float32]:
        row: NDArray[np.float32] = np.asarray(self.inner.embed([text]), dtype=np.float32)[0]
        return row

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, dim) float32, row i = inner.embed([texts[i]])[0]."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if self.workers <= 1 or len(texts) <= 1:
            for i, text in enumerate(texts):
                out[i] = self._one(text)
            return out
        with ThreadPoolExecutor(self.workers) as pool:
            for i, row in enumerate(pool.map(self._one, texts)):
                out[i] = row
        return out
