"""Plots of the `uniform-vs-erk` study (studies/uniform_vs_erk.py): FLOPs, ERK / Uniform ratios,
whole-run cost, where one step's cycles go, and per-layer sparsity per model (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plots(out: Path, cfg, T: dict[str, Any]) -> list[tuple[str, str]]:
    """The study's PNGs from its tables `T` (studies.uniform_vs_erk._tables); [(caption, file name)]."""
    from studies.common import DIST_STYLE, PRESET_COLORS, pyplot, save_fig

    plt = pyplot()
    F, LS, S, R, RS = T["flops"], T["layer_sparsity"], T["sim"], T["erk_vs_uniform"], T["resolution_shares"]
    n = len(cfg.models)
    figs = []
    # 1. ERK / Uniform: FLOPs against time and energy on each preset
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, m in zip(axes[0], cfg.models):
        d = R[R.model == m]
        f = d.groupby("sparsity").first()
        ax.plot(f.index, f.train_flops_ratio, "k-o", ms=3, label="training FLOPs (RigL 1x)")
        for p in cfg.presets:
            q = d[d.preset == p].sort_values("sparsity")
            ax.plot(q.sparsity, q.run_time_ratio, "-s", ms=3, color=PRESET_COLORS.get(p), label=f"{p}: time")
            ax.plot(q.sparsity, q.run_energy_ratio, ":^", ms=3, color=PRESET_COLORS.get(p), label=f"{p}: energy")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(title=f"{m}: ERK / Uniform (whole run)", xlabel="sparsity S", ylabel="ratio ERK / Uniform")
    axes[0][0].legend(loc="upper left")
    figs.append(("ERK / Uniform: training FLOPs against simulated time and energy of a whole run",
                 save_fig(fig, out / "erk_over_uniform.png")))
    # 2. FLOPs
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.0), squeeze=False)
    for j, m in enumerate(cfg.models):
        for dist in cfg.distributions:
            d = F[(F.model == m) & (F.distribution == dist) & (F.width == 1.0)].sort_values("sparsity")
            axes[0][j].plot(d.sparsity, d.inference_ratio, DIST_STYLE.get(dist, "-"), marker="o", ms=3, label=dist)
            axes[1][j].plot(d.sparsity, d.train_ratio_rigl_1x, DIST_STYLE.get(dist, "-"), marker="o", ms=3,
                            color="C0", label=f"{dist} RigL 1x")
            axes[1][j].plot(d.sparsity, d.train_ratio_rigl_5x, DIST_STYLE.get(dist, "-"), marker="s", ms=3,
                            color="C3", label=f"{dist} RigL 5x")
        axes[0][j].set(title=f"{m}: inference FLOPs / dense", xlabel="sparsity S")
        axes[1][j].set(title=f"{m}: training FLOPs / dense 1x run", xlabel="sparsity S", yscale="log")
        axes[0][j].legend(), axes[1][j].legend()
    figs.append(("Inference and training FLOPs normalised to dense", save_fig(fig, out / "flops.png")))
    # 3. whole-run time and energy, absolute
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.0), squeeze=False)
    for j, m in enumerate(cfg.models):
        for p in cfg.presets:
            for dist in cfg.distributions:
                d = S[(S.model == m) & (S.distribution == dist) & (S.width == 1.0)].sort_values("sparsity")
                d = d[d.preset == p]
                axes[0][j].plot(d.sparsity, d.run_time_s / 86400, DIST_STYLE.get(dist, "-"), color=PRESET_COLORS.get(p),
                                marker="o", ms=3, label=f"{p} {dist}")
                axes[1][j].plot(d.sparsity, d.run_energy_j / 1e6, DIST_STYLE.get(dist, "-"), color=PRESET_COLORS.get(p),
                                marker="o", ms=3, label=f"{p} {dist}")
            ref = S[(S.model == m) & (S.method == "dense") & (S.preset == p)]
            axes[0][j].axhline(ref.run_time_s.iloc[0] / 86400, color=PRESET_COLORS.get(p), lw=0.7, alpha=0.6)
            axes[1][j].axhline(ref.run_energy_j.iloc[0] / 1e6, color=PRESET_COLORS.get(p), lw=0.7, alpha=0.6)
        axes[0][j].set(title=f"{m}: whole-run time", xlabel="sparsity S", ylabel="days", yscale="log")
        axes[1][j].set(title=f"{m}: whole-run energy", xlabel="sparsity S", ylabel="MJ", yscale="log")
    axes[0][0].legend(fontsize=7)
    figs.append((f"Whole RigL run ({cfg.run['steps']:,} steps at batch {cfg.run['batch']:,}): time and energy "
                 "(thin lines: the dense model on the same preset)", save_fig(fig, out / "run_cost.png")))
    # 4. where the cycles go, by output resolution, first model at the highest headline sparsity
    m, s = cfg.models[0], max(cfg.headline)
    fig, axes = plt.subplots(1, len(cfg.presets), figsize=(4.2 * len(cfg.presets), 3.4), squeeze=False)
    for ax, p in zip(axes[0], cfg.presets):
        d = RS[(RS.model == m) & (RS.sparsity == s) & (RS.preset == p)]
        res = sorted(d.out_res.unique(), reverse=True)
        x = range(len(res))
        for i, (dist, col, lab) in enumerate([("uniform", "mac_share", "Uniform MACs"), ("uniform", "cycle_share", "Uniform cycles"),
                                              ("erk", "mac_share", "ERK MACs"), ("erk", "cycle_share", "ERK cycles")]):
            q = d[d.distribution == dist].set_index("out_res")
            ax.bar([xi + (i - 1.5) * 0.2 for xi in x], [q.at[r, col] if r in q.index else 0 for r in res], 0.2,
                   label=lab, color=["#9ecae1", "#3182bd", "#fdae6b", "#e6550d"][i])
        ax.set_xticks(list(x), [f"{r}x{r}" for r in res])
        ax.set(title=f"{m} S={s}: {p}", xlabel="output resolution", ylabel="share of step")
    axes[0][0].legend()
    figs.append((f"Where one training step's useful MACs and cycles go, by output resolution ({m}, S = {s})",
                 save_fig(fig, out / "where_cycles_go.png")))
    # 5. per-layer sparsity, one figure per model (the paper's appendix figure)
    cmap = plt.get_cmap("viridis")
    for m in cfg.models:
        fig, axes = plt.subplots(1, len(cfg.distributions), figsize=(5.2 * len(cfg.distributions), 3.2), squeeze=False)
        for ax, dist in zip(axes[0], cfg.distributions):
            for i, s in enumerate(cfg.sparsities):
                d = LS[(LS.model == m) & (LS.distribution == dist) & (LS.sparsity == s) & (LS.width == 1.0)]
                ax.plot(d.layer_index, d.layer_sparsity, "-o", ms=2, lw=1,
                        color=cmap(i / max(1, len(cfg.sparsities) - 1)), label=f"S={s}")
            ax.set(title=f"{m}: {dist}", xlabel="layer index", ylabel="layer sparsity", ylim=(-0.02, 1.02))
        h, lab = axes[0][0].get_legend_handles_labels()
        fig.legend(h, lab, loc="outside right center", fontsize=7)
        figs.append((f"Per-layer sparsity of {m}", save_fig(fig, out / f"layer_sparsity_{m}.png")))
    return figs
