"""`rigl-hw simulate`: a training trace (or an ONNX model, as inference) on one or more hardware specs."""

from __future__ import annotations

import argparse
import sys

from ._choices import MAPPINGS, OBJECTIVES, SIM_MODES
from ._common import CliError, add_input_shape, add_json, input_shape, positive_int, print_json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="simulate a training trace on a hardware spec (cycles, time, energy)",
                       description="Simulate every interval between mask updates with that interval's masks, "
                                   "times its length, plus each mask-update step.")
    p.add_argument("trace", metavar="TRACE_DIR|FILE.onnx",
                   help="trace directory (from `rigl-hw train` or `rigl-hw trace synth`), or FILE.onnx "
                        "(simulated as inference)")
    p.add_argument("--hardware", required=True, nargs="+", metavar="HW",
                   help="one or more preset names (`rigl-hw hardware list`) or .toml specs; several give one "
                        "comparison table")
    p.add_argument("--baseline", default="dense", choices=("dense", "none"),
                   help="dense (default): also simulate the same steps with all-dense masks and no mask updates "
                        "on each hardware, and report time and energy relative to it; none: skip it")
    p.add_argument("--mode", default="real", choices=SIM_MODES,
                   help="real (use the trace's masks, default), statistical (random masks of the same densities, "
                        "in expectation), or compare (both, with real/statistical ratios per layer and pass)")
    p.add_argument("--mapping", default="per-layer", choices=MAPPINGS,
                   help="per-layer (default: the mapper picks one mapping per layer and pass from its density; "
                        "every mask snapshot is evaluated under it), per-snapshot (re-map when a layer's density "
                        "changes), or fixed (the preset's fixed dataflow, the SCALE-Sim-validated fold model)")
    p.add_argument("--objective", default="latency", choices=OBJECTIVES,
                   help="what the mapper minimises (default latency; ignored with --mapping fixed)")
    add_json(p)
    p.add_argument("--out", metavar="FILE.csv", help="output file: the per-snapshot, per-layer, per-pass table as CSV "
                                                      "(--mode compare: the per-layer comparison)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    p.add_argument("--plot", metavar="FILE.png", help="output file: a PNG of the run (cost per step over the run, "
                                                      "energy by component, cycles per layer and pass)")
    p.add_argument("--inference", action="store_true",
                   help="forward pass only: what the model costs per inference (always so for FILE.onnx; for a "
                        "trace, its final masks)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="--inference: samples per forward pass (default 1 for ONNX, the trace's batch otherwise)")
    add_input_shape(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulator.trace_run import simulate_trace, write_csv_atomic

    from ..atomic import refuse_self_overwrite

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
        print_json(summary)
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
        print_json(summary)
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
    res = simulate_inference(args.trace, args.hardware[0], batch=args.batch, input_shape=input_shape(args))
    summary = res.summary()
    if args.out:
        write_csv_atomic(res.table, args.out)
    if args.json:
        print_json(summary)
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
        print_json({**cmp, "layers": layers.to_dict("records")})
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

