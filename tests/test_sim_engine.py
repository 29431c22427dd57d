"""Engine: steps, runs, caching, modes, and the ideal-hardware cross-check with the RigL cost formula."""

import numpy as np
import pytest

from sim_helpers import conv, erk_densities, ideal_spec_toml, linear, pack, random_mask, resnet50_specs
from simulator.engine import SimulationError, compare_modes, simulate_run, simulate_step
from simulator.hardware import load_hardware
from simulator.workload import lower_step

SPECS = [conv("c1", 3, 16, 3, 16), conv("c2", 16, 32, 3, 16, 2), conv("dw", 32, 32, 3, 8, groups=32),
         linear("fc", 32 * 64, 10)]


def _masks(rng, d=0.2, specs=SPECS):
    return {s.name: pack(random_mask(s, d, rng)) for s in specs}


def test_workload_lowering_mac_counts():
    for gm in lower_step(SPECS, 4):
        spec = next(s for s in SPECS if s.name == gm.layer)
        assert gm.dense_macs == 4 * spec.dense_macs
    dw = [g for g in lower_step(SPECS, 2) if g.layer == "dw"]
    assert dw[0].groups == 32 and (dw[0].n, dw[0].k) == (1, 9)
    assert (dw[1].n, dw[1].k, dw[1].sparse) == (9, 1, "weight_t")
    assert (dw[2].m, dw[2].n, dw[2].k, dw[2].sparse) == (1, 9, 2 * 64, "output")


def test_step_table_and_totals():
    hw = load_hardware("skip-bitmask-32x32")
    r = simulate_step(SPECS, _masks(np.random.default_rng(0)), hw, 4, mapping="fixed")
    assert len(r.table) == 3 * len(SPECS)
    assert list(r.table["pass"][:3]) == ["forward", "backward_data", "backward_weight"]
    assert r.cycles == r.table["cycles"].sum() and r.time_s == pytest.approx(r.cycles / 1e9)
    assert r.energy_j == pytest.approx(r.table["energy_pj"].sum() * 1e-12)
    assert (r.table["cycles"] >= r.table["compute_cycles"]).all()
    assert (r.table["effectual_macs"] <= r.table["dense_macs"]).all()
    u = simulate_step(SPECS, _masks(np.random.default_rng(0)), hw, 4, update_step=True, mapping="fixed")
    assert len(u.table) == 4 * len(SPECS) and "mask_update" in set(u.table["pass"])
    assert u.cycles > r.cycles


def test_sparse_faster_than_dense_and_gate_keeps_cycles(tmp_path):
    rng = np.random.default_rng(1)
    masks = _masks(rng, 0.1)
    dense = simulate_step(SPECS, masks, load_hardware("dense-32x32"), 8, mapping="fixed")
    skip = simulate_step(SPECS, masks, load_hardware("skip-bitmask-32x32"), 8, mapping="fixed")
    assert skip.cycles < dense.cycles and skip.energy_j < dense.energy_j
    src = (load_hardware.__globals__["PRESET_DIR"] / "dense-32x32.toml").read_text()
    p = tmp_path / "gate.toml"
    p.write_text(src.replace('mode = "none"', 'mode = "gate"').replace('name = "dense-32x32"', 'name = "g"'))
    gate = simulate_step(SPECS, masks, load_hardware(str(p)), 8, mapping="fixed")
    assert np.array_equal(gate.table["compute_cycles"], dense.table["compute_cycles"])
    assert gate.energy_j < dense.energy_j


def test_nm_hardware_speeds_up_only_conforming_masks():
    hw = load_hardware("nm-2of4-tc")
    spec = conv("c", 64, 64, 3, 8)
    rng = np.random.default_rng(2)
    nm = np.zeros((64, spec.fan_in), bool)
    for r in range(64):
        for g0 in range(0, spec.fan_in, 4):
            nm[r, g0 + rng.choice(4, 2, replace=False)] = True
    unstructured = random_mask(spec, 0.5, rng)
    dense = np.ones_like(nm)
    cyc = {name: simulate_step([spec], {"c": pack(m)}, hw, 4, mapping="fixed").table.set_index("pass")["compute_cycles"]
           for name, m in (("nm", nm), ("un", unstructured), ("dense", dense))}
    assert cyc["un"]["forward"] == cyc["dense"]["forward"]
    assert cyc["nm"]["forward"] < 0.6 * cyc["dense"]["forward"]
    assert cyc["nm"]["backward_weight"] == cyc["dense"]["backward_weight"]


def test_eyeriss_pe_uses_activation_masks():
    hw = load_hardware("eyeriss-v2-pe")
    spec = conv("c", 8, 8, 3, 6)
    rng = np.random.default_rng(3)
    w = random_mask(spec, 0.5, rng)
    act = rng.random((2, 8, 6, 6)) < 0.4
    with_act = simulate_step([spec], {"c": pack(w)}, hw, 2, activation_masks={"c": act}, mapping="fixed").table.iloc[0]
    without = simulate_step([spec], {"c": pack(w)}, hw, 2, mapping="fixed").table.iloc[0]
    assert with_act["compute_cycles"] == with_act["effectual_macs"] < 0.5 * without["compute_cycles"]


def test_mask_shape_mismatch_is_one_line_error():
    hw = load_hardware("skip-bitmask-32x32")
    with pytest.raises(SimulationError, match=r"layer 'c1': mask must be packed uint8 of 54 bytes") as ei:
        simulate_step(SPECS[:1], {"c1": np.zeros(7, np.uint8)}, hw, 2, mapping="fixed")
    assert "\n" not in str(ei.value)
    with pytest.raises(SimulationError, match="mode"):
        simulate_step(SPECS[:1], None, hw, 2, mode="guess", mapping="fixed")


def test_statistical_mode_and_compare():
    hw = load_hardware("skip-bitmask-32x32")
    rng = np.random.default_rng(4)
    masks = _masks(rng, 0.2)
    cmp = compare_modes(SPECS, masks, hw, 8, mapping="fixed")
    assert len(cmp) == 3 * len(SPECS)
    assert ((cmp["ratio"] > 0.75) & (cmp["ratio"] < 1.25)).all(), cmp  # 32 depthwise groups: noisy
    stat = simulate_step(SPECS, None, hw, 8, mode="statistical", densities={s.name: 0.2 for s in SPECS}, mapping="fixed")
    assert stat.cycles == pytest.approx(simulate_step(SPECS, masks, hw, 8, mode="statistical", mapping="fixed").cycles, rel=0.01)


def _run_pieces(rng, n_snap=4, same_every=2):
    snaps, prev = [], None
    for i in range(n_snap):
        prev = _masks(rng, 0.2) if (prev is None or i % same_every) else prev
        snaps.append(prev)
    return snaps


def test_run_equals_sum_of_steps():
    hw = load_hardware("skip-bitmask-32x32")
    rng = np.random.default_rng(5)
    snaps = _run_pieces(rng)
    u = np.array([0, 10, 20, 30])
    run = simulate_run(SPECS, 4, 45, u, snaps, hw, topk_fraction_per_update=np.full(3, 0.3), mapping="fixed")
    want_c = want_e = 0.0
    ends = [10, 20, 30, 45]
    for i, snap in enumerate(snaps):
        normal = simulate_step(SPECS, snap, hw, 4, mapping="fixed")
        n = ends[i] - u[i] - (1 if i else 0)
        want_c += n * normal.cycles
        want_e += n * normal.energy_j
        if i:
            up = simulate_step(SPECS, snaps[i - 1], hw, 4, update_step=True, topk_fraction=0.3, mapping="fixed")
            want_c += up.cycles
            want_e += up.energy_j
    assert run.cycles == pytest.approx(want_c, rel=1e-9)
    assert run.energy_j == pytest.approx(want_e, rel=1e-9)
    assert run.n_updates == 3 and run.per_step("update")["cycles"] > run.per_step("normal")["cycles"]
    # without the leading 0, and with k measured from the snapshots
    run2 = simulate_run(SPECS, 4, 45, u[1:], snaps, hw, mapping="fixed")
    assert run2.cycles > 0
    with pytest.raises(SimulationError, match="update_steps"):
        simulate_run(SPECS, 4, 45, np.array([0, 50]), snaps[:2], hw, mapping="fixed")




def _balanced(spec, period, ones, shift):
    """Block-circulant mask: row and column nonzero counts are uniform (perfect balance)."""
    n, k = spec.out_channels, spec.fan_in
    return ((np.arange(n)[:, None] + np.arange(k)[None, :] + shift) % period) < ones


def test_ideal_hardware_reduces_to_rigl_cost_formula(tmp_path):
    p = tmp_path / "ideal.toml"
    p.write_text(ideal_spec_toml(4, 4, name="ideal"))
    hw = load_hardware(str(p))
    specs = [conv("a", 16, 32, 3, 8), linear("b", 64, 16)]
    shape = {"a": (8, 2), "b": (16, 2)}  # (period, ones): densities 1/4 and 1/8
    batch, delta_t, n_upd = 4, 10, 5
    snaps = [{s.name: pack(_balanced(s, *shape[s.name], shift=i)) for s in specs} for i in range(n_upd + 1)]
    u = np.array([0] + [j * (delta_t + 1) - 1 for j in range(1, n_upd + 1)])
    total = n_upd * (delta_t + 1)
    run = simulate_run(specs, batch, total, u, snaps, hw, mapping="fixed")
    run.table = run.table[run.table["pass"] != "mask_update"]  # the formula counts MACs only
    ones = {s.name: pack(np.ones((s.out_channels, s.fan_in), bool)) for s in specs}
    dense_step = simulate_step(specs, ones, hw, batch, mapping="fixed").cycles
    # FLOP accounting, independently: f = sum over layers of MACs per batch
    f_d = sum(batch * s.n_params * s.out_positions for s in specs)
    f_s = sum(batch * s.n_params * s.out_positions * shape[s.name][1] / shape[s.name][0] for s in specs)
    want = (3 * f_s * delta_t + 2 * f_s + f_d) / (delta_t + 1) / (3 * f_d)
    assert (run.cycles / total) / dense_step == pytest.approx(want, rel=1e-12)
    assert dense_step == 3 * f_d / 16


def test_resnet50_step_runs_fast_enough_to_test():
    specs = resnet50_specs()
    dens = erk_densities(specs, 0.9)
    total = sum(s.n_params for s in specs)
    assert sum(dens[s.name] * s.n_params for s in specs) == pytest.approx(0.1 * total, rel=1e-6)
    hw = load_hardware("skip-bitmask-32x32")
    r = simulate_step(specs, None, hw, 2, mode="statistical", densities=dens, mapping="fixed")
    assert len(r.table) == 3 * 54 and r.cycles > 0


def test_run_accepts_generators_lists_and_grown_counts():
    hw = load_hardware("skip-bitmask-32x32")
    snaps = _run_pieces(np.random.default_rng(6))
    u = np.array([10, 20, 30])  # as rigl_hw.trace stores them: no leading 0
    grown = np.full((3, len(SPECS)), 5)
    a = simulate_run(SPECS, 4, 45, u, snaps, hw, grown_per_update=grown, mapping="fixed")
    lists = ([m[s.name] for s in SPECS] for m in snaps)  # generator of per-layer lists
    b = simulate_run(SPECS, 4, 45, u, lists, hw, grown_per_update=grown, mapping="fixed")
    assert a.cycles == b.cycles and a.energy_j == b.energy_j
    with pytest.raises(SimulationError, match="mask snapshots"):
        simulate_run(SPECS, 4, 45, u, iter(snaps[:2]), hw, mapping="fixed")
    with pytest.raises(SimulationError, match="grown_per_update"):
        simulate_run(SPECS, 4, 45, u, snaps, hw, grown_per_update=grown[:2], mapping="fixed")
