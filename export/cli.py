"""`python -m export.cli CHECKPOINT --out FILE.onnx ...`: the same command as `rigl-hw export`.

The options and the runner live with the other subcommands in rigl_hw/cli/export.py; this module
keeps the stand-alone entry point and the old names (`add_export_arguments`, `run_export`).
"""

from __future__ import annotations

import sys

from rigl_hw.cli.export import add_arguments as add_export_arguments
from rigl_hw.cli.export import run as run_export

from .errors import ExportError  # noqa: F401 (the exporter's error type, re-exported)

__all__ = ["add_export_arguments", "run_export", "main", "ExportError"]


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point, same options, errors and exit codes as `rigl-hw export`."""
    from rigl_hw.cli import standalone_main

    return standalone_main("rigl-hw export", "Masked model -> ONNX (see `rigl-hw export --help`).",
                           add_export_arguments, run_export, argv)


if __name__ == "__main__":
    sys.exit(main())
