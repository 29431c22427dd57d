"""`rigl-hw simulate` with a trace's operand sparsity (format v2): used where the preset exploits it."""

from __future__ import annotations

import json

import pytest

from rigl_hw.cli import main
from simulator.trace_run import operand_densities, simulate_trace

SYNTH = ["trace", "synth", "--model", "mlp", "--distribution", "uniform", "--sparsity", "0.8", "--steps", "40",
         "--delta-t", "10", "--alpha", "0.3", "--t-end", "30", "--batch", "4"]


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("ops")
    with_ops, plain = d / "ops", d / "plain"
    assert main([*SYNTH, "--input-density", "0.5", "--grad-density", "0.3", "--out", str(with_ops)]) == 0
    assert main([*SYNTH, "--out", str(plain)]) == 0
    return with_ops, plain


def _rows(sim):
    return {(r["layer"], r["pass"]): r for r in sim.first_step.table.to_dict("records")}


def test_dual_skipping_pe_uses_activation_and_gradient_densities(traces):
    ops, plain = traces
    a = simulate_trace(ops, "eyeriss-v2-pe", mode="statistical")
    b = simulate_trace(plain, "eyeriss-v2-pe", mode="statistical")
    ra, rb = _rows(a), _rows(b)
    od = operand_densities(a.trace)          # the recorded densities (about 0.5 and 0.3)
    assert all(abs(v["I"] - 0.5) < 0.05 and abs(v["O"] - 0.3) < 0.05 for v in od.values())
    for (layer, pname), r in ra.items():
        d_i, d_o = od[layer]["I"], od[layer]["O"]
        want = {"forward": d_i, "backward_data": d_o, "backward_weight": d_i * d_o}[pname]
        assert r["compute_cycles"] == pytest.approx(rb[(layer, pname)]["compute_cycles"] * want, rel=1e-9)
    assert a.summary()["operands_exploited"] == {"forward": ["activations", "weights"],
                                                 "backward_data": ["gradients", "weights"],
                                                 "backward_weight": ["activations", "gradients"]}
    assert b.summary()["operands_exploited"]["forward"] == ["weights"]
    assert a.run.time_s < b.run.time_s


def test_weight_only_preset_ignores_operand_densities(traces, capsys):
    ops, plain = traces
    a, b = simulate_trace(ops, "skip-bitmask-32x32"), simulate_trace(plain, "skip-bitmask-32x32")
    assert a.run.cycles == b.run.cycles and a.run.energy_j == pytest.approx(b.run.energy_j, rel=1e-12)
    assert main(["simulate", str(ops), "--hardware", "skip-bitmask-32x32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["operands_exploited"]["forward"] == ["weights"]
    assert main(["simulate", str(ops), "--hardware", "eyeriss-v2-pe", "--baseline", "none"]) == 0
    assert "zeros exploited: forward activations+weights" in capsys.readouterr().out
