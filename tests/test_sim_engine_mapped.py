"""Engine on the mapping-driven model: mapped rows, lockstep imbalance from real masks, reuse, run totals,
per-layer mapping counted once, the simulate CLI flags."""

import json

import numpy as np
import pytest

from sim_helpers import conv, linear, pack, random_mask
from simulator import mapper
from simulator.access import evaluate
from simulator.dataflow import MaskCounts
from simulator.engine import SimulationError, simulate_run, simulate_step
from simulator.hardware import load_hardware
from simulator.mapped import (MappedModel, PeSlices, expected_lockstep_fraction, lockstep_fraction,
                              lockstep_fraction_naive, pe_slices)
from simulator.nest import Problem

SPECS = [conv("c1", 8, 16, 3, 8), linear("fc", 64, 32)]
SKIP = "skip-bitmask-32x32"


def _masks(rng, d, specs=SPECS):
    return {s.name: pack(random_mask(s, d, rng)) for s in specs}


@pytest.fixture(scope="module")
def skip():
    return load_hardware(SKIP)


def test_mapped_dense_equals_dense_mapped_evaluation(skip):
    """Density 1 (all-ones masks or no masks) gives exactly the mapper's dense evaluation per pass."""
    ones = {s.name: pack(np.ones(s.weight_shape, dtype=bool)) for s in SPECS}
    a = simulate_step(SPECS, ones, skip, 4).table
    b = simulate_step(SPECS, None, skip, 4).table
    assert np.array_equal(a["cycles"], b["cycles"]) and np.allclose(a["energy_pj"], b["energy_pj"])
    for s in SPECS:
        for p in ("forward", "backward_data", "backward_weight"):
            prob = Problem.from_layer(s, 4, p)
            ev = mapper.map_layer(prob, skip, "latency").evaluation
            row = b[(b.layer == s.name) & (b["pass"] == p)].iloc[0]
            assert row.cycles == ev.cycles and row.energy_pj == pytest.approx(ev.energy_pj, rel=1e-12)
            assert row.macs == ev.macs == 4 * s.dense_macs
    assert (b["mapping"].str.startswith("dram[")).all()


def test_mapped_monotone_in_density(skip):
    rng = np.random.default_rng(1)
    cyc, en = [], []
    for d in (0.1, 0.3, 0.6, 1.0):
        r = simulate_step(SPECS, None, skip, 4, mode="statistical", densities={s.name: d for s in SPECS},
                          mapping="per-snapshot")
        cyc.append(r.cycles)
        en.append(r.energy_j)
    assert all(a <= b for a, b in zip(cyc, cyc[1:])) and all(a <= b for a, b in zip(en, en[1:]))
    assert cyc[0] < cyc[-1]
    real = simulate_step(SPECS, _masks(rng, 0.3), skip, 4)
    assert (real.table["effectual_macs"] <= real.table["dense_macs"]).all()


def test_lockstep_fraction_equals_brute_force_and_bounds():
    rng = np.random.default_rng(2)
    for groups, rows, cols, sl in ((1, 12, 18, PeSlices(2, 3, 3, 2)), (2, 8, 10, PeSlices(1, 5, 4, 1)),
                                   (1, 6, 9, PeSlices(3, 9, 2, 1)), (1, 7, 5, PeSlices(2, 2, 2, 2))):
        m = rng.random((rows, cols)) < 0.35
        mc = MaskCounts(np.packbits(m.ravel()), rows, cols, groups)
        got = lockstep_fraction(mc, sl)
        assert got == pytest.approx(lockstep_fraction_naive(m, groups, sl), rel=1e-12)
        assert got >= m.mean() - 1e-12                      # never below the perfectly balanced bound


def test_real_imbalance_on_a_layer_matches_brute_force(skip):
    """The engine's compute cycles for a real mask = dense temporal steps x brute-force lockstep fraction."""
    s = conv("c", 16, 32, 3, 8)
    rng = np.random.default_rng(3)
    m = random_mask(s, 0.25, rng)
    model = MappedModel(skip, 2)
    mc = MaskCounts(pack(m), s.out_channels, s.fan_in, s.groups)
    ev = model.evaluation(s, "forward", mc, mc.density)
    _, sl = model.mapping_for(s, "forward", mc.density)
    f = lockstep_fraction_naive(m.reshape(s.out_channels, -1), 1, sl)
    dense = evaluate(model.problem(s, "forward"), skip, ev.mapping)
    fill = dense.compute_cycles - np.prod([b for lm in ev.mapping.levels for _, b in lm.temporal])
    assert ev.compute_cycles == pytest.approx((dense.compute_cycles - fill) * f + fill, rel=1e-12)
    assert f >= mc.density
    stat = model.evaluation(s, "forward", None, mc.density)
    assert stat.compute_cycles >= (dense.compute_cycles - fill) * mc.density + fill - 1e-9
    assert expected_lockstep_fraction(mc.density, sl) >= mc.density


def test_pe_slices_follow_the_mapping(skip):
    s = conv("c", 16, 32, 3, 8)
    model = MappedModel(skip, 2)
    mapping, sl = model.mapping_for(s, "forward", 0.5)
    sp = {d: 1 for d in "MCRS"}
    for lm in mapping.levels[:-1]:
        for d, b, _ in lm.spatial:
            if d in sp:
                sp[d] *= b
    assert sl == pe_slices(model.problem(s, "forward"), skip, mapping)
    assert sl.pe_rows == sp["M"] and sl.pe_cols == sp["C"] * sp["R"] * sp["S"]


def test_run_totals_and_one_search_per_layer_and_pass(skip):
    """Run totals = sum of rows x steps; per-layer mapping: one search per (layer, pass) (+ the dense
    weight gradient of update steps) however many snapshots; per-snapshot re-maps on density change."""
    rng = np.random.default_rng(4)
    snaps = [_masks(rng, 0.3), _masks(rng, 0.3), _masks(rng, 0.5)]
    mapper.clear_cache()
    model = MappedModel(skip, 4)
    r = simulate_run(SPECS, 4, 100, [0, 30, 60], snaps, skip, model=model)
    t = r.table
    assert r.cycles == pytest.approx(float((t.cycles * t.steps).sum()))
    assert r.energy_j == pytest.approx(float((t.energy_pj * t.steps).sum()) * 1e-12)
    assert t[t.step_kind == "normal"].groupby("snapshot").steps.first().tolist() == [30, 29, 39]
    assert model.searches == len(SPECS) * 4 and model.lookups == len(SPECS) * 4
    per = MappedModel(skip, 4, "per-snapshot")
    simulate_run(SPECS, 4, 100, [0, 30, 60], snaps, skip, mapping="per-snapshot", model=per)
    assert per.lookups > len(SPECS) * 4                   # density changed at the last snapshot
    step = simulate_step(SPECS, snaps[0], skip, 4, model=model)
    first = t[(t.snapshot == 0) & (t.step_kind == "normal")]
    assert np.array_equal(step.table.cycles.to_numpy(), first.cycles.to_numpy())


def test_engine_options_are_checked(skip):
    with pytest.raises(SimulationError, match="mapping"):
        simulate_step(SPECS, None, skip, 4, mapping="best")
    with pytest.raises(SimulationError, match="objective"):
        simulate_step(SPECS, None, skip, 4, objective="speed")
    e = simulate_step(SPECS, None, skip, 4, objective="energy")
    lat = simulate_step(SPECS, None, skip, 4, objective="latency")
    assert e.energy_j <= lat.energy_j * (1 + 1e-9) and lat.cycles <= e.cycles * (1 + 1e-9)


def test_simulate_cli_mapping_flags(tmp_path, capsys):
    from rigl_hw.cli import main
    from rigl_hw.trace_synth import write_synthetic_trace

    out = tmp_path / "t"
    write_synthetic_trace(out, "small_cnn", "erk", 0.8, steps=40, delta_t=10, alpha=0.3, t_end=30, batch=4, seed=2)
    assert main(["simulate", str(out), "--hardware", SKIP, "--json", "--mapping", "per-layer",
                 "--objective", "edp"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["mapping"] == "per-layer" and j["objective"] == "edp" and j["mapper_searches"] > 0
    assert main(["simulate", str(out), "--hardware", SKIP, "--json", "--mapping", "fixed"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert f["mapping"] == "fixed" and f["objective"] is None and f["totals"]["cycles"] != j["totals"]["cycles"]
    assert main(["simulate", str(out), "--hardware", SKIP]) == 0
    assert "mapping: per-layer, objective latency" in capsys.readouterr().out
    assert main(["simulate", str(out), "--hardware", SKIP, "--mapping", "best"]) == 2  # argparse's code, returned
    assert "invalid choice" in capsys.readouterr().err
