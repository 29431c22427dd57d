"""Study `uniform-vs-erk`: what ERK's FLOP premium over Uniform costs in time and energy on hardware.

    run(out_dir, scheduler=None, n_workers=2, quick=False, progress=True, presets=None) -> Path

ResNet-50, MobileNet-v1 and MobileNet-v2 at S in {0.5 ... 0.965} x {uniform, erk}: parameters,
inference FLOPs and RigL training FLOPs (1x, 5x; ΔT = 100, the paper's formula, rigl_hw.flops_report),
per-layer sparsities, and, on each hardware preset, the simulated time and energy of one training step
at batch 256 and of a whole RigL run (32k steps at batch 4096, an update every ΔT = 100 steps until
T_end = 25k, α = 0.3 cosine; studies.common.run_cost), with random masks of exactly the allocation's
nonzeros (seed 0). Plus the dense model of each (normalisation) and MobileNet-v1 "Big-Sparse" (width
1.98, Uniform 75%, first layer dense) against the dense width-1.0 model. Two Dask sweeps (FLOP points,
simulation points), cached under OUT/.cache. Writes flops.csv, layer_sparsity.csv, sim.csv, layers.csv,
resolution_shares.csv, erk_vs_uniform.csv, big_sparse.csv, PNG plots, report.md, run_info.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies import uniform_vs_erk_plots
from studies.common import IMAGENET_RUN, SEED, STEP_BATCH, StudyLog, start_study

NAME = "uniform-vs-erk"


@dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("resnet50", "mobilenet_v1", "mobilenet_v2")
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.965)
    distributions: tuple[str, ...] = ("uniform", "erk")
    presets: tuple[str, ...] = ("dense-32x32", "skip-bitmask-32x32", "skip-csr-128x128")
    step_batch: int = STEP_BATCH
    run: dict = field(default_factory=lambda: dict(IMAGENET_RUN))
    big_sparse: tuple[str, float, float] = ("mobilenet_v1", 1.98, 0.75)   # model, width, uniform sparsity
    headline: tuple[float, ...] = (0.8, 0.9)


QUICK = Config(models=("mlp",), sparsities=(0.5, 0.9), presets=("dense-32x32", "skip-bitmask-32x32"), step_batch=8,
               run={**IMAGENET_RUN, "batch": 8}, big_sparse=("mlp", 1.98, 0.75), headline=(0.9,))


# --- sweep point functions (module level: Dask workers import them by name) ---------------------------
def flops_row(p: dict[str, Any]) -> dict[str, Any]:
    """Params, inference FLOPs, RigL 1x/5x training FLOPs and per-layer sparsities of one configuration."""
    from rigl_hw.flops_report import flops_report

    kw = dict(width=p["width"], method="rigl", delta_t=p["delta_t"])
    r1 = flops_report(p["model"], p["distribution"], p["sparsity"], multiplier=1.0, **kw)
    r5 = flops_report(p["model"], p["distribution"], p["sparsity"], multiplier=5.0, **kw)
    return {"params_dense": r1["params"]["dense"], "params": r1["params"]["sparse"],
            "inference_flops_dense": r1["inference_flops"]["dense"], "inference_flops": r1["inference_flops"]["sparse"],
            "inference_ratio": r1["inference_flops"]["ratio"], "train_flops_dense": r1["train_flops"]["dense"],
            "train_flops_rigl_1x": r1["train_flops"]["sparse"], "train_ratio_rigl_1x": r1["train_flops"]["ratio"],
            "train_ratio_rigl_5x": r5["train_flops"]["ratio"],
            "layer_names": [L["name"] for L in r1["layers"]], "layer_sparsity": [L["sparsity"] for L in r1["layers"]]}


def sim_row(p: dict[str, Any]) -> dict[str, Any]:
    """One training step at p["step_batch"] and a whole run (p["run"]) of one configuration on one preset."""
    from simulator.engine import simulate_step
    from studies.common import hardware, layer_breakdown, run_cost, study_masks, update_counts

    hw = hardware(p["preset"])
    specs, alloc, masks = study_masks(p["model"], p["distribution"], p["sparsity"], p["width"], p["seed"])
    step = simulate_step(specs, masks, hw, p["step_batch"])
    upd = simulate_step(specs, masks, hw, p["step_batch"], update_step=True) if alloc is not None else step
    r = p["run"]
    counts = None
    if p["method"] == "rigl":
        _, counts = update_counts(alloc, r["delta_t"], r["alpha"], r["t_end"], r["steps"])
    rc = run_cost(specs, masks, hw, r["batch"], r["steps"], counts)
    t = step.table
    dram = hw.memory[-1].name
    return {"step_cycles": step.cycles, "step_time_s": step.time_s, "step_energy_j": step.energy_j,
            "step_energy_mac_j": float(t["energy_pj_mac"].sum()) * 1e-12,
            "step_energy_dram_j": float(t[f"energy_pj_{dram}"].sum()) * 1e-12,
            "update_step_time_s": upd.time_s, "update_step_energy_j": upd.energy_j,
            "pes": hw.pe_array.rows * hw.pe_array.cols,
            **{k: v for k, v in rc.items() if k != "normal_table"},
            "layers": layer_breakdown(t, specs, hw)}


# --- the study ------------------------------------------------------------------------------------------
def _points(cfg: Config) -> tuple[list[dict], list[dict]]:
    run_cfg = dict(cfg.run)
    bm, bw, bs = cfg.big_sparse
    confs = [(m, 1.0, d, s) for m in cfg.models for d in cfg.distributions for s in cfg.sparsities]
    flops_pts = [{"model": m, "width": w, "distribution": d, "sparsity": s, "delta_t": run_cfg["delta_t"]}
                 for m, w, d, s in confs + [(bm, bw, "uniform", bs)]]
    sim_confs = [(m, w, d, s, "rigl") for m, w, d, s in confs + [(bm, bw, "uniform", bs)]]
    sim_confs += [(m, 1.0, "dense", 0.0, "dense") for m in dict.fromkeys(cfg.models + (bm,))]
    sim_pts = [{"model": m, "width": w, "distribution": d, "sparsity": s, "method": meth, "preset": hw,
                "step_batch": cfg.step_batch, "run": run_cfg, "seed": SEED}
               for m, w, d, s, meth in sim_confs for hw in cfg.presets]
    return flops_pts, sim_pts


def run(out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False, progress: bool = True,
        presets: tuple[str, ...] | None = None) -> Path:
    """Run the study into out_dir (created) and return it; report.md is the entry point."""
    cfg, out, log = start_study(NAME, out_dir, QUICK if quick else Config(), quick, presets)
    flops_pts, sim_pts = _points(cfg)
    flops_rows = log.sweep(flops_row, flops_pts, scheduler, n_workers, progress)
    sim_rows = log.sweep(sim_row, sim_pts, scheduler, n_workers, progress)
    _write(out, cfg, flops_rows, sim_rows, log)
    log.finish()
    return out


# --- tables -------------------------------------------------------------------------------------------
_SIM_RATIOS = {"step_time_s": "step_time", "step_energy_j": "step_energy", "run_time_s": "run_time",
               "run_energy_j": "run_energy"}


def _tables(cfg: Config, flops_rows: list[dict], sim_rows: list[dict]) -> dict[str, Any]:
    import pandas as pd

    F = pd.DataFrame([{k: v for k, v in r.items() if k not in ("layer_names", "layer_sparsity")} for r in flops_rows])
    LS = pd.DataFrame([{"model": r["model"], "width": r["width"], "distribution": r["distribution"],
                        "sparsity": r["sparsity"], "layer_index": i, "layer": n, "layer_sparsity": v}
                       for r in flops_rows for i, (n, v) in enumerate(zip(r["layer_names"], r["layer_sparsity"]))])
    sim, layers = [], []
    for r in sim_rows:
        row = {k: v for k, v in r.items() if k not in ("layers", "run", "seed")}
        row.update(run_steps=r["run"]["steps"], run_batch=r["run"]["batch"], seed=r["seed"])
        sim.append(row)
        key = {c: r[c] for c in ("model", "width", "distribution", "sparsity", "method", "preset")}
        L = r["layers"]
        layers += [{**key, "layer_index": i, **{c: L[c][i] for c in L}} for i in range(len(L["layer"]))]
    S, LY = pd.DataFrame(sim), pd.DataFrame(layers)
    dense = S[S.method == "dense"].set_index(["model", "preset"])
    for col, short in _SIM_RATIOS.items():
        S[f"{short}_vs_dense"] = S[col].to_numpy() / dense.loc[list(zip(S.model, S.preset)), col].to_numpy()
    main = S[(S.method == "rigl") & (S.width == 1.0)]
    idx = ["model", "sparsity", "preset"]
    u = main[main.distribution == "uniform"].set_index(idx)
    e = main[main.distribution == "erk"].set_index(idx)
    R = (e[list(_SIM_RATIOS)] / u[list(_SIM_RATIOS)]).rename(columns={c: f"{s}_ratio" for c, s in _SIM_RATIOS.items()})
    Fm = F[F.width == 1.0]
    fcols = {"params": "params_ratio", "inference_flops": "inference_flops_ratio",
             "train_flops_rigl_1x": "train_flops_ratio"}
    fu = Fm[Fm.distribution == "uniform"].set_index(["model", "sparsity"])[list(fcols)]
    fe = Fm[Fm.distribution == "erk"].set_index(["model", "sparsity"])[list(fcols)]
    FR = (fe / fu).rename(columns=fcols)
    R = R.reset_index().join(FR, on=["model", "sparsity"])
    R = R[["model", "sparsity", "preset", *fcols.values(), *[f"{s}_ratio" for s in _SIM_RATIOS.values()]]]
    # where the cycles go, by output resolution (early = high resolution)
    pes = S.groupby("preset")["pes"].first()
    sel = LY[(LY.method == "rigl") & (LY.width == 1.0)]
    keys = ["model", "distribution", "sparsity", "preset"]
    g = sel.groupby(keys + ["out_res"])[["effectual_macs", "cycles", "compute_cycles", "energy_pj", "dram_bytes"]].sum()
    tot = g.groupby(level=keys).transform("sum")
    RS = pd.DataFrame({"mac_share": g.effectual_macs / tot.effectual_macs, "cycle_share": g.cycles / tot.cycles,
                       "energy_share": g.energy_pj / tot.energy_pj, "dram_share": g.dram_bytes / tot.dram_bytes,
                       "utilisation": g.effectual_macs / (g.cycles * pes.loc[g.index.get_level_values("preset")].to_numpy()),
                       "memory_bound": 1.0 - g.compute_cycles / g.cycles}).reset_index()
    # step-level "why" metrics per configuration
    top = sel.groupby("model")["out_res"].transform("max")
    sel = sel.assign(early=sel.out_res >= top / 2)
    W = sel.groupby(keys).apply(lambda d: pd.Series({
        "early_mac_share": d.effectual_macs[d.early].sum() / d.effectual_macs.sum(),
        "early_cycle_share": d.cycles[d.early].sum() / d.cycles.sum(),
        "utilisation": d.effectual_macs.sum() / (d.cycles.sum() * pes[d.name[3]]),
        "memory_bound": 1.0 - d.compute_cycles.sum() / d.cycles.sum(),
        "grouped_mac_share": d.effectual_macs[d.groups > 1].sum() / d.effectual_macs.sum(),
        "grouped_cycle_share": d.cycles[d.groups > 1].sum() / d.cycles.sum(),
        "early_res": int(d.out_res[d.early].min())}), include_groups=False).reset_index()
    W = W.join(main.set_index(keys)[["step_energy_dram_j", "step_energy_mac_j", "step_energy_j"]], on=keys)
    W["dram_energy_share"] = W.step_energy_dram_j / W.step_energy_j
    W["mac_energy_share"] = W.step_energy_mac_j / W.step_energy_j
    W = W.drop(columns=["step_energy_dram_j", "step_energy_mac_j", "step_energy_j"])
    # Big-Sparse against the dense width-1.0 model
    bm, bw, bs = cfg.big_sparse
    big_f = F[(F.model == bm) & (F.width == bw) & (F.sparsity == bs)].iloc[0]
    ref_f = F[(F.model == bm) & (F.width == 1.0)].iloc[0]
    big_s = S[(S.model == bm) & (S.width == bw) & (S.sparsity == bs)].set_index("preset")
    ref_s = S[(S.model == bm) & (S.method == "dense")].set_index("preset")
    big = [("parameters (sparsifiable, nonzero)", ref_f.params_dense, big_f.params),
           ("inference FLOPs per image", ref_f.inference_flops_dense, big_f.inference_flops),
           ("training FLOPs per run (dense 1x / RigL 1x)", ref_f.train_flops_dense, big_f.train_flops_rigl_1x)]
    for p in cfg.presets:
        big += [(f"{p}: step time (s, batch {cfg.step_batch})", ref_s.at[p, "step_time_s"], big_s.at[p, "step_time_s"]),
                (f"{p}: step energy (J)", ref_s.at[p, "step_energy_j"], big_s.at[p, "step_energy_j"]),
                (f"{p}: run time (s)", ref_s.at[p, "run_time_s"], big_s.at[p, "run_time_s"]),
                (f"{p}: run energy (J)", ref_s.at[p, "run_energy_j"], big_s.at[p, "run_energy_j"])]
    B = pd.DataFrame(big, columns=["metric", "dense_w1", "big_sparse"])
    B["ratio"] = B.big_sparse / B.dense_w1
    return {"flops": F, "layer_sparsity": LS, "sim": S, "layers": LY, "erk_vs_uniform": R,
            "resolution_shares": RS, "why": W, "big_sparse": B}


# --- report -------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    t = f"{x:+.0%}"
    return "0%" if t in ("+0%", "-0%") else t


def _findings(cfg: Config, T: dict[str, Any], skips: dict[str, bool]) -> list[str]:
    R, W, B = T["erk_vs_uniform"], T["why"], T["big_sparse"]
    lines = []
    for m in cfg.models:
        f = R[R.model == m].groupby("sparsity").first()
        lo, hi = f.train_flops_ratio.idxmin(), f.train_flops_ratio.idxmax()
        lines.append(f"- **{m}**: ERK needs {f.train_flops_ratio[lo]:.2f}× (S = {lo}) to {f.train_flops_ratio[hi]:.2f}× "
                     f"(S = {hi}) Uniform's RigL training FLOPs.")
        for s in cfg.headline:
            d = R[(R.model == m) & (R.sparsity == s)].set_index("preset")
            fr = d.train_flops_ratio.iloc[0]
            parts = []
            for p in cfg.presets:
                tr, er = d.at[p, "run_time_ratio"], d.at[p, "run_energy_ratio"]
                conv = (f" ({_pct((tr - 1) / (fr - 1))} of the FLOP premium as time, {_pct((er - 1) / (fr - 1))} as energy)"
                        if skips[p] and fr > 1.01 else "")
                parts.append(f"`{p}` {tr:.2f}× the time, {er:.2f}× the energy{conv}")
            lines.append(f"  - S = {s}: {fr:.2f}× the FLOPs; a whole ERK run takes " + "; ".join(parts) + ".")
    s = max(cfg.headline)
    lines.append(f"- **Why** (S = {s}, one step at batch {cfg.step_batch}; each pair is Uniform / ERK). "
                 "Early = the highest-resolution layers (output at least half the largest resolution); "
                 "depthwise = grouped convs, which fill 1 of the array's columns:")
    for m in cfg.models:
        for p in cfg.presets:
            w = W[(W.model == m) & (W.sparsity == s) & (W.preset == p)].set_index("distribution")
            u, e = w.loc["uniform"], w.loc["erk"]
            r = R[(R.model == m) & (R.sparsity == s) & (R.preset == p)].iloc[0]
            why = (f"  - {m} on `{p}`: early layers (≥{int(u.early_res)}×{int(u.early_res)}) hold "
                   f"{u.early_mac_share:.0%} / {e.early_mac_share:.0%} of the useful MACs and take "
                   f"{u.early_cycle_share:.0%} / {e.early_cycle_share:.0%} of the cycles")
            if max(u.grouped_mac_share, e.grouped_mac_share) > 0:
                why += (f"; depthwise layers hold {u.grouped_mac_share:.0%} / {e.grouped_mac_share:.0%} of the MACs "
                        f"and take {u.grouped_cycle_share:.0%} / {e.grouped_cycle_share:.0%} of the cycles")
            why += (f"; useful MACs per PE-cycle {u.utilisation:.1%} / {e.utilisation:.1%}; cycles beyond compute "
                    f"(memory stalls) {u.memory_bound:.0%} / {e.memory_bound:.0%}; DRAM {u.dram_energy_share:.0%} / "
                    f"{e.dram_energy_share:.0%} of the step energy, MACs {u.mac_energy_share:.0%} / {e.mac_energy_share:.0%}.")
            if not skips[p]:
                why += (f" This array multiplies the zeros: time does not depend on the mask (ratio "
                        f"{r.step_time_ratio:.3f}), energy only through stored weights ({r.step_energy_ratio:.3f}).")
            elif r.step_time_ratio < 0.5 * (1 + r.train_flops_ratio):
                reasons = []
                if u.memory_bound > e.memory_bound + 0.01:
                    reasons.append("Uniform's sparse step is more memory-bound, so its saved MACs are not saved cycles")
                if e.grouped_cycle_share > e.grouped_mac_share + 0.05:
                    reasons.append("the depthwise layers cost far more cycles than their MACs under both")
                if abs(u.early_cycle_share - e.early_cycle_share) < 0.05 < e.early_mac_share - u.early_mac_share:
                    reasons.append("ERK's extra MACs sit in early layers whose cycles barely change")
                why += (f" Time ratio {r.step_time_ratio:.2f} against a FLOP ratio of {r.train_flops_ratio:.2f}"
                        + (": " + "; ".join(reasons) if reasons else "") + ".")
            lines.append(why)
    bm, bw, bs = cfg.big_sparse
    b = B.set_index("metric")
    parts = [f"`{p}` {b.at[f'{p}: run time (s)', 'ratio']:.2f}× the time and {b.at[f'{p}: run energy (J)', 'ratio']:.2f}× "
             f"the energy" for p in cfg.presets]
    lines.append(f"- **Big-Sparse** ({bm} width {bw}, Uniform {bs:.0%}): "
                 f"{b.at['parameters (sparsifiable, nonzero)', 'ratio']:.2f}× the dense width-1.0 model's parameters, "
                 f"{b.at['inference FLOPs per image', 'ratio']:.2f}× its inference FLOPs and "
                 f"{b.at['training FLOPs per run (dense 1x / RigL 1x)', 'ratio']:.2f}× its training FLOPs; a whole run takes "
                 + "; ".join(parts) + ".")
    return lines


def _write(out: Path, cfg: Config, flops_rows: list[dict], sim_rows: list[dict], log: StudyLog) -> None:
    from studies.common import (fmt_energy, fmt_time, hardware, md_table, run_footer, sensitivity_section, write_csv,
                                write_text)

    T = _tables(cfg, flops_rows, sim_rows)
    for name in ("flops", "layer_sparsity", "sim", "layers", "erk_vs_uniform", "resolution_shares", "why", "big_sparse"):
        write_csv(T[name], out / f"{name}.csv")
    from studies.common import plot_style

    with plot_style():
        figs = uniform_vs_erk_plots.plots(out, cfg, T)
    skips = {p: hardware(p).skips for p in cfg.presets}
    R, S = T["erk_vs_uniform"], T["sim"]
    head = R[R.sparsity.isin(cfg.headline)]
    wide = head.pivot_table(index=["model", "sparsity"], columns="preset",
                            values=["run_time_ratio", "run_energy_ratio"]).sort_index()
    f = head.groupby(["model", "sparsity"])[["params_ratio", "train_flops_ratio"]].first()
    rows = []
    for (m, s), r in wide.iterrows():
        row = {"model": m, "S": s, "params": f.at[(m, s), "params_ratio"], "train FLOPs (RigL 1x)": f.at[(m, s), "train_flops_ratio"]}
        for p in cfg.presets:
            row[f"time {p}"] = r[("run_time_ratio", p)]
            row[f"energy {p}"] = r[("run_energy_ratio", p)]
        rows.append(row)
    import pandas as pd

    opening = pd.DataFrame(rows)
    fmt = {c: ".2f" for c in opening.columns if c not in ("model", "S")}
    L = [f"# Uniform vs ERK: FLOPs, time and energy{' (QUICK MODE)' if log.quick else ''}", "",
         md_table(opening, fmt), "",
         f"*ERK / Uniform ratios of a whole RigL run ({cfg.run['steps']:,} steps at batch {cfg.run['batch']:,}, "
         f"ΔT = {cfg.run['delta_t']}, α = {cfg.run['alpha']}, T_end = {cfg.run['t_end']:,}) at the same overall "
         "sparsity: parameters, training FLOPs, and simulated time and energy per hardware preset. "
         "All numbers in this report are read from the CSV files beside it.*", ""]
    L += [f"![{cap}]({fn})\n\n*{cap}.*\n" for cap, fn in figs]
    L += ["## Findings", "", *_findings(cfg, T, skips), ""]
    s_top = max(cfg.headline)
    a = S[(S.width == 1.0) & ((S.sparsity == s_top) | (S.method == "dense"))].copy()
    a["config"] = a.apply(lambda r: "dense" if r.method == "dense" else f"{r.distribution} {r.sparsity}", axis=1)
    a["step time"] = a.step_time_s.map(lambda v: f"{v * 1e3:.4g} ms")
    a["step energy"] = a.step_energy_j.map(fmt_energy)
    a["run time"] = a.run_time_s.map(fmt_time)
    a["run energy"] = a.run_energy_j.map(fmt_energy)
    a = a.sort_values(["model", "preset", "config"])
    L += [f"## One step (batch {cfg.step_batch}) and one whole run (batch {cfg.run['batch']:,}) at S = {s_top}", "",
          md_table(a[["model", "preset", "config", "step time", "step energy", "step_time_vs_dense", "run time",
                      "run energy", "run_time_vs_dense", "run_energy_vs_dense", "update_share_time"]],
                   {"step_time_vs_dense": ".3f", "run_time_vs_dense": ".3f", "run_energy_vs_dense": ".3f",
                    "update_share_time": ".2%"}), "",
          "`update_share_time`: share of the run's time spent in the mask-update steps (their dense weight "
          "gradient and top-k work included).", ""]
    W = T["why"]
    L += ["## Why: utilisation, memory and layer shapes", "",
          md_table(W[W.sparsity == s_top].round(4), {c: ".1%" for c in ("early_mac_share", "early_cycle_share",
                                                                      "grouped_mac_share", "grouped_cycle_share",
                                                                      "utilisation", "memory_bound",
                                                                      "dram_energy_share", "mac_energy_share")}), "",
          "early = layers whose output resolution is at least half the model's largest; utilisation = useful "
          "(effectual) MACs per PE per cycle; memory_bound = share of cycles beyond the compute cycles (the "
          "per-fold roofline of the simulator). Per-resolution shares for every configuration: "
          "`resolution_shares.csv`; per layer: `layers.csv`.", ""]
    bm, bw, bs = cfg.big_sparse
    L += [f"## Big-Sparse: {bm} width {bw} at Uniform {bs:.0%} vs dense width 1.0", "",
          md_table(T["big_sparse"], {"dense_w1": ".4g", "big_sparse": ".4g", "ratio": ".3f"}), "",
          "## Set-up", "",
          f"- Models {', '.join(cfg.models)}; sparsities {', '.join(map(str, cfg.sparsities))}; presets "
          f"{', '.join(cfg.presets)}. Paper conventions (rigl_hw.zoo): Uniform keeps the first layer dense; ERK "
          "sparsifies ResNet-50's conv1 and fc; MobileNets keep the first layer dense under both.",
          "- FLOPs: rigl_hw.flops_report (paper Appendix H); RigL training FLOPs by the paper's formula "
          f"(ΔT = {cfg.run['delta_t']}, updates over the whole run), 5×: the run is 5× longer.",
          f"- One step: `simulate_step` at batch {cfg.step_batch}, a normal RigL step (sparse weight gradient); "
          "the update step is in `sim.csv` (`update_step_*`).",
          f"- Whole run: normal-step cost × normal steps + every update step (dense weight gradient + top-k "
          f"grow/drop + re-encode + optimizer-state zeroing, k = floor(f(t)·nnz) per layer, cosine α = "
          f"{cfg.run['alpha']}) at batch {cfg.run['batch']:,}; equal to `simulator.engine.simulate_run` on a "
          "synthetic trace whose masks keep their positions (tested).",
          f"- Masks: random, exactly the allocation's nonzeros per layer, seed {SEED}.", ""]
    sens_hw = next((p for p in cfg.presets if p.startswith("skip")), cfg.presets[0])
    L += sensitivity_section(cfg.models[0], sens_hw, cfg.step_batch, cfg.headline[-1])
    L.append(run_footer(log))
    write_text(out / "report.md", "\n".join(L))
