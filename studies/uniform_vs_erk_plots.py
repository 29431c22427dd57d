"""Plots of the `uniform-vs-erk` study (studies/uniform_vs_erk.py): FLOPs, ERK / Uniform ratios,
whole-run cost, where one step's cycles go, and per-layer density per model as a heatmap (matplotlib, Agg).
Each `*_figure` function returns a Figure from the study's tables; `plots` saves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

S_LABEL = "target sparsity S (fraction of weights zero)"


def erk_over_uniform_figure(cfg, R):
    """ERK / Uniform: training FLOPs against simulated whole-run time and energy on each preset."""
    from studies.common import PRESET_COLORS, pyplot

    plt = pyplot()
    n = len(cfg.models)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, m in zip(axes[0], cfg.models):
        d = R[R.model == m]
        f = d.groupby("sparsity").first()
        ax.plot(f.index, f.train_flops_ratio, "k-o", ms=3, label="training FLOPs (RigL 1x)")
        for p in cfg.presets:
            q = d[d.preset == p].sort_values("sparsity")
            ax.plot(q.sparsity, q.run_time_ratio, "-s", ms=3, color=PRESET_COLORS.get(p), label=f"{p}: time")
            ax.plot(q.sparsity, q.run_energy_ratio, ":^", ms=3, color=PRESET_COLORS.get(p), label=f"{p}: energy")
        ax.axhline(1.0, color="grey", lw=0.8, label="ERK = Uniform (ratio 1)")
        ax.set(title=f"{m}: ERK / Uniform (whole run)", xlabel=S_LABEL, ylabel="ERK / Uniform (ratio)")
    axes[0][0].legend(loc="upper left")
    return fig


def flops_figure(cfg, F):
    """Inference (top) and training (bottom) FLOPs normalised to dense, per distribution and sparsity."""
    from studies.common import DIST_STYLE, pyplot

    plt = pyplot()
    n = len(cfg.models)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.0), squeeze=False)
    for j, m in enumerate(cfg.models):
        for dist in cfg.distributions:
            d = F[(F.model == m) & (F.distribution == dist) & (F.width == 1.0)].sort_values("sparsity")
            axes[0][j].plot(d.sparsity, d.inference_ratio, DIST_STYLE.get(dist, "-"), marker="o", ms=3, label=dist)
            axes[1][j].plot(d.sparsity, d.train_ratio_rigl_1x, DIST_STYLE.get(dist, "-"), marker="o", ms=3,
                            color="C0", label=f"{dist} RigL 1x")
            axes[1][j].plot(d.sparsity, d.train_ratio_rigl_5x, DIST_STYLE.get(dist, "-"), marker="s", ms=3,
                            color="C3", label=f"{dist} RigL 5x")
        axes[0][j].set(title=f"{m}: inference FLOPs / dense", xlabel=S_LABEL, ylabel="inference FLOPs / dense (ratio)",
                       ylim=(0, None))
        axes[1][j].set(title=f"{m}: training FLOPs / dense 1x run", xlabel=S_LABEL, yscale="log",
                       ylabel="training FLOPs / dense 1x run\n(ratio, log scale)")
        axes[0][j].legend(), axes[1][j].legend()
    return fig


def run_cost_figure(cfg, S):
    """Whole-run time (days) and energy (MJ) per preset and distribution; thin lines the dense model."""
    from studies.common import DIST_STYLE, PRESET_COLORS, pyplot

    plt = pyplot()
    n = len(cfg.models)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.4), squeeze=False)
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
            axes[0][j].axhline(ref.run_time_s.iloc[0] / 86400, color=PRESET_COLORS.get(p), lw=0.7, alpha=0.6,
                               label=f"{p} dense model")
            axes[1][j].axhline(ref.run_energy_j.iloc[0] / 1e6, color=PRESET_COLORS.get(p), lw=0.7, alpha=0.6,
                               label=f"{p} dense model")
        axes[0][j].set(title=f"{m}: whole-run time", xlabel=S_LABEL, ylabel="whole-run time (days, log scale)",
                       yscale="log")
        axes[1][j].set(title=f"{m}: whole-run energy", xlabel=S_LABEL, ylabel="whole-run energy (MJ, log scale)",
                       yscale="log")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower center", ncol=len(cfg.presets), fontsize=7)
    return fig


def where_cycles_figure(cfg, RS):
    """Shares of one step's useful MACs and cycles by output resolution (first model, highest headline S)."""
    from studies.common import pyplot

    plt = pyplot()
    m, s = cfg.models[0], max(cfg.headline)
    fig, axes = plt.subplots(1, len(cfg.presets), figsize=(4.2 * len(cfg.presets), 3.6), squeeze=False)
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
        ax.set_ylim(bottom=0)
        ax.set(title=f"{m} S={s}: {p}", xlabel="output resolution (pixels)",
               ylabel="share of one training step (fraction)")
    axes[0][0].legend()
    return fig


def layer_density_figure(cfg, LS, model: str):
    """Heatmap per distribution: layers (network order) x target sparsity S, colour = the layer's density
    (% of its weights kept, log colour scale so that 1% and 10% stay apart), one colour bar."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import PercentFormatter

    from studies.common import pyplot

    plt = pyplot()
    d = LS[(LS.model == model) & (LS.width == 1.0)]
    names = list(dict.fromkeys(d.sort_values("layer_index").layer))
    sps = sorted(set(d.sparsity) & set(cfg.sparsities)) or sorted(set(d.sparsity))
    grids = {}
    for dist in cfg.distributions:
        q = d[d.distribution == dist].pivot_table(index="sparsity", columns="layer", values="layer_sparsity")
        grids[dist] = 1.0 - q.reindex(index=sps, columns=names).to_numpy(dtype=float)
    pos = np.concatenate([g[g > 0] for g in grids.values()])
    norm = LogNorm(vmin=max(1e-3, float(pos.min())) if pos.size else 1e-3, vmax=1.0)
    nd = len(cfg.distributions)
    fig, axes = plt.subplots(nd, 1, figsize=(max(8.0, 0.16 * len(names) + 3.0), 1.1 + 0.32 * len(sps) * nd + 1.2),
                             squeeze=False, sharex=True)
    im = None
    for ax, dist in zip(axes[:, 0], cfg.distributions):
        im = ax.imshow(np.clip(grids[dist], norm.vmin, 1.0), aspect="auto", cmap="viridis", norm=norm,
                       interpolation="nearest")
        ax.set_yticks(range(len(sps)), [f"{s:g}" for s in sps])
        ax.set(title=f"{model}: {dist}", ylabel="target S\n(fraction zero)")
        ax.grid(False)
    axes[-1][0].set_xticks(range(len(names)), names, rotation=90, fontsize=5 if len(names) > 30 else 7)
    axes[-1][0].set_xlabel("layer (network order)")
    cb = fig.colorbar(im, ax=axes[:, 0].tolist(), location="right", shrink=0.9)
    cb.set_label("layer density (% of weights kept, log scale)")
    cb.set_ticks([t for t in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if t >= norm.vmin])
    cb.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    return fig


def plots(out: Path, cfg, T: dict[str, Any]) -> list[tuple[str, str]]:
    """The study's PNGs from its tables `T` (studies.uniform_vs_erk._tables); [(caption, file name)]."""
    from studies.common import save_fig

    m, s = cfg.models[0], max(cfg.headline)
    figs = [("ERK / Uniform: training FLOPs against simulated time and energy of a whole run",
             save_fig(erk_over_uniform_figure(cfg, T["erk_vs_uniform"]), out / "erk_over_uniform.png")),
            ("Inference and training FLOPs normalised to dense", save_fig(flops_figure(cfg, T["flops"]), out / "flops.png")),
            (f"Whole RigL run ({cfg.run['steps']:,} steps at batch {cfg.run['batch']:,}): time and energy "
             "(thin lines: the dense model on the same preset)", save_fig(run_cost_figure(cfg, T["sim"]), out / "run_cost.png")),
            (f"Where one training step's useful MACs and cycles go, by output resolution ({m}, S = {s})",
             save_fig(where_cycles_figure(cfg, T["resolution_shares"]), out / "where_cycles_go.png"))]
    for model in cfg.models:
        figs.append((f"Per-layer density of {model} (layers × target sparsity; colour: share of the layer's weights "
                     "kept, log scale)", save_fig(layer_density_figure(cfg, T["layer_sparsity"], model),
                                                 out / f"layer_sparsity_{model}.png")))
    return figs
