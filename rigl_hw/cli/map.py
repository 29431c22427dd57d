"""`rigl-hw map`: the best mapping of a layer, or of every layer of a model, on a hardware spec
(the work is simulator.map_cli.map_request; Python: rigl_hw.api.map_layer / map_model)."""

from __future__ import annotations

import argparse

from ._choices import DISTRIBUTIONS, OBJECTIVES, PASSES
from ._common import add_alias, add_input_shape, add_json, finite_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("map", help="search the best mapping of a layer (or of a model's layers) on a hardware spec",
                       description="Mapping-driven model: loop nest per level, per-level traffic and energy.")
    p.add_argument("--hardware", required=True, metavar="HW",
                   help="preset name (`rigl-hw hardware list`) or a .toml spec")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--layer", help='one layer: "conv N=16 C=64 M=64 R=3 S=3 P=56 Q=56 stride=1" or '
                                     '"gemm M=512 N=512 K=512"')
    src.add_argument("--model", help="every sparsifiable layer of a zoo model, a package.module:factory model "
                                     "(with --input-shape) or FILE.onnx")
    add_input_shape(p)
    p.add_argument("--width", type=finite_float, default=1.0, help="width multiplier of a zoo --model (default 1.0)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS,
                   help="with --sparsity: per-layer weight densities of --model")
    p.add_argument("--sparsity", type=finite_float, help="overall sparsity S in [0, 1) (with --distribution)")
    p.add_argument("--pass", dest="pass_name", default="forward", choices=(*PASSES, "all"),
                   help="which pass of a training step to map (default forward; all: the three)")
    p.add_argument("--batch", type=positive_int, default=None, help="batch N (default: the layer's N, else 1)")
    p.add_argument("--objective", default="latency", choices=OBJECTIVES,
                   help="what the mapper minimises (default latency)")
    dens = p.add_mutually_exclusive_group()
    dens.add_argument("--weight-density", type=finite_float, help="statistical weight density in [0, 1]")
    dens.add_argument("--weight-mask", metavar="FILE.npy",
                      help="a .npy mask of the --layer weight's shape (M, C/groups, R, S); its density is used")
    mapping = p.add_argument("--mapping-file", metavar="FILE.toml",
                             help="evaluate this mapping instead of searching (with --layer)")
    add_alias(p, "--mapping", mapping)
    ops = p.add_argument_group("operand sparsity", "activation / gradient zeros, used where the hardware exploits them")
    inp = ops.add_mutually_exclusive_group()
    inp.add_argument("--input-density", type=finite_float, help="statistical input-activation density in [0, 1]")
    inp.add_argument("--input-mask", metavar="FILE.npy",
                     help="a .npy input-activation mask (N, C, H, W) of the --layer (real mode)")
    grd = ops.add_mutually_exclusive_group()
    grd.add_argument("--grad-density", type=finite_float, help="statistical output-gradient density in [0, 1]")
    grd.add_argument("--grad-mask", metavar="FILE.npy",
                     help="a .npy output-gradient mask (N, M, P, Q) of the --layer (real mode)")
    add_json(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from simulator.map_cli import run_map

    return run_map(args)
