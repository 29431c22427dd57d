"""`rigl-hw demo`: the main job end to end on embedded defaults (rigl_hw.demo; no downloads)."""

from __future__ import annotations

import argparse

from ._common import add_json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="the main job end to end on embedded defaults (no downloads)",
                       description="FLOPs, training, simulation and ONNX export on embedded data; writes "
                                   "DIR/report.md and prints it (or, with --json, a summary object).")
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output directory (created; default demo_out)")
    add_json(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.out, as_json=args.json)
