"""What an export wrote and what verification measured: `ExportReport` (+ Markdown / dict views)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerReport:
    """One exported weight tensor that carries a PyTorch parameter.

    onnx_name: initializer name in the ONNX graph; param: PyTorch parameter name it holds.
    stored_as: "dense" (graph.initializer) or "sparse" (graph.sparse_initializer).
    folded_bn: the batch-norm module folded into this weight (values scaled, zero pattern kept), or None.
    mask_nnz:  ones in the checkpoint mask, or None when the parameter had no mask.
    """

    onnx_name: str
    param: str
    shape: tuple[int, ...]
    numel: int
    nnz: int
    stored_as: str
    folded_bn: str | None = None
    mask_nnz: int | None = None

    @property
    def density(self) -> float:
        return self.nnz / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class VerifyResult:
    """Verification of a written file.

    max_abs_err: max |onnxruntime - torch| over all outputs and batch sizes tried.
    rel_err:     max_abs_err / max |torch| (one scale for the whole output, not per element).
    """

    checker_ok: bool
    batch_sizes: tuple[int, ...]
    max_abs_err: float
    rel_err: float
    abs_tol: float
    rel_tol: float
    sparsity_match: bool
    layers_checked: int
    mismatches: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return (self.checker_ok and self.sparsity_match and self.max_abs_err <= self.abs_tol
                and self.rel_err <= self.rel_tol)


@dataclass(frozen=True)
class ExportReport:
    """Result of `export_onnx`.

    dense_bytes / sparse_bytes: serialized size of the model in each format (the written file is
    `file_bytes`, one of the two); ratio_to_dense = file_bytes / dense_bytes.
    """

    path: str
    model_name: str | None
    format: str
    opset: int
    batchnorm_folded: bool
    file_bytes: int
    dense_bytes: int
    sparse_bytes: int
    input_shape: tuple[int, ...]
    input_dtype: str
    layers: tuple[LayerReport, ...] = ()
    name_map: dict[str, str] = field(default_factory=dict)
    verification: VerifyResult | None = None

    @property
    def ratio_to_dense(self) -> float:
        return self.file_bytes / self.dense_bytes if self.dense_bytes else float("nan")

    @property
    def sparse_to_dense(self) -> float:
        return self.sparse_bytes / self.dense_bytes if self.dense_bytes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio_to_dense"] = self.ratio_to_dense
        d["sparse_to_dense"] = self.sparse_to_dense
        d["layers"] = [dict(asdict(l), density=l.density) for l in self.layers]
        if self.verification is not None:
            d["verification"]["ok"] = self.verification.ok
        return d

    def to_markdown(self) -> str:
        mb = 1 / 2**20
        lines = [
            f"# ONNX export: {self.model_name or 'model'} ({self.format})",
            "",
            f"- file: `{self.path}` ({self.file_bytes * mb:.2f} MiB, opset {self.opset}, "
            f"input {list(self.input_shape)} {self.input_dtype}, batch dynamic)",
            f"- dense format: {self.dense_bytes * mb:.2f} MiB; sparse format: {self.sparse_bytes * mb:.2f} MiB "
            f"(sparse/dense = {self.sparse_to_dense:.3f}); this file / dense = {self.ratio_to_dense:.3f}",
            f"- batch-norm folded into convs: {'yes' if self.batchnorm_folded else 'no'}",
        ]
        v = self.verification
        if v is not None:
            lines.append(
                f"- verification: {'PASS' if v.ok else 'FAIL'}; checker {'ok' if v.checker_ok else 'failed'}; "
                f"onnxruntime vs torch at batch {list(v.batch_sizes)}: max abs err {v.max_abs_err:.2e} "
                f"(tol {v.abs_tol:g}), rel err {v.rel_err:.2e} (tol {v.rel_tol:g}, max|diff| / max|torch|); "
                f"sparsity of {v.layers_checked} masked layers {'matches' if v.sparsity_match else 'DIFFERS'}")
            lines += [f"  - {m}" for m in v.mismatches]
        total = sum(l.numel for l in self.layers)
        nnz = sum(l.nnz for l in self.layers)
        lines += ["", f"Weights: {nnz:,} nonzero of {total:,} ({nnz / max(total, 1):.1%} dense)", "",
                  "| parameter | shape | nnz | density | stored | BN folded |",
                  "|---|---|---:|---:|---|---|"]
        for l in self.layers:
            lines.append(f"| {l.param} | {'x'.join(map(str, l.shape))} | {l.nnz:,} | {l.density:.3f} | "
                         f"{l.stored_as} | {l.folded_bn or ''} |")
        return "\n".join(lines) + "\n"
