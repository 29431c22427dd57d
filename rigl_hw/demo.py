"""The README's main job, end to end on embedded defaults (no downloads), in about a minute on 2 cores.

1. FLOPs: the Uniform-vs-ERK parameters/FLOPs table of ResNet-50 and MobileNet-v1 (paper Table 2 style).
2. Train: an MLP on scikit-learn's bundled digits, ERK 90% sparse, with RigL and with Static masks
   (and the dense model for reference); each run writes metrics, a checkpoint and a trace.
3. Simulate: each trace on a dense 32x32 array and on a weight-skipping 32x32 array with bitmask
   metadata: time and energy of the whole run, normalised to the dense run on the same hardware.
4. Export: the RigL checkpoint to ONNX in both formats, verified in onnxruntime against PyTorch.

Everything lands in OUT/report.md (tables, training curves in training.png, the RigL run's picture in
rigl_run.png, plus each stage's files); the same tables are printed on stdout.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .flops_report import flops_report

DEMO_METHODS = ("dense", "static", "rigl")
DEMO_PRESETS = ("dense-32x32", "skip-bitmask-32x32")
DEMO_TRAINING: dict[str, Any] = dict(model="mlp", dataset="digits", distribution="erk", sparsity=0.9, steps=800,
                                     batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                                     lr_schedule="cosine", delta_t=50, alpha=0.3, t_end=600, seed=0)
LABEL = {"dense": "Dense", "static": "Static", "rigl": "RigL"}


def uniform_vs_erk_table(models=("resnet50", "mobilenet_v1"), sparsities=(0.8, 0.9)) -> list[dict]:
    rows = []
    for model in models:
        for s in sparsities:
            for dist in ("uniform", "erk"):
                r = flops_report(model, dist, s, method="rigl", delta_t=100)
                rows.append({"model": model, "sparsity": s, "distribution": dist,
                             "params": r["params"]["sparse"], "params_ratio": r["params"]["sparse"] / r["params"]["dense"],
                             "inference_flops": r["inference_flops"]["sparse"],
                             "inference_ratio": r["inference_flops"]["ratio"],
                             "train_ratio": r["train_flops"]["ratio"]})
    return rows


def _flops_markdown(rows: list[dict]) -> str:
    lines = ["| model | S | distribution | params | params/dense | GFLOPs/sample | test FLOPs/dense | "
             "train FLOPs/dense (RigL, ΔT=100) |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sparsity']} | {r['distribution']} | {r['params']:,} | {r['params_ratio']:.3f} | "
                     f"{r['inference_flops'] / 1e9:.3f} | {r['inference_ratio']:.3f} | {r['train_ratio']:.3f} |")
    return "\n".join(lines)


@dataclass
class DemoRun:
    method: str
    run_dir: Path
    accuracy: float
    nonzeros: int
    seconds: float


def train_runs(out: Path, steps: int | None = None) -> list[DemoRun]:
    """Train the demo's methods (same data, seed and step budget); `steps` overrides for quick checks."""
    from .train import TrainConfig, train

    settings = dict(DEMO_TRAINING)
    if steps is not None:
        settings.update(steps=steps, delta_t=max(1, steps // 16), t_end=max(1, (3 * steps) // 4))
    runs = []
    for method in DEMO_METHODS:
        config = TrainConfig(method=method, out=str(out / "runs" / method), progress=False,
                             eval_every=max(1, settings["steps"] // 8), **settings)
        res = train(config)
        runs.append(DemoRun(method, res.run_dir, float(res.eval["eval_accuracy"]), sum(res.nonzeros.values()),
                            res.seconds))
        _say(f"  {LABEL[method]:6s} test accuracy {runs[-1].accuracy:.4f} ({res.seconds:.1f} s)")
    return runs


def simulate_runs(runs: list[DemoRun], presets=DEMO_PRESETS) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    """Whole-run time and energy of every trace on every preset, and the ratios to the dense run; also
    each simulation's per-row table, keyed (preset, method), for plotting."""
    from simulator.trace_run import simulate_trace

    rows, tables = [], {}
    for preset in presets:
        dense = None
        for run in runs:
            sim = simulate_trace(run.run_dir / "trace", preset)
            tables[(preset, run.method)] = sim.run.table
            s = sim.summary()
            row = {"hardware": preset, "method": run.method, "steps": s["steps"], "mask_updates": s["mask_updates"],
                   "cycles": s["totals"]["cycles"], "time_s": s["totals"]["time_s"],
                   "energy_j": s["totals"]["energy_j"]}
            dense = row if run.method == "dense" else dense
            rows.append(row)
        for row in rows[-len(runs):]:
            row["time_vs_dense"] = row["time_s"] / dense["time_s"] if dense else float("nan")
            row["energy_vs_dense"] = row["energy_j"] / dense["energy_j"] if dense else float("nan")
    return rows, tables


def training_figure(runs: list[DemoRun]):
    """Figure of training loss (25-step mean, log axis) and test accuracy (axis from 0 to 1) of every demo
    run, read from their metrics.csv."""
    import pandas as pd

    from studies.common import plot_style, pyplot

    plt = pyplot()
    with plot_style():
        fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.6))
        for r in runs:
            m = pd.read_csv(r.run_dir / "metrics.csv")
            ax_l.plot(m["step"], m["loss"].rolling(25, min_periods=1).mean(), label=LABEL[r.method])
            ev = m.dropna(subset=["eval_accuracy"])
            ax_a.plot(ev["step"], ev["eval_accuracy"], marker="o", label=LABEL[r.method])
        ax_l.set(xlabel="training step", ylabel="training loss (cross-entropy, nats;\n25-step mean, log scale)",
                 yscale="log", title="Training loss")
        ax_a.set(xlabel="training step", ylabel="test accuracy (fraction correct)", ylim=(0, 1), title="Test accuracy")
        ax_l.legend()
    return fig


def plot_training(runs: list[DemoRun], path: Path) -> str:
    """Write `training_figure(runs)` to `path` (PNG, atomic); returns the file name."""
    from studies.common import save_fig

    return save_fig(training_figure(runs), path)


def export_run(run: DemoRun, out: Path) -> dict[str, Any]:
    """Export `run`'s checkpoint in both formats with verification; sizes and the check's errors."""
    from export import export_onnx

    reports = {fmt: export_onnx(run.run_dir / "checkpoint.pt", out / f"{run.method}_{fmt}.onnx", format=fmt,
                                verify=True) for fmt in ("dense", "sparse")}
    v = reports["sparse"].verification
    return {"dense_bytes": reports["dense"].file_bytes, "sparse_bytes": reports["sparse"].file_bytes,
            "verified": all(r.verification.ok for r in reports.values()),
            "max_abs_err": max(r.verification.max_abs_err for r in reports.values()),
            "layers_checked": v.layers_checked, "files": [str(r.path) for r in reports.values()]}


def demo_report(flops_rows: list[dict], runs: list[DemoRun], sim_rows: list[dict], exported: dict[str, Any],
                plots: dict[str, str] | None = None) -> str:
    """The demo's report.md, every figure taken from the stage results passed in."""
    acc = {r.method: r.accuracy for r in runs}
    t = DEMO_TRAINING
    lines = ["# rigl-hw demo: train -> trace -> simulate -> export", "",
             "## 1. Uniform vs ERK: parameters and FLOPs (paper Table 2 conventions)", "", _flops_markdown(flops_rows),
             "", f"## 2. Training: {t['model']} on digits, {t['distribution'].upper()} {t['sparsity']:.0%} sparse, "
             "same data, steps and seed", "",
             "| method | test accuracy | nonzero weights | wall time (s) | run dir |", "|---|---:|---:|---:|---|"]
    lines += [f"| {LABEL[r.method]} | {r.accuracy:.4f} | {r.nonzeros:,} | {r.seconds:.1f} | `{r.run_dir}` |" for r in runs]
    if "rigl" in acc and "static" in acc:
        diff = acc["rigl"] - acc["static"]
        lines += ["", f"RigL {'beats' if diff > 0 else 'does not beat'} Static by {diff * 100:+.2f} points of test "
                      "accuracy on this run (one seed; `rigl-hw study methods-small` has 3 seeds and spreads)."]
    plots = plots or {}
    if "training" in plots:
        lines += ["", f"![training curves]({plots['training']})"]
    lines += ["", "## 3. Simulated training cost of each trace (whole run)", "",
              "| hardware | method | steps | mask updates | cycles | time (s) | energy (J) | time / dense | energy / dense |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['hardware']} | {LABEL[r['method']]} | {r['steps']} | {r['mask_updates']} | {r['cycles']:.4g} | "
              f"{r['time_s']:.4g} | {r['energy_j']:.4g} | {r['time_vs_dense']:.3f} | {r['energy_vs_dense']:.3f} |"
              for r in sim_rows]
    if "rigl_run" in plots:
        lines += ["", f"The RigL run on `{DEMO_PRESETS[-1]}` (`rigl-hw simulate runs/rigl/trace --hardware "
                      f"{DEMO_PRESETS[-1]} --plot ...`): each mask update changes what a step costs.", "",
                  f"![RigL run on {DEMO_PRESETS[-1]}]({plots['rigl_run']})"]
    lines += ["", "## 4. ONNX export of the RigL model", "",
              f"- dense format (exact zeros): {exported['dense_bytes']:,} bytes; sparse initializers: "
              f"{exported['sparse_bytes']:,} bytes ({exported['sparse_bytes'] / exported['dense_bytes']:.3f}x)",
              f"- onnxruntime vs PyTorch: {'PASS' if exported['verified'] else 'FAIL'}, max abs error "
              f"{exported['max_abs_err']:.2e}; sparsity of {exported['layers_checked']} masked layers read back "
              "from the file equals the checkpoint's masks",
              f"- files: {', '.join('`' + f + '`' for f in exported['files'])}", ""]
    return "\n".join(lines)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def demo_summary(out: Path, flops_rows: list[dict], runs: list[DemoRun], sim_rows: list[dict],
                 exported: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The demo's results as one JSON-ready object (`rigl-hw demo --json`): the same figures as report.md."""
    return {"out": str(out), "report": str(out / "report.md"), "seconds": seconds, "flops": flops_rows,
            "runs": [{"method": r.method, "run_dir": str(r.run_dir), "accuracy": r.accuracy, "nonzeros": r.nonzeros,
                      "seconds": r.seconds} for r in runs],
            "simulation": sim_rows, "export": exported, "verified": bool(exported["verified"])}


def run_demo(out_dir: str, steps: int | None = None, as_json: bool = False) -> int:
    """Run all four stages into `out_dir`; print the report (as_json: `demo_summary` as one JSON object
    instead); 0 on success."""
    from studies.common import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _say("[1/4] FLOPs of Uniform vs ERK (ResNet-50, MobileNet-v1)")
    flops_rows = uniform_vs_erk_table()
    write_text(out / "uniform_vs_erk.md", "# Uniform vs ERK: parameters and FLOPs\n\n" + _flops_markdown(flops_rows) + "\n")
    _say(f"[2/4] training {', '.join(LABEL[m] for m in DEMO_METHODS)} on digits")
    runs = train_runs(out, steps)
    plots = {"training": plot_training(runs, out / "training.png")}
    _say(f"[3/4] simulating the traces on {', '.join(DEMO_PRESETS)}")
    sim_rows, tables = simulate_runs(runs)
    from simulator.hardware import load_hardware
    from simulator.run_plot import plot_run

    rigl = next(r for r in runs if r.method == "rigl")
    plot_run(tables[(DEMO_PRESETS[-1], "rigl")], out / "rigl_run.png",
             f"RigL MLP on digits, ERK 90%, on {DEMO_PRESETS[-1]}",
             clock_hz=load_hardware(DEMO_PRESETS[-1]).pe_array.clock_hz)
    plots["rigl_run"] = "rigl_run.png"
    _say("[4/4] exporting the RigL checkpoint to ONNX and verifying it in onnxruntime")
    exported = export_run(rigl, out)
    report = demo_report(flops_rows, runs, sim_rows, exported, plots)
    write_text(out / "report.md", report)
    seconds = time.perf_counter() - t0
    if as_json:
        import json

        print(json.dumps(demo_summary(out, flops_rows, runs, sim_rows, exported, seconds),
                         default=lambda o: o.item() if hasattr(o, "item") else str(o)))  # numpy scalars, Paths
    else:
        sys.stdout.write(report)
    _say(f"done in {seconds:.0f} s; report: {out / 'report.md'}")
    return 0 if exported["verified"] else 1
