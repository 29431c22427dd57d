"""`rigl-hw` command line. Each subcommand imports its package only when it runs.

Errors on bad input print one line `rigl-hw: error: ...` to stderr and exit with code 2.
`--json` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .errors import EXIT_BAD_INPUT, RiglHwError, user_message


class CliError(RiglHwError):
    """A user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error format: one line `rigl-hw: error: ...`, exit 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog[len("rigl-hw "):] if self.prog.startswith("rigl-hw ") else ""
        print(f"rigl-hw: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)",
              file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _positive_int(text: str) -> int:
    """An integer > 0 (steps, batch, workers, intervals): 0 and negatives are refused, not defaulted."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def _float(text: str) -> float:
    """A finite number (nan and inf are refused)."""
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _input_shape(args: argparse.Namespace):
    from .user_model import parse_input_shape

    return parse_input_shape(getattr(args, "input_shape", None))


# --------------------------------------------------------------------------------------------- flops
def _add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="parameters, inference and training FLOPs of a sparse model",
                       description="Per-layer parameters and FLOPs of a zoo model under a sparsity distribution "
                                   "(RigL paper Appendix H: 2·nnz·P + E FLOPs per layer per sample).")
    p.add_argument("--model", required=True, help="zoo model name (resnet50, mobilenet_v1, ...), "
                                                  "package.module:factory (with --input-shape) or FILE.onnx")
    p.add_argument("--input-shape", default=None, metavar="C,H,W|F",
                   help="per-sample input shape of a package.module:factory model (or of an ONNX file's "
                        "symbolic dimensions)")
    p.add_argument("--width", type=_float, default=1.0, help="width multiplier (default 1.0)")
    p.add_argument("--distribution", default=None, help="uniform | er | erk (required unless --model is an ONNX "
                                                        "file: then the file's own zeros are used)")
    p.add_argument("--sparsity", type=_float, default=None, help="overall sparsity S in [0, 1) (required with "
                                                                  "--distribution)")
    p.add_argument("--power", type=_float, default=1.0, help="ER/ERK power-scale parameter (default 1)")
    p.add_argument("--method", help="training method: dense, static, snip, set, small_dense, rigl, snfs, pruning")
    p.add_argument("--delta-t", type=_positive_int, help="steps between mask updates (rigl)")
    p.add_argument("--multiplier", type=_float, default=1.0, help="train M× longer (default 1)")
    p.add_argument("--t-end", type=_positive_int, default=None,
                   help="last mask-update step of the 1x run (default: updates over the whole run, as the paper's formula)")
    p.add_argument("--steps", type=_positive_int, default=None, help="steps of the 1x run (default 32000, ImageNet)")
    p.add_argument("--batch", type=_positive_int, default=None, help="batch size (default 4096, ImageNet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_flops)


def _run_flops(args: argparse.Namespace) -> int:
    from .flops_report import flops_report, format_flops_table

    report = flops_report(model=args.model, width=args.width, distribution=args.distribution,
                          sparsity=args.sparsity, power=args.power, method=args.method, delta_t=args.delta_t,
                          multiplier=args.multiplier, t_end=args.t_end, steps=args.steps, batch=args.batch,
                          input_shape=_input_shape(args))
    if args.json:
        print(json.dumps(report))
    else:
        print(format_flops_table(report))
    return 0


# --------------------------------------------------------------------------------------------- trace
def _add_trace(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="make synthetic training traces")
    tsub = p.add_subparsers(dest="trace_command", required=True)
    s = tsub.add_parser("synth", help="write a synthetic trace (random positions, exact counts) for a zoo model",
                        description="Synthetic RigL trace with the structure of a recorded one: exact nonzeros per "
                                    "layer, drop/grow counts following the cosine schedule, random positions.")
    s.add_argument("--model", required=True, help="zoo model, package.module:factory (with --input-shape) or FILE.onnx")
    s.add_argument("--input-shape", default=None, metavar="C,H,W|F",
                   help="per-sample input shape of a package.module:factory model")
    s.add_argument("--width", type=_float, default=1.0)
    s.add_argument("--distribution", required=True)
    s.add_argument("--sparsity", type=_float, required=True)
    s.add_argument("--steps", type=_positive_int, required=True)
    s.add_argument("--delta-t", type=_positive_int, required=True)
    s.add_argument("--alpha", type=_float, default=0.3)
    s.add_argument("--t-end", type=_positive_int, required=True)
    s.add_argument("--decay", default="cosine", help="cosine | constant | inverse_power")
    s.add_argument("--batch", type=_positive_int, required=True)
    s.add_argument("--method", default="rigl", help="rigl | set | snfs | static")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--input-density", type=_float, default=None,
                   help="density in [0, 1] of every conv/linear layer's input activations (trace format v2 "
                        "operand sparsity; default: not recorded)")
    s.add_argument("--grad-density", type=_float, default=None,
                   help="density in [0, 1] of every conv/linear layer's output gradients (default: not recorded)")
    s.add_argument("--operand-samples", type=_positive_int, default=2,
                   help="samples per synthetic operand bitmap (default 2)")
    s.add_argument("--out", required=True, help="output trace directory")
    s.set_defaults(func=_run_trace_synth)


def _run_trace_synth(args: argparse.Namespace) -> int:
    from .trace_synth import write_synthetic_trace

    out = write_synthetic_trace(args.out, args.model, args.distribution, args.sparsity, args.steps, args.delta_t,
                                args.alpha, args.t_end, args.batch, decay=args.decay, seed=args.seed,
                                width=args.width, method=args.method, input_density=args.input_density,
                                grad_density=args.grad_density, operand_samples=args.operand_samples,
                                input_shape=_input_shape(args))
    print(f"wrote synthetic trace {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- simulate
def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate a training trace on a hardware spec (cycles, time, energy)",
                       description="Simulate every interval between mask updates with that interval's masks, "
                                   "times its length, plus each mask-update step.")
    p.add_argument("trace", help="trace directory (from `rigl-hw train` or `rigl-hw trace synth`), or FILE.onnx "
                                 "(simulated as inference)")
    p.add_argument("--hardware", required=True, nargs="+", metavar="HW",
                   help="one or more preset names (`rigl-hw hardware list`) or .toml specs; several give one "
                        "comparison table")
    p.add_argument("--baseline", default="dense", choices=("dense", "none"),
                   help="dense (default): also simulate the same steps with all-dense masks and no mask updates "
                        "on each hardware, and report time and energy relative to it; none: skip it")
    p.add_argument("--mode", default="real", choices=("real", "statistical", "compare"),
                   help="real (use the trace's masks, default), statistical (random masks of the same densities, "
                        "in expectation), or compare (both, with real/statistical ratios per layer and pass)")
    p.add_argument("--mapping", default="per-layer", choices=("per-layer", "per-snapshot", "fixed"),
                   help="per-layer (default: the mapper picks one mapping per layer and pass from its density; "
                        "every mask snapshot is evaluated under it), per-snapshot (re-map when a layer's density "
                        "changes), or fixed (the preset's fixed dataflow, the SCALE-Sim-validated fold model)")
    p.add_argument("--objective", default="latency", choices=("latency", "energy", "edp"),
                   help="what the mapper minimises (default latency; ignored with --mapping fixed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", help="write the per-snapshot, per-layer, per-pass table to this CSV "
                                 "(--mode compare: the per-layer comparison)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the run: cost per step over the run, energy by "
                                                      "component, cycles per layer and pass")
    p.add_argument("--inference", action="store_true",
                   help="forward pass only: what the model costs per inference (always so for FILE.onnx; for a "
                        "trace, its final masks)")
    p.add_argument("--batch", type=_positive_int, default=None,
                   help="--inference: samples per forward pass (default 1 for ONNX, the trace's batch otherwise)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W|F",
                   help="--inference on ONNX: per-sample input shape for symbolic input dimensions")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulator.trace_run import simulate_trace, write_csv_atomic

    from .atomic import refuse_self_overwrite

    for opt in ("out", "plot"):          # fail before the (long) simulation
        path = getattr(args, opt)
        if path and not Path(path).resolve().parent.is_dir():
            raise CliError(f"--{opt} {path}: its directory does not exist; create it first")
    hw_files = [h for h in args.hardware if Path(h).exists()]
    refuse_self_overwrite({"--out": args.out, "--plot": args.plot}, [args.trace, *hw_files])
    if args.out and args.plot:
        refuse_self_overwrite({"--plot": args.plot}, [args.out])
    if args.plot and args.mode == "compare":
        raise CliError("--plot draws one run; use it with --mode real or statistical, not compare")
    if args.inference or str(args.trace).lower().endswith(".onnx"):
        return _run_simulate_inference(args)
    if args.batch is not None:
        raise CliError("--batch sets the inference batch; use it with --inference (a trace keeps its own batch)")
    if args.mode == "compare":
        if len(args.hardware) > 1:
            raise CliError("--mode compare takes one --hardware; compare several specs with --mode real or statistical")
        args.hardware = args.hardware[0]
        return _run_simulate_compare(args)
    if len(args.hardware) > 1:
        return _run_simulate_many(args)
    baseline = None if args.baseline == "none" else args.baseline
    sim = simulate_trace(args.trace, args.hardware[0], mode=args.mode,
                         progress=args.progress and sys.stderr.isatty(), baseline=baseline,
                         mapping=args.mapping, objective=args.objective)
    from simulator.trace_run import comparison_summary

    summary = comparison_summary([sim])
    if args.out:
        write_csv_atomic(sim.run.table, args.out)
    if args.plot:
        from simulator.run_plot import plot_run

        plot_run(sim.run.table, args.plot, f"{summary['model']} {summary['method']} ({summary['masks']} masks), "
                 f"{summary['steps']} steps at batch {summary['batch']} on {summary['hardware']}; memory stalls "
                 f"{100 * summary['stall_share']:.1f}% of cycles", clock_hz=sim.hardware.pe_array.clock_hz)
    if args.json:
        print(json.dumps(summary))
        return 0
    t, n, u = summary["totals"], summary["per_step"]["normal"], summary["per_step"]["update"]
    print(f"{summary['model']} {summary['method']} trace ({summary['masks']} masks), {summary['steps']} steps at batch "
          f"{summary['batch']}, {summary['mask_updates']} mask updates, on {summary['hardware']}")
    print(f"  mapping: {_mapping_label(summary)}")
    ex = summary.get("operands_exploited") or {}
    print("  zeros exploited: " + "; ".join(f"{p} {'+'.join(v) if v else 'none'}" for p, v in ex.items()))
    print(f"  whole run:   {t['cycles']:.4g} cycles  {t['time_s']:.4g} s  {t['energy_j']:.4g} J  "
          f"(memory stalls {100 * summary['stall_share']:.1f}% of cycles)")
    print(f"  normal step: {n['cycles']:.4g} cycles  {n['energy_j']:.4g} J")
    if summary["mask_updates"]:
        print(f"  update step: {u['cycles']:.4g} cycles  {u['energy_j']:.4g} J")
    if "baseline" in summary:
        b = summary["baseline"]
        print(f"  dense run:   {b['totals']['cycles']:.4g} cycles  {b['totals']['time_s']:.4g} s  "
              f"{b['totals']['energy_j']:.4g} J  (memory stalls {100 * b['stall_share']:.1f}%); this run takes "
              f"{b['ratio']['time']:.3f}x its time and {b['ratio']['energy']:.3f}x its energy")
    _print_stalled_layers(summary)
    if args.out:
        print(f"  table: {args.out}")
    if args.plot:
        print(f"  plot: {args.plot}")
    return 0


def _print_stalled_layers(run: dict, top: int = 3, indent: str = "  ") -> None:
    worst = sorted((r for r in run["layers"] if r["stall_share"] > 0), key=lambda r: -r["stall_share"])[:top]
    if worst:
        print(f"{indent}most memory-bound (one normal step, initial masks): " + ", ".join(
            f"{r['name']} {r['pass']} {100 * r['stall_share']:.0f}%" for r in worst))


def _run_simulate_many(args: argparse.Namespace) -> int:
    import pandas as pd

    from simulator.trace_run import compare_hardware, comparison_rows, comparison_summary, write_csv_atomic

    baseline = None if args.baseline == "none" else args.baseline
    sims = compare_hardware(args.trace, args.hardware, mode=args.mode, baseline=baseline,
                            progress=args.progress and sys.stderr.isatty(), mapping=args.mapping,
                            objective=args.objective)
    summary = comparison_summary(sims)
    rows = comparison_rows(summary)
    if args.out:
        write_csv_atomic(pd.concat([s.run.table.assign(hardware=r["label"])
                                    for s, r in zip(sims, summary["runs"])], ignore_index=True), args.out)
    if args.plot:
        from simulator.compare_plot import plot_comparison

        plot_comparison(summary, args.plot)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['model']} {summary['method']} trace ({summary['masks']} masks), {summary['steps']} steps at batch "
          f"{summary['batch']}, {summary['mask_updates']} mask updates, on {len(rows)} hardware specs; "
          f"mapping: {_mapping_label(summary)}")
    dense = baseline is not None
    head = f"  {'hardware':<24} {'time (s)':>10} {'energy (J)':>11} {'stalls':>7}"
    if dense:
        head += f" {'dense s':>10} {'dense J':>10} {'time/dense':>10} {'energy/dense':>12} {'dense stalls':>12}"
    print(head)
    for r in rows:
        line = f"  {r['hardware']:<24} {r['time_s']:>10.4g} {r['energy_j']:>11.4g} {100 * r['stall_share']:>6.1f}%"
        if dense:
            line += (f" {r['dense_time_s']:>10.4g} {r['dense_energy_j']:>10.4g} {r['time_ratio']:>10.3f} "
                     f"{r['energy_ratio']:>12.3f} {100 * r['dense_stall_share']:>11.1f}%")
        print(line)
    if dense:
        print("  dense: the same steps with all-dense masks and no mask updates, on the same hardware")
    print("  stalls: memory-stall share, cycles beyond compute / all cycles")
    for run in summary["runs"]:
        _print_stalled_layers(run, indent=f"  {run['label']}: ")
    if args.out:
        print(f"  table: {args.out}")
    if args.plot:
        print(f"  plot: {args.plot}")
    return 0


def _run_simulate_inference(args: argparse.Namespace) -> int:
    from simulator.inference import simulate_inference
    from simulator.trace_run import write_csv_atomic

    if args.mode != "real" or args.plot:
        raise CliError("--inference simulates the model's own masks once: drop --mode and --plot")
    if len(args.hardware) > 1:
        raise CliError("--inference takes one --hardware; run it once per spec")
    res = simulate_inference(args.trace, args.hardware[0], batch=args.batch, input_shape=_input_shape(args))
    summary = res.summary()
    if args.out:
        write_csv_atomic(res.table, args.out)
    if args.json:
        print(json.dumps(summary))
        return 0
    b, s1 = summary["per_batch"], summary["per_sample"]
    print(f"{summary['model']} inference at batch {summary['batch']} on {summary['hardware']} "
          f"(density {summary['density']:.3f}, {summary['nonzeros']:,} of {summary['params']:,} weights)")
    print(f"  per batch:  {b['cycles']:.4g} cycles  {b['time_s']:.4g} s  {b['energy_j']:.4g} J")
    print(f"  per sample: {s1['cycles']:.4g} cycles  {s1['time_s']:.4g} s  {s1['energy_j']:.4g} J")
    if args.out:
        print(f"  table: {args.out}")
    return 0
def _mapping_label(summary: dict) -> str:
    if summary["mapping"] == "fixed":
        return "fixed (the preset's fixed dataflow)"
    return f"{summary['mapping']}, objective {summary['objective']}"


def _run_simulate_compare(args: argparse.Namespace) -> int:
    from simulator.trace_run import compare_trace, write_csv_atomic

    cmp = compare_trace(args.trace, args.hardware, mapping=args.mapping, objective=args.objective)
    layers = cmp.pop("layers")
    if args.out:
        write_csv_atomic(layers, args.out)
    if args.json:
        print(json.dumps({**cmp, "layers": layers.to_dict("records")}))
        return 0
    r, s, q = cmp["totals"]["real"], cmp["totals"]["statistical"], cmp["ratio"]
    print(f"{cmp['model']} {cmp['method']} trace ({cmp['masks']} masks), {cmp['steps']} steps, "
          f"{cmp['mask_updates']} mask updates, on {cmp['hardware']}: real masks vs random masks of the same densities")
    print(f"  mapping: {_mapping_label(cmp)}")
    print(f"  whole run, real:        {r['cycles']:.4g} cycles  {r['time_s']:.4g} s  {r['energy_j']:.4g} J")
    print(f"  whole run, statistical: {s['cycles']:.4g} cycles  {s['time_s']:.4g} s  {s['energy_j']:.4g} J")
    print(f"  real / statistical:     {q['cycles']:.4f} cycles  {q['energy_j']:.4f} energy")
    worst = layers.assign(dev=(layers["ratio"] - 1).abs()).sort_values("dev", ascending=False).head(5)
    print("  layers and passes where the real masks differ most (one normal step, final masks):")
    for row in worst.itertuples():
        print(f"    {row.layer:32s} {row._2:15s} density {row.density:.3f}  real/statistical {row.ratio:.4f}")
    if args.out:
        print(f"  table: {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------- map
def _add_map(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="search the best mapping of a layer (or a zoo model) on a hardware spec",
                       description="Mapping-driven model: loop nest per level, per-level traffic and energy.")
    p.add_argument("--hardware", required=True, help="preset name (`rigl-hw hardware list`) or a .toml spec")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--layer", help='"conv N=16 C=64 M=64 R=3 S=3 P=56 Q=56 stride=1" or "gemm M=512 N=512 K=512"')
    src.add_argument("--model", help="zoo model name (every sparsifiable layer)")
    p.add_argument("--width", type=_float, default=1.0, help="width multiplier of --model (default 1.0)")
    p.add_argument("--distribution", help="uniform | er | erk (with --sparsity): per-layer weight densities")
    p.add_argument("--sparsity", type=_float, help="overall sparsity S in [0, 1) (with --distribution)")
    p.add_argument("--pass", dest="pass_name", default="forward",
                   choices=("forward", "backward_data", "backward_weight", "all"))
    p.add_argument("--batch", type=_positive_int, default=None, help="batch N (default: the layer's N, else 1)")
    p.add_argument("--objective", default="latency", choices=("latency", "energy", "edp"))
    dens = p.add_mutually_exclusive_group()
    dens.add_argument("--weight-density", type=_float, help="statistical weight density in [0, 1]")
    dens.add_argument("--weight-mask", help="a .npy mask of the --layer weight's shape (its density is used)")
    p.add_argument("--mapping", help="evaluate this mapping TOML instead of searching (with --layer)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    # --- operand sparsity (issue 11; logic in simulator/map_cli.py) ---
    ops = p.add_argument_group("operand sparsity", "activation / gradient zeros, used where the hardware exploits them")
    inp = ops.add_mutually_exclusive_group()
    inp.add_argument("--input-density", type=_float, help="statistical input-activation density in [0, 1]")
    inp.add_argument("--input-mask", help="a .npy input-activation mask (N, C, H, W) of the --layer (real mode)")
    grd = ops.add_mutually_exclusive_group()
    grd.add_argument("--grad-density", type=_float, help="statistical output-gradient density in [0, 1]")
    grd.add_argument("--grad-mask", help="a .npy output-gradient mask (N, M, P, Q) of the --layer (real mode)")
    # --- end operand sparsity ---
    p.set_defaults(func=lambda args: __import__("simulator.map_cli", fromlist=["run_map"]).run_map(args))


# ---------------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    from export.cli import add_export_arguments  # argparse only; torch and onnx load when it runs

    p = sub.add_parser("export", help="export a trained sparse checkpoint to ONNX (dense zeros or sparse initializers)",
                       description="Masked model -> ONNX with the masks baked into the weights; --verify checks it "
                                   "in onnxruntime against PyTorch and reads the sparsity back.")
    add_export_arguments(p)
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from export.cli import run_export

    return run_export(args)


# ------------------------------------------------------------------------------------------ hardware
def _add_hardware(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hardware", help="list or show simulated hardware presets")
    hsub = p.add_subparsers(dest="hardware_command", required=True)
    ls = hsub.add_parser("list", help="names and descriptions of the shipped presets")
    ls.set_defaults(func=_run_hardware_list)
    show = hsub.add_parser("show", help="the full validated spec of a preset or a TOML file and its resolved "
                                        "per-action energy table (pJ per word, with sources)")
    show.add_argument("name", help="preset name (see `rigl-hw hardware list`) or path to a .toml spec")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_run_hardware_show)


def _run_hardware_list(args: argparse.Namespace) -> int:
    from simulator.hardware import list_presets, load_hardware

    for name in list_presets():
        spec = load_hardware(name)
        arr = spec.pe_array
        print(f"{name:<22} {arr.rows}x{arr.cols} {spec.dataflow:<3} {spec.number_format:<5} "
              f"sparsity={'skip' if spec.skips else spec.sparsity.mode:<5} format={spec.weight_format.kind:<8} {spec.description}")
    return 0


def _run_hardware_show(args: argparse.Namespace) -> int:
    from simulator.energy import format_energy_table, resolve_action_energies
    from simulator.hardware import load_hardware
    from simulator.sparse_features import describe as describe_sparse

    hw = load_hardware(args.name)
    table = resolve_action_energies(hw)  # before any output: a bad ERT fails with nothing printed
    spec = hw.to_dict()
    if args.json:
        resolved = table.to_dict()
        spec["energy"] = {**spec["energy"], "ert_file": resolved.pop("ert"), **resolved}
        spec["sparse_features"] = describe_sparse(hw)
        print(json.dumps(spec))
        return 0

    def show(d: dict, indent: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                print(f"{indent}{k}:")
                show(v, indent + "  ")
            elif isinstance(v, (list, tuple)) and v and isinstance(v[0], dict):
                for i, item in enumerate(v):
                    print(f"{indent}{k}[{i}]:")
                    show(item, indent + "  ")
            else:
                print(f"{indent}{k}: {v}")
    show(spec)
    print("sparse features (simulator/sparse_features.py):")
    for line in describe_sparse(hw):
        print(f"  {line}")
    print(format_energy_table(table))
    return 0


# ----------------------------------------------------------------------------------------------- study
STUDY_NAMES = ("uniform-vs-erk", "training-cost", "update-interval", "methods-small", "all")


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a reproducible study (CSV tables, PNG plots, report.md)",
                       description="Studies: " + ", ".join(STUDY_NAMES) + ". Grids run on Dask (a local cluster "
                                   "by default); finished points are cached under OUT/.cache.")
    p.add_argument("name", help=" | ".join(STUDY_NAMES))
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (default: local cluster)")
    p.add_argument("--workers", type=_positive_int, default=2, help="local Dask workers (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny grids (seconds), for smoke tests")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--hardware", nargs="+", metavar="HW", default=None,
                   help="run on these presets or .toml specs instead of the study's own presets "
                        "(methods-small simulates its traces on the first one)")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    if args.name not in STUDY_NAMES:
        raise CliError(f"unknown study {args.name!r}; choose one of {', '.join(STUDY_NAMES)}")
    from studies.sweep import check_scheduler, check_workers

    check_workers(args.workers)          # before anything starts: a bad count or address never hangs
    check_scheduler(args.scheduler)
    if args.hardware and args.name == "methods-small" and len(args.hardware) > 1:
        raise CliError("methods-small simulates its traces on one hardware; give one --hardware")
    if args.hardware:
        from simulator.hardware import load_hardware

        for h in args.hardware:       # a bad spec fails before any study starts
            load_hardware(h)
    from studies.index import run_study

    path = run_study(args.name, args.out, scheduler=args.scheduler, n_workers=args.workers, quick=args.quick,
                     progress=not args.no_progress, presets=tuple(args.hardware) if args.hardware else None)
    print(f"wrote {path}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from .train_cli import add_train_arguments

    p = sub.add_parser("train", help="train a sparse model (RigL, SET, SNFS, static, ...) and write its trace",
                       description="Sparse training on offline data sets. Writes RUN_DIR/metrics.csv, "
                                   "checkpoint.pt and trace/ (the simulator's input). Ctrl-C writes a checkpoint; "
                                   "--resume RUN_DIR continues exactly. Multi-process: "
                                   "torchrun --nproc_per_node 2 -m rigl_hw.train ...")
    add_train_arguments(p)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .train_cli import run_train

    return run_train(args)


# ---------------------------------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job end to end on embedded defaults (no downloads)")
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out)


# ---------------------------------------------------------------------------------------------- main
_REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_flops, _add_train, _add_trace, _add_simulate, _add_map, _add_hardware, _add_export, _add_study, _add_demo]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rigl-hw",
        description="Sparse training (RigL and baselines) and what it costs on sparse hardware.")
    parser.add_argument("--version", action="version", version="rigl-hw 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; every expected failure is one line on stderr and exit 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:      # --help / --version (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    return run_guarded(args)


def report_error(e: BaseException) -> int | None:
    """Print the one-line message of an expected failure and return exit code 2; None for a bug."""
    msg = user_message(e)
    if msg is None:
        return None
    print(f"rigl-hw: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_guarded(args: argparse.Namespace) -> int:
    """Run `args.func(args)`; an expected failure (rigl_hw.errors) becomes one line on stderr and exit 2,
    Ctrl-C exit 130; an unexpected exception keeps its traceback (it is a bug)."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rigl-hw: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rigl-hw hardware show X | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - mapped to a one-line message if it is an expected failure
        code = report_error(e)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
