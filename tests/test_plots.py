"""The plots as matplotlib objects, built from tiny hand-made tables (Agg, no study run): bars start at 0 on
linear axes, no bar sits on a log axis, every axis carries a label with its unit, legends name the metric
of their own row, reference lines are explained, and the plotted values are the table's values."""

import re
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from studies.common import plot_style  # noqa: E402  (the studies draw inside it)

UNIT = re.compile(r"\(.+\)", re.S)          # "time per step (µs)", "ratio ... (ratio)": a unit in parentheses


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def main_axes(fig):
    """The figure's plotting axes (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def by_title(fig, needle):
    found = [ax for ax in fig.axes if needle in ax.get_title()]
    assert found, f"no axes titled with {needle!r}: {[a.get_title() for a in fig.axes]}"
    return found


def bars(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def audit(fig):
    """Every axes labelled with units on both axes; bars on linear axes starting at 0."""
    for ax in main_axes(fig):
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert label and UNIT.search(label) or label in ("method", "component", "training step",
                                                             "layer (network order)"), \
                f"{ax.get_title()!r}: axis label {label!r} has no unit"
        for c in ax.containers:
            if not isinstance(c, BarContainer):
                continue
            if c.orientation == "vertical":
                assert ax.get_yscale() == "linear", f"bars on a log y-axis in {ax.get_title()!r}"
                assert ax.get_ylim()[0] == 0, f"bars not from 0 in {ax.get_title()!r}: {ax.get_ylim()}"
            else:
                assert ax.get_xscale() == "linear", f"bars on a log x-axis in {ax.get_title()!r}"
                assert ax.get_xlim()[0] == 0, f"bars not from 0 in {ax.get_title()!r}: {ax.get_xlim()}"


def labels_inside(fig):
    """Each axis label lies inside the figure once drawn (nothing clipped)."""
    fig.canvas.draw()
    w, h = fig.bbox.width, fig.bbox.height
    for ax in main_axes(fig):
        for lab in (ax.xaxis.label, ax.yaxis.label):
            bb = lab.get_window_extent()
            assert bb.x0 >= -1 and bb.y0 >= -1 and bb.x1 <= w + 1 and bb.y1 <= h + 1, \
                f"{lab.get_text()!r} clipped: {bb} outside {w}x{h}"


# --- simulate --plot -----------------------------------------------------------------------------------
CLOCK = 2e8   # 200 MHz


def run_table():
    """Two snapshots: 0 = 10 normal steps; 1 = one update step + 9 normal steps; two layers, two passes."""
    rows = []
    for snap, kind, steps, scale in ((0, "normal", 10, 1.0), (1, "update", 1, 3.0), (1, "normal", 9, 0.9)):
        for li, layer in enumerate(("conv1", "fc")):
            for pi, p in enumerate(("forward", "backward_data")):
                cyc = scale * 1000.0 * (li + 1) * (pi + 1)
                rows.append({"snapshot": snap, "step_kind": kind, "steps": steps, "layer": layer, "pass": p,
                             "cycles": cyc, "energy_pj_mac": 2e3 * cyc, "energy_pj_dram": 5e3 * cyc,
                             "energy_pj": 7e3 * cyc})
    return pd.DataFrame(rows)


def test_run_figure_shows_seconds_and_joules_from_zero():
    from simulator.run_plot import run_figure

    t = run_table()
    fig = run_figure(t, "tiny", clock_hz=CLOCK)
    audit(fig)
    (ax_t,) = by_title(fig, "Time of one step")
    assert ax_t.get_ylim()[0] == 0 and "(µs)" in ax_t.get_ylabel()
    line = ax_t.get_lines()[0]
    # normal step: snapshot 0 = 9,000 cycles, snapshot 1 = 8,100 cycles; at 200 MHz 45 µs and 40.5 µs
    assert list(line.get_ydata()) == pytest.approx([45.0, 40.5, 40.5])
    upd = ax_t.collections[0].get_offsets()
    assert upd[0][0] == 10 and upd[0][1] == pytest.approx(27_000 / CLOCK * 1e6)
    sec = [c for c in ax_t.child_axes if "cycles" in c.get_ylabel()]
    assert sec and "200 MHz" in sec[0].get_ylabel()
    (ax_e,) = by_title(fig, "Energy of one step")
    assert ax_e.get_ylim()[0] == 0 and "(µJ)" in ax_e.get_ylabel()
    assert list(ax_e.get_lines()[0].get_ydata())[:2] == pytest.approx([7e3 * 9_000 * 1e-6, 7e3 * 8_100 * 1e-6])
    # whole-run energy per component in joules (µJ here), summing to the run total
    (ax_c,) = by_title(fig, "Energy by component")
    run_cycles = (t.cycles * t.steps).sum()
    widths = [b.get_width() for b in bars(ax_c)[0]]
    assert run_cycles == 189_900        # 10 x 9,000 + 27,000 + 9 x 8,100; the largest part, DRAM, is 950 µJ
    assert widths == pytest.approx([2e3 * run_cycles * 1e-6, 5e3 * run_cycles * 1e-6])
    assert "(µJ)" in ax_c.get_xlabel() and f"total {7e3 * run_cycles * 1e-6:.3g} µJ" in ax_c.get_xlabel()
    assert any("%" in tx.get_text() for tx in ax_c.texts)
    (ax_l,) = by_title(fig, "per layer and pass")
    assert "(µs)" in ax_l.get_ylabel()
    heights = [b.get_height() for b in bars(ax_l)[0]]        # forward pass of snapshot 0
    assert heights == pytest.approx([1000 / CLOCK * 1e6, 2000 / CLOCK * 1e6])
    labels_inside(fig)


def test_si_scale():
    from simulator.run_plot import si_scale

    assert si_scale(3.2e-5, "s") == (1e-6, "µs")
    assert si_scale(1.94e-3, "J") == (1e-3, "mJ")
    assert si_scale(1e9, "Hz") == (1e9, "GHz")
    assert si_scale(0.0, "J") == (1.0, "J") and si_scale(float("nan"), "s") == (1.0, "s")


# --- training-cost ---------------------------------------------------------------------------------------
def cost_table():
    from studies import training_cost as tc

    presets = ("dense-32x32", "skip-bitmask-32x32")
    rows = [{"method": "dense", "distribution": "none", "sparsity": 0.0, "multiplier": 1, "preset": p,
             "flop_ratio": 1.0, "time_ratio": 1.0, "energy_ratio": 1.0, "update_extra_time": 0.0,
             "update_extra_energy": 0.0} for p in presets]
    for k, p in enumerate(presets):
        rows.append({"method": "rigl", "distribution": "erk", "sparsity": 0.9, "multiplier": 1, "preset": p,
                     "flop_ratio": 0.25, "time_ratio": 0.6 + 0.1 * k, "energy_ratio": 0.4 + 0.1 * k,
                     "update_extra_time": 1e-6 * 10 ** (3 * k), "update_extra_energy": 2e-6 * 10 ** k})
        rows.append({"method": "static", "distribution": "erk", "sparsity": 0.9, "multiplier": 1, "preset": p,
                     "flop_ratio": 0.2, "time_ratio": 0.55, "energy_ratio": 0.35, "update_extra_time": 0.0,
                     "update_extra_energy": 0.0})
    D = pd.DataFrame(rows)
    D["method"] = pd.Categorical(D.method, categories=["dense", "static", "rigl"], ordered=True)
    cfg = replace(tc.Config(), methods=("dense", "static", "rigl"), sparsities=(0.9,), presets=presets,
                  multipliers=(1,))
    return cfg, D


def test_cost_figure_legend_per_row_names_its_metric():
    from studies.training_cost import cost_figure

    cfg, D = cost_table()
    with plot_style():
        fig = cost_figure(cfg, D, 1)
    audit(fig)
    axes = np.array(fig.axes).reshape(2, -1)
    for row, what, other in ((0, "time", "energy"), (1, "energy", "time")):
        texts = [t.get_text() for t in axes[row][-1].get_legend().get_texts()]
        preset_texts = [t for t in texts if t.startswith(cfg.presets)]
        assert len(preset_texts) == len(cfg.presets)
        assert all(t.endswith(f": {what}") for t in preset_texts) and not any(other in t for t in texts)
        assert what in axes[row][0].get_ylabel() and "(ratio)" in axes[row][0].get_ylabel()
    # bar heights are the table's ratios: containers = FLOPs, then one per preset
    c = bars(axes[1][0])
    assert [b.get_height() for b in c[0]] == pytest.approx([1.0, 0.2, 0.25])
    assert [b.get_height() for b in c[2]] == pytest.approx([1.0, 0.35, 0.5])


def test_update_share_has_no_bars_on_its_log_axis():
    from studies.training_cost import update_share_figure

    cfg, D = cost_table()
    with plot_style():
        fig = update_share_figure(cfg, D)
    audit(fig)
    for ax in fig.axes:
        assert ax.get_yscale() == "log" and not ax.containers and not ax.patches
        assert "%" in ax.get_ylabel()
    (top,) = by_title(fig, "extra time")
    (bottom,) = by_title(fig, "extra energy")
    # update methods present: only RigL; one marker per preset at 100 * share
    assert [ln.get_ydata()[0] for ln in top.get_lines() if ln.get_marker() == "o"] == pytest.approx([1e-4, 1e-1])
    assert [ln.get_ydata()[0] for ln in bottom.get_lines() if ln.get_marker() == "o"] == pytest.approx([2e-4, 2e-3])
    assert update_share_figure(replace(cfg, methods=("dense", "static")), D) is None


# --- update-interval ---------------------------------------------------------------------------------------
def interval_table():
    from studies import update_interval as ui

    cfg = replace(ui.Config(), sparsities=(0.8, 0.9), delta_ts=(10, 100), chunks=(4096, 65536),
                  presets=("skip-bitmask-32x32",))
    rows = [{"preset": p, "sparsity": s, "delta_t": dt, "chunk_elements": c, "time_overhead": 0.1 / dt * (1 + s),
             "flop_overhead": 1.0 / dt, "mask_update_share": 1e-4 * c / 4096 / dt}
            for p in cfg.presets for s in cfg.sparsities for dt in cfg.delta_ts for c in cfg.chunks]
    return cfg, pd.DataFrame(rows)


def test_amortised_reference_lines_are_named_and_label_fits():
    from studies.update_interval import amortised_figure, topk_buffer_figure

    cfg, D = interval_table()
    with plot_style():
        fig, fig2 = amortised_figure(cfg, D), topk_buffer_figure(cfg, D)
    audit(fig)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "S=0.8: ΔT = 1/(1−S) = 5 (paper: keep ΔT above it)" in texts
    assert any(t.startswith("S=0.9: ΔT = 1/(1−S) = 10") for t in texts)
    assert any("1/3 of a normal sparse step" in t for t in texts)
    ax = fig.axes[0]
    vlines = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1)
    assert vlines == pytest.approx([5.0, 10.0])
    labels_inside(fig)
    audit(fig2)
    labels_inside(fig2)


# --- methods-small ---------------------------------------------------------------------------------------
def test_methods_figure_bars_from_zero():
    from studies import methods_small as ms

    rows = []
    for task, metric in (("digits_mlp", "eval_accuracy"), ("bytes_char_gru", "eval_bits_per_byte")):
        for k, m in enumerate(ms.METHODS):
            for seed in (0, 1):
                rows.append({"task": task, "method": m, "seed": seed, metric: 0.9 + 0.01 * k + 0.002 * seed})
    df = pd.DataFrame(rows)
    summary = df.groupby(["task", "method"]).agg(
        eval_accuracy_mean=("eval_accuracy", "mean"), eval_accuracy_std=("eval_accuracy", "std"),
        eval_bits_per_byte_mean=("eval_bits_per_byte", "mean"),
        eval_bits_per_byte_std=("eval_bits_per_byte", "std")).reset_index()
    fig = ms.methods_figure(summary, df)
    audit(fig)
    acc, bpb = fig.axes
    assert acc.get_ylim() == (0.0, 1.0) and bpb.get_ylim()[0] == 0
    assert "fraction" in acc.get_ylabel() and "bits per byte" in bpb.get_ylabel()
    assert [b.get_height() for b in bars(acc)[0]] == pytest.approx([0.901 + 0.01 * k for k in range(5)])
    assert any(t.get_text().startswith("0.9010") for t in acc.texts)


# --- uniform-vs-erk ------------------------------------------------------------------------------------------
def test_layer_density_heatmap():
    from studies import uniform_vs_erk as ue
    from studies.uniform_vs_erk_plots import layer_density_figure

    cfg = replace(ue.Config(), models=("m",), distributions=("uniform", "erk"), sparsities=(0.5, 0.9))
    sp = {("uniform", 0.5): [0.0, 0.5, 0.5], ("uniform", 0.9): [0.0, 0.9, 0.9],
          ("erk", 0.5): [0.2, 0.4, 0.8], ("erk", 0.9): [0.7, 0.9, 0.99]}
    LS = pd.DataFrame([{"model": "m", "width": 1.0, "distribution": d, "sparsity": s, "layer_index": i,
                        "layer": n, "layer_sparsity": v}
                       for (d, s), vals in sp.items() for i, (n, v) in enumerate(zip(("a", "b", "c"), vals))])
    with plot_style():
        fig = layer_density_figure(cfg, LS, "m")
    axes = main_axes(fig)
    assert len(axes) == 2 and all(not ax.get_lines() for ax in axes)          # no zig-zag lines left
    erk = by_title(fig, "m: erk")[0]
    img = erk.get_images()[0].get_array()
    assert img.shape == (2, 3)                                                 # rows: S, columns: layers
    assert np.asarray(img) == pytest.approx(1.0 - np.array([sp[("erk", 0.5)], sp[("erk", 0.9)]]))
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == ["a", "b", "c"]
    (cb,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "%" in cb.get_ylabel() and "density" in cb.get_ylabel()
    for ax in axes:
        assert UNIT.search(ax.get_ylabel())
    assert "layer" in axes[-1].get_xlabel()


# --- demo ------------------------------------------------------------------------------------------------------
def test_demo_training_figure(tmp_path):
    from rigl_hw.demo import DemoRun, training_figure

    runs = []
    for method in ("static", "rigl"):
        d = tmp_path / method
        d.mkdir()
        pd.DataFrame({"step": range(50), "loss": np.linspace(2.0, 0.2, 50),
                      "eval_accuracy": [np.nan] * 49 + [0.9]}).to_csv(d / "metrics.csv", index=False)
        runs.append(DemoRun(method, d, 0.9, 10, 1.0))
    fig = training_figure(runs)
    audit(fig)
    loss, acc = fig.axes
    assert acc.get_ylim() == (0.0, 1.0) and "fraction" in acc.get_ylabel() and "nats" in loss.get_ylabel()
    labels_inside(fig)
