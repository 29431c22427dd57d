"""`rigl-hw` command line. Each subcommand imports its package only when it runs.

Errors on bad input print one line `rigl-hw: error: ...` to stderr and exit with code 2.
`--json` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")


# --------------------------------------------------------------------------------------------- flops
def _add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="parameters, inference and training FLOPs of a sparse model",
                       description="Per-layer parameters and FLOPs of a zoo model under a sparsity distribution "
                                   "(RigL paper Appendix H: 2·nnz·P + E FLOPs per layer per sample).")
    p.add_argument("--model", required=True, help="zoo model name (resnet50, mobilenet_v1, ...)")
    p.add_argument("--width", type=_float, default=1.0, help="width multiplier (default 1.0)")
    p.add_argument("--distribution", required=True, help="uniform | er | erk")
    p.add_argument("--sparsity", type=_float, required=True, help="overall sparsity S in [0, 1)")
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
                          multiplier=args.multiplier, t_end=args.t_end, steps=args.steps, batch=args.batch)
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
    s.add_argument("--model", required=True)
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
    s.add_argument("--out", required=True, help="output trace directory")
    s.set_defaults(func=_run_trace_synth)


def _run_trace_synth(args: argparse.Namespace) -> int:
    from .trace_synth import write_synthetic_trace

    out = write_synthetic_trace(args.out, args.model, args.distribution, args.sparsity, args.steps, args.delta_t,
                                args.alpha, args.t_end, args.batch, decay=args.decay, seed=args.seed,
                                width=args.width, method=args.method)
    print(f"wrote synthetic trace {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- simulate
def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate a training trace on a hardware spec (cycles, time, energy)",
                       description="Simulate every interval between mask updates with that interval's masks, "
                                   "times its length, plus each mask-update step.")
    p.add_argument("trace", help="trace directory (from `rigl-hw train` or `rigl-hw trace synth`)")
    p.add_argument("--hardware", required=True, help="preset name (`rigl-hw hardware list`) or a .toml spec")
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
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulator.trace_run import simulate_trace, write_csv_atomic

    for opt in ("out", "plot"):          # fail before the (long) simulation
        path = getattr(args, opt)
        if path and not Path(path).resolve().parent.is_dir():
            raise CliError(f"--{opt} {path}: its directory does not exist; create it first")
    if args.plot and args.mode == "compare":
        raise CliError("--plot draws one run; use it with --mode real or statistical, not compare")
    if args.mode == "compare":
        return _run_simulate_compare(args)
    sim = simulate_trace(args.trace, args.hardware, mode=args.mode, progress=args.progress and sys.stderr.isatty(),
                         mapping=args.mapping, objective=args.objective)
    summary = sim.summary()
    if args.out:
        write_csv_atomic(sim.run.table, args.out)
    if args.plot:
        from simulator.run_plot import plot_run

        plot_run(sim.run.table, args.plot, f"{summary['model']} {summary['method']} ({summary['masks']} masks), "
                 f"{summary['steps']} steps at batch {summary['batch']} on {summary['hardware']}")
    if args.json:
        print(json.dumps(summary))
        return 0
    t, n, u = summary["totals"], summary["per_step"]["normal"], summary["per_step"]["update"]
    print(f"{summary['model']} {summary['method']} trace ({summary['masks']} masks), {summary['steps']} steps at batch "
          f"{summary['batch']}, {summary['mask_updates']} mask updates, on {summary['hardware']}")
    print(f"  mapping: {_mapping_label(summary)}")
    print(f"  whole run:   {t['cycles']:.4g} cycles  {t['time_s']:.4g} s  {t['energy_j']:.4g} J")
    print(f"  normal step: {n['cycles']:.4g} cycles  {n['energy_j']:.4g} J")
    if summary["mask_updates"]:
        print(f"  update step: {u['cycles']:.4g} cycles  {u['energy_j']:.4g} J")
    if args.out:
        print(f"  table: {args.out}")
    if args.plot:
        print(f"  plot: {args.plot}")
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
    show = hsub.add_parser("show", help="the full validated spec of a preset or a TOML file")
    show.add_argument("name", help="preset name (see `rigl-hw hardware list`) or path to a .toml spec")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_run_hardware_show)


def _run_hardware_list(args: argparse.Namespace) -> int:
    from simulator.hardware import list_presets, load_hardware

    for name in list_presets():
        spec = load_hardware(name)
        arr = spec.pe_array
        print(f"{name:<22} {arr.rows}x{arr.cols} {spec.dataflow:<3} {spec.number_format:<5} "
              f"sparsity={spec.sparsity.mode:<5} format={spec.weight_format.kind:<8} {spec.description}")
    return 0


def _run_hardware_show(args: argparse.Namespace) -> int:
    from simulator.hardware import load_hardware

    spec = load_hardware(args.name).to_dict()
    if args.json:
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
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    if args.name not in STUDY_NAMES:
        raise CliError(f"unknown study {args.name!r}; choose one of {', '.join(STUDY_NAMES)}")
    from studies.index import run_study

    path = run_study(args.name, args.out, scheduler=args.scheduler, n_workers=args.workers, quick=args.quick,
                     progress=not args.no_progress)
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
    parser = argparse.ArgumentParser(
        prog="rigl-hw",
        description="Sparse training (RigL and baselines) and what it costs on sparse hardware.")
    parser.add_argument("--version", action="version", version="rigl-hw 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Error types that mean bad input (message shown, exit 2), imported lazily where cheap."""
    errors: list[type[BaseException]] = [CliError, FileNotFoundError, NotADirectoryError, PermissionError,
                                         IsADirectoryError]
    from .distributions import DistributionError
    from .flops import FlopsError
    from .schedules import ScheduleError
    from .trace import TraceError
    from .zoo import ZooError
    errors += [DistributionError, FlopsError, ScheduleError, TraceError, ZooError]
    for mod, name in (("simulator.hardware", "HardwareSpecError"), ("simulator.engine", "SimulationError"),
                      ("export.errors", "ExportError"), ("export.checkpoint", "ExportError"),
                      ("rigl_hw.checkpoint", "CheckpointError"), ("rigl_hw.errors", "RiglHwError"),
                      ("studies.sweep", "SweepError"), ("rigl_hw.data", "DataError"), ("rigl_hw.train_config", "TrainConfigError"),
                      ("rigl_hw.methods.base", "MethodError")):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, name):
            errors.append(getattr(m, name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    return run_guarded(parser.parse_args(argv))


def run_guarded(args: argparse.Namespace) -> int:
    """Run `args.func(args)`; a user error becomes one line on stderr and exit 2, Ctrl-C exit 130."""
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rigl-hw: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rigl-hw hardware show X | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - mapped to a one-line message if it is a user error
        if isinstance(e, _user_errors()) or getattr(e, "user_error", False):
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)) and e.filename:
                msg = f"{e.strerror}: {e.filename}"
            print(f"rigl-hw: error: {msg}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
