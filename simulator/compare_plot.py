"""The picture of a hardware comparison (`rigl-hw simulate TRACE --hardware A B ... --plot FILE.png`).

`comparison_plot_data(summary)` reduces `trace_run.comparison_summary` to the bars drawn (pure, tested);
`plot_comparison(summary, path)` draws three panels, one bar (group) per hardware, y axes from zero:
whole-run time and energy as ratios to the dense run on the same hardware (seconds and joules of both
written on each bar; absolute values when there is no baseline), and the memory-stall share (% of
cycles) of the run and of its dense baseline. matplotlib is imported here only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simulator.trace_run import comparison_rows


def comparison_plot_data(summary: dict[str, Any]) -> dict[str, list]:
    """Lists in run order: labels, time_s, energy_j, stall_pct, and (None without a baseline)
    dense_time_s, dense_energy_j, dense_stall_pct, time_ratio, energy_ratio."""
    rows = comparison_rows(summary)
    out: dict[str, list] = {"labels": [r["hardware"] for r in rows], "time_s": [r["time_s"] for r in rows],
                            "energy_j": [r["energy_j"] for r in rows],
                            "stall_pct": [100 * r["stall_share"] for r in rows]}
    for k in ("dense_time_s", "dense_energy_j", "time_ratio", "energy_ratio"):
        out[k] = [r.get(k) for r in rows]
    out["dense_stall_pct"] = [None if r.get("dense_stall_share") is None else 100 * r["dense_stall_share"] for r in rows]
    return out


def plot_comparison(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the comparison PNG to `path` (temp file + rename); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from simulator.run_plot import save_png

    d = comparison_plot_data(summary)
    n = len(d["labels"])
    x = np.arange(n)
    dense = all(v is not None for v in d["dense_time_s"])
    fig, axes = plt.subplots(1, 3, figsize=(max(11, 3.2 * n + 5), 4.6), constrained_layout=True)
    for ax, (key, unit, name) in zip(axes[:2], (("time", "s", "Time"), ("energy", "J", "Energy"))):
        absolute = d["time_s" if key == "time" else "energy_j"]
        if dense:   # ratios share one axis whatever the hardware's absolute scale; values written on the bars
            base = d["dense_time_s" if key == "time" else "dense_energy_j"]
            bars = ax.bar(x, d[f"{key}_ratio"], 0.6, color="C0")
            ax.axhline(1.0, color="0.3", lw=1, ls="--", label="dense run on the same hardware = 1")
            for b, a, z in zip(bars, absolute, base):
                ax.annotate(f"{a:.3g} {unit}\n(dense {z:.3g} {unit})", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7)
            ax.set(ylabel=f"whole-run {key} / dense run", title=f"{name} relative to the dense run")
            ax.set_ylim(0, 1.25 * max(max(d[f"{key}_ratio"]), 1.0))
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.bar(x, absolute, 0.6, color="C0")
            ax.set(ylabel=f"whole-run {key} ({unit})", title=name)
            ax.set_ylim(bottom=0)
        ax.set_xticks(x, d["labels"], rotation=20, ha="right", fontsize=8)
    ax = axes[2]
    w = 0.38 if dense else 0.6
    ax.bar(x - (w / 2 if dense else 0), d["stall_pct"], w, color="C0", label="this run")
    if dense:
        ax.bar(x + w / 2, d["dense_stall_pct"], w, color="C7", label="dense run")
        ax.legend(fontsize=8)
    ax.set_xticks(x, d["labels"], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, max(5.0, 1.15 * max(d["stall_pct"] + [v or 0 for v in d["dense_stall_pct"]])))
    ax.set(ylabel="memory stalls (% of cycles)", title="Cycles beyond compute / all cycles")
    fig.suptitle(f"{summary['model']} {summary['method']} ({summary['masks']} masks), {summary['steps']} steps at "
                 f"batch {summary['batch']} on {n} hardware specs")
    return save_png(fig, path)
