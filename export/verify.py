"""Verify a written .onnx file: ONNX checker, onnxruntime-vs-PyTorch parity, sparsity read-back.

Parity: the model runs in onnxruntime (CPU) and in PyTorch (eval mode, masks baked, BN not folded)
on the same random inputs at each batch size given (one different from the export batch checks the
dynamic batch axis). Errors: max_abs_err = max |ort - torch|; rel_err = max_abs_err / max |torch|
(one scale per comparison, so near-zero outputs do not blow it up). Defaults: 1e-4 and 1e-5 (fp32).

Sparsity: each masked parameter is found in the file (dense or sparse initializer) through the
name map stored in the metadata; its nonzero pattern must equal the mask exactly. A conv with a
folded batch-norm has scaled values but the same zeros (except output channels whose BN scale was
exactly 0, which become all-zero; the fold records them). A weight inside the mask whose trained
value is exactly 0 cannot be told from a pruned one in a file of zeros, so the expected pattern is
mask AND (baked weight != 0). Unfolded weights must equal the PyTorch values bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from .onnx_passes import get_metadata, read_weights
from .report import VerifyResult

ABS_TOL = 1e-4
REL_TOL = 1e-5


def _ort_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def parity(path: str | Path, model: nn.Module, make_input: Callable[[int], torch.Tensor],
           batch_sizes: Sequence[int]) -> tuple[float, float]:
    """(max abs error, relative error) of onnxruntime against PyTorch over the batch sizes."""
    sess = _ort_session(path)
    name = sess.get_inputs()[0].name
    max_abs, max_ref = 0.0, 0.0
    model.eval()
    for b in batch_sizes:
        x = make_input(b)
        with torch.no_grad():
            ref = model(x)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        outs = sess.run(None, {name: x.numpy()})
        for r, o in zip(refs, outs):
            r = r.numpy().astype(np.float64)
            if r.shape != o.shape:
                raise AssertionError(f"output shape {o.shape} from onnxruntime, {r.shape} from torch at batch {b}")
            max_abs = max(max_abs, float(np.max(np.abs(o.astype(np.float64) - r))))
            max_ref = max(max_ref, float(np.max(np.abs(r))))
    return max_abs, (max_abs / max_ref if max_ref > 0 else max_abs)


def sparsity_mismatches(onnx_model: onnx.ModelProto, model: nn.Module,
                        masks: dict[str, np.ndarray]) -> tuple[list[str], int]:
    """Differences between the zeros stored in the file and the masks; also the number of layers checked."""
    meta = get_metadata(onnx_model)
    name_map: dict[str, str] = meta.get("name_map", {})  # type: ignore[assignment]
    folded = {f["weight"]: f for f in meta.get("folded_bn", [])}  # type: ignore[union-attr]
    by_param: dict[str, list[str]] = {}
    for onnx_name, param in name_map.items():
        by_param.setdefault(param, []).append(onnx_name)
    weights = read_weights(onnx_model)
    params = dict(model.named_parameters())
    problems: list[str] = []
    for param, mask in masks.items():
        names = [n for n in by_param.get(param, []) if n in weights]
        if len(names) != 1:
            problems.append(f"{param}: {len(names)} initializers hold it in the file (expected 1)")
            continue
        arr, _ = weights[names[0]]
        if arr.shape != mask.shape:
            problems.append(f"{param}: shape {arr.shape} in the file, mask {mask.shape}")
            continue
        # a kept weight whose value is exactly 0 is a zero in any zero-based format: expect the zeros
        # of the baked PyTorch weight, which lie inside the mask's zeros
        expected = mask & (params[param].detach().numpy() != 0)
        fold = folded.get(names[0])
        if fold is not None:
            expected[list(fold["zero_channels"])] = False
        got = arr != 0
        if not np.array_equal(got, expected):
            extra, lost = int(np.sum(got & ~expected)), int(np.sum(~got & expected))
            problems.append(f"{param}: {extra} nonzeros outside the mask, {lost} mask positions are zero")
        elif fold is None and not np.array_equal(arr, params[param].detach().numpy()):
            problems.append(f"{param}: values differ from the PyTorch weights (no batch-norm folded into it)")
    return problems, len(masks)


def verify_onnx(path: str | Path, model: nn.Module, masks: dict[str, np.ndarray],
                make_input: Callable[[int], torch.Tensor], batch_sizes: Sequence[int] = (2, 3),
                abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL) -> VerifyResult:
    """Run all three checks on the file at `path` (see module docstring); never raises on a failed check."""
    problems: list[str] = []
    try:
        onnx.checker.check_model(str(path))
        checker_ok = True
    except onnx.checker.ValidationError as exc:
        checker_ok = False
        problems.append(f"onnx.checker: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    try:
        max_abs, rel = parity(path, model, make_input, batch_sizes)
    except Exception as exc:  # an onnxruntime load/run failure is a verification failure
        max_abs, rel = float("inf"), float("inf")
        problems.append(f"onnxruntime: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if max_abs > abs_tol or rel > rel_tol:
        problems.append(f"parity: max abs err {max_abs:.3g} (tol {abs_tol:g}), rel err {rel:.3g} (tol {rel_tol:g})")
    mism, checked = sparsity_mismatches(onnx.load(str(path)), model, masks)
    return VerifyResult(checker_ok=checker_ok, batch_sizes=tuple(int(b) for b in batch_sizes),
                        max_abs_err=max_abs, rel_err=rel, abs_tol=abs_tol, rel_tol=rel_tol,
                        sparsity_match=not mism, layers_checked=checked, mismatches=tuple(problems + mism))
