"""OnnxHeads: the bundle's classifier.onnx, everything after the embedder in one graph.

(n, input_dim) float32 -> (n, n_tiers) per-tier quality (P(adequate)), columns in
manifest.labels, and, when the graph has that output (manifest.classifier.tokens_output), each
tier's expected answer tokens (n, n_tiers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from router.core.embedder import session_options
from router.errors import BundleError


@dataclass(frozen=True)
class HeadScores:
    quality: NDArray[np.float32]  # (n, k) P(adequate)
    output_tokens: NDArray[np.float32] | None  # (n, k) expected answer tokens; None: not predicted


class OnnxHeads:
    def __init__(
        self,
        path: Path,
        output_name: str = "probabilities",
        threads: int = 1,
        tokens_output: str | None = None,
    ) -> None:
        try:
            self._session = ort.InferenceSession(
                str(path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"cannot load classifier {str(path)!r}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"classifier {str(path)!r} must take one input, has {len(inputs)}")
        self._input = inputs[0].name
        names = [o.name for o in self._session.get_outputs()]
        for wanted in (output_name, tokens_output):
            if wanted is not None and wanted not in names:
                raise BundleError(
                    f"classifier {str(path)!r} has no output {wanted!r}; outputs are {names}"
                )
        self._outputs = [output_name] + ([tokens_output] if tokens_output else [])
        self.input_dim = inputs[0].shape[-1]
        self.n_outputs = self._session.get_outputs()[names.index(output_name)].shape[-1]

    def scores(self, features: NDArray[np.float32]) -> HeadScores:
        outs = self._session.run(self._outputs, {self._input: features.astype(np.float32)})
        quality = np.asarray(outs[0], dtype=np.float32)
        tokens = np.asarray(outs[1], dtype=np.float32) if len(outs) > 1 else None
        return HeadScores(quality, tokens)

    def predict(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, k) P(adequate) only."""
        return self.scores(features).quality
