"""`rigl-hw flops`: parameters, inference and training FLOPs of a sparse model (rigl_hw.flops_report)."""

from __future__ import annotations

import argparse

from ._choices import DISTRIBUTIONS, METHODS
from ._common import add_input_shape, add_json, finite_float, input_shape, positive_int, print_json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("flops", help="parameters, inference and training FLOPs of a sparse model",
                       description="Per-layer parameters and FLOPs of a model under a sparsity distribution "
                                   "(RigL paper Appendix H: 2·nnz·P + E FLOPs per layer per sample).")
    p.add_argument("--model", required=True, help="zoo model name (resnet50, mobilenet_v1, ...), "
                                                  "package.module:factory (with --input-shape) or FILE.onnx")
    add_input_shape(p)
    p.add_argument("--width", type=finite_float, default=1.0, help="width multiplier of a zoo model (default 1.0)")
    p.add_argument("--distribution", default=None, choices=DISTRIBUTIONS,
                   help="per-layer sparsity distribution (required unless --model is an ONNX file: then the "
                        "file's own zeros are used)")
    p.add_argument("--sparsity", type=finite_float, default=None,
                   help="overall sparsity S in [0, 1) (required with --distribution)")
    p.add_argument("--power", type=finite_float, default=1.0, help="ER/ERK power-scale parameter (default 1)")
    p.add_argument("--method", choices=METHODS, help="training method, for training FLOPs (default: none)")
    p.add_argument("--delta-t", type=positive_int, help="ΔT, steps between mask updates (needed by rigl)")
    p.add_argument("--multiplier", type=finite_float, default=1.0, help="train M x longer: scales steps and T_end (default 1)")
    p.add_argument("--t-end", type=positive_int, default=None,
                   help="T_end, last mask-update step of the 1x run (default: updates over the whole run, as the "
                        "paper's formula)")
    p.add_argument("--steps", type=positive_int, default=None, help="steps of the 1x run (default 32000, ImageNet)")
    p.add_argument("--batch", type=positive_int, default=None, help="batch size, samples per step (default 4096, "
                                                                     "ImageNet)")
    add_json(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..flops_report import flops_report, format_flops_table

    report = flops_report(model=args.model, width=args.width, distribution=args.distribution,
                          sparsity=args.sparsity, power=args.power, method=args.method, delta_t=args.delta_t,
                          multiplier=args.multiplier, t_end=args.t_end, steps=args.steps, batch=args.batch,
                          input_shape=input_shape(args))
    if args.json:
        print_json(report)
    else:
        print(format_flops_table(report))
    return 0
