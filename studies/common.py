"""Shared helpers of the studies: the ImageNet run settings, seeded masks, the whole-run cost model,
the sweep wrapper (cache under OUT/.cache, run_info.json, failures), atomic CSV/text writes,
Markdown tables and one matplotlib style.

Whole-run cost (`run_cost`), used by every study so that they agree with each other:
    total = (steps - U) x normal step + U x update-step passes + sum over updates and layers of the
            mask-update work (simulator.update.update_cost with that update's k per layer)
where U is the number of mask updates of the schedule (every ΔT steps until T_end) and k = floor(f(t)
x nnz_l) per layer, the rule of rigl_hw.trace_synth (layers outside the budget never change; a layer
cannot grow more than its free positions). This is exactly what `simulator.engine.simulate_run`
computes for a trace whose masks keep their positions (tests/test_studies.py checks the equality);
the studies compose it from two `simulate_step` calls because it is faster and lets SET drop the
gradient top-k (`grow="random"`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rigl_hw.atomic import atomic_path, atomic_write_text

IMAGENET_RUN = {"steps": 32_000, "batch": 4_096, "delta_t": 100, "alpha": 0.3, "t_end": 25_000}
STEP_BATCH = 256          # batch of the one-step numbers of uniform-vs-erk
SEED = 0                  # mask seed of every study point

PRESET_COLORS = {"dense-32x32": "#4c72b0", "skip-bitmask-32x32": "#dd8452", "skip-csr-128x128": "#55a868",
                 "eyeriss-v2-pe": "#c44e52", "nm-2of4-tc": "#8172b3"}
DIST_STYLE = {"uniform": "-", "erk": "--"}


class StudyError(RuntimeError):
    """A study could not produce its report (e.g. some sweep points failed; see failures.csv)."""


# --- inputs ------------------------------------------------------------------------------------------
def check_presets(names: Sequence[str]) -> list:
    """Load every preset up front so that a bad name fails with the simulator's HardwareSpecError."""
    from simulator.hardware import load_hardware

    return [load_hardware(n) for n in names]


def hardware(preset: str, chunk_elements: int | None = None):
    """A preset, optionally with its top-k unit's on-chip buffer resized (elements)."""
    from simulator.hardware import load_hardware

    hw = load_hardware(preset)
    if chunk_elements is not None:
        hw = replace(hw, topk=replace(hw.topk, chunk_elements=int(chunk_elements)))
    return hw


@lru_cache(maxsize=24)
def study_masks(model: str, distribution: str, sparsity: float, width: float = 1.0, seed: int = SEED):
    """(specs, allocation, packed masks) with random masks of exactly the allocation's nonzeros.

    Cached per process (the same configuration recurs on every preset): do not modify the result.
    The masks come from rigl_hw.distributions.random_masks with np.random.default_rng(seed); layers
    the allocation keeps dense are left out of the mask dict (the simulator treats them as dense).
    A sparsity of 0 gives the dense model (no masks).
    """
    from rigl_hw.distributions import random_masks
    from rigl_hw.trace import pack_mask
    from rigl_hw.zoo import model_allocation, model_specs

    if sparsity <= 0:
        return model_specs(model, width), None, {}
    specs, alloc = model_allocation(model, distribution, sparsity, width=width)
    shapes = {s.name: s.weight_shape for s in specs}
    masks = random_masks(alloc, shapes, np.random.default_rng(seed))
    dense = {n for n, p, z in zip(alloc.names, alloc.n_params, alloc.nonzeros) if z == p}
    return specs, alloc, {n: pack_mask(m) for n, m in masks.items() if n not in dense}


def update_counts(alloc, delta_t: int, alpha: float, t_end: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(update steps, k per update and layer) of the cosine schedule, as rigl_hw.trace_synth writes them."""
    from rigl_hw.schedules import UpdateSchedule, changed_per_update

    sched = UpdateSchedule(delta_t=delta_t, t_end=t_end, alpha=alpha).validate(total_steps=steps)
    upd = sched.update_steps(steps)
    counts = changed_per_update(sched, alloc.nonzeros, steps)
    counts[:, [not b for b in alloc.in_budget]] = 0
    free = np.asarray(alloc.n_params, dtype=np.int64) - np.asarray(alloc.nonzeros, dtype=np.int64)
    return upd, np.minimum(counts, free[None, :])


# --- whole-run cost ----------------------------------------------------------------------------------
def _grow_part(hw, n_params: int, nnz: int, k: int) -> tuple[float, float]:
    """(cycles, pJ) of the gradient top-k inside update_cost: what random growth (SET) does not do."""
    from simulator.energy import energy_table, level_pj_per_byte
    from simulator.update import _select

    k = min(k, nnz, n_params - nnz) if n_params > nnz else 0
    cyc, rbytes, cmp, _ = _select(n_params, k, hw.value_bytes + 1 / 8, hw.topk.elements_per_cycle,
                                  hw.topk.chunk_elements, hw.dram.read_bw_bytes_per_cycle)
    pj = cmp * energy_table(hw.energy_table, hw.number_format).compare_pj + rbytes * level_pj_per_byte(hw.dram)
    return cyc, pj


def mask_nnz(specs, masks: Mapping[str, np.ndarray]) -> list[int]:
    """Nonzeros per layer of packed masks (a layer without a mask is dense)."""
    return [int(np.bitwise_count(masks[s.name]).sum()) if s.name in masks else s.n_params for s in specs]


def mask_update_totals(specs, table, hw, counts: np.ndarray, nnz: Sequence[int], grow: str = "topk") -> dict[str, float]:
    """Sum over updates and layers of update_cost (cycles, pJ, most top-k passes of one layer).

    table: the step table whose forward rows give each layer's stored weight bytes; nnz per layer."""
    from simulator.update import update_cost

    fwd = table[table["pass"] == "forward"].set_index("layer")
    cyc = pj = 0.0
    max_passes = 0
    for li, s in enumerate(specs):
        if counts.shape[0] == 0:
            break
        col = counts[:, li]
        ks, mult = np.unique(col[col > 0], return_counts=True)
        wbytes = float(fwd.at[s.name, "weight_bytes"])
        for k, m in zip(ks.tolist(), mult.tolist()):
            u = update_cost(hw, s.n_params, nnz[li], int(k), wbytes)
            c, e = u.cycles, u.energy_pj
            if grow == "random":
                gc, ge = _grow_part(hw, s.n_params, nnz[li], int(k))
                c, e = c - gc, e - ge
            cyc += m * c
            pj += m * e
            max_passes = max(max_passes, u.passes)
    return {"cycles": cyc, "energy_pj": pj, "max_passes": max_passes}


def run_cost(specs, masks: Mapping[str, np.ndarray], hw, batch: int, steps: int, counts: np.ndarray | None = None,
             *, dense_dw_every_step: bool = False, grow: str = "topk") -> dict[str, Any]:
    """Cost of a whole run (see module docstring). counts: k per (update, layer), None for no updates.

    grow="topk": an update step has a dense weight gradient and the full update_cost (RigL, SNFS);
    grow="random": an update step is a normal step plus update_cost minus its gradient top-k (SET).
    Returns JSON-able totals plus the per-layer table of one normal step (key "normal_table").
    """
    from simulator.engine import simulate_step

    if grow not in ("topk", "random"):
        raise ValueError(f"grow must be 'topk' or 'random', got {grow!r}")
    normal = simulate_step(specs, masks, hw, batch, dense_weight_grad=dense_dw_every_step)
    n_upd = 0 if counts is None else int(counts.shape[0])
    clock = hw.pe_array.clock_hz
    out: dict[str, Any] = {"normal_step_cycles": normal.cycles, "normal_step_time_s": normal.time_s,
                           "normal_step_energy_j": normal.energy_j, "n_updates": n_upd}
    upd_pass_cyc, upd_pass_pj, mu = 0.0, 0.0, {"cycles": 0.0, "energy_pj": 0.0, "max_passes": 0}
    if n_upd:
        if grow == "topk":
            t = simulate_step(specs, masks, hw, batch, update_step=True).table
            t = t[t["pass"] != "mask_update"]
            upd_pass_cyc, upd_pass_pj = float(t["cycles"].sum()), float(t["energy_pj"].sum())
        else:
            upd_pass_cyc, upd_pass_pj = normal.cycles, float(normal.table["energy_pj"].sum())
        mu = mask_update_totals(specs, normal.table, hw, counts, mask_nnz(specs, masks), grow)
    normal_pj = float(normal.table["energy_pj"].sum())
    upd_cyc = n_upd * upd_pass_cyc + mu["cycles"]
    upd_pj = n_upd * upd_pass_pj + mu["energy_pj"]
    cyc = (steps - n_upd) * normal.cycles + upd_cyc
    pj = (steps - n_upd) * normal_pj + upd_pj
    out.update({
        "update_step_cycles": (upd_cyc / n_upd) if n_upd else 0.0,
        "update_step_energy_j": (upd_pj / n_upd * 1e-12) if n_upd else 0.0,
        "mask_update_cycles": mu["cycles"], "mask_update_energy_j": mu["energy_pj"] * 1e-12,
        "max_topk_passes": mu["max_passes"],
        "run_cycles": cyc, "run_time_s": cyc / clock, "run_energy_j": pj * 1e-12,
        # share of the update steps in the run, and of their extra cost beyond a normal step
        "update_share_time": upd_cyc / cyc if cyc else 0.0, "update_share_energy": upd_pj / pj if pj else 0.0,
        "update_extra_time": (upd_cyc - n_upd * normal.cycles) / cyc if cyc else 0.0,
        "update_extra_energy": (upd_pj - n_upd * normal_pj) / pj if pj else 0.0,
    })
    out["normal_table"] = normal.table
    return out


def layer_breakdown(table, specs, hw) -> dict[str, list]:
    """Per-layer sums over the passes of one step (JSON-able columns), for the "why" analyses."""
    t = table[table["pass"] != "mask_update"]
    names = [lv.name for lv in hw.memory]
    g = t.groupby("layer", sort=False)
    sums = g[["cycles", "compute_cycles", "dense_macs", "effectual_macs", "energy_pj", "energy_pj_mac"]].sum()
    dram = g[f"{names[-1]}_read_bytes"].sum() + g[f"{names[-1]}_write_bytes"].sum()
    e_dram = g[f"energy_pj_{names[-1]}"].sum()
    order = [s.name for s in specs]
    return {
        "layer": order,
        "out_res": [int(s.out_hw[0]) for s in specs],
        "groups": [int(s.groups) for s in specs],
        **{c: [float(sums.at[n, c]) for n in order] for c in sums.columns},
        "dram_bytes": [float(dram[n]) for n in order],
        "energy_pj_dram": [float(e_dram[n]) for n in order],
    }


# --- sweeps and bookkeeping --------------------------------------------------------------------------
@dataclass
class StudyLog:
    """What a study run did: sweeps' computed/cached/failed counts and wall time; run_info.json."""

    name: str
    out: Path
    quick: bool
    start: float = field(default_factory=time.perf_counter)
    computed: int = 0
    cached: int = 0
    failed: list = field(default_factory=list)

    def sweep(self, fn: Callable, points: Sequence[dict], scheduler=None, n_workers: int = 2, progress: bool = True):
        from studies.sweep import run_sweep

        res = run_sweep(fn, points, self.out / ".cache", scheduler=scheduler, n_workers=n_workers, progress=progress)
        self.computed += res.computed
        self.cached += res.cached
        self.failed += res.failed
        if res.failed:
            import pandas as pd

            write_csv(pd.DataFrame([{**p, "error": e} for p, e in self.failed]), self.out / "failures.csv")
            raise StudyError(f"{self.name}: {len(res.failed)} of {len(points)} points failed (see "
                             f"{self.out / 'failures.csv'}; finished points are cached): {res.failed[0][1]}")
        return res.rows

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def finish(self) -> dict[str, Any]:
        info = {"study": self.name, "quick": self.quick, "seconds": round(self.seconds, 2),
                "computed": self.computed, "cached": self.cached, "failed": len(self.failed)}
        write_text(self.out / "run_info.json", json.dumps(info, indent=1) + "\n")
        return info


def start_study(name: str, out_dir, config, quick: bool, presets: Sequence[str] | None = None):
    """(config, out, log) for a study's run(): `config` with `presets` substituted if given, the presets
    checked (unknown name -> HardwareSpecError before anything runs), out_dir created, a StudyLog."""
    if presets:
        config = replace(config, presets=tuple(presets))
    check_presets(config.presets)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return config, out, StudyLog(name, out, quick)


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically (temp file in the same directory, then rename)."""
    return atomic_write_text(path, text)


def write_csv(df, path: Path) -> Path:
    """Write a DataFrame to CSV atomically."""
    return write_text(path, df.to_csv(index=False))


def md_table(df, formats: Mapping[str, str] | None = None) -> str:
    """A Markdown table of a DataFrame; formats: column -> format spec (e.g. ".3f", ".3g", ",")."""
    formats = formats or {}
    cols = list(df.columns)

    def cell(c, v):
        if isinstance(v, float) and np.isnan(v):
            return "–"
        return format(v, formats[c]) if c in formats else str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(cols, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


STYLE = {"figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8,
         "legend.frameon": False, "figure.constrained_layout.use": True}


def pyplot():
    """matplotlib.pyplot on the Agg backend (global rcParams untouched; plot inside `plot_style()`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_style():
    """Context manager with the studies' matplotlib style."""
    return pyplot().rc_context(STYLE)


def save_fig(fig, path: Path) -> str:
    """Save a figure atomically (PNG) and close it; returns the file name for the report."""
    plt = pyplot()
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path.name


def fmt_time(seconds: float) -> str:
    """Human time: s, h or days."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def fmt_energy(joules: float) -> str:
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0)):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules * 1e3:.3g} mJ"


def run_footer(log: StudyLog, extra: str = "") -> str:
    return (f"\n## Run\n\n{'QUICK MODE (tiny grid for tests; not the study). ' if log.quick else ''}"
            f"Sweep points computed {log.computed}, read from the cache {log.cached}; wall time "
            f"{log.seconds:.1f} s (this run). {extra}\n")


# --- mapping sensitivity ----------------------------------------------------------------------------
MAPPING = "per-layer"     # the engine's default: one searched mapping per layer and pass
OBJECTIVE = "latency"     # the mapper's objective used by every study
SENSITIVITY_MAPPINGS = ("fixed", "per-layer")


def headline_ratios(model: str, preset: str, batch: int, sparsity: float = 0.9, *, mapping: str = MAPPING,
                    objective: str = OBJECTIVE, width: float = 1.0) -> dict[str, float]:
    """The headline ratios of one normal RigL step (sparse weight gradient) at `batch` on `preset`:
    ERK time and energy vs dense, and ERK vs Uniform, with the engine's `mapping` ("fixed": the preset's
    fixed dataflow; "per-layer": searched mappings for `objective`)."""
    from simulator.engine import simulate_step

    hw = hardware(preset)
    kw = {"mapping": mapping, "objective": objective}
    dense = simulate_step(study_masks(model, "dense", 0.0, width)[0], None, hw, batch, **kw)
    out = {}
    for dist in ("erk", "uniform"):
        specs, _, masks = study_masks(model, dist, sparsity, width)
        out[dist] = simulate_step(specs, masks, hw, batch, **kw)
    e, u = out["erk"], out["uniform"]
    return {"ERK time / dense": e.time_s / dense.time_s, "ERK energy / dense": e.energy_j / dense.energy_j,
            "ERK / Uniform time": e.time_s / u.time_s, "ERK / Uniform energy": e.energy_j / u.energy_j}


def sensitivity_section(model: str, preset: str, batch: int, sparsity: float = 0.9, *,
                        objective: str = OBJECTIVE, width: float = 1.0) -> list[str]:
    """Markdown lines: the mapping objective and the headline ratios under each engine mapping
    (fixed dataflow vs per-layer searched mappings), computed, so a reader sees how much the
    conclusion depends on the mapping."""
    cols = {m: headline_ratios(model, preset, batch, sparsity, mapping=m, objective=objective, width=width)
            for m in SENSITIVITY_MAPPINGS}
    names = list(cols[SENSITIVITY_MAPPINGS[0]])
    lines = ["## Sensitivity to the mapping", "",
             f"This study prices every layer pass with the engine's `mapping=\"{MAPPING}\"` model: the mapper "
             f"(objective **{objective}**) picks one mapping per layer and pass from its density and every mask is "
             "evaluated under it. The headline ratios of one normal RigL step of "
             f"{model} at {sparsity:.0%} sparsity, batch {batch}, on {preset}, under the preset's fixed dataflow "
             "(the SCALE-Sim-validated fold model) and under the searched mappings:", "",
             "| ratio | " + " | ".join(SENSITIVITY_MAPPINGS) + " |",
             "|---|" + "---:|" * len(SENSITIVITY_MAPPINGS)]
    lines += [f"| {n} | " + " | ".join(f"{cols[m][n]:.3f}" for m in SENSITIVITY_MAPPINGS) + " |" for n in names]
    return lines + [""]
