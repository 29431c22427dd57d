"""A one-page picture of a simulated run (`rigl-hw simulate ... --plot FILE.png`).

`run_plot_data(table)` reduces a `RunResult.table` to what the figure shows (pure pandas, tested):
  per_snapshot  one row per mask snapshot: first step, normal steps, cycles and energy (pJ) of one
                normal step, and of its update step (NaN when it has none)
  per_layer     cycles of one normal step of snapshot 0 per layer (network order) and pass
  energy        whole-run energy (pJ) per component (MACs, each memory level, top-k), summing to the total
`run_figure(table, title, clock_hz=...)` draws it with matplotlib (imported here only): time per step in
seconds (cycles on a second axis) and energy per step in joules over the run, whole-run energy per
component in joules (with its share), and one normal step's time per layer and pass; every cost axis
starts at 0. `plot_run(table, path, title, clock_hz=...)` writes that figure as a PNG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PASSES = ("forward", "backward_data", "backward_weight")


def run_plot_data(table: pd.DataFrame) -> dict[str, Any]:
    """The figure's data from a run table (columns of simulator.engine.RunResult.table)."""
    kind_steps = table.groupby(["snapshot", "step_kind"], sort=True)["steps"].first().unstack()
    per_step = table.groupby(["snapshot", "step_kind"], sort=True)[["cycles", "energy_pj"]].sum().unstack()
    snaps = kind_steps.index.to_numpy()
    normal_steps = kind_steps.get("normal", pd.Series(0, index=snaps)).fillna(0).to_numpy()
    upd_steps = kind_steps.get("update", pd.Series(0, index=snaps)).fillna(0).to_numpy()
    # snapshot i runs its update step (if any) then its normal steps; cumulative steps give its first step
    first_step = np.concatenate([[0], np.cumsum(normal_steps + upd_steps)[:-1]])

    def col(name: str, kind: str) -> np.ndarray:
        key = (name, kind)
        return per_step[key].to_numpy(dtype=float) if key in per_step.columns else np.full(len(snaps), np.nan)

    per_snapshot = pd.DataFrame({"snapshot": snaps, "first_step": first_step, "normal_steps": normal_steps,
                                 "normal_cycles": col("cycles", "normal"), "normal_energy_pj": col("energy_pj", "normal"),
                                 "update_cycles": col("cycles", "update"), "update_energy_pj": col("energy_pj", "update")})
    first = table[(table["snapshot"] == snaps[0]) & (table["step_kind"] == "normal")]
    order = list(dict.fromkeys(first["layer"]))
    per_layer = (first.pivot_table(index="layer", columns="pass", values="cycles", aggfunc="sum")
                 .reindex(index=order, columns=[p for p in PASSES if p in set(first["pass"])]).fillna(0.0))
    parts = [c for c in table.columns if c.startswith("energy_pj_")]
    energy = {c.removeprefix("energy_pj_"): float((table[c] * table["steps"]).sum()) for c in parts}
    return {"per_snapshot": per_snapshot, "per_layer": per_layer, "energy": energy,
            "total_energy_pj": float((table["energy_pj"] * table["steps"]).sum())}


def si_scale(max_abs: float, unit: str) -> tuple[float, str]:
    """(scale, label) so that values / scale read in the largest SI prefix of `unit` not above max_abs
    (e.g. 3.2e-5 s -> (1e-6, "µs")); (1, unit) for 0 or NaN."""
    if not np.isfinite(max_abs) or max_abs <= 0:
        return 1.0, unit
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3), ("µ", 1e-6),
                          ("n", 1e-9), ("p", 1e-12)):
        if max_abs >= scale:
            return scale, prefix + unit
    return 1e-12, "p" + unit


def run_figure(table: pd.DataFrame, title: str, *, clock_hz: float):
    """The four-panel matplotlib Figure of a simulated run (seconds from cycles at `clock_hz`, energy in
    joules; every y-axis of a bar or step-cost panel starts at 0). The caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = run_plot_data(table)
    snap, layers, energy = d["per_snapshot"], d["per_layer"], d["energy"]
    fig = plt.figure(figsize=(13, 8.5), constrained_layout=True)
    fig.get_layout_engine().set(wspace=0.12)
    grid = fig.add_gridspec(2, 5)
    hz_scale, hz_unit = si_scale(clock_hz, "Hz")
    mhz = f"{clock_hz / hz_scale:g} {hz_unit}"
    has_upd = snap["update_cycles"].notna()
    end = snap["first_step"].iloc[-1] + snap["normal_steps"].iloc[-1] + (1 if has_upd.iloc[-1] else 0)
    x = np.append(snap["first_step"], end)
    # 1-2. time and energy of one step over the run: normal steps as a step line, update steps as dots
    t_s = snap["normal_cycles"] / clock_hz, snap["update_cycles"] / clock_hz
    e_j = snap["normal_energy_pj"] * 1e-12, snap["update_energy_pj"] * 1e-12
    for cols, (normal, update), unit, what in ((slice(0, 3), t_s, "s", "time"), (slice(3, 5), e_j, "J", "energy")):
        ax = fig.add_subplot(grid[0, cols])
        scale, lab = si_scale(float(np.nanmax(np.concatenate([normal, update]))), unit)
        ax.step(x, np.append(normal, normal.iloc[-1]) / scale, where="post", label="normal step")
        if has_upd.any():
            ax.scatter(snap.loc[has_upd, "first_step"], update[has_upd] / scale, s=10, color="C3",
                       label="mask-update step", zorder=3)
        ax.set_ylim(0, 1.12 * float(np.nanmax(np.concatenate([normal, update]))) / scale)
        ax.set(xlabel="training step", ylabel=f"{what} per step ({lab})", title=f"{what.capitalize()} of one step over the run")
        ax.legend(loc="lower right", fontsize=8)
        if unit == "s":
            sec = ax.secondary_yaxis("right", functions=(lambda v, s=scale: v * s * clock_hz,
                                                         lambda c, s=scale: c / (s * clock_hz)))
            sec.set_ylabel(f"cycles per step (at {mhz})")
    # 3. whole-run energy per component, in joules, with its share
    ax = fig.add_subplot(grid[1, :2])
    names = list(energy)
    vals = np.array([energy[n] for n in names]) * 1e-12
    total = d["total_energy_pj"] * 1e-12
    scale, lab = si_scale(float(vals.max()) if len(vals) else 0.0, "J")
    ax.barh(names, vals / scale, color="C2")
    for i, v in enumerate(vals):
        ax.annotate(f"{v / scale:.3g} {lab} ({100 * v / total if total else 0:.1f}%)", (v / scale, i),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, max(1e-30, float(vals.max()) / scale * 1.45) if len(vals) else 1)
    ax.set(xlabel=f"whole-run energy ({lab}); total {total / scale:.3g} {lab}", ylabel="component",
           title="Energy by component (whole run)")
    ax.invert_yaxis()
    # 4. one normal step's time per layer and pass
    ax = fig.add_subplot(grid[1, 2:])
    secs = layers.to_numpy() / clock_hz
    scale, lab = si_scale(float(secs.sum(axis=1).max()) if secs.size else 0.0, "s")
    bottom = np.zeros(len(layers))
    for i, p in enumerate(layers.columns):
        ax.bar(range(len(layers)), secs[:, i] / scale, bottom=bottom, label=p, color=f"C{i}")
        bottom += secs[:, i] / scale
    ax.set_xticks(range(len(layers)), layers.index, rotation=90, fontsize=6 if len(layers) > 30 else 8)
    ax.set_ylim(bottom=0)
    ax.set(xlabel="layer (network order)", ylabel=f"time in one normal step ({lab})",
           title="Where one normal step's time goes (initial masks), per layer and pass")
    sec = ax.secondary_yaxis("right", functions=(lambda v, s=scale: v * s * clock_hz,
                                                 lambda c, s=scale: c / (s * clock_hz)))
    sec.set_ylabel(f"cycles (at {mhz})")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_run(table: pd.DataFrame, path: str | os.PathLike, title: str, *, clock_hz: float) -> Path:
    """Write the PNG of `run_figure` to `path` (temp file + rename); returns the path."""
    return save_png(run_figure(table, title, clock_hz=clock_hz), path)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib Figure as a PNG (temp file + rename), close it, and return the path."""
    import matplotlib.pyplot as plt

    from rigl_hw.atomic import atomic_path

    out = Path(path)
    try:
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
