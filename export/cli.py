"""`rigl-hw export CHECKPOINT --format dense|sparse --out FILE.onnx [...]`: argparse wiring and runner.

`rigl_hw/cli.py` calls `add_export_arguments(subparser)` and, when the subcommand runs,
`run_export(args)`. Importing this module is cheap (torch and onnx load inside `run_export`).
Exit codes: 0 written (and verified when asked), 2 any user error (one line `rigl-hw: error: ...` on stderr,
printed by the CLI's one error path; no .onnx left).
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ExportError  # noqa: F401 (the exporter's error type, re-exported)


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the export options to `parser` (a subparser of the rigl-hw CLI)."""
    parser.add_argument("checkpoint", help="checkpoint file written by `rigl-hw train`")
    parser.add_argument("--format", choices=("dense", "sparse"), default="dense",
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
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    return parser


def run_export(args: argparse.Namespace) -> int:
    """Run the export described by parsed `args`; return the process exit code."""
    from rigl_hw.atomic import refuse_self_overwrite

    from .onnx_export import SPARSE_MAX_DENSITY, SPARSE_MIN_ELEMENTS, export_onnx

    from pathlib import Path

    ckpt = Path(args.checkpoint)
    refuse_self_overwrite({"--out": args.out}, [ckpt / "checkpoint.pt" if ckpt.is_dir() else ckpt])
    # an ExportError (or any expected failure) reaches the CLI's one error path (rigl_hw.cli.run_guarded)
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


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m export.cli ...`), same behaviour as `rigl-hw export`."""
    from rigl_hw.cli import Parser, run_guarded

    parser = add_export_arguments(Parser(prog="rigl-hw export", description=__doc__))
    parser.set_defaults(func=run_export)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    return run_guarded(args)


if __name__ == "__main__":
    sys.exit(main())
