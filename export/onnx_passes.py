"""Passes on an exported ONNX ModelProto: un-deduplicate, fold batch-norm, sparse initializers, read-back.

All passes work on `onnx.ModelProto` in place with numpy; none calls onnx_ir / onnxscript (their
optimisers silently drop `graph.sparse_initializer`). `to_sparse_initializers` must be the last pass
that touches the graph.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

META_PREFIX = "rigl_hw."
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)


def _initializers(model: onnx.ModelProto) -> dict[str, TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _uses(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    uses: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            if name:
                uses[name].append(node)
    return uses


def undedup_initializers(model: onnx.ModelProto, names: set[str]) -> int:
    """Give back their own initializer to tensors the exporter deduplicated into `Identity(init)`.

    The TorchScript exporter stores equal-valued parameters once and re-creates the others with
    Identity nodes (e.g. BN running_mean == bias == 0). Only outputs whose name is in `names` (the
    PyTorch state-dict keys) are restored, so every parameter has an initializer of its own name.
    """
    inits = _initializers(model)
    keep, restored = [], 0
    for node in model.graph.node:
        if (node.op_type == "Identity" and node.input[0] in inits and node.output[0] in names
                and node.output[0] not in inits):
            copy = TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
            inits[copy.name] = copy
            restored += 1
        else:
            keep.append(node)
    if restored:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return restored


@dataclass(frozen=True)
class FoldedConv:
    """A Conv whose following BatchNormalization was folded into its weight and bias.

    weight/bias: initializer names of the Conv after folding; bn: the BN module ("layer1.0.bn1");
    zero_channels: output channels whose BN scale was exactly 0 (their folded weights are all 0).
    """

    weight: str
    bias: str
    bn: str
    zero_channels: tuple[int, ...]


def _bn_module(node: onnx.NodeProto) -> str:
    scale = node.input[1]
    return scale[: -len(".weight")] if scale.endswith(".weight") else (node.name or scale)


def fold_batchnorm(model: onnx.ModelProto) -> list[FoldedConv]:
    """Fold every `Conv -> BatchNormalization` (inference mode) whose tensors are all initializers.

    W' = W * s[:, None, None, None], b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps),
    computed in float64 and stored as float32: zeros of W stay exact zeros. The Conv must be the only
    user of its weight and the BN the only user of the Conv output. BN layers that follow something
    else (pre-activation ResNets put BN before the conv) are left as they are.
    """
    graph = model.graph
    inits = _initializers(model)
    uses = _uses(model)
    outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output}
    folded: list[FoldedConv] = []
    drop: set[int] = set()
    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(uses[conv.output[0]]) != 1:
            continue
        if conv.output[0] in outputs or any(n not in inits or len(uses[n]) != 1 for n in bn.input[1:5]):
            continue
        if any(a.name == "training_mode" and a.i for a in bn.attribute):
            continue
        w_name = conv.input[1]
        b_name = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
        if w_name not in inits or len(uses[w_name]) != 1 or (b_name and (b_name not in inits or len(uses[b_name]) != 1)):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        w = numpy_helper.to_array(inits[w_name])
        b = numpy_helper.to_array(inits[b_name]).astype(np.float64) if b_name else np.zeros(w.shape[0])
        s = gamma / np.sqrt(var + eps)
        w_new = (w.astype(np.float64) * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        b_new = ((b - mean) * s + beta).astype(w.dtype)
        inits[w_name].CopyFrom(numpy_helper.from_array(w_new, w_name))
        if b_name is None:
            b_name = _fresh_name(inits, w_name[: -len(".weight")] + ".bias" if w_name.endswith(".weight")
                                 else w_name + "_bias")
            graph.initializer.append(numpy_helper.from_array(b_new, b_name))
            inits[b_name] = graph.initializer[-1]
            if len(conv.input) < 3:
                conv.input.append(b_name)
            else:
                conv.input[2] = b_name
        else:
            inits[b_name].CopyFrom(numpy_helper.from_array(b_new, b_name))
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        zero = tuple(int(i) for i in np.flatnonzero(s == 0))
        folded.append(FoldedConv(weight=w_name, bias=b_name, bn=_bn_module(bn), zero_channels=zero))
    if drop:
        keep = [n for n in graph.node if id(n) not in drop]
        del graph.node[:]
        graph.node.extend(keep)
        remove_unused_initializers(model)
    return folded


def _fresh_name(existing: dict[str, TensorProto], name: str) -> str:
    candidate, i = name, 0
    while candidate in existing:
        i += 1
        candidate = f"{name}_{i}"
    return candidate


def remove_unused_initializers(model: onnx.ModelProto) -> int:
    used = {n for node in model.graph.node for n in node.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    removed = len(model.graph.initializer) - len(keep)
    if removed:
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return removed


def to_sparse_initializers(model: onnx.ModelProto, min_elements: int, max_density: float) -> list[str]:
    """Move each float initializer with >= min_elements elements and density <= max_density into
    `graph.sparse_initializer` (SparseTensorProto: values + int64 linear indices, as the spec wants).

    Size per nonzero is 4 (fp32 value) + 8 (int64 index) bytes, against 4 bytes per element dense,
    so the sparse form only pays below density 1/3. Run this last: later passes may drop them.
    """
    moved, keep = [], []
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        if t.data_type not in _FLOAT_TYPES or n < min_elements:
            keep.append(t)
            continue
        arr = numpy_helper.to_array(t)
        flat = arr.reshape(-1)
        idx = np.flatnonzero(flat)
        if idx.size / n > max_density:
            keep.append(t)
            continue
        values = numpy_helper.from_array(np.ascontiguousarray(flat[idx]), t.name)
        indices = numpy_helper.from_array(idx.astype(np.int64), "")
        model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(arr.shape)))
        moved.append(t.name)
    if moved:
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return moved


def densify(sparse: onnx.SparseTensorProto) -> np.ndarray:
    """Dense numpy array of a SparseTensorProto (linear [nnz] or coordinate [nnz, rank] indices)."""
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    out = np.zeros(int(np.prod(dims)) if dims else 1, dtype=values.dtype)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(tuple(indices.T), dims) if indices.size else indices.reshape(-1)
    out[indices] = values
    return out.reshape(dims)


def read_weights(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, str]]:
    """Every initializer as (dense numpy array, "dense" | "sparse")."""
    out = {t.name: (numpy_helper.to_array(t), "dense") for t in model.graph.initializer}
    for s in model.graph.sparse_initializer:
        out[s.values.name] = (densify(s), "sparse")
    return out


def set_metadata(model: onnx.ModelProto, entries: dict[str, object]) -> None:
    """Store entries as metadata_props `rigl_hw.<key>` (non-strings as JSON)."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in entries.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        full = META_PREFIX + key
        if full in existing:
            existing[full].value = text
        else:
            helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, full: text})
            existing = {p.key: p for p in model.metadata_props}


def get_metadata(model: onnx.ModelProto) -> dict[str, object]:
    """metadata_props written by `set_metadata`, JSON decoded where possible, prefix removed."""
    out: dict[str, object] = {}
    for p in model.metadata_props:
        if p.key.startswith(META_PREFIX):
            try:
                out[p.key[len(META_PREFIX):]] = json.loads(p.value)
            except json.JSONDecodeError:
                out[p.key[len(META_PREFIX):]] = p.value
    return out
