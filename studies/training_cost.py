"""Study `training-cost`: what a whole sparse training run costs per method on each hardware preset.

    run(out_dir, scheduler=None, n_workers=2, quick=False, progress=True, presets=None) -> Path

Dense, Static, SNIP, SET, RigL, SNFS, Pruning and Small-Dense at 80% and 90% on the ResNet-50 ImageNet
schedule (32k steps, batch 4096, ΔT = 100, α = 0.3 cosine, T_end = 25k; 1× and 5×, where T_end and
the pruning anchors scale with the run), with ERK (the paper's RigL/SNFS choice) and Uniform masks, on
every preset: total time and energy of the run normalised to the dense 1× run on the same hardware,
next to the training-FLOP ratio of rigl_hw.flops_report for the same schedule (RigL with t_end =
25k), and the share of the mask-update steps. Per-step costs are simulated at batch 4096 directly
(a step takes milliseconds to simulate, so no batch scaling is assumed). Modelling per method
(studies.common.run_cost; random masks with exact per-layer nonzeros, seed 0):
  dense        the dense model every step, no updates
  static/snip  the sparse mask every step, no updates (SNIP's one saliency pass at step 0 is not costed;
               its mask is modelled as a random mask of the same per-layer nonzeros)
  set          update steps = a normal sparse step (no dense weight gradient: growth is random) plus the
               update_cost work minus its gradient top-k: bottom-k drop by |θ|, re-encode, optimizer
               state zeroing (the random index draw is not costed)
  rigl         update steps: dense weight gradient + top-k grow + bottom-k drop + re-encode + zeroing
  snfs         as rigl, and the weight gradient is dense on every step (momentum of all weights)
  pruning      dense until 10k×M, then the cubic schedule pruning every 1k×M steps until 25k×M: every
               sparsity level of the schedule is simulated and weighted by its number of steps (the
               16 magnitude-pruning events themselves are not costed)
  small_dense  the dense model at the width with the sparse model's parameter count (flops_report)
Writes costs.csv, PNG plots, report.md, run_info.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies.common import IMAGENET_RUN, SEED, StudyLog, start_study

NAME = "training-cost"
METHODS = ("dense", "static", "snip", "set", "rigl", "snfs", "pruning", "small_dense")
LABEL = {"dense": "Dense", "static": "Static", "snip": "SNIP", "set": "SET", "rigl": "RigL", "snfs": "SNFS",
         "pruning": "Pruning", "small_dense": "Small-Dense"}


@dataclass(frozen=True)
class Config:
    model: str = "resnet50"
    methods: tuple[str, ...] = METHODS
    sparsities: tuple[float, ...] = (0.8, 0.9)
    distributions: tuple[str, ...] = ("erk", "uniform")   # the first is the report's headline
    multipliers: tuple[int, ...] = (1, 5)
    presets: tuple[str, ...] = ("dense-32x32", "skip-bitmask-32x32", "skip-csr-128x128", "eyeriss-v2-pe", "nm-2of4-tc")
    run: dict = field(default_factory=lambda: dict(IMAGENET_RUN))


QUICK = Config(model="mlp", sparsities=(0.9,), distributions=("erk",), presets=("dense-32x32", "skip-bitmask-32x32"),
               run={**IMAGENET_RUN, "batch": 8})

MODELLING = {
    "dense": "the dense model on every step, no mask updates.",
    "static": "the sparse mask on every step (sparse forward, backward-data and weight gradient), no updates.",
    "snip": "as Static; the one saliency pass at step 0 is not costed and the mask is modelled as a random mask "
            "with the same per-layer nonzeros.",
    "set": "update steps are a normal sparse step (no dense weight gradient: growth is random) plus the "
           "simulator's update_cost minus its gradient top-k (bottom-k drop by |θ|, re-encode, optimizer-state "
           "zeroing; the random index draw is not costed).",
    "rigl": "update steps have a dense weight gradient, top-k grow, bottom-k drop, re-encode and zeroing.",
    "snfs": "as RigL, and the weight gradient is dense on every step (momentum of all weights).",
    "pruning": "dense until 10k×M steps, then the cubic schedule pruning every 1k×M steps until 25k×M: every "
               "sparsity level is simulated with its own random mask and weighted by its steps (the 16 "
               "magnitude-pruning events themselves are not costed).",
    "small_dense": "the dense model at the width whose parameter count fits the sparse budget (flops_report).",
}

PRUNING = {"begin": 10_000, "end": 25_000, "frequency": 1_000}   # 1x anchors (rigl_hw.flops)


def pruning_levels(sparsity: float, multiplier: int, steps: int) -> list[tuple[float, int]]:
    """(sparsity level, number of steps at it) of the Zhu & Gupta schedule of an M× run."""
    import numpy as np

    from rigl_hw.flops import pruning_sparsity

    s_t = pruning_sparsity(np.arange(steps), sparsity, PRUNING["begin"] * multiplier, PRUNING["end"] * multiplier,
                           PRUNING["frequency"] * multiplier)
    levels, counts = np.unique(s_t, return_counts=True)
    return [(float(s), int(c)) for s, c in zip(levels, counts)]


def cost_row(p: dict[str, Any]) -> dict[str, Any]:
    """FLOP ratio and simulated whole-run cost of one (method, distribution, S, M, preset) point."""
    from rigl_hw.flops_report import flops_report
    from rigl_hw.zoo import model_specs
    from studies.common import hardware, run_cost, study_masks, update_counts

    method, model, r, M = p["method"], p["model"], p["run"], int(p["multiplier"])
    steps, dist, S = r["steps"] * M, p["distribution"], p["sparsity"]
    hw = hardware(p["preset"])
    fr = flops_report(model, "uniform" if method == "dense" else dist, 0.0 if method == "dense" else S,
                      method=method, delta_t=r["delta_t"] if method == "rigl" else None, multiplier=M,
                      t_end=r["t_end"] if method == "rigl" else None, steps=r["steps"], batch=r["batch"])
    row: dict[str, Any] = {"flop_ratio": fr["train_flops"]["ratio"], "run_steps": steps}
    if method in ("dense", "small_dense"):
        width = fr["train_flops"].get("small_dense_width", 1.0)
        row["width"] = width
        rc = run_cost(model_specs(model, width), {}, hw, r["batch"], steps)
    elif method == "pruning":
        tot = {"run_cycles": 0.0, "run_energy_j": 0.0}
        for s, n in pruning_levels(S, M, steps):
            specs, _, masks = study_masks(model, dist, s, seed=p["seed"])
            part = run_cost(specs, masks, hw, r["batch"], n)
            tot = {k: tot[k] + part[k] for k in tot}
        rc = {**tot, "run_time_s": tot["run_cycles"] / hw.pe_array.clock_hz, "n_updates": 0,
              "update_share_time": 0.0, "update_share_energy": 0.0, "update_extra_time": 0.0,
              "update_extra_energy": 0.0}
    else:
        specs, alloc, masks = study_masks(model, dist, S, seed=p["seed"])
        counts = None
        if method in ("set", "rigl", "snfs"):
            _, counts = update_counts(alloc, r["delta_t"], r["alpha"], r["t_end"] * M, steps)
        rc = run_cost(specs, masks, hw, r["batch"], steps, counts, dense_dw_every_step=method == "snfs",
                      grow="random" if method == "set" else "topk")
    keep = ("run_cycles", "run_time_s", "run_energy_j", "n_updates", "update_share_time", "update_share_energy",
            "update_extra_time", "update_extra_energy", "normal_step_time_s", "normal_step_energy_j")
    return {**row, **{k: rc[k] for k in keep if k in rc}}


def _points(cfg: Config) -> list[dict]:
    pts = []
    for M in cfg.multipliers:
        for preset in cfg.presets:
            base = {"model": cfg.model, "multiplier": M, "preset": preset, "run": dict(cfg.run), "seed": SEED}
            for method in cfg.methods:
                if method == "dense":
                    pts.append({**base, "method": "dense", "distribution": "none", "sparsity": 0.0})
                    continue
                pts += [{**base, "method": method, "distribution": d, "sparsity": s}
                        for d in cfg.distributions for s in cfg.sparsities]
    return pts


def run(out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False, progress: bool = True,
        presets: tuple[str, ...] | None = None) -> Path:
    """Run the study into out_dir (created) and return it; report.md is the entry point."""
    cfg, out, log = start_study(NAME, out_dir, QUICK if quick else Config(), quick, presets)
    if "dense" not in cfg.methods:
        raise ValueError("training-cost normalises to the dense run: keep 'dense' in the methods")
    rows = log.sweep(cost_row, _points(cfg), scheduler, n_workers, progress)
    _write(out, cfg, rows, log)
    log.finish()
    return out


# --- tables, plots, report ----------------------------------------------------------------------------
def _table(cfg: Config, rows: list[dict]):
    import pandas as pd

    D = pd.DataFrame([{k: v for k, v in r.items() if k != "run"} for r in rows])
    D["method"] = pd.Categorical(D.method, categories=[m for m in METHODS if m in set(D.method)], ordered=True)
    D["batch"] = cfg.run["batch"]
    ref = D[(D.method == "dense") & (D.multiplier == 1)].set_index("preset")
    D["time_ratio"] = D.run_time_s.to_numpy() / ref.loc[D.preset, "run_time_s"].to_numpy()
    D["energy_ratio"] = D.run_energy_j.to_numpy() / ref.loc[D.preset, "run_energy_j"].to_numpy()
    D["time_over_flops"] = D.time_ratio / D.flop_ratio
    D["energy_over_flops"] = D.energy_ratio / D.flop_ratio
    cols = ["model", "method", "distribution", "sparsity", "multiplier", "preset", "flop_ratio", "time_ratio",
            "energy_ratio", "time_over_flops", "energy_over_flops", "run_time_s", "run_energy_j", "n_updates",
            "update_share_time", "update_share_energy", "update_extra_time", "update_extra_energy", "run_steps",
            "batch", "width", "normal_step_time_s", "normal_step_energy_j", "run_cycles", "seed"]
    return D[[c for c in cols if c in D.columns]]


def _view(D, cfg: Config, dist: str, s: float, M: int):
    """One row per method at (distribution, S, M); dense is shared by every view."""
    sel = ((D.distribution == dist) & (D.sparsity == s) | (D.method == "dense")) & (D.multiplier == M)
    return D[sel]


def cost_figure(cfg: Config, D, M: int):
    """Whole-run time (top row) and energy (bottom row) of every method / dense 1x on every preset, beside
    the training-FLOP ratio, for an M× run; one legend per row naming that row's metric."""
    import numpy as np

    from studies.common import PRESET_COLORS, pyplot

    plt = pyplot()
    dist = cfg.distributions[0]
    fig, axes = plt.subplots(2, len(cfg.sparsities), figsize=(6.5 * len(cfg.sparsities) + 2.2, 6.6), squeeze=False)
    x = np.arange(len(cfg.methods))
    w = 0.8 / (len(cfg.presets) + 1)
    for j, s in enumerate(cfg.sparsities):
        V = _view(D, cfg, dist, s, M)
        f = V.groupby("method", observed=True).flop_ratio.first().reindex(cfg.methods)
        for i, (col, what) in enumerate((("time_ratio", "time"), ("energy_ratio", "energy"))):
            ax = axes[i][j]
            ax.bar(x - 0.4 + w / 2, f.to_numpy(), w, color="black", label="training FLOPs / dense 1x")
            for k, p in enumerate(cfg.presets):
                v = V[V.preset == p].set_index("method")[col].reindex(cfg.methods)
                ax.bar(x - 0.4 + w * (k + 1.5), v.to_numpy(), w, color=PRESET_COLORS.get(p), label=f"{p}: {what}")
            ax.axhline(1.0, color="grey", lw=0.8, label="dense 1x run (= 1)")
            ax.set_xticks(x, [LABEL[m] for m in cfg.methods], rotation=30)
            ax.set_ylim(bottom=0)
            ax.set(title=f"{cfg.model} {dist} S={s}, {M}x: {what} / dense 1x", xlabel="method",
                   ylabel=f"whole-run {what} / dense 1x run (ratio)")
    for i, what in enumerate(("time", "energy")):
        axes[i][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title=f"{what} row", fontsize=8)
    return fig


def update_share_figure(cfg: Config, D):
    """Extra time (top) and energy (bottom) of the mask-update steps beyond a normal step, as % of the whole
    run, per update method and preset: markers on a log axis (no bars: the shares span orders of
    magnitude, and a bar on a log axis has no baseline). None when no method updates masks."""
    import numpy as np

    from studies.common import PRESET_COLORS, pyplot

    upd = [m for m in ("set", "rigl", "snfs") if m in cfg.methods]
    if not upd:
        return None
    plt = pyplot()
    dist, M = cfg.distributions[0], cfg.multipliers[0]
    fig, axes = plt.subplots(2, len(cfg.sparsities), figsize=(6.0 * len(cfg.sparsities), 6.0), squeeze=False)
    x = np.arange(len(upd))
    w = 0.8 / len(cfg.presets)
    for j, s in enumerate(cfg.sparsities):
        V = _view(D, cfg, dist, s, M)
        for i, (col, what) in enumerate((("update_extra_time", "time"), ("update_extra_energy", "energy"))):
            ax = axes[i][j]
            for k, p in enumerate(cfg.presets):
                v = 100 * V[V.preset == p].set_index("method").reindex(upd)[col].to_numpy(dtype=float)
                ax.plot(x - 0.4 + w * (k + 0.5), np.where(v > 0, v, np.nan), "o", ms=6, color=PRESET_COLORS.get(p),
                        label=p)
            for b in x[:-1] + 0.5:
                ax.axvline(b, color="grey", lw=0.5, alpha=0.5)
            ax.set_xticks(x, [LABEL[m] for m in upd])
            ax.set_xlim(-0.5, len(upd) - 0.5)
            ax.set(title=f"{dist} S={s}, {M}x: extra {what} of update steps", xlabel="method", yscale="log",
                   ylabel=f"% of the run's {what} (log scale)")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=len(cfg.presets), fontsize=8)
    return fig


def _plots(out: Path, cfg: Config, D) -> list[tuple[str, str]]:
    from studies.common import save_fig

    dist = cfg.distributions[0]
    figs = [(f"Whole-run time (top) and energy (bottom) against training FLOPs, {M}× runs ({dist} masks; "
             f"normalised to the dense 1× run on the same preset)", save_fig(cost_figure(cfg, D, M), out / f"cost_{M}x.png"))
            for M in cfg.multipliers]
    fig = update_share_figure(cfg, D)
    if fig is not None:
        figs.append(("Extra time and energy of the mask-update steps beyond a normal step, as a share of the whole "
                     "run (log scale; a missing marker is a share of exactly 0)", save_fig(fig, out / "update_share.png")))
    return figs


def _write(out: Path, cfg: Config, rows: list[dict], log: StudyLog) -> None:
    import pandas as pd

    from studies.common import (STEP_BATCH, fmt_energy, fmt_time, md_table, run_footer, sensitivity_section, write_csv,
                                write_text)

    D = _table(cfg, rows)
    write_csv(D, out / "costs.csv")
    from studies.common import plot_style

    with plot_style():
        figs = _plots(out, cfg, D)
    dist, M0 = cfg.distributions[0], cfg.multipliers[0]
    opening = []
    for s in cfg.sparsities:
        V = _view(D, cfg, dist, s, M0)
        for m in cfg.methods:
            v = V[V.method == m].set_index("preset")
            opening.append({"method": LABEL[m], "S": "–" if m == "dense" else s, "FLOPs": v.flop_ratio.iloc[0],
                            **{f"time {p}": v.at[p, "time_ratio"] for p in cfg.presets}})
    T = pd.DataFrame(opening).drop_duplicates(subset=["method", "S"])
    L = [f"# Training cost per method on sparse hardware{' (QUICK MODE)' if log.quick else ''}", "",
         md_table(T, {c: ".3f" for c in T.columns if c not in ("method", "S")}), "",
         f"*{cfg.model}, {dist} masks, {M0}× run ({cfg.run['steps'] * M0:,} steps at batch {cfg.run['batch']:,}, "
         f"ΔT = {cfg.run['delta_t']}, α = {cfg.run['alpha']}, T_end = {cfg.run['t_end'] * M0:,}): training FLOPs and "
         "simulated time of the whole run, both normalised to the dense 1× run (on the same preset for time). "
         "Energy, 5× runs and Uniform masks: below and in `costs.csv`.*", ""]
    L += [f"![{cap}]({fn})\n\n*{cap}.*\n" for cap, fn in figs]
    L += ["## Findings", ""]
    sparse = [m for m in cfg.methods if m not in ("dense", "small_dense", "pruning")]
    V1 = D[D.distribution.isin([dist]) & (D.multiplier == M0) & D.method.isin(sparse)]
    gap = V1.groupby("preset", observed=True).time_over_flops.agg(["min", "max"]).reindex(list(cfg.presets))
    floor = V1.groupby("preset", observed=True).time_ratio.min().reindex(list(cfg.presets))
    for p in cfg.presets:
        g = gap.loc[p]
        L.append(f"- `{p}`: the sparse-mask methods ({', '.join(LABEL[m] for m in sparse)}) take {g['min']:.2f}× to "
                 f"{g['max']:.2f}× the time their FLOP ratio predicts; the cheapest of them runs at {floor[p]:.2f}× "
                 "the dense time"
                 + (" (this array gains nothing from unstructured masks)." if floor[p] > 0.99 else
                    " (time follows FLOPs here)." if max(abs(g["min"] - 1), abs(g["max"] - 1)) < 0.05 else "."))
    for s in cfg.sparsities:
        V = _view(D, cfg, dist, s, M0)
        parts = []
        for p in cfg.presets:
            v = V[V.preset == p].set_index("method")
            best = v.time_ratio.idxmin()
            part = f"`{p}`:"
            if "rigl" in v.index:
                r = v.loc["rigl"]
                part += (f" RigL {r.flop_ratio:.2f}× FLOPs → {r.time_ratio:.2f}× time, {r.energy_ratio:.2f}× energy "
                         f"(update steps {r.update_share_time:.2%} of the time, {r.update_extra_time:.2%} beyond "
                         "normal steps)")
            if "small_dense" in v.index:
                part += f"; Small-Dense {v.at['small_dense', 'time_ratio']:.2f}× time"
            part += f"; fastest: {LABEL[best]}"
            parts.append(part)
        L.append(f"- S = {s}, {dist}, {M0}×:\n" + "\n".join(f"  - {x}." for x in parts))
    if "snfs" in cfg.methods and "rigl" in cfg.methods:
        V = D[(D.distribution == dist) & (D.multiplier == M0)]
        q = V.pivot_table(index=["sparsity", "preset"], columns="method", values=["time_ratio", "flop_ratio"],
                          observed=True)
        t, f = q["time_ratio"]["snfs"] / q["time_ratio"]["rigl"], q["flop_ratio"]["snfs"] / q["flop_ratio"]["rigl"]
        L.append(f"- SNFS's dense weight gradient on every step costs {t.min():.2f}× to {t.max():.2f}× RigL's time "
                 f"over the presets and sparsities, where its FLOPs are {f.min():.2f}× to {f.max():.2f}× RigL's.")
    L.append("")
    e = D[(D.distribution.isin([dist, "none"])) & (D.multiplier == M0)]
    e = e.pivot_table(index=["method", "sparsity"], columns="preset", values="energy_ratio", observed=True)
    e = e[list(cfg.presets)].reset_index()
    e["method"] = e.method.map(LABEL)
    L += [f"## Energy / dense 1× run ({dist}, {M0}×)", "", md_table(e, {p: ".3f" for p in cfg.presets}), ""]
    for M in cfg.multipliers[1:]:
        t = D[(D.distribution.isin([dist, "none"])) & (D.multiplier == M)]
        t = t.pivot_table(index=["method", "sparsity"], columns="preset", values="time_ratio", observed=True)
        t = t[list(cfg.presets)].reset_index()
        t["FLOPs"] = [D[(D.method == m) & (D.sparsity == s_) & (D.multiplier == M) & D.distribution.isin([dist, "none"])]
                      .flop_ratio.iloc[0] for m, s_ in zip(t.method, t.sparsity)]
        t["method"] = t.method.map(LABEL)
        L += [f"## Time / dense 1× run, {M}× runs ({dist})", "",
              md_table(t, {**{p: ".3f" for p in cfg.presets}, "FLOPs": ".3f"}), ""]
    if len(cfg.distributions) > 1:
        o = D[(D.distribution == cfg.distributions[1]) & (D.multiplier == M0)]
        o = o.pivot_table(index=["method", "sparsity"], columns="preset", values="time_ratio", observed=True)
        o = o[list(cfg.presets)].reset_index()
        o["method"] = o.method.map(LABEL)
        L += [f"## Time / dense 1× run, {cfg.distributions[1]} masks ({M0}×)", "",
              md_table(o, {p: ".3f" for p in cfg.presets}), ""]
    a = D[(D.method == "dense") & (D.multiplier == M0)]
    L += ["## Absolute dense reference", "",
          md_table(pd.DataFrame({"preset": a.preset, "run time": a.run_time_s.map(fmt_time),
                                 "run energy": a.run_energy_j.map(fmt_energy)})), "",
          "## Set-up", "",
          *[f"- {LABEL[m]}: {MODELLING[m]}" for m in cfg.methods],
          "- FLOP ratios: rigl_hw.flops_report with the same schedule (RigL updates until T_end, SNFS 2 f_S + f_D, "
          "pruning averaged over its schedule), normalised to the dense 1× run.",
          "- eyeriss-v2-pe is given no activation masks here, so it skips zero weights only; nm-2of4-tc runs "
          "unstructured masks dense (by design).", ""]
    sens_hw = next((p for p in cfg.presets if p.startswith("skip")), cfg.presets[0])
    L += sensitivity_section(cfg.model, sens_hw, 8 if log.quick else STEP_BATCH, max(cfg.sparsities))
    L.append(run_footer(log))
    write_text(out / "report.md", "\n".join(L))
