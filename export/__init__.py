"""ONNX export of masked rigl-hw models (dense-with-zeros or sparse initializers), with verification.

Public API (imported lazily so that `import export` and the CLI parser stay free of torch):

- `load_checkpoint(path) -> LoadedCheckpoint`      read and validate a trainer checkpoint, bake masks
- `export_onnx(checkpoint_or_model, out_path, ...)` write the .onnx file, return an `ExportReport`
- `verify_onnx(...)`                                checker + onnxruntime parity + sparsity read-back
- `ExportError`                                     every user-facing failure (a ValueError)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import ExportError

_LAZY = {
    "LoadedCheckpoint": "export.checkpoint",
    "load_checkpoint": "export.checkpoint",
    "make_checkpoint": "export.checkpoint",
    "export_onnx": "export.onnx_export",
    "ExportReport": "export.report",
    "LayerReport": "export.report",
    "VerifyResult": "export.report",
    "verify_onnx": "export.verify",
}

__all__ = ["ExportError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
