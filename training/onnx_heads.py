"""Fuse one fitted sklearn binary classifier per tier into one ONNX graph.

input "input" (n, input_dim) float32 -> output "probabilities" (n, n_tiers): column j is tier j's
P(adequate), i.e. predict_proba[:, 1] of head j. One file keeps the bundle's contract simple.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

OPSET = 17
ML_OPSET = 3


def heads_to_onnx(heads: Sequence[Any], labels: Sequence[str], input_dim: int) -> onnx.ModelProto:
    """Each head must be a fitted binary sklearn classifier whose classes_ are [0, 1]."""
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    columns: list[str] = []
    opsets: dict[str, int] = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    one = helper.make_tensor("col_index_one", TensorProto.INT64, [1], [1])
    initializers.append(one)
    for label, head in zip(labels, heads, strict=True):
        classes = [int(c) for c in head.classes_]
        if classes != [0, 1]:
            raise ValueError(f"head for {label!r} has classes {classes}; expected [0, 1]")
        sub = to_onnx(
            head,
            initial_types=[("input", FloatTensorType([None, input_dim]))],
            options={"zipmap": False},
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
        sub = onnx.compose.add_prefix(sub, prefix=f"{label}__")
        for imp in sub.opset_import:
            opsets[imp.domain] = max(opsets.get(imp.domain, 0), imp.version)
        nodes.append(helper.make_node("Identity", ["input"], [f"{label}__input"]))
        nodes.extend(sub.graph.node)
        initializers.extend(sub.graph.initializer)
        col = f"{label}__p_adequate"
        nodes.append(
            helper.make_node("Gather", [f"{label}__probabilities", "col_index_one"], [col], axis=1)
        )
        columns.append(col)
    nodes.append(helper.make_node("Concat", columns, ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tierwise_heads",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, input_dim])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(labels)])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
