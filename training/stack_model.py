"""StackModel: the stacked heads in serving form (plain arrays), its numpy forward pass, and
classifier.onnx built from the same arrays with onnx.helper (no sklearn at serve time).

Input x (n, n_inputs) = [embedding, STRUCT_FEATURES, HAND_FEATURES] as ModelBundle.features
builds it. Every standardisation is folded into the weights, so the graph is:

    u  = [x[:, kept], T]            T = softmax(x[:, kept] @ task_W + task_b)   P(task), (n, K)
    Z  = u @ s1_W + s1_b            stage 1: difficulty targets and direct tier heads, (n, m)
    D  = [Z, T, T (x) Z]            stage-2 design (the products only when K > 1)
    P  = sigmoid(D @ s2_W + s2_b)   per-tier quality, (n, k)
    F  = P @ mix + mix_b            per task i, (n, K, k): each tier's "uncertain" value there
    P += sum_i T_i guard_i (F_i - P)    coverage guard (guard: 1 where a tier lacked labels)
    L  = max(exp(u @ len_W + len_b) * smear - 1, 0)   expected answer tokens per tier, (n, k)

A tier without labels in a task is, on that task's prompts (by P(task)), moved to the middle of
what the tiers labeled there bound it to: the nearest labeled tier below it and above it
(0 and 1 when there is none), since a pricier tier is no worse. Sonnet without math-l5 labels
sits between haiku and opus there; an unlabeled cheapest tier gets half its upper bound.

Outputs "probabilities" (n, k) and "output_tokens" (n, k), tiers cheapest first. Initialisers
keep the array names, so from_onnx reads a bundle's model back (tierwise calibrate).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

Array = NDArray[np.float64]
OPSET = 17
IR_VERSION = 8
INPUT = "input"
PROBABILITIES = "probabilities"
OUTPUT_TOKENS = "output_tokens"
# Arrays stored as graph initialisers, by field name.
ARRAYS = (
    "kept",
    "task_W",
    "task_b",
    "s1_W",
    "s1_b",
    "s2_W",
    "s2_b",
    "guard",
    "mix",
    "mix_b",
    "len_W",
    "len_b",
    "smear",
)


@dataclass(frozen=True)
class StackModel:
    n_inputs: int
    kept: NDArray[np.int64]  # (d,) input columns used; the others were near-constant in training
    task_W: Array  # (d, K)
    task_b: Array  # (K,)
    s1_W: Array  # (d + K, m)
    s1_b: Array  # (m,)
    s2_W: Array  # (D, k), D = m + K (+ K m when K > 1)
    s2_b: Array  # (k,)
    guard: Array  # (K, k) 1 where a tier had too few labels in a task
    mix: Array  # (k, K k) task i's block: each tier's uncertain value from the labeled tiers
    mix_b: Array  # (K k,)
    len_W: Array  # (d + K, k)
    len_b: Array  # (k,)
    smear: Array  # (k,) Duan's smearing factor of each length ridge
    tasks: tuple[str, ...] = ()
    stage1: tuple[str, ...] = ()  # names of Z's columns
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return len(self.task_b)

    @property
    def interact(self) -> bool:
        return self.n_tasks > 1

    def task_probs(self, x: NDArray[np.floating]) -> Array:
        logits = np.asarray(x, dtype=np.float64)[:, self.kept] @ self.task_W + self.task_b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out: Array = e / e.sum(axis=1, keepdims=True)
        return out

    def design(self, x: NDArray[np.floating]) -> tuple[Array, Array]:
        """(stage-2 design D, P(task) T) of raw inputs x."""
        xk = np.asarray(x, dtype=np.float64)[:, self.kept]
        t = self.task_probs(x)
        z = np.hstack([xk, t]) @ self.s1_W + self.s1_b
        return design(z, t, self.interact), t

    def predict(self, x: NDArray[np.floating]) -> tuple[Array, Array]:
        """(quality (n, k), expected answer tokens (n, k)) of raw inputs x (n, n_inputs)."""
        d, t = self.design(x)
        raw = sigmoid(d @ self.s2_W + self.s2_b)
        probs = guarded(raw, t, self.guard, self.mix, self.mix_b)
        u = np.hstack([np.asarray(x, dtype=np.float64)[:, self.kept], t])
        tokens = np.maximum(np.exp(u @ self.len_W + self.len_b) * self.smear - 1.0, 0.0)
        return probs, tokens

    def with_stage2(
        self, tier: int, weights: Array, bias: float, guard_column: Array
    ) -> StackModel:
        """A copy whose tier column of stage 2 and of the coverage guard are replaced (and the
        guard's uncertain values recomputed: they depend on which tiers are labeled)."""
        s2_W, s2_b, guard = self.s2_W.copy(), self.s2_b.copy(), self.guard.copy()
        s2_W[:, tier], s2_b[tier], guard[:, tier] = weights, bias, guard_column
        mix, mix_b = guard_mix(guard)
        return replace(self, s2_W=s2_W, s2_b=s2_b, guard=guard, mix=mix, mix_b=mix_b)


def sigmoid(v: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * v))  # = 1 / (1 + e^-v), without overflow
    return out


def design(z: Array, t: Array, interact: bool) -> Array:
    """[Z, T, T (x) Z]: stage 1 per task (products, task-major) when there are tasks."""
    if not interact:
        return np.hstack([z, t])
    products = (t[:, :, None] * z[:, None, :]).reshape(len(z), -1)
    return np.hstack([z, t, products])


def guarded(probs: Array, t: Array, guard: Array, mix: Array, mix_b: Array) -> Array:
    """Each tier moved, by the P(task) mass of the tasks it has too few labels in, to its
    uncertain value there (guard_mix): a tier without labels somewhere stays uncertain there."""
    n, k = probs.shape
    fills = (probs @ mix + mix_b).reshape(n, -1, k)
    weight = t[:, :, None] * guard[None, :, :]
    out: Array = probs + (weight * (fills - probs[:, None, :])).sum(axis=1)
    return out


def guard_mix(guard: Array) -> tuple[Array, Array]:
    """(mix (k, K k), mix_b (K k,)): in task i, tier j's uncertain value is the mean of the
    nearest labeled tier below it (else 0) and above it (else 1)."""
    n_tasks, k = guard.shape
    mix, mix_b = np.zeros((k, n_tasks * k)), np.zeros(n_tasks * k)
    for i in range(n_tasks):
        labeled = [j for j in range(k) if guard[i, j] == 0]
        for j in range(k):
            col = i * k + j
            below = [b for b in labeled if b < j]
            above = [a for a in labeled if a > j]
            if below:
                mix[below[-1], col] += 0.5
            if above:
                mix[above[0], col] += 0.5
            else:
                mix_b[col] += 0.5
    return mix, mix_b


def _init(name: str, value: NDArray[np.generic], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name)


def to_onnx(model: StackModel, labels: Sequence[str]) -> onnx.ModelProto:
    """classifier.onnx: float32 (n, n_inputs) -> probabilities, output_tokens (n, k)."""
    k, m, n_tasks = len(labels), model.s1_W.shape[1], model.n_tasks
    inits = [_init(name, getattr(model, name)) for name in ARRAYS if name != "kept"]
    inits += [
        _init("kept", model.kept, np.int64),
        _init("one", np.asarray(1.0)),
        _init("zero", np.asarray(0.0)),
        _init("t_shape", np.asarray([-1, n_tasks, 1]), np.int64),
        _init("z_shape", np.asarray([-1, 1, m]), np.int64),
        _init("flat_shape", np.asarray([-1, n_tasks * m]), np.int64),
        _init("fill_shape", np.asarray([-1, n_tasks, k]), np.int64),
        _init("p_shape", np.asarray([-1, 1, k]), np.int64),
        _init("axis_one", np.asarray([1]), np.int64),
    ]
    node = helper.make_node
    nodes = [
        node("Gather", [INPUT, "kept"], ["x_kept"], axis=1),
        node("MatMul", ["x_kept", "task_W"], ["task_mm"]),
        node("Add", ["task_mm", "task_b"], ["task_logits"]),
        node("Softmax", ["task_logits"], ["task_probs"], axis=1),
        node("Concat", ["x_kept", "task_probs"], ["u"], axis=1),
        node("MatMul", ["u", "s1_W"], ["s1_mm"]),
        node("Add", ["s1_mm", "s1_b"], ["stage1"]),
    ]
    parts = ["stage1", "task_probs"]
    if model.interact:
        nodes += [
            node("Reshape", ["task_probs", "t_shape"], ["t3"]),
            node("Reshape", ["stage1", "z_shape"], ["z3"]),
            node("Mul", ["t3", "z3"], ["tz3"]),
            node("Reshape", ["tz3", "flat_shape"], ["tz"]),
        ]
        parts.append("tz")
    nodes += [
        node("Concat", parts, ["design"], axis=1),
        node("MatMul", ["design", "s2_W"], ["s2_mm"]),
        node("Add", ["s2_mm", "s2_b"], ["s2_logits"]),
        node("Sigmoid", ["s2_logits"], ["raw_probs"]),
        node("MatMul", ["raw_probs", "mix"], ["fill_mm"]),
        node("Add", ["fill_mm", "mix_b"], ["fill_flat"]),
        node("Reshape", ["fill_flat", "fill_shape"], ["fills"]),
        node("Reshape", ["raw_probs", "p_shape"], ["p3"]),
        node("Sub", ["fills", "p3"], ["towards"]),
        node("Reshape", ["task_probs", "t_shape"], ["t_col"]),
        node("Mul", ["t_col", "guard"], ["guard_weight"]),
        node("Mul", ["guard_weight", "towards"], ["shift3"]),
        node("ReduceSum", ["shift3", "axis_one"], ["shift"], keepdims=0),
        node("Add", ["raw_probs", "shift"], [PROBABILITIES]),
        node("MatMul", ["u", "len_W"], ["len_mm"]),
        node("Add", ["len_mm", "len_b"], ["log_len"]),
        node("Exp", ["log_len"], ["len_exp"]),
        node("Mul", ["len_exp", "smear"], ["len_smeared"]),
        node("Sub", ["len_smeared", "one"], ["len_raw"]),
        node("Max", ["len_raw", "zero"], [OUTPUT_TOKENS]),
    ]
    graph = helper.make_graph(
        nodes,
        "tierwise_stack",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, model.n_inputs])],
        [
            helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, [None, k]),
            helper.make_tensor_value_info(OUTPUT_TOKENS, TensorProto.FLOAT, [None, k]),
        ],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    proto.producer_name = "tierwise"
    helper.set_model_props(
        proto, {"tasks": json.dumps(list(model.tasks)), "stage1": json.dumps(list(model.stage1))}
    )
    onnx.checker.check_model(proto)
    return proto


def from_onnx(path: Path) -> StackModel:
    """The StackModel whose to_onnx graph is at `path` (arrays at float32 precision)."""
    proto = onnx.load(str(path))
    arrays = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path} is not a stacked-heads classifier: no initialisers {missing}")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    values = {
        f.name: arrays[f.name].astype(np.int64 if f.name == "kept" else np.float64)
        for f in fields(StackModel)
        if f.name in ARRAYS
    }
    props = {p.key: p.value for p in proto.metadata_props}
    return StackModel(
        n_inputs=int(dims[1].dim_value),
        tasks=tuple(json.loads(props.get("tasks", "[]"))),
        stage1=tuple(json.loads(props.get("stage1", "[]"))),
        **values,
    )
