"""`rigl-hw export CHECKPOINT --format dense|sparse --out FILE.onnx [...]`: a trained sparse checkpoint to ONNX.

Exit codes: 0 written (and verified when asked), 2 any user error (one line `rigl-hw: error: ...` on
stderr, printed by the CLI's one error path; no .onnx left). torch and onnx load only in `run`.
"""

from __future__ import annotations

import argparse
import json

from ._choices import EXPORT_FORMATS
from ._common import add_json


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the export options to `parser` (the `rigl-hw export` subparser, or `python -m export.cli`)."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="checkpoint file written by `rigl-hw train` (RUN_DIR/checkpoint.pt), or its RUN_DIR")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="dense",
                        help="dense: exact zeros in ordinary initializers (what DeepSparse reads); "
                             "sparse: mostly-zero weights as ONNX sparse initializers (smaller file)")
    parser.add_argument("--out", required=True, metavar="FILE.onnx", help="output file (written atomically)")
    parser.add_argument("--verify", action="store_true",
                        help="check the file: onnx checker, onnxruntime vs PyTorch, sparsity equals the masks")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; DeepSparse needs <= 17)")
    parser.add_argument("--keep-batchnorm", action="store_true",
                        help="keep BatchNormalization nodes instead of folding them into the convs")
    parser.add_argument("--sparse-min-elements", type=int, default=None, metavar="N",
                        help="sparse format: only tensors with at least N elements (default 1024)")
    parser.add_argument("--sparse-max-density", type=float, default=None, metavar="D",
                        help="sparse format: only tensors with density <= D (default 0.25)")
    parser.add_argument("--abs-tol", type=float, default=1e-4,
                        help="--verify: max |onnxruntime - torch| allowed (default 1e-4)")
    parser.add_argument("--rel-tol", type=float, default=1e-5,
                        help="--verify: max |onnxruntime - torch| / max |torch| allowed (default 1e-5)")
    add_json(parser)
    return parser


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a trained sparse checkpoint to ONNX (dense zeros or sparse "
                                      "initializers)",
                       description="Masked model -> ONNX with the masks baked into the weights; --verify checks it "
                                   "in onnxruntime against PyTorch and reads the sparsity back.")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the export described by parsed `args`; return the process exit code."""
    from pathlib import Path

    from export.onnx_export import SPARSE_MAX_DENSITY, SPARSE_MIN_ELEMENTS, export_onnx

    from ..atomic import refuse_self_overwrite

    ckpt = Path(args.checkpoint)
    refuse_self_overwrite({"--out": args.out}, [ckpt / "checkpoint.pt" if ckpt.is_dir() else ckpt])
    # an ExportError (or any expected failure) reaches the CLI's one error path (run_guarded)
    report = export_onnx(
        args.checkpoint, args.out, format=args.format, opset=args.opset,
        keep_batchnorm=args.keep_batchnorm, verify=args.verify,
        sparse_min_elements=args.sparse_min_elements or SPARSE_MIN_ELEMENTS,
        sparse_max_density=SPARSE_MAX_DENSITY if args.sparse_max_density is None else args.sparse_max_density,
        abs_tol=args.abs_tol, rel_tol=args.rel_tol,
    )
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    else:
        print(report.to_markdown(), end="")
    return 0
