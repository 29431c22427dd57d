"""`rigl-hw map`: JSON shape, the Timeloop mapping through the CLI, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rigl_hw.cli import main

DATA = Path(__file__).parent / "data"
ALEX = "conv C=3 M=96 R=11 S=11 P=55 Q=55 stride=4"


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "rigl_hw", "map", *args], capture_output=True, text=True, env=env)


def test_json_with_the_timeloop_mapping_subprocess():
    r = _cli("--hardware", "eyeriss-like", "--layer", ALEX, "--mapping", str(DATA / "eyeriss_like_alexnet_conv1.toml"),
             "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (row,) = out["layers"]
    assert set(row) >= {"name", "pass", "cycles", "compute_cycles", "energy_pj", "macs", "effectual_macs",
                        "utilization", "levels", "mapping"}
    assert row["cycles"] == 798_600 and row["macs"] == 105_415_200
    assert row["energy_pj"] / 1e6 == pytest.approx(866.32, rel=0.01)
    assert row["levels"]["DRAM"]["read_bytes"] == (1_916_640 + 412_005) * 2
    assert out["totals"]["cycles"] == 798_600 and set(out["search"]) == {"mappings_evaluated", "seconds"}


def test_text_output_prints_the_nest_subprocess():
    r = _cli("--hardware", "dense-32x32", "--layer", "gemm M=64 N=64 K=64")
    assert r.returncode == 0, r.stderr
    assert "dram [ weights:4096 inputs:4096 outputs:4096 ]" in r.stdout
    assert "(Spatial-" in r.stdout and "read MB" in r.stdout and "latency-optimal" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--layer", "conv N=1 C=3 Z=4"], "unknown dimension 'Z' for conv"),
    (["--layer", "conv C=3 M"], "'M' is not KEY=VALUE"),
    (["--layer", "matmul M=3"], "must start with 'conv' or 'gemm'"),
    (["--layer", "gemm M=3 N=4"], "gemm needs M, N and K"),
    (["--layer", "gemm M=64 N=64 K=64", "--weight-density", "1.5"], "must be in [0, 1]"),
    (["--layer", ALEX, "--mapping", "MISSING.toml"], "not found"),
])
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    assert main(["map", "--hardware", "dense-32x32", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rigl-hw: error: ") and message in err[0], err


def test_mapping_that_does_not_fit_and_mask_mismatch(tmp_path, capsys):
    bad = (DATA / "eyeriss_like_alexnet_conv1.toml").read_text().replace('["M", 8]', '["M", 24]') \
        .replace('["M", 12, "X"]', '["M", 4, "X"]')
    f = tmp_path / "big.toml"
    f.write_text(bad)
    assert main(["map", "--hardware", "eyeriss-like", "--layer", ALEX, "--mapping", str(f)]) == 2
    assert "weights_spad: tiles need" in capsys.readouterr().err
    mask = tmp_path / "m.npy"
    np.save(mask, np.ones((64, 3), dtype=bool))
    assert main(["map", "--hardware", "dense-32x32", "--layer", "gemm M=64 N=64 K=64", "--weight-mask", str(mask)]) == 2
    assert "does not match the layer's weight shape (64, 64)" in capsys.readouterr().err


def test_weight_mask_density_and_all_passes(tmp_path, capsys):
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, :16] = True
    f = tmp_path / "m.npy"
    np.save(f, mask)
    assert main(["map", "--hardware", "skip-bitmask-32x32", "--layer", "gemm M=64 N=64 K=64", "--weight-mask", str(f),
                 "--pass", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["pass"] for r in out["layers"]] == ["forward", "backward_data", "backward_weight"]
    for r in out["layers"]:
        assert r["macs"] == 64 ** 3 and r["effectual_macs"] == pytest.approx(64 ** 3 / 4)


def test_no_legal_mapping_from_constraints(tmp_path, capsys):
    spec = (Path(__file__).parents[1] / "simulator/presets/eyeriss-like.toml").read_text()
    spec = spec.replace('spatial_y = ["S", "C", "M"]\nfull = ["S"]', 'spatial_y = []\nfull = ["S"]')
    f = tmp_path / "hw.toml"
    f.write_text(spec)
    assert main(["map", "--hardware", str(f), "--layer", ALEX]) == 2
    assert "leave no legal" in capsys.readouterr().err


def test_model_with_distribution_maps_every_layer(capsys):
    assert main(["map", "--hardware", "skip-bitmask-32x32", "--model", "mlp", "--distribution", "erk",
                 "--sparsity", "0.9", "--batch", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from rigl_hw.zoo import model_specs

    specs = model_specs("mlp")
    assert [r["name"] for r in out["layers"]] == [s.name for s in specs]
    assert all(r["effectual_macs"] < r["macs"] for r in out["layers"])
    assert out["totals"]["cycles"] == pytest.approx(sum(r["cycles"] for r in out["layers"]))


# --- operand sparsity (issue 11) -------------------------------------------------------------------
def _op_masks(tmp_path):
    rng = np.random.default_rng(11)
    w = rng.random((16, 16, 3, 3)) < 0.4
    a = rng.random((2, 16, 6, 6)) < 0.6
    a[:, 3] = False                                   # a dead channel: correlated zeros
    g = rng.random((2, 16, 6, 6)) < 0.3
    paths = {}
    for k, v in (("w", w), ("a", a), ("g", g)):
        paths[k] = tmp_path / f"{k}.npy"
        np.save(paths[k], v)
    return w, a, g, paths


def test_input_and_grad_masks_give_the_exact_pair_count_on_the_eyeriss_v2_pe(tmp_path, capsys):
    from simulator.nest import Problem
    from simulator.sparse_features import joint_count_naive, nest_masks

    w, a, g, paths = _op_masks(tmp_path)
    layer = "conv N=2 C=16 M=16 R=3 S=3 P=6 Q=6"
    assert main(["map", "--hardware", "eyeriss-v2-pe", "--layer", layer, "--pass", "all", "--weight-mask",
                 str(paths["w"]), "--input-mask", str(paths["a"]), "--grad-mask", str(paths["g"]), "--json"]) == 0
    rows = {r["pass"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    for pname, spaces in (("forward", "WI"), ("backward_data", "WO"), ("backward_weight", "WIO")):
        p = Problem(N=2, C=16, M=16, R=3, S=3, P=6, Q=6, pass_name=pname)
        masks = nest_masks(p, weights=w, inputs=a, grads=g)
        exploited = {"W": "weights", "I": "activations", "O": "gradients"}
        want_on = {"forward": "WI", "backward_data": "WO", "backward_weight": "IO"}[pname]  # the PE's roles
        assert rows[pname]["cycles"] == joint_count_naive(p, masks, want_on), pname
        assert rows[pname]["density_mode"] == "real"
        assert set(rows[pname]["exploited"]) == {exploited[s] for s in want_on}
        assert set(spaces) >= set(want_on)


def test_statistical_operand_densities_multiply(capsys):
    layer = "conv N=1 C=16 M=16 P=6 Q=6"
    assert main(["map", "--hardware", "eyeriss-v2-pe", "--layer", layer, "--weight-density", "0.5",
                 "--input-density", "0.4", "--grad-density", "0.25", "--pass", "all", "--json"]) == 0
    rows = {r["pass"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    macs = 16 * 16 * 36
    assert rows["forward"]["cycles"] == pytest.approx(macs * 0.5 * 0.4)
    assert rows["backward_data"]["cycles"] == pytest.approx(macs * 0.5 * 0.25)
    assert rows["backward_weight"]["cycles"] == pytest.approx(macs * 0.4 * 0.25)
    # a weight-only skipping array ignores the activation density
    assert main(["map", "--hardware", "skip-bitmask-32x32", "--layer", layer, "--weight-density", "0.5", "--json"]) == 0
    a = json.loads(capsys.readouterr().out)["layers"][0]
    assert main(["map", "--hardware", "skip-bitmask-32x32", "--layer", layer, "--weight-density", "0.5",
                 "--input-density", "0.4", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["layers"][0]
    assert a["cycles"] == b["cycles"] and b["exploited"] == ["weights"]


@pytest.mark.parametrize("extra, message", [
    (["--input-density", "1.5"], "--input-density 1.5: must be in [0, 1]"),
    (["--grad-density", "-0.1"], "--grad-density -0.1: must be in [0, 1]"),
    (["--input-mask", "BAD_A"], "--input-mask: input mask shape (2, 15, 6, 6) must be (N, 16, H, W)"),
    (["--grad-mask", "BAD_G"], "--grad-mask: output-gradient mask shape (2, 16, 5, 6) must be (N, 16, 6, 6)"),
    (["--input-mask", "MISSING"], "not found"),
])
def test_operand_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, message):
    np.save(tmp_path / "bad_a.npy", np.ones((2, 15, 6, 6), dtype=bool))
    np.save(tmp_path / "bad_g.npy", np.ones((2, 16, 5, 6), dtype=bool))
    sub = {"BAD_A": str(tmp_path / "bad_a.npy"), "BAD_G": str(tmp_path / "bad_g.npy"), "MISSING": str(tmp_path / "x.npy")}
    extra = [sub.get(x, x) for x in extra]
    assert main(["map", "--hardware", "eyeriss-v2-pe", "--layer", "conv N=2 C=16 M=16 R=3 S=3 P=6 Q=6", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
