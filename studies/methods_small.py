"""Small-scale reproduction of the RigL paper's method comparison (`rigl-hw study methods-small`).

Static, SET, SNFS, RigL and Small-Dense at 90% sparsity (ERK), the same step budget, 3 seeds, on
  (a) digits_mlp       scikit-learn's 8x8 digits with the 64-128-64-10 MLP (SGD momentum, cosine LR)
  (b) bytes_char_gru   the byte-level char-GRU (width 0.25, sequences of 32 bytes) on the offline
                       corpus (Adam, gradient clipping 10; paper Sec. 4: α = 0.1, updates to the end).
Writes into out_dir: runs/<task>/<method>/seed<k>/ (each a full run dir with its trace), results.csv
(one row per run), summary.csv (mean and std per task and method), balance.csv (each sparse run's
trace simulated on a skipping array with its real masks against random masks of the same densities),
methods_small.png and report.md,
whose numbers and ordering verdicts are computed from results.csv. Finished runs are reused when
the study is run again into the same directory (their checkpoints say they are complete).
The paper's ordering is RigL >= SET >= Static (test accuracy up, bits per byte down); the report
says what this run found, whatever it is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

METHODS = ("static", "set", "snfs", "rigl", "small_dense")
SEEDS = (0, 1, 2)
COMMON = dict(distribution="erk", sparsity=0.9, progress=False, decay="cosine")
TASKS: dict[str, dict[str, Any]] = {
    "digits_mlp": dict(model="mlp", dataset="digits", steps=800, batch_size=64, optimizer="sgd", lr=0.1,
                       momentum=0.9, weight_decay=5e-4, lr_schedule="cosine", delta_t=50, alpha=0.3, t_end=600),
    "bytes_char_gru": dict(model="char_gru", dataset="bytes", width=0.25, seq_len=32, steps=600, batch_size=32,
                           optimizer="adam", lr=3e-3, weight_decay=5e-4, grad_clip=10.0, lr_schedule="cosine",
                           delta_t=25, alpha=0.1, t_end=600, corpus_bytes=1 << 18, eval_max_samples=1024),
}
QUICK: dict[str, dict[str, Any]] = {
    "digits_mlp": dict(steps=30, delta_t=10, t_end=30),
    "bytes_char_gru": dict(steps=20, delta_t=5, t_end=20, corpus_bytes=1 << 15, eval_max_samples=128),
}
# (metric column, label, True if higher is better) per task
METRIC = {"digits_mlp": ("eval_accuracy", "test accuracy", True),
          "bytes_char_gru": ("eval_bits_per_byte", "test bits per byte", False)}
BALANCE_METHODS = ("static", "set", "snfs", "rigl")
BALANCE_PRESET = "skip-bitmask-32x32"
LABEL = {"static": "Static", "set": "SET", "snfs": "SNFS", "rigl": "RigL", "small_dense": "Small-Dense"}


def _run_one(out_dir: Path, task: str, method: str, seed: int, quick: bool) -> dict[str, Any]:
    from rigl_hw.checkpoint import FILENAME
    from rigl_hw.train import TrainConfig, train

    run_dir = out_dir / "runs" / task / method / f"seed{seed}"
    settings = {**COMMON, **TASKS[task], **(QUICK[task] if quick else {})}
    config = TrainConfig(method=method, seed=seed, out=str(run_dir), **settings)
    result = train(config, resume=(run_dir / FILENAME).exists())
    return {"task": task, "model": config.model, "dataset": config.dataset, "method": method, "seed": seed,
            "steps": result.steps_done, "nonzeros": sum(result.nonzeros.values()),
            "eval_loss": result.eval.get("eval_loss"), "eval_accuracy": result.eval.get("eval_accuracy"),
            "eval_bits_per_byte": result.eval.get("eval_bits_per_byte", float("nan")),
            "seconds": round(result.seconds, 2)}


def _summarise(df):
    cols = ["eval_accuracy", "eval_loss", "eval_bits_per_byte", "nonzeros"]
    g = df.groupby(["task", "method"], sort=False)[cols]
    mean, std = g.mean(), g.std(ddof=1)
    out = mean.add_suffix("_mean").join(std.add_suffix("_std"))
    out["runs"] = g.size()
    return out.reset_index()


def _ordering(summary, task: str) -> tuple[str, bool]:
    """'RigL (a) >= SET (b) >= Static (c)' for the task's metric, and whether the paper's order holds."""
    metric, _, higher = METRIC[task]
    rows = summary[summary.task == task].set_index("method")
    vals = {m: float(rows.loc[m, f"{metric}_mean"]) for m in ("rigl", "set", "static") if m in rows.index}
    if len(vals) < 3:
        return "not all of RigL, SET and Static ran", False
    better = (lambda a, b: a >= b) if higher else (lambda a, b: a <= b)
    holds = better(vals["rigl"], vals["set"]) and better(vals["set"], vals["static"])
    def verb(a: float, b: float) -> str:
        return "matches or beats" if better(a, b) else "trails"
    text = (f"RigL {vals['rigl']:.4f} {verb(vals['rigl'], vals['set'])} SET {vals['set']:.4f}, which "
            f"{verb(vals['set'], vals['static'])} Static {vals['static']:.4f} "
            f"({'higher' if higher else 'lower'} is better)")
    return text, holds


UNITS = {"eval_accuracy": "fraction of test samples correct", "eval_bits_per_byte": "bits per byte, lower is better"}


def methods_figure(summary, df):
    """Bars of each task's metric per method (mean ± std over seeds, one dot per seed), y-axis from 0,
    the mean written on every bar so differences smaller than the bars show read as numbers."""
    from studies.common import plot_style, pyplot

    plt = pyplot()
    tasks = [t for t in TASKS if t in set(df.task)]
    with plot_style():
        fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            metric, label, _ = METRIC[task]
            s = summary[summary.task == task].set_index("method")
            methods = [m for m in METHODS if m in s.index]
            xs = range(len(methods))
            means = [s.loc[m, f"{metric}_mean"] for m in methods]
            stds = [0.0 if math.isnan(s.loc[m, f"{metric}_std"]) else s.loc[m, f"{metric}_std"] for m in methods]
            ax.bar(xs, means, yerr=stds, capsize=4, color="#8fb3d9", edgecolor="#2b5d8a")
            top = 0.0
            for i, m in enumerate(methods):
                pts = df[(df.task == task) & (df.method == m)][metric]
                ax.scatter([i] * len(pts), pts, color="k", s=10, zorder=3)
                top = max(top, means[i] + stds[i], float(pts.max()) if len(pts) else 0.0)
            for i, (v, e) in enumerate(zip(means, stds)):
                ax.annotate(f"{v:.4f}\n± {e:.4f}", (i, 0), xytext=(0, 4), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, color="#1b3d5a")
            ax.set_ylim(0, (1.0 if metric == "eval_accuracy" else top * 1.08) or 1.0)
            ax.set_xticks(list(xs), [LABEL[m] for m in methods])
            ax.set(xlabel="method", ylabel=f"{label} ({UNITS[metric]})",
                   title=f"{task} (90% sparse, ERK; mean ± std over seeds)")
    return fig


def _plot(summary, df, path: Path) -> None:
    from studies.common import save_fig

    save_fig(methods_figure(summary, df), path)


def _report(summary, df, quick: bool) -> str:
    lines = ["# Methods at small scale: Static, SET, SNFS, RigL, Small-Dense (90% sparse, ERK)", ""]
    seeds = sorted(set(df.seed))
    lines.append(f"Seeds {seeds}; every method of a task trains the same number of steps. "
                 + ("QUICK MODE (test settings: too few steps to compare methods). " if quick else "")
                 + "Numbers computed from results.csv.")
    for task in TASKS:
        if task not in set(df.task):
            continue
        metric, label, higher = METRIC[task]
        s = summary[summary.task == task].set_index("method")
        t = {**TASKS[task], **(QUICK[task] if quick else {})}
        lines += ["", f"## {task}", "",
                  f"{t['model']} on {t['dataset']}, {t['steps']} steps, batch {t['batch_size']}, {t['optimizer']} "
                  f"lr {t['lr']}, ΔT {t['delta_t']}, α {t['alpha']}, T_end {t['t_end']}.", "",
                  "| method | runs | nonzeros | test accuracy | test loss"
                  + (" | test bits per byte |" if metric == "eval_bits_per_byte" else " |"),
                  "|---|---|---|---|---|" + ("---|" if metric == "eval_bits_per_byte" else "")]
        for m in METHODS:
            if m not in s.index:
                continue
            r = s.loc[m]

            def pm(col: str) -> str:
                sd = r[f"{col}_std"]
                return f"{r[f'{col}_mean']:.4f} ± " + ("n/a" if math.isnan(sd) else f"{sd:.4f}")
            cells = [LABEL[m], str(int(r["runs"])), str(int(r["nonzeros_mean"])), pm("eval_accuracy"), pm("eval_loss")]
            if metric == "eval_bits_per_byte":
                cells.append(pm(metric))
            lines.append("| " + " | ".join(cells) + " |")
        text, holds = _ordering(summary, task)
        std = {m: s.loc[m, f"{metric}_std"] for m in ("rigl", "set", "static") if m in s.index}
        spread = max((v for v in std.values() if not math.isnan(v)), default=float("nan"))
        noise = (f"the largest seed std among the three is {spread:.4f}, so gaps smaller than that are within noise"
                 if not math.isnan(spread) else "one seed only, so the spread is unknown")
        lines += ["", f"Ordering by mean {label}: {text}. The paper's RigL >= SET >= Static "
                      f"{'holds' if holds else 'does NOT hold'} here; {noise}."]
    lines += ["", "![methods](methods_small.png)", "",
              "*Mean over seeds per method (bars from 0; the error bar and the numbers on each bar are mean ± std, "
              "the dots single seeds).*", ""]
    return "\n".join(lines)


def mask_balance(out: Path, df, preset: str = BALANCE_PRESET):
    """Each sparse run's trace simulated on `preset` with its real masks and with random masks of the
    same densities (`simulator.trace_run.compare_trace`): whole-run cycles real / statistical, and the
    layer whose forward pass the final masks slow down most against random masks."""
    import pandas as pd

    from simulator.trace_run import compare_trace

    rows = []
    for r in df[df.method.isin(BALANCE_METHODS)].itertuples():
        c = compare_trace(out / "runs" / r.task / r.method / f"seed{r.seed}" / "trace", preset)
        fw = c["layers"][c["layers"]["pass"] == "forward"].sort_values("ratio", ascending=False).iloc[0]
        rows.append({"task": r.task, "method": r.method, "seed": r.seed, "preset": preset,
                     "run_cycles_real_over_random": c["ratio"]["cycles"],
                     "worst_forward_layer": fw["layer"], "worst_forward_real_over_random": fw["ratio"]})
    return pd.DataFrame(rows)


def _balance_report(bal) -> list[str]:
    """The report's section on what the learned masks cost on a skipping array, from balance.csv."""
    if bal.empty:
        return []
    g = bal.groupby(["task", "method"], sort=False)
    t = g[["run_cycles_real_over_random", "worst_forward_real_over_random"]].mean().reset_index()
    preset = bal.preset.iloc[0]
    lines = ["", f"## The learned masks on hardware ({preset})", "",
             "Each run's trace simulated with its real masks and with random masks of the same per-layer "
             "densities (`rigl-hw simulate TRACE --mode compare`); means over seeds, from balance.csv.", "",
             "| task | method | whole run: real / random cycles | worst layer forward, final masks: real / random |",
             "|---|---|---|---|"]
    lines += [f"| {r.task} | {LABEL[r.method]} | {r.run_cycles_real_over_random:.4f} | "
              f"{r.worst_forward_real_over_random:.3f} |" for r in t.itertuples()]
    worst = t.loc[t.worst_forward_real_over_random.idxmax()]
    lines += ["", f"Where training concentrates the surviving weights on a few inputs or outputs, the PEs that "
                  f"advance in lockstep wait for the busiest one: the largest effect is {LABEL[worst.method]} on "
                  f"{worst.task}, whose worst layer's forward pass takes {worst.worst_forward_real_over_random:.2f}× "
                  "the cycles random masks of the same density would; a density-only (statistical) estimate is "
                  "optimistic by that much there."]
    base = t[(t.task == worst.task) & (t.method == "static")]
    if not base.empty:
        lines[-1] += (f" Static's masks, random by construction, give {base.worst_forward_real_over_random.iloc[0]:.2f}× "
                      "on the same task: the sampling noise of one random mask against the expectation.")
    return lines


def run(out_dir: str | Path, quick: bool = False, preset: str | None = None) -> Path:
    """Train every (task, method, seed), write results.csv, summary.csv, balance.csv (the traces on
    `preset`, default BALANCE_PRESET), the plot and report.md; return out_dir."""
    import pandas as pd

    from studies.common import check_presets, sensitivity_section, write_csv, write_text

    preset = preset or BALANCE_PRESET
    check_presets([preset])     # a bad hardware fails before any training

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS[:1] if quick else SEEDS
    rows = [_run_one(out, task, method, seed, quick) for task in TASKS for method in METHODS for seed in seeds]
    write_csv(pd.DataFrame(rows), out / "results.csv")
    df = pd.read_csv(out / "results.csv")          # the report is computed from the CSV as written
    summary = _summarise(df)
    write_csv(summary, out / "summary.csv")
    write_csv(mask_balance(out, df, preset), out / "balance.csv")
    bal = pd.read_csv(out / "balance.csv")
    _plot(summary, df, out / "methods_small.png")
    sens = sensitivity_section("mlp", preset, 64, 0.9)
    write_text(out / "report.md", _report(summary, df, quick) + "\n".join(_balance_report(bal)) + "\n\n"
               + "\n".join(sens) + "\n")
    return out
