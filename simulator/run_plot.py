"""A one-page picture of a simulated run (`rigl-hw simulate ... --plot FILE.png`).

`run_plot_data(table)` reduces a `RunResult.table` to what the figure shows (pure pandas, tested):
  per_snapshot  one row per mask snapshot: first step, normal steps, cycles and energy (pJ) of one
                normal step, and of its update step (NaN when it has none)
  per_layer     cycles of one normal step of snapshot 0 per layer (network order) and pass
  energy        whole-run energy (pJ) per component (MACs, each memory level, top-k), summing to the total
`plot_run(table, path, title)` draws the three panels with matplotlib (imported here only) and writes
the PNG atomically.
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


def plot_run(table: pd.DataFrame, path: str | os.PathLike, title: str) -> Path:
    """Write the three-panel PNG of a simulated run to `path` (temp file + rename); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rigl_hw.atomic import atomic_path

    d = run_plot_data(table)
    snap, layers, energy = d["per_snapshot"], d["per_layer"], d["energy"]
    fig = plt.figure(figsize=(13, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, :2])
    end = snap["first_step"].iloc[-1] + snap["normal_steps"].iloc[-1] + (1 if snap["update_cycles"].notna().iloc[-1] else 0)
    ax.step(np.append(snap["first_step"], end), np.append(snap["normal_cycles"], snap["normal_cycles"].iloc[-1]),
            where="post", label="normal step")
    has_upd = snap["update_cycles"].notna()
    if has_upd.any():
        ax.scatter(snap.loc[has_upd, "first_step"], snap.loc[has_upd, "update_cycles"], s=8, color="C3",
                   label="mask-update step", zorder=3)
    ax.set(xlabel="training step", ylabel="cycles per step", title="Cost of one step over the run")
    ax.legend(loc="best", fontsize=8)
    ax = fig.add_subplot(grid[0, 2])
    names = list(energy)
    total = d["total_energy_pj"] or 1.0
    ax.barh(names, [energy[n] / total * 100 for n in names], color="C2")
    ax.set(xlabel="% of the run's energy", title="Energy by component (whole run)")
    ax.invert_yaxis()
    ax = fig.add_subplot(grid[1, :])
    bottom = np.zeros(len(layers))
    for i, p in enumerate(layers.columns):
        ax.bar(range(len(layers)), layers[p].to_numpy(), bottom=bottom, label=p, color=f"C{i}")
        bottom += layers[p].to_numpy()
    ax.set_xticks(range(len(layers)), layers.index, rotation=90, fontsize=6 if len(layers) > 30 else 8)
    ax.set(ylabel="cycles", title="Where one normal step's cycles go (initial masks), per layer and pass")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    out = Path(path)
    try:
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
