"""Layer specs and weight masks of an ONNX graph (numpy + onnx; never torch).

`onnx_workload(path, input_shape=None)` reads a .onnx file and returns an `OnnxWorkload`: one
LayerSpec per sparsifiable weight, in graph order, and its mask (exact nonzeros of the weight).

Sparsifiable nodes and how they map to LayerSpec (same records as `layers.trace_layer_specs` gives
for the PyTorch model the graph came from):
  Conv      4-D weight (C_out, C_in/groups, kh, kw): kind "conv", groups, strides, begin pads;
            dilations change only the output size, which shape inference gives.
  Gemm      weight B (transB=1: (N, K) as stored; transB=0: B^T): kind "linear", 1 position.
  MatMul    with a weight initializer as B ((K, N), or (N, K) behind a Transpose): kind "linear",
            positions = product of A's dimensions between the batch and the last.
  GRU/LSTM  W (input) and R (hidden) matrices, per direction: kind "gru" (a recurrent-cell matrix
            applied once per time step; 3H rows for GRU, 4H for LSTM).
A weight is an initializer (dense: its exact zeros are the mask; or a sparse_initializer: its stored
indices are the mask), possibly reached through layout-only ops (Identity, Transpose, Reshape,
Unsqueeze, Squeeze, Slice, Concat, Cast; e.g. the gate reordering torch emits for GRU weights). Then
the spec and mask are those of the initializer in its stored layout, which is PyTorch's when the file
was exported by rigl-hw (initializer names are the torch parameter names: "fc1.weight" -> layer
"fc1"). Embedding tables read by Gather are not sparsifiable (as in PyTorch), nor an output
projection tied to one. Any other node that
consumes a 2-D-or-larger float initializer is refused, naming the op.

Shapes come from onnx shape inference after the batch dimension is set to 1 (dimension 0 when an
input shape is known, else the first symbolic one) and any other symbolic input dimension is filled
from `input_shape` (per sample) or the file's `rigl_hw.input_shape` metadata. Every failure is an OnnxWorkloadError with one line naming the problem and the fix.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .layers import LayerSpec

PASS_THROUGH = ("Identity", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Slice", "Concat", "Cast", "Flatten")
NOT_SPARSIFIABLE = ("Gather",)   # embedding lookups
LAYER_OPS = ("Conv", "Gemm", "MatMul", "GRU", "LSTM")


class OnnxWorkloadError(ValueError):
    """An ONNX file that cannot be read as a workload; one line with the fix."""

    user_error = True


@dataclass(frozen=True)
class OnnxWorkload:
    """The sparsifiable layers of an ONNX graph. masks: layer name -> bool array of weight_shape."""

    path: str
    specs: tuple[LayerSpec, ...]
    masks: dict[str, np.ndarray] = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    def nonzeros(self) -> dict[str, int]:
        return {n: int(m.sum()) for n, m in self.masks.items()}

    def packed_masks(self) -> dict[str, np.ndarray]:
        """Layer name -> bit-packed mask (the simulator's format: C order, big bit order)."""
        return {n: np.packbits(m.reshape(-1), bitorder="big") for n, m in self.masks.items()}


# ------------------------------------------------------------------------------------------ reading
def _load(path: str | os.PathLike):
    import onnx

    p = Path(path)
    if not p.exists():
        raise OnnxWorkloadError(f"ONNX file {p} not found; pass the path of a .onnx model")
    if p.is_dir():
        raise OnnxWorkloadError(f"{p} is a directory, not an ONNX file; pass the .onnx file itself")
    try:
        model = onnx.load(str(p))
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise OnnxWorkloadError(f"{p} is not an ONNX model ({msg}); export one with `rigl-hw export`") from None
    if not model.graph.node:
        raise OnnxWorkloadError(f"{p} is not an ONNX model (its graph has no nodes); export one with `rigl-hw export`")
    return model


def sparse_to_dense(sp) -> np.ndarray:
    """Dense numpy array of an onnx SparseTensorProto (indices linear [NNZ] or coordinates [NNZ, rank])."""
    from onnx import numpy_helper

    dims = tuple(int(d) for d in sp.dims)
    values = numpy_helper.to_array(sp.values).reshape(-1)
    idx = numpy_helper.to_array(sp.indices).astype(np.int64)
    out = np.zeros(int(np.prod(dims)), dtype=values.dtype)
    if idx.ndim == 2:
        idx = np.ravel_multi_index(tuple(idx.T), dims)
    out[idx.reshape(-1)] = values
    return out.reshape(dims)


def _initializers(model) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(name -> array, name -> stored mask) of dense and sparse initializers."""
    from onnx import numpy_helper

    arrays: dict[str, np.ndarray] = {}
    stored: dict[str, np.ndarray] = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        arrays[t.name] = a
        stored[t.name] = a != 0
    for sp in model.graph.sparse_initializer:
        a = sparse_to_dense(sp)
        arrays[sp.values.name] = a
        idx = numpy_helper.to_array(sp.indices).astype(np.int64)
        if idx.ndim == 2:
            idx = np.ravel_multi_index(tuple(idx.T), a.shape)
        m = np.zeros(a.size, dtype=bool)
        m[idx.reshape(-1)] = True
        stored[sp.values.name] = m.reshape(a.shape) & (a != 0)
    return arrays, stored


def _metadata(model) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in model.metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except json.JSONDecodeError:
            out[p.key] = p.value
    return out


def _fix_inputs(model, init_names: set[str], input_shape: Sequence[int] | None, path: str) -> tuple[int, ...]:
    """Fix the graph inputs' dimensions in place and return the first input's per-sample shape.

    With `input_shape` (per sample), dimension 0 of the first input is the batch (set to 1) and the
    others come from it. Without, the first symbolic dimension of each input is its batch (set to 1;
    time-major RNN inputs have it second) and any other symbolic dimension is an error."""
    inputs = [i for i in model.graph.input if i.name not in init_names]
    per_sample: tuple[int, ...] = ()
    for n_in, inp in enumerate(inputs):
        dims = inp.type.tensor_type.shape.dim
        want = list(input_shape) if (input_shape is not None and n_in == 0) else None
        if want is not None and len(want) != len(dims) - 1:
            raise OnnxWorkloadError(f"{path}: input {inp.name!r} has {len(dims)} dimensions; --input-shape "
                                    f"{','.join(map(str, want))} gives {len(want)} per sample (needs {len(dims) - 1})")
        symbolic = [i for i, d in enumerate(dims) if not d.HasField("dim_value") or d.dim_value <= 0]
        batch_axis = 0 if want is not None or not symbolic else symbolic[0]
        for i, d in enumerate(dims):
            if i == batch_axis:
                value = 1
            elif want is not None:
                value = int(want[i - 1])
            elif i in symbolic:
                raise OnnxWorkloadError(f"{path}: input {inp.name!r} dimension {i} is symbolic "
                                        f"({d.dim_param or '?'}); pass --input-shape with the per-sample shape")
            else:
                continue
            d.ClearField("dim_param")
            d.dim_value = value
        if n_in == 0:
            per_sample = tuple(int(d.dim_value) for i, d in enumerate(dims) if i != batch_axis)
    return per_sample


def _shapes(model) -> dict[str, tuple[int, ...]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise OnnxWorkloadError(f"ONNX shape inference failed ({msg}); check the model with onnx.checker") from None
    out: dict[str, tuple[int, ...]] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    return out


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# ------------------------------------------------------------------------------------------ graph walk
class _Graph:
    def __init__(self, model, arrays: dict[str, np.ndarray], path: str) -> None:
        self.path = path
        self.arrays = arrays
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        self.embeddings = {n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input[0] in arrays}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def is_weight(self, name: str) -> bool:
        a = self.arrays.get(name)
        return a is not None and a.dtype.kind == "f" and a.ndim >= 2

    def weight_source(self, name: str) -> tuple[str, bool] | None:
        """(initializer name, reached through a Transpose?) for a tensor computed from one float
        initializer by layout-only ops; None if it is not."""
        if name in self.arrays:
            return (name, False) if self.arrays[name].dtype.kind == "f" else None
        found: set[str] = set()
        transposed = False
        stack, seen = [name], set()
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in self.arrays:
                if self.arrays[t].dtype.kind == "f" and self.arrays[t].ndim >= 1:
                    found.add(t)
                continue
            node = self.producer.get(t)
            if node is None:
                return None            # a graph input: not a constant weight
            if node.op_type == "Constant":
                continue               # shapes, axes
            if node.op_type not in PASS_THROUGH:
                return None
            transposed |= node.op_type == "Transpose"
            data_inputs = node.input if node.op_type == "Concat" else node.input[:1]
            stack.extend(i for i in data_inputs if i)
        if len(found) != 1:
            return None
        return found.pop(), transposed


def _layer_names(init: str) -> tuple[str, str]:
    """(layer name, param name) of a weight initializer: 'fc1.weight' -> ('fc1', 'fc1.weight')."""
    return (init[: -len(".weight")], init) if init.endswith(".weight") else (init, init)


def _need(shapes: dict[str, tuple[int, ...]], name: str, node, path: str) -> tuple[int, ...]:
    if name not in shapes:
        raise OnnxWorkloadError(f"{path}: shape inference gives no shape for {name!r} (input of {node.op_type} "
                                f"node {node.name or node.output[0]!r}); pass --input-shape or simplify the graph")
    return shapes[name]


def _weight(g: _Graph, node, idx: int) -> tuple[str, bool]:
    src = g.weight_source(node.input[idx]) if len(node.input) > idx else None
    if src is None:
        raise OnnxWorkloadError(f"{g.path}: {node.op_type} node {node.name or node.output[0]!r} takes its weight "
                                f"{node.input[idx] if len(node.input) > idx else '?'!r} from a computation, not an "
                                "initializer; export with constant folding or bake the weights first")
    return src


def onnx_workload(path: str | os.PathLike, input_shape: Sequence[int] | None = None) -> OnnxWorkload:
    """Read an ONNX file as a workload (see the module docstring)."""
    import onnx

    path_s = str(path)
    model = _load(path)
    arrays, stored = _initializers(model)
    meta = _metadata(model)
    if input_shape is None and isinstance(meta.get("rigl_hw.input_shape"), list):
        input_shape = tuple(int(v) for v in meta["rigl_hw.input_shape"])
    work = onnx.ModelProto()
    work.CopyFrom(model)
    # sparse initializers are not seen by shape inference: give it dense stand-ins of the right shape
    for sp in list(work.graph.sparse_initializer):
        work.graph.initializer.append(onnx.numpy_helper.from_array(arrays[sp.values.name], sp.values.name))
    del work.graph.sparse_initializer[:]
    per_sample = _fix_inputs(work, set(arrays), input_shape, path_s)
    shapes = _shapes(work)
    g = _Graph(model, arrays, path_s)
    specs: list[LayerSpec] = []
    masks: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def add(spec: LayerSpec, mask: np.ndarray, init: str) -> None:
        if spec.name in masks:   # a weight shared by two nodes counts once, like a torch parameter
            return
        specs.append(spec)
        masks[spec.name] = np.ascontiguousarray(mask, dtype=bool).reshape(spec.weight_shape)
        used.add(init)

    for node in model.graph.node:
        op, a = node.op_type, _attrs(node)
        label = node.name or node.output[0]
        if op == "Conv":
            init, _ = _weight(g, node, 1)
            w = arrays[init]
            if w.ndim != 4:
                raise OnnxWorkloadError(f"{path_s}: Conv node {label!r} has a {w.ndim}-D weight; only 2-D convolutions "
                                        "(4-D weights) are supported")
            x = _need(shapes, node.input[0], node, path_s)
            y = _need(shapes, node.output[0], node, path_s)
            pads = list(a.get("pads", [0, 0, 0, 0]))
            auto = a.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else str(auto)
            if auto in ("SAME_UPPER", "SAME_LOWER"):   # total pad = (out - 1) s + d (k - 1) + 1 - in per axis
                st, dl = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
                tot = [max((y[2 + i] - 1) * st[i] + dl[i] * (w.shape[2 + i] - 1) + 1 - x[2 + i], 0) for i in (0, 1)]
                begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in tot]
                pads = [begin[0], begin[1], tot[0] - begin[0], tot[1] - begin[1]]
            name, param = _layer_names(init)
            add(LayerSpec(name=name, param_name=param, kind="conv", weight_shape=tuple(int(v) for v in w.shape),
                          in_hw=(x[2], x[3]), out_hw=(y[2], y[3]), groups=int(a.get("group", 1)),
                          stride=tuple(int(v) for v in a.get("strides", [1, 1])),
                          padding=(int(pads[0]), int(pads[1])), has_bias=len(node.input) > 2 and bool(node.input[2])),
                stored[init], init)
        elif op in ("Gemm", "MatMul"):
            b_idx = 1
            if op == "MatMul" and g.weight_source(node.input[1]) is None:
                src = g.weight_source(node.input[0])
                if src is not None and g.is_weight(src[0]):
                    raise OnnxWorkloadError(f"{path_s}: MatMul node {label!r} has its weight {src[0]!r} as the first "
                                            "operand (W @ X); rigl-hw reads X @ W (re-export with the weight second)")
                continue    # activation x activation product (attention scores): no weight
            init, through_t = _weight(g, node, b_idx)
            if init in g.embeddings:
                continue    # an output projection tied to an embedding table: not sparsifiable (as in torch)
            w, m = arrays[init], stored[init]
            if w.ndim != 2:
                raise OnnxWorkloadError(f"{path_s}: {op} node {label!r} has a {w.ndim}-D weight {init!r}; "
                                        "only 2-D weight matrices are supported")
            if op == "Gemm":
                if int(a.get("transA", 0)):
                    raise OnnxWorkloadError(f"{path_s}: Gemm node {label!r} has transA=1; unsupported")
                as_nk = bool(int(a.get("transB", 0))) != through_t
                positions = 1
                bias = len(node.input) > 2 and bool(node.input[2])
            else:
                xa = _need(shapes, node.input[0], node, path_s)
                as_nk = through_t
                positions = int(math.prod(xa[1:-1])) if len(xa) > 2 else 1
                bias = any(c.op_type == "Add" for c in g.consumers.get(node.output[0], []))
            if not as_nk:
                w, m = w.T, m.T
            name, param = _layer_names(init)
            add(LayerSpec(name=name, param_name=param, kind="linear", weight_shape=tuple(int(v) for v in w.shape),
                          in_hw=(positions, 1), out_hw=(positions, 1), has_bias=bias), m, init)
        elif op in ("GRU", "LSTM"):
            x = _need(shapes, node.input[0], node, path_s)
            steps = int(x[1] if int(a.get("layout", 0)) else x[0])
            bias = len(node.input) > 3 and bool(node.input[3])
            for idx in (1, 2):
                init, _ = _weight(g, node, idx)
                w, m = arrays[init], stored[init]
                if w.ndim == 3:
                    dirs = [(w[d], m[d], init if d == 0 else f"{init}_reverse") for d in range(w.shape[0])]
                else:
                    dirs = [(w, m, init)]
                for wd, md, nm in dirs:
                    add(LayerSpec(name=nm, param_name=nm, kind="gru", weight_shape=tuple(int(v) for v in wd.shape),
                                  in_hw=(steps, 1), out_hw=(steps, 1), has_bias=bias), md, init)
        elif op in PASS_THROUGH or op in NOT_SPARSIFIABLE or op == "Constant":
            continue
        else:
            for i in node.input:
                src = g.weight_source(i) if i else None
                if src is not None and g.is_weight(src[0]):
                    raise OnnxWorkloadError(f"{path_s}: op {op} (node {label!r}) uses weight {src[0]!r}; rigl-hw "
                                            f"reads weights of {', '.join(LAYER_OPS)} only (a mask applied by Mul? "
                                            "bake it into the weights before exporting)")
    if not specs:
        raise OnnxWorkloadError(f"{path_s} has no Conv, Gemm, MatMul, GRU or LSTM weight; nothing to simulate")
    return OnnxWorkload(path=path_s, specs=tuple(specs), masks=masks, metadata=meta, input_shape=per_sample)
