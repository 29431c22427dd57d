"""Cross-check: on idealised hardware the simulator's cost of a RigL run equals the foundation's FLOP
accounting (`rigl_hw.flops`), not a re-derivation of the formula inside the test.

Ideal hardware: skip mode, output-stationary, no fill/drain (`pe_array.fill_drain = false`), 1 TiB
buffers at 1e15 bytes/cycle (no roofline), masks with exactly the same nonzeros in every row and every
column (block-circulant), and array sides that divide every GEMM side, so a step's cycles are
exactly its issued MACs / (R C) and no tile waits for a busier one.

f_S and f_D come from `rigl_hw.flops.inference_flops` turned into MACs: the foundation's per-layer
FLOPs are 2 nnz P + E (a multiply and an add per surviving weight per output position, plus E for the
bias add and activation). The simulator counts only multiply-accumulates (no bias/activation work), so
f = (inference_flops(nnz) - inference_flops(0)) / 2 = sum nnz_l P_l; with the E term the ratios would
differ by the bias/activation share, which the array does not model.
"""

import numpy as np
import pytest

from rigl_hw.flops import inference_flops, rigl_step_flops, training_flops
from rigl_hw.schedules import UpdateSchedule
from rigl_hw.zoo import model_specs
from simulator.engine import simulate_run, simulate_step
from sim_helpers import ideal_spec_toml
from simulator.hardware import load_hardware


# (model, num_classes, rows R, cols C, batch, {layer: (period, ones)}). The sides must divide: R | B P_out
# and R | C_out; C | C_out, C | fan_in and C | row nonzeros (the sampled dW packs a row's active outputs
# into C slots). mlp: a 4 x 8 array, rows and columns perfectly balanced. small_cnn: conv1's fan_in 9
# forces C = 1 (one column: balance cannot matter, every row streams alone), R = 16 over conv positions.
CASES = {
    "mlp": ("mlp", 16, 4, 8, 8, {"fc1": (8, 2), "fc2": (4, 1), "fc3": (2, 1)}),
    "small_cnn": ("small_cnn", 16, 16, 1, 16, {"conv1": (3, 1), "conv2": (8, 2), "fc": (4, 1)}),
}


def _circulant(n, k, period, ones, shift):
    """Row r, column j active iff (r + j + shift) % period < ones: every row holds k ones/period and
    (when period | n) every column n ones/period; shifting moves weights but keeps the counts (a
    drop/grow that keeps the masks perfectly balanced)."""
    return ((np.arange(n)[:, None] + np.arange(k)[None, :] + shift) % period) < ones


def _pack(mask):
    return np.packbits(mask.reshape(-1), bitorder="big")


@pytest.mark.parametrize("case", sorted(CASES))
def test_ideal_run_matches_rigl_flop_accounting(case, tmp_path):
    model, classes, R, C, batch, pattern = CASES[case]
    specs = model_specs(model, num_classes=classes)
    assert sorted(s.name for s in specs) == sorted(pattern)
    p = tmp_path / "ideal.toml"
    p.write_text(ideal_spec_toml(R, C))
    hw = load_hardware(str(p))

    # A RigL schedule (rigl_hw.schedules): an update every D steps while t < T_end. Run D n + 1 steps:
    # step 0 (a normal step) and then n whole periods of D - 1 normal steps and one update step.
    D, n = 5, 4
    total = D * n + 1
    sched = UpdateSchedule(delta_t=D, t_end=total)
    upd = sched.update_steps(total)
    assert list(upd) == [D * j for j in range(1, n + 1)]
    snaps = [{s.name: _pack(_circulant(s.out_channels, s.fan_in, *pattern[s.name], shift=i)) for s in specs}
             for i in range(n + 1)]
    run = simulate_run(specs, batch, total, upd, snaps, hw, mapping="fixed")
    t = run.table
    assert (t["cycles"] == t["compute_cycles"]).all()  # no memory roofline on the ideal hardware
    # the FLOP formula has no mask-selection term: drop the top-k/re-encode rows of the update steps
    assert set(t.loc[t["pass"] == "mask_update", "step_kind"]) == {"update"}
    t = t[t["pass"] != "mask_update"]

    # FLOP accounting of the foundation, in MACs per sample (see the module docstring)
    nnz = {s.name: int(np.unpackbits(snaps[0][s.name])[: s.n_params].sum()) for s in specs}
    assert all(nnz[s.name] == s.n_params * pattern[s.name][1] // pattern[s.name][0] for s in specs)
    zero = inference_flops(specs, {s.name: 0 for s in specs})
    f_s = float((inference_flops(specs, nnz) - zero).sum()) / 2
    f_d = float((inference_flops(specs) - zero).sum()) / 2
    assert f_d == sum(s.dense_macs for s in specs) and f_s < f_d

    dense_step = simulate_step(specs, None, hw, batch, mapping="fixed").cycles
    assert dense_step == 3 * batch * f_d / (R * C)  # the array does B x 3 f_D MACs at R C per cycle

    step_cyc = t.groupby(["snapshot", "step_kind"])["cycles"].sum()
    normal, update = step_cyc[(0, "normal")], step_cyc[(1, "update")]
    kw = dict(steps=total, batch=batch)
    # a normal step is a static-sparse step (3 f_S); an update step has a dense dW like SNFS (2 f_S + f_D)
    assert normal / dense_step == pytest.approx(training_flops("static", f_s, f_d, **kw).ratio, rel=1e-12)
    assert update / dense_step == pytest.approx(training_flops("snfs", f_s, f_d, **kw).ratio, rel=1e-12)

    # per-step cost over the n whole periods. The paper's DeltaT in (3 f_S DeltaT + 2 f_S + f_D)/(DeltaT + 1)
    # is the number of sparse steps between two update steps; with an update every D steps
    # (rigl_hw.schedules) that is D - 1, so the period has D, not D + 1, steps.
    run_cycles = float((t["cycles"] * t["steps"]).sum())
    per_step = (run_cycles - normal) / (n * D)
    ratio = per_step / dense_step
    assert ratio == pytest.approx(rigl_step_flops(f_s, f_d, D - 1) / (3 * f_d), rel=1e-12)
    assert ratio != pytest.approx(rigl_step_flops(f_s, f_d, D) / (3 * f_d), rel=1e-6)  # the off-by-one
