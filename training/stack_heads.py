"""Stacked heads in the training pipeline: TurnArrays -> training.stack -> classifier.onnx.

The exporter checks the ONNX graph against the numpy StackModel it was built from (quality
within CLASSIFIER_ATOL, answer tokens within TOKENS_RTOL) and refuses to write on a mismatch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from router.core.features import HAND_FEATURES, STRUCT_FEATURES
from router.core.manifest import ClassifierSpec
from router.core.tiers import TIER_ORDER
from training.export import CLASSIFIER_ATOL, CLASSIFIER_FILE, ExportError
from training.fit import TurnArrays
from training.head_types import HeadType
from training.stack import StackConfig, StackData, StackFit, fit_stack
from training.stack_model import OPSET, OUTPUT_TOKENS, PROBABILITIES, StackModel, to_onnx

log = logging.getLogger(__name__)
# float32 graph vs float64 numpy: exp() of a 400-term sum, relative.
TOKENS_RTOL = 1e-5


def input_names(n_embedding: int) -> list[str]:
    """Names of the classifier's input columns: emb0.., STRUCT_FEATURES, HAND_FEATURES."""
    return [f"emb{i}" for i in range(n_embedding)] + list(STRUCT_FEATURES) + list(HAND_FEATURES)


def stack_data(data: TurnArrays, n_embedding: int, use_aux: bool) -> StackData:
    adequate = np.where(data.labeled, data.adequate.astype(np.float64), np.nan)
    has_aux = use_aux and data.aux.shape[1] > 0
    return StackData(
        x=data.features.astype(np.float64),
        n_embedding=n_embedding,
        tasks=data.tasks,
        adequate=adequate,
        output_tokens=data.output_tokens,
        aux=data.aux if has_aux else None,
        aux_tokens=data.aux_tokens if has_aux else None,
    )


def fit_stacked(
    train: TurnArrays,
    head: HeadType,
    n_embedding: int,
    *,
    use_aux: bool,
    min_labels: int,
    default_output_tokens: float,
    seed: int,
) -> StackFit:
    cfg = StackConfig(
        blocks=head.blocks,
        use_aux=use_aux,
        min_labels=min_labels,
        default_output_tokens=default_output_tokens,
        seed=seed,
    )
    fit = fit_stack(stack_data(train, n_embedding, use_aux), cfg)
    log.info("stacked heads fitted in %s s", {k: round(v, 1) for k, v in fit.seconds.items()})
    return fit


def onnx_scores(
    proto: onnx.ModelProto, x: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    probs, tokens = session.run([PROBABILITIES, OUTPUT_TOKENS], {"input": x.astype(np.float32)})
    return np.asarray(probs), np.asarray(tokens)


def write_stack_classifier(
    model: StackModel, name: str, out_dir: Path, x_check: NDArray[np.float32], n_embedding: int
) -> ClassifierSpec:
    """out_dir/classifier.onnx from `model`, after checking it against model.predict on
    x_check (float32 inputs, as served)."""
    proto = to_onnx(model, [t.value for t in TIER_ORDER])
    got_probs, got_tokens = onnx_scores(proto, x_check)
    want_probs, want_tokens = model.predict(x_check.astype(np.float32))
    worst = float(np.max(np.abs(got_probs - want_probs))) if len(x_check) else 0.0
    if not np.allclose(got_probs, want_probs, atol=CLASSIFIER_ATOL):
        raise ExportError(
            f"ONNX classifier differs from the numpy model by {worst:.2e} > atol "
            f"{CLASSIFIER_ATOL}; refusing to write the bundle"
        )
    if not np.allclose(got_tokens, want_tokens, rtol=TOKENS_RTOL, atol=1e-3):
        raise ExportError(
            "ONNX classifier's output tokens differ from the numpy model's beyond rtol "
            f"{TOKENS_RTOL}; refusing to write the bundle"
        )
    log.info("stacked classifier ONNX parity on %d rows: max |diff| %.2e", len(x_check), worst)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out_dir / CLASSIFIER_FILE)
    names = input_names(n_embedding)
    kept = set(model.kept.tolist())
    return ClassifierSpec(
        file=CLASSIFIER_FILE,
        head=name,
        opset=OPSET,
        tokens_output=OUTPUT_TOKENS,
        dropped_inputs=[names[i] for i in range(model.n_inputs) if i not in kept],
    )
