"""OnnxHeads: the bundle's classifier.onnx, one head per tier fused into one graph.

(n, input_dim) float32 -> (n, n_tiers) P(adequate), columns in manifest.labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from router.core.embedder import session_options
from router.errors import BundleError


class OnnxHeads:
    def __init__(self, path: Path, output_name: str = "probabilities", threads: int = 1) -> None:
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
        if output_name not in names:
            raise BundleError(
                f"classifier {str(path)!r} has no output {output_name!r}; outputs are {names}"
            )
        self._output = output_name
        self.input_dim = inputs[0].shape[-1]
        self.n_outputs = self._session.get_outputs()[names.index(output_name)].shape[-1]

    def predict(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        (out,) = self._session.run([self._output], {self._input: features.astype(np.float32)})
        return np.asarray(out, dtype=np.float32)
