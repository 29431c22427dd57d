"""`rigl-hw trace synth`: write a synthetic training trace (rigl_hw.trace_synth)."""

from __future__ import annotations

import argparse

from ._choices import DECAY_SCHEDULES, DISTRIBUTIONS, SYNTH_METHODS
from ._common import add_input_shape, add_json, finite_float, input_shape, positive_int, print_json, say


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("trace", help="make synthetic training traces",
                       description="Traces are the simulator's input; `rigl-hw train` records real ones.")
    tsub = p.add_subparsers(dest="trace_command", required=True, metavar="COMMAND")
    s = tsub.add_parser("synth", help="write a synthetic trace (random positions, exact counts)",
                        description="Synthetic RigL trace with the structure of a recorded one: exact nonzeros per "
                                    "layer, drop/grow counts following the decay schedule, random positions.")
    s.add_argument("--model", required=True, help="zoo model name, package.module:factory (with --input-shape) "
                                                  "or FILE.onnx")
    add_input_shape(s)
    s.add_argument("--width", type=finite_float, default=1.0, help="width multiplier of a zoo model (default 1.0)")
    s.add_argument("--distribution", required=True, choices=DISTRIBUTIONS, help="per-layer sparsity distribution")
    s.add_argument("--sparsity", type=finite_float, required=True, help="overall sparsity S in [0, 1)")
    s.add_argument("--steps", type=positive_int, required=True, help="training steps of the run")
    s.add_argument("--delta-t", type=positive_int, required=True, help="ΔT, steps between mask updates")
    s.add_argument("--alpha", type=finite_float, default=0.3,
                   help="α, fraction of each layer's nonzeros changed at the first mask update, in (0, 1] (default 0.3)")
    s.add_argument("--t-end", type=positive_int, required=True, help="T_end, last mask-update step")
    s.add_argument("--decay", default="cosine", choices=DECAY_SCHEDULES,
                   help="how the update fraction decays from α to 0 at T_end (default cosine)")
    s.add_argument("--batch", type=positive_int, required=True, help="batch size, samples per step")
    s.add_argument("--method", default="rigl", choices=SYNTH_METHODS, help="method recorded in the trace "
                                                                          "(default rigl; static: no updates)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the mask positions (default 0)")
    s.add_argument("--input-density", type=finite_float, default=None,
                   help="density in [0, 1] of every conv/linear layer's input activations (trace format v2 "
                        "operand sparsity; default: not recorded)")
    s.add_argument("--grad-density", type=finite_float, default=None,
                   help="density in [0, 1] of every conv/linear layer's output gradients (default: not recorded)")
    s.add_argument("--operand-samples", type=positive_int, default=2,
                   help="samples per synthetic operand bitmap (default 2)")
    s.add_argument("--out", required=True, metavar="DIR", help="output trace directory (created; written "
                                                               "atomically; an older trace there is replaced whole)")
    add_json(s)
    s.set_defaults(func=run_synth)
    return p


def trace_summary(path) -> dict:
    """What a trace directory holds: model, method, steps, updates, per-layer nonzeros (one JSON object)."""
    from ..trace import read_trace

    t = read_trace(path)
    nnz = [int(z) for z in t.initial_nonzeros()]
    params = [int(s.n_params) for s in t.specs]
    return {"trace": str(t.path), "model": t.meta.get("model"), "method": t.method, "masks": t.masks_kind,
            "format_version": t.format_version, "batch": int(t.batch_size),
            "steps": int(t.total_steps), "mask_updates": len(t.update_steps),
            "update_steps": [int(v) for v in t.update_steps], "params": sum(params), "nonzeros": sum(nnz),
            "density": sum(nnz) / sum(params) if params else 0.0,
            "layers": [{"name": s.name, "kind": s.kind, "params": p, "nonzeros": z}
                       for s, p, z in zip(t.specs, params, nnz)]}


def run_synth(args: argparse.Namespace) -> int:
    from ..trace_synth import write_synthetic_trace

    out = write_synthetic_trace(args.out, args.model, args.distribution, args.sparsity, args.steps, args.delta_t,
                                args.alpha, args.t_end, args.batch, decay=args.decay, seed=args.seed,
                                width=args.width, method=args.method, input_density=args.input_density,
                                grad_density=args.grad_density, operand_samples=args.operand_samples,
                                input_shape=input_shape(args))
    say(f"wrote synthetic trace {out}")
    if args.json:
        print_json(trace_summary(out))
    return 0
