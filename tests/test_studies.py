"""Studies in quick mode: a row of each study's CSV equals a direct call of flops_report / simulate_step /
simulate_run for that point (recomputed here from the library, not from studies.common), every report
opens with a table and embeds PNGs that exist, a rerun computes nothing (sweep cache), and run_all
writes index.md linking each report (methods-small stubbed: it trains models and is tested elsewhere)."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rigl_hw.distributions import random_masks
from rigl_hw.flops_report import flops_report
from rigl_hw.schedules import UpdateSchedule, changed_per_update
from rigl_hw.trace import pack_mask
from rigl_hw.zoo import model_allocation, model_specs
from simulator.engine import simulate_run, simulate_step
from simulator.hardware import HardwareSpecError, load_hardware
from studies import index, training_cost, uniform_vs_erk, update_interval
from studies.sweep import SweepError

MODEL, BATCH, STEPS, T_END, ALPHA = "mlp", 8, 32_000, 25_000, 0.3
MINE = ("uniform-vs-erk", "training-cost", "update-interval")


def _stub_methods_small(out_dir, **kw):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("# methods-small stub\n")
    return out


@pytest.fixture(scope="module")
def studies_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("studies")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(index.STUDIES, "methods-small", _stub_methods_small)
        index.run_all(out, quick=True, n_workers=2, progress=False)
    return out


def masks_of(model, dist, s, seed=0):
    """The studies' documented masks: random_masks(default_rng(seed)), fully dense layers left out."""
    specs, alloc = model_allocation(model, dist, s)
    m = random_masks(alloc, {sp.name: sp.weight_shape for sp in specs}, np.random.default_rng(seed))
    dense = {n for n, p, z in zip(alloc.names, alloc.n_params, alloc.nonzeros) if p == z}
    return specs, alloc, {n: pack_mask(v) for n, v in m.items() if n not in dense}


def direct_run(specs, alloc, masks, hw, delta_t=100, steps=STEPS, t_end=T_END, **kw):
    sched = UpdateSchedule(delta_t=delta_t, t_end=t_end, alpha=ALPHA)
    upd = sched.update_steps(steps)
    k = changed_per_update(sched, alloc.nonzeros, steps)
    k[:, [not b for b in alloc.in_budget]] = 0
    k = np.minimum(k, np.asarray(alloc.n_params) - np.asarray(alloc.nonzeros))
    return simulate_run(specs, BATCH, steps, upd, [masks] * (len(upd) + 1), hw, grown_per_update=k, **kw)


def check_report(study_dir: Path):
    text = (study_dir / "report.md").read_text()
    body = [line for line in text.splitlines() if line.strip()]
    assert body[0].startswith("# ") and body[1].startswith("|"), "report must open with a table"
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert pngs and all((study_dir / p).stat().st_size > 5000 for p in pngs)
    assert "QUICK MODE" in text
    assert "## Sensitivity to the mapping" in text and "objective **latency**" in text
    assert re.search(r"\| ERK time / dense \| \d+\.\d{3} \| \d+\.\d{3} \|", text)


def rerun_computes_nothing(module, study_dir: Path):
    module.run(study_dir, quick=True, progress=False)
    info = json.loads((study_dir / "run_info.json").read_text())
    assert info["computed"] == 0 and info["cached"] > 0 and info["failed"] == 0


def test_uniform_vs_erk(studies_dir):
    d = studies_dir / "uniform-vs-erk"
    F = pd.read_csv(d / "flops.csv")
    f = F[(F.model == MODEL) & (F.distribution == "erk") & (F.sparsity == 0.9) & (F.width == 1.0)].iloc[0]
    r1 = flops_report(MODEL, "erk", 0.9, method="rigl", delta_t=100)
    r5 = flops_report(MODEL, "erk", 0.9, method="rigl", delta_t=100, multiplier=5)
    assert f.params == r1["params"]["sparse"]
    assert f.inference_flops == pytest.approx(r1["inference_flops"]["sparse"], rel=1e-12)
    assert f.train_ratio_rigl_1x == pytest.approx(r1["train_flops"]["ratio"], rel=1e-12)
    assert f.train_ratio_rigl_5x == pytest.approx(r5["train_flops"]["ratio"], rel=1e-12)
    S = pd.read_csv(d / "sim.csv")
    row = S[(S.model == MODEL) & (S.distribution == "erk") & (S.sparsity == 0.9) & (S.width == 1.0)
            & (S.preset == "skip-bitmask-32x32")].iloc[0]
    hw = load_hardware("skip-bitmask-32x32")
    specs, alloc, masks = masks_of(MODEL, "erk", 0.9)
    step = simulate_step(specs, masks, hw, uniform_vs_erk.QUICK.step_batch)
    assert row.step_time_s == pytest.approx(step.time_s, rel=1e-12)
    assert row.step_energy_j == pytest.approx(step.energy_j, rel=1e-12)
    run = direct_run(specs, alloc, masks, hw)
    assert row.run_time_s == pytest.approx(run.time_s, rel=1e-9)
    assert row.run_energy_j == pytest.approx(run.energy_j, rel=1e-9)
    ls = pd.read_csv(d / "layer_sparsity.csv")
    got = ls[(ls.distribution == "erk") & (ls.sparsity == 0.9) & (ls.width == 1.0)].layer_sparsity.tolist()
    assert got == pytest.approx([L["sparsity"] for L in r1["layers"]])
    check_report(d)
    assert {f"layer_sparsity_{MODEL}.png", "erk_over_uniform.png"} <= {p.name for p in d.glob("*.png")}
    rerun_computes_nothing(uniform_vs_erk, d)


def test_training_cost(studies_dir):
    d = studies_dir / "training-cost"
    C = pd.read_csv(d / "costs.csv")
    hw = load_hardware("skip-bitmask-32x32")

    def row(method, M=1):
        q = C[(C.method == method) & (C.multiplier == M) & (C.preset == hw.name)]
        return q[(q.sparsity == 0.9) | (method == "dense")].iloc[0]

    dense = simulate_run(model_specs(MODEL), BATCH, STEPS, [], [{}], hw)
    assert row("dense").run_time_s == pytest.approx(dense.time_s, rel=1e-12)
    specs, alloc, masks = masks_of(MODEL, "erk", 0.9)
    for method, M, kw in (("rigl", 1, {}), ("rigl", 5, {}), ("snfs", 1, {"dense_weight_grad_every_step": True})):
        r = row(method, M)
        run = direct_run(specs, alloc, masks, hw, steps=STEPS * M, t_end=T_END * M, **kw)
        assert r.run_time_s == pytest.approx(run.time_s, rel=1e-9)
        assert r.run_energy_j == pytest.approx(run.energy_j, rel=1e-9)
        assert r.time_ratio == pytest.approx(run.time_s / dense.time_s, rel=1e-9)
    fr = flops_report(MODEL, "erk", 0.9, method="rigl", delta_t=100, t_end=T_END, batch=BATCH)
    assert row("rigl").flop_ratio == pytest.approx(fr["train_flops"]["ratio"], rel=1e-12)
    static = simulate_step(specs, masks, hw, BATCH).time_s * STEPS
    assert row("static").run_time_s == pytest.approx(static, rel=1e-12)
    assert row("static").run_time_s <= row("set").run_time_s <= row("rigl").run_time_s   # SET: no dense gradient
    sd = flops_report(MODEL, "erk", 0.9, method="small_dense")["train_flops"]["small_dense_width"]
    assert row("small_dense").run_time_s == pytest.approx(
        simulate_step(model_specs(MODEL, sd), None, hw, BATCH).time_s * STEPS, rel=1e-12)
    pruned = 0.0
    for s, n in training_cost.pruning_levels(0.9, 1, STEPS):
        sp, _, m = masks_of(MODEL, "erk", s) if s > 0 else (model_specs(MODEL), None, None)
        pruned += simulate_step(sp, m, hw, BATCH).time_s * n
    assert row("pruning").run_time_s == pytest.approx(pruned, rel=1e-12)
    check_report(d)
    rerun_computes_nothing(training_cost, d)


def test_update_interval(studies_dir):
    d = studies_dir / "update-interval"
    D = pd.read_csv(d / "intervals.csv")
    r = D[(D.sparsity == 0.9) & (D.delta_t == 10) & (D.chunk_elements == 4096)].iloc[0]
    base = load_hardware(r.preset)
    hw = replace(base, topk=replace(base.topk, chunk_elements=4096))
    specs, alloc, masks = masks_of(MODEL, "erk", 0.9)
    run = direct_run(specs, alloc, masks, hw, delta_t=10)
    assert r.run_cycles == pytest.approx(run.cycles, rel=1e-9)
    normal = simulate_step(specs, masks, hw, BATCH)
    assert r.time_overhead == pytest.approx(run.cycles / STEPS / normal.cycles - 1, rel=1e-9)
    rigl = flops_report(MODEL, "erk", 0.9, method="rigl", delta_t=10, t_end=T_END)["train_flops"]["ratio"]
    static = flops_report(MODEL, "erk", 0.9, method="static")["train_flops"]["ratio"]
    assert r.flop_overhead == pytest.approx(rigl / static - 1, rel=1e-9)
    assert bool(r.meets_condition) is False                        # ΔT = 10 is not > 1/(1 - 0.9)
    assert D[D.delta_t == 100].time_overhead.max() < D[D.delta_t == 10].time_overhead.min()
    check_report(d)
    rerun_computes_nothing(update_interval, d)


def test_index_links_every_report(studies_dir, monkeypatch):
    text = (studies_dir / "index.md").read_text()
    for name in (*MINE, "methods-small"):
        assert f"]({name}/report.md)" in text and (studies_dir / name / "report.md").exists()

    def missing(out_dir, **kw):
        raise ImportError("No module named 'studies.methods_small'")

    monkeypatch.setitem(index.STUDIES, "methods-small", missing)
    index.run_all(studies_dir, quick=True, progress=False)         # all cached: no cluster, seconds
    text = (studies_dir / "index.md").read_text()
    assert "](methods-small/report.md)" not in text and "ImportError" in text
    for name in MINE:
        assert f"]({name}/report.md)" in text


def test_bad_input(tmp_path):
    with pytest.raises(HardwareSpecError):
        uniform_vs_erk.run(tmp_path / "a", quick=True, presets=("no-such-preset",), progress=False)
    with pytest.raises(SweepError, match="cannot reach Dask scheduler"):
        update_interval.run(tmp_path / "b", quick=True, scheduler="tcp://127.0.0.1:9", progress=False)


def test_sensitivity_ratios_are_the_engine_ratios():
    from studies.common import headline_ratios

    hw = load_hardware("skip-bitmask-32x32")
    for mapping in ("fixed", "per-layer"):
        got = headline_ratios(MODEL, hw.name, 8, 0.9, mapping=mapping)
        steps = {}
        for dist in ("erk", "uniform"):
            specs, _, masks = masks_of(MODEL, dist, 0.9)
            steps[dist] = simulate_step(specs, masks, hw, 8, mapping=mapping)
        dense = simulate_step(model_specs(MODEL), None, hw, 8, mapping=mapping)
        assert got["ERK time / dense"] == pytest.approx(steps["erk"].time_s / dense.time_s, rel=1e-12)
        assert got["ERK / Uniform energy"] == pytest.approx(steps["erk"].energy_j / steps["uniform"].energy_j,
                                                            rel=1e-12)
