"""Masked PyTorch model -> ONNX file, dense-with-zeros or with sparse initializers (`export_onnx`).

Pipeline (each step is a function in this package):
1. `load_checkpoint` rebuilds the model and multiplies the masks into the weights (masks are never
   exported as tensors or Mul nodes: that would double the file).
2. `torch.onnx.export(dynamo=False, do_constant_folding=False)`: the TorchScript exporter needs no
   onnxscript, and without constant folding every initializer keeps its PyTorch parameter name and
   value (GRU gate reordering stays as Slice/Concat nodes on the original weights). Batch (and, for
   token inputs, sequence) axes are dynamic.
3. ModelProto passes (`onnx_passes`): restore initializers the exporter de-duplicated, fold
   Conv -> BatchNormalization unless `keep_batchnorm` (changes values, keeps zeros), write metadata
   (name map, folded BNs), and for `format="sparse"` move mostly-zero initializers into
   `graph.sparse_initializer` as the very last pass.
4. Write to a temp file in the target folder, optionally verify it (`verify.verify_onnx`), then
   `os.replace` onto the target: a failure never leaves a partial .onnx behind.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch
from torch import nn

from rigl_hw.atomic import atomic_path

from .checkpoint import MASK_SUFFIX, LoadedCheckpoint, bake_masks, load_checkpoint
from .errors import ExportError, one_line
from .onnx_passes import (fold_batchnorm, read_weights, set_metadata, to_sparse_initializers,
                          undedup_initializers)
from .report import ExportReport, LayerReport
from .verify import ABS_TOL, REL_TOL, verify_onnx

FORMATS = ("dense", "sparse")
OPSET_RANGE = (9, 20)  # what the TorchScript exporter in torch 2.x emits; DeepSparse reads <= 17
SPARSE_MIN_ELEMENTS = 1024  # smaller tensors stay dense: the SparseTensorProto overhead is not worth it
SPARSE_MAX_DENSITY = 0.25  # 12 bytes per nonzero (fp32 + int64 index) vs 4 per element: pays below 1/3


def _check_options(fmt: str, opset: int, min_elements: int, max_density: float) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(opset, int) or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise ExportError(f"opset {opset!r} is not supported; use {OPSET_RANGE[0]}..{OPSET_RANGE[1]} "
                          "(17, the default, also loads in DeepSparse)")
    if min_elements < 1 or not 0.0 <= max_density <= 1.0:
        raise ExportError(f"sparse_min_elements must be >= 1 and sparse_max_density in [0, 1], got "
                          f"{min_elements} and {max_density}")


def _check_output(out: Path) -> None:
    if out.is_dir():
        raise ExportError(f"output {out} is a directory; pass a file name such as {out / 'model.onnx'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: folder {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ExportError(f"cannot write {out}: no write permission; choose a writable --out path")


def _resolve(source: Any, masks: dict[str, np.ndarray] | None, example: torch.Tensor | None,
             input_shape: tuple[int, ...] | None) -> tuple[LoadedCheckpoint, tuple[int, ...], str]:
    """A baked model, its masks, the per-sample input shape and dtype name."""
    if isinstance(source, (str, os.PathLike)):
        source = load_checkpoint(source)
    if isinstance(source, LoadedCheckpoint):
        from rigl_hw.models import MODELS

        name = source.model_name
        if name in MODELS:
            entry = MODELS[name]
            return source, tuple(input_shape or entry.input_shape), entry.input_dtype
        if source.meta.get("input_shape") is not None:    # a package.module:factory model: float inputs
            return source, tuple(input_shape or source.meta["input_shape"]), "float32"
        if example is None:
            raise ExportError("a checkpoint of a model outside the zoo needs example_input")
        return source, tuple(input_shape or example.shape[1:]), str(example.dtype).replace("torch.", "")
    if isinstance(source, nn.Module):
        if example is None:
            raise ExportError("exporting an nn.Module needs example_input (a batch of inputs)")
        from rigl_hw.prune_interop import PruneInteropError, bake_torch_pruning, has_torch_pruning

        found: dict[str, np.ndarray] = {}
        if has_torch_pruning(source):   # prune hooks / ao parametrizations: bake on a copy
            try:
                model, found = bake_torch_pruning(source)
            except PruneInteropError as exc:
                raise ExportError(str(exc)) from None
            model = model.eval()
        else:
            model = copy.deepcopy(source).eval()
        for mod_name, mod in model.named_modules():  # take mask buffers off the copy
            for buf in [b for b in list(mod._buffers) if b.endswith(MASK_SUFFIX)]:
                pname = (f"{mod_name}." if mod_name else "") + buf[: -len(MASK_SUFFIX)]
                found[pname] = mod._buffers.pop(buf).bool().numpy().copy()
        masks = {**found, **(masks or {})}
        bake_masks(model, masks)
        ck = LoadedCheckpoint(model=model, masks=masks, meta={"model_name": None})
        return ck, tuple(input_shape or example.shape[1:]), str(example.dtype).replace("torch.", "")
    raise ExportError(f"cannot export a {type(source).__name__}; pass a checkpoint path, a "
                      "LoadedCheckpoint or an nn.Module")


def input_maker(shape: tuple[int, ...], dtype: str, high: int = 256, seed: int = 0) -> Callable[[int], torch.Tensor]:
    """make(batch) -> a reproducible random input batch (normal floats, or ints in [0, high))."""
    def make(batch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed + batch)
        if dtype.startswith("int"):
            return torch.randint(0, high, (batch, *shape), generator=gen, dtype=getattr(torch, dtype))
        return torch.randn((batch, *shape), generator=gen, dtype=getattr(torch, dtype))
    return make


def _torch_export(model: nn.Module, x: torch.Tensor, opset: int) -> onnx.ModelProto:
    axes = {0: "batch"}
    if not x.dtype.is_floating_point and x.dim() == 2:
        axes[1] = "sequence"  # token models (char_gru) take any sequence length
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset, do_constant_folding=False,
                              export_params=True, keep_initializers_as_inputs=False,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": axes, "output": dict(axes)})
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed ({one_line(exc, 160)}); try another --opset") from None
    return onnx.load_from_string(buf.getvalue())


def _layer_reports(proto: onnx.ModelProto, name_map: dict[str, str], model: nn.Module,
                   masks: dict[str, np.ndarray], folded: dict[str, str]) -> tuple[LayerReport, ...]:
    params = dict(model.named_parameters())
    weights = read_weights(proto)
    rows = []
    for onnx_name, param in name_map.items():
        if onnx_name not in weights or param not in params or (params[param].dim() < 2 and param not in masks):
            continue
        arr, stored = weights[onnx_name]
        mask = masks.get(param)
        rows.append(LayerReport(onnx_name=onnx_name, param=param, shape=tuple(int(d) for d in arr.shape),
                                numel=int(arr.size), nnz=int(np.count_nonzero(arr)), stored_as=stored,
                                folded_bn=folded.get(onnx_name),
                                mask_nnz=None if mask is None else int(mask.sum())))
    order = {name: i for i, name in enumerate(params)}
    return tuple(sorted(rows, key=lambda r: order[r.param]))


def export_onnx(checkpoint_or_model: Any, out_path: str | os.PathLike, format: str = "dense", opset: int = 17,
                keep_batchnorm: bool = False, verify: bool = False,
                sparse_min_elements: int = SPARSE_MIN_ELEMENTS, sparse_max_density: float = SPARSE_MAX_DENSITY,
                *, input_shape: tuple[int, ...] | None = None, example_input: torch.Tensor | None = None,
                masks: dict[str, np.ndarray] | None = None, batch_size: int = 2,
                verify_batch_sizes: tuple[int, ...] | None = None,
                abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL,
                preprocessing: dict[str, Any] | None = None) -> ExportReport:
    """Export a checkpoint (path or LoadedCheckpoint) or an nn.Module to `out_path`; see module docstring.

    format:          "dense" (exact zeros in ordinary initializers) or "sparse" (sparse initializers
                     for tensors with >= sparse_min_elements elements and density <= sparse_max_density).
    keep_batchnorm:  keep BatchNormalization nodes instead of folding them into the preceding conv.
    verify:          check the written file (checker, onnxruntime parity at `verify_batch_sizes`,
                     default (batch_size, batch_size + 1), sparsity read-back); raise ExportError and
                     leave no file if it fails.
    input_shape:     per-sample input shape used for tracing and verification (zoo default otherwise,
                     e.g. (3, 64, 64) for a faster ResNet-50 check); required via example_input for
                     models outside the zoo.
    preprocessing:   {mean, std, layout, input_shape, formula} written to metadata_props
                     `rigl_hw.preprocessing` (default: the checkpoint's, if it records one).
    An nn.Module carrying torch.nn.utils.prune hooks or torch.nn.utils.parametrize masks (torch.ao.pruning)
    is baked on a copy first (rigl_hw.prune_interop); the graph never holds mask tensors or Mul nodes.
    Raises ExportError (one line) for every user error; returns an ExportReport.
    """
    _check_options(format, opset, sparse_min_elements, sparse_max_density)
    ck, shape, dtype = _resolve(checkpoint_or_model, masks, example_input, input_shape)
    out = Path(out_path)
    _check_output(out)
    model = ck.model.eval()
    high = int(example_input.max()) + 1 if example_input is not None and dtype.startswith("int") else 256
    make_input = input_maker(shape, dtype, high=high)

    proto = _torch_export(model, make_input(batch_size), opset)
    state_names = set(model.state_dict())
    undedup_initializers(proto, state_names)
    folds = [] if keep_batchnorm else fold_batchnorm(proto)
    name_map = {t.name: t.name for t in proto.graph.initializer if t.name in state_names}
    for f in folds:
        name_map.setdefault(f.bias, f"{f.bn}.bias")
    holders: dict[str, list[str]] = {}
    for onnx_name, param in name_map.items():
        holders.setdefault(param, []).append(onnx_name)
    lost = [p for p in ck.masks if len(holders.get(p, [])) != 1]
    if lost:
        raise ExportError(f"masked parameter {lost[0]} is not stored as one initializer in the exported graph "
                          "(an exporter pass renamed or folded it); report this as a bug")
    meta = {"model": ck.model_name or "", "checkpoint_step": ck.meta.get("step"), "opset": opset,
            "exporter": "torch.onnx TorchScript, do_constant_folding=False",
            "input_shape": list(shape), "input_dtype": dtype,
            "batchnorm_folded": bool(folds), "keep_batchnorm": bool(keep_batchnorm),
            "folded_bn": [{"weight": f.weight, "bias": f.bias, "bn": f.bn, "zero_channels": list(f.zero_channels)}
                          for f in folds],
            "name_map": name_map, "masked_params": sorted(ck.masks)}
    if preprocessing is None:
        preprocessing = ck.meta.get("preprocessing")
    if preprocessing is not None:   # what a runtime must do to raw inputs before feeding `input`
        meta["preprocessing"] = preprocessing
    dense = proto
    set_metadata(dense, {**meta, "format": "dense"})
    sparse = onnx.ModelProto()
    sparse.CopyFrom(dense)
    set_metadata(sparse, {"format": "sparse"})
    to_sparse_initializers(sparse, sparse_min_elements, sparse_max_density)  # last pass on the graph
    final = sparse if format == "sparse" else dense
    data = final.SerializeToString()

    result = None
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
            if verify:
                result = verify_onnx(tmp, model, ck.masks, make_input,
                                     verify_batch_sizes or (batch_size, batch_size + 1), abs_tol, rel_tol)
                if not result.ok:
                    more = f" (+{len(result.mismatches) - 1} more)" if len(result.mismatches) > 1 else ""
                    err = ExportError(f"verification failed: {result.mismatches[0] if result.mismatches else 'unknown'}"
                                      f"{more}; nothing was written")
                    err.verification = result  # type: ignore[attr-defined]
                    raise err
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {one_line(exc, 120)}; choose a writable --out path") from None

    folded_of = {f.weight: f.bn for f in folds}
    return ExportReport(path=str(out), model_name=ck.model_name, format=format, opset=opset,
                        batchnorm_folded=bool(folds), file_bytes=len(data), dense_bytes=dense.ByteSize(),
                        sparse_bytes=sparse.ByteSize(), input_shape=shape, input_dtype=dtype,
                        layers=_layer_reports(final, name_map, model, ck.masks, folded_of),
                        name_map=name_map, verification=result)
