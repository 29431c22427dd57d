"""Study `update-interval`: what RigL's mask-update steps cost per step, against ΔT and the top-k buffer.

    run(out_dir, scheduler=None, n_workers=2, quick=False, progress=True, presets=None) -> Path

ResNet-50 with ERK masks (random, exact per-layer nonzeros, seed 0) at S in {0.8, 0.9, 0.95}, RigL
with ΔT in {10, 50, 100, 500, 1000} on the ImageNet schedule (32k steps at batch 4096, α = 0.3 cosine,
updates until T_end = 25k), and the top-k unit's on-chip buffer (`hw.topk.chunk_elements`) at 4K, 64K
and 1M elements, on skip-bitmask-32x32 and skip-csr-128x128. Per point the whole run is costed as in
studies.common.run_cost (normal steps + update steps with a dense weight gradient + the chunked top-k
grow, bottom-k drop, re-encode and optimizer-state zeroing of simulator.update), and amortised per
step. The paper's condition ΔT > 1/(1 − S) makes the amortised dense gradient f_D/ΔT smaller than one
sparse forward pass f_S, so in FLOPs the per-step cost stays proportional to density (within 1/3 of a
sparse step); the study shows where that holds on the simulated hardware and what a small top-k buffer
adds (a layer with k > buffer needs ceil(k / buffer) passes over its dense gradient from DRAM).
Writes intervals.csv, amortised.png, topk_buffer.png, report.md, run_info.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies.common import IMAGENET_RUN, SEED, StudyLog, start_study

NAME = "update-interval"


@dataclass(frozen=True)
class Config:
    model: str = "resnet50"
    distribution: str = "erk"
    sparsities: tuple[float, ...] = (0.8, 0.9, 0.95)
    delta_ts: tuple[int, ...] = (10, 50, 100, 500, 1000)
    chunks: tuple[int, ...] = (4096, 65536, 1048576)
    presets: tuple[str, ...] = ("skip-bitmask-32x32", "skip-csr-128x128")
    run: dict = field(default_factory=lambda: dict(IMAGENET_RUN))
    headline_delta_t: int = 100


QUICK = Config(model="mlp", sparsities=(0.9,), delta_ts=(10, 100), chunks=(4096, 65536), presets=("skip-bitmask-32x32",),
               run={**IMAGENET_RUN, "batch": 8})


def interval_row(p: dict[str, Any]) -> dict[str, Any]:
    """Whole-run cost of RigL at one (S, ΔT, top-k buffer, preset), or of the dense run (method "dense")."""
    from rigl_hw.flops_report import flops_report
    from rigl_hw.zoo import model_specs
    from studies.common import hardware, run_cost, study_masks, update_counts

    r = p["run"]
    hw = hardware(p["preset"], p.get("chunk_elements"))
    if p["method"] == "dense":
        rc = run_cost(model_specs(p["model"]), {}, hw, r["batch"], r["steps"])
        return {"run_cycles": rc["run_cycles"], "run_energy_j": rc["run_energy_j"],
                "normal_step_cycles": rc["normal_step_cycles"], "normal_step_energy_j": rc["normal_step_energy_j"]}
    specs, alloc, masks = study_masks(p["model"], p["distribution"], p["sparsity"], seed=p["seed"])
    _, counts = update_counts(alloc, p["delta_t"], r["alpha"], r["t_end"], r["steps"])
    rc = run_cost(specs, masks, hw, r["batch"], r["steps"], counts)
    kw = dict(steps=r["steps"], batch=r["batch"])
    rigl = flops_report(p["model"], p["distribution"], p["sparsity"], method="rigl", delta_t=p["delta_t"],
                        t_end=r["t_end"], **kw)
    static = flops_report(p["model"], p["distribution"], p["sparsity"], method="static", **kw)
    keep = ("run_cycles", "run_time_s", "run_energy_j", "n_updates", "normal_step_cycles", "normal_step_energy_j",
            "update_step_cycles", "mask_update_cycles", "mask_update_energy_j", "max_topk_passes",
            "update_extra_time", "update_extra_energy")
    return {**{k: rc[k] for k in keep}, "flop_ratio_rigl": rigl["train_flops"]["ratio"],
            "flop_ratio_static": static["train_flops"]["ratio"]}


def _points(cfg: Config) -> list[dict]:
    base = {"model": cfg.model, "run": dict(cfg.run), "seed": SEED}
    pts = [{**base, "method": "dense", "preset": p} for p in cfg.presets]
    pts += [{**base, "method": "rigl", "distribution": cfg.distribution, "sparsity": s, "delta_t": dt,
             "chunk_elements": c, "preset": p}
            for p in cfg.presets for s in cfg.sparsities for dt in cfg.delta_ts for c in cfg.chunks]
    return pts


def run(out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False, progress: bool = True,
        presets: tuple[str, ...] | None = None) -> Path:
    """Run the study into out_dir (created) and return it; report.md is the entry point."""
    cfg, out, log = start_study(NAME, out_dir, QUICK if quick else Config(), quick, presets)
    rows = log.sweep(interval_row, _points(cfg), scheduler, n_workers, progress)
    _write(out, cfg, rows, log)
    log.finish()
    return out


# --- table, plots, report -----------------------------------------------------------------------------
def _table(cfg: Config, rows: list[dict]):
    import pandas as pd

    A = pd.DataFrame([{k: v for k, v in r.items() if k != "run"} for r in rows])
    dense = A[A.method == "dense"].set_index("preset")
    D = A[A.method == "rigl"].drop(columns=["method"]).copy()
    D["delta_t"] = D.delta_t.astype(int)
    D["chunk_elements"] = D.chunk_elements.astype(int)
    D["n_updates"] = D.n_updates.astype(int)
    D["max_topk_passes"] = D.max_topk_passes.astype(int)
    steps = cfg.run["steps"]
    D["threshold"] = 1.0 / (1.0 - D.sparsity)
    D["meets_condition"] = D.delta_t > D.threshold
    D["amortised_step_cycles"] = D.run_cycles / steps
    D["time_vs_dense"] = D.run_cycles.to_numpy() / dense.loc[D.preset, "run_cycles"].to_numpy()
    D["energy_vs_dense"] = D.run_energy_j.to_numpy() / dense.loc[D.preset, "run_energy_j"].to_numpy()
    D["time_overhead"] = D.amortised_step_cycles / D.normal_step_cycles - 1.0
    D["energy_overhead"] = D.run_energy_j / (steps * D.normal_step_energy_j) - 1.0
    D["flop_overhead"] = D.flop_ratio_rigl / D.flop_ratio_static - 1.0
    D["mask_update_share"] = D.mask_update_cycles / D.run_cycles
    D["mask_update_per_update_vs_step"] = D.mask_update_cycles / D.n_updates.clip(lower=1) / D.normal_step_cycles
    D["density"] = 1.0 - D.sparsity
    D["fd_over_fs"] = 1.0 / D.flop_ratio_static   # dense / sparse training FLOPs per step
    return D.sort_values(["preset", "sparsity", "chunk_elements", "delta_t"]).reset_index(drop=True)


def _pct(x: float) -> str:
    """A share as a percentage with 3 significant digits (tiny shares stay readable)."""
    return f"{100 * x:.3g}%"


def amortised_figure(cfg: Config, D):
    """Per-step overhead of the update steps (% of a normal sparse step, log-log against ΔT) per preset:
    lines simulated time per top-k buffer, crosses FLOPs; the reference lines are in the legend."""
    from studies.common import pyplot

    plt = pyplot()
    styles = ["-", "--", ":", "-."]
    mid = cfg.chunks[len(cfg.chunks) // 2]
    fig, axes = plt.subplots(1, len(cfg.presets), figsize=(5.6 * len(cfg.presets), 4.6), squeeze=False)
    for ax, p in zip(axes[0], cfg.presets):
        for i, s in enumerate(cfg.sparsities):
            col = f"C{i}"
            for j, c in enumerate(cfg.chunks):
                d = D[(D.preset == p) & (D.sparsity == s) & (D.chunk_elements == c)]
                ax.plot(d.delta_t, 100 * d.time_overhead, styles[j % 4], color=col, marker="o", ms=3,
                        label=f"S={s}: time, buffer {c:,}")
            d = D[(D.preset == p) & (D.sparsity == s) & (D.chunk_elements == mid)]
            ax.plot(d.delta_t, 100 * d.flop_overhead, "x", color=col, ms=7, label=f"S={s}: FLOPs")
            ax.axvline(1 / (1 - s), color=col, lw=0.8, alpha=0.6,
                       label=f"S={s}: ΔT = 1/(1−S) = {1 / (1 - s):.3g} (paper: keep ΔT above it)")
        ax.axhline(100 / 3, color="grey", lw=0.8, label="1/3 of a normal sparse step (33%)")
        ax.set(xscale="log", yscale="log", xlabel="ΔT (training steps between mask updates, log scale)",
               ylabel="update-step overhead per step\n(% of a normal step's time or FLOPs, log scale)", title=p)
    # one legend column per sparsity (its lines, crosses and bound), the 1/3 line closing the last column
    h, lab = axes[0][0].get_legend_handles_labels()
    per = len(cfg.chunks) + 2
    blank = plt.Line2D([], [], alpha=0)
    hh, ll = [], []
    for i in range(len(cfg.sparsities)):
        last = i == len(cfg.sparsities) - 1
        hh += h[i * per:(i + 1) * per] + [h[-1] if last else blank]
        ll += lab[i * per:(i + 1) * per] + [lab[-1] if last else ""]
    fig.legend(hh, ll, loc="outside lower center", ncol=len(cfg.sparsities), fontsize=7)
    return fig


def topk_buffer_figure(cfg: Config, D):
    """Share of the run in the mask-update work against the top-k unit's on-chip buffer, per preset."""
    from studies.common import pyplot

    plt = pyplot()
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(cfg.presets), figsize=(5.0 * len(cfg.presets), 3.8), squeeze=False)
    for ax, p in zip(axes[0], cfg.presets):
        for i, s in enumerate(cfg.sparsities):
            for j, dt in enumerate(sorted({cfg.headline_delta_t, min(cfg.delta_ts)})):
                d = D[(D.preset == p) & (D.sparsity == s) & (D.delta_t == dt)].sort_values("chunk_elements")
                ax.plot(d.chunk_elements, 100 * d.mask_update_share, styles[j], color=f"C{i}", marker="o", ms=3,
                        label=f"S={s}, ΔT={dt}")
        ax.set(xscale="log", yscale="log", xlabel="top-k on-chip buffer (elements, log scale)",
               ylabel="top-k / re-encode work\n(% of run time, log scale)", title=p)
    axes[0][0].legend(fontsize=7)
    return fig


def _plots(out: Path, cfg: Config, D) -> list[tuple[str, str]]:
    from studies.common import save_fig

    return [("Amortised cost of the update steps per step, relative to a normal sparse step (lines: simulated "
             "time; crosses: FLOPs; vertical lines: ΔT = 1/(1−S); grey: 1/3 of a sparse step)",
             save_fig(amortised_figure(cfg, D), out / "amortised.png")),
            ("Share of the run spent in the mask-update work (top-k grow, drop, re-encode, zeroing) against the "
             "top-k unit's on-chip buffer", save_fig(topk_buffer_figure(cfg, D), out / "topk_buffer.png"))]


def _write(out: Path, cfg: Config, rows: list[dict], log: StudyLog) -> None:
    from studies.common import STEP_BATCH, md_table, run_footer, sensitivity_section, write_csv, write_text

    D = _table(cfg, rows)
    write_csv(D, out / "intervals.csv")
    from studies.common import plot_style

    with plot_style():
        figs = _plots(out, cfg, D)
    mid = cfg.chunks[len(cfg.chunks) // 2]
    o = D[D.chunk_elements == mid].pivot_table(index=["preset", "sparsity"], columns="delta_t",
                                               values="time_overhead").reset_index()
    o.columns = [c if isinstance(c, str) else f"ΔT={int(c)}" for c in o.columns]
    o.insert(2, "1/(1-S)", 1.0 / (1.0 - o.sparsity))
    L = [f"# RigL update interval and top-k buffer{' (QUICK MODE)' if log.quick else ''}", "",
         md_table(o, {**{c: ".2%" for c in o.columns if str(c).startswith("ΔT")}, "1/(1-S)": ".1f"}), "",
         f"*Per-step overhead of the mask-update steps (amortised over the whole run, relative to a normal sparse "
         f"step) for {cfg.model} with {cfg.distribution} masks, top-k buffer {mid:,} elements, "
         f"{cfg.run['steps']:,} steps at batch {cfg.run['batch']:,}, updates until T_end = {cfg.run['t_end']:,}. "
         "Columns ΔT; the paper's condition is ΔT > 1/(1−S).*", ""]
    L += [f"![{cap}]({fn})\n\n*{cap}.*\n" for cap, fn in figs]
    L += ["## Findings", ""]
    for p in cfg.presets:
        d = D[D.preset == p]
        yes, no = d[d.meets_condition], d[~d.meets_condition]
        line = f"- `{p}`: "
        if len(yes):
            line += (f"where ΔT > 1/(1−S) the simulated time overhead is at most {yes.time_overhead.max():.1%} of a normal "
                     f"step (energy {yes.energy_overhead.max():.1%}; FLOPs {yes.flop_overhead.max():.1%})")
        if len(no):
            w = no.loc[no.time_overhead.idxmax()]
            line += ((", while " if len(yes) else "") +
                     f"below the condition it reaches {w.time_overhead:.1%} (S = {w.sparsity}, ΔT = {int(w.delta_t)}, "
                     f"buffer {int(w.chunk_elements):,}; FLOPs {w.flop_overhead:.1%})")
        line += "."
        h = d[d.delta_t == cfg.headline_delta_t]
        for s in cfg.sparsities:
            q = h[h.sparsity == s].set_index("chunk_elements").sort_index()
            if q.empty:
                continue
            r0 = q.iloc[0]
            f_upd = (2 + r0.fd_over_fs) / 3   # FLOPs of an update step / a normal step: (2 f_S + f_D) / 3 f_S
            line += (f" At S = {s}: f_D/f_S = {r0.fd_over_fs:.1f} (1/(1−S) = {r0.threshold:.0f}); an update step costs "
                     f"{r0.update_step_cycles / r0.normal_step_cycles:.2f}× a normal step in time against "
                     f"{f_upd:.2f}× in FLOPs")
            if len(q) > 1:
                small, big = q.iloc[0], q.iloc[-1]
                line += (f"; a {int(q.index[0]):,}-element top-k buffer makes the mask-update work "
                         f"{small.mask_update_cycles / big.mask_update_cycles:.1f}× that with {int(q.index[-1]):,} "
                         f"(up to {int(small.max_topk_passes)} vs {int(big.max_topk_passes)} top-k passes, grow + drop, "
                         f"over one layer), {_pct(small.mask_update_share)} vs {_pct(big.mask_update_share)} of the run "
                         f"at ΔT = {cfg.headline_delta_t}")
            line += "."
        L.append(line)
    dense_like = D[(D.chunk_elements == mid) & (D.delta_t == cfg.headline_delta_t)]
    L.append("- Whole run vs dense at ΔT = " + f"{cfg.headline_delta_t}: " + "; ".join(
        f"`{r.preset}` S = {r.sparsity}: {r.time_vs_dense:.2f}× the time, {r.energy_vs_dense:.2f}× the energy "
        f"(density {r.density:.2f})" for r in dense_like.itertuples()) + ".")
    L += ["", "## All points", "",
          md_table(D[["preset", "sparsity", "delta_t", "chunk_elements", "n_updates", "time_overhead", "energy_overhead",
                      "flop_overhead", "mask_update_share", "max_topk_passes", "time_vs_dense"]],
                   {"time_overhead": ".2%", "energy_overhead": ".2%", "flop_overhead": ".2%",
                    "mask_update_share": ".2e", "time_vs_dense": ".3f"}), "",
          "## Set-up", "",
          "- The paper's bound compares the amortised dense gradient f_D/ΔT with the sparse step's f_S: with ERK "
          "f_D/f_S (column fd_over_fs) is below 1/(1−S), so the FLOP overhead stays small even where ΔT ≤ 1/(1−S).",
          "- mask_update_share: share of the run time in the top-k grow, drop, re-encode and zeroing work.",
          "- time_overhead = (run time / steps) / normal-step time − 1; flop_overhead = RigL / Static training FLOPs − 1 "
          "(rigl_hw.flops_report with the same ΔT and T_end). Updates stop at T_end, so the overhead is spread over "
          f"all {cfg.run['steps']:,} steps.",
          "- Update step: forward and backward-data with the old mask, dense weight gradient, then per layer the "
          "chunked top-k of |gradient| (k = floor(f(t)·nnz), f cosine from α), bottom-k of |θ|, re-encode of the "
          "stored weights, optimizer-state zeroing (simulator.update).",
          "- Buffer = the preset's top-k `chunk_elements` replaced by the value in the grid (dataclasses.replace).", ""]
    sens_hw = next((p for p in cfg.presets if p.startswith("skip")), cfg.presets[0])
    L += sensitivity_section(cfg.model, sens_hw, 8 if log.quick else STEP_BATCH, 0.9)
    L.append(run_footer(log))
    write_text(out / "report.md", "\n".join(L))
