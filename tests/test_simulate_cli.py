"""`rigl-hw simulate` and `rigl-hw hardware`: JSON schema, CSV table, agreement with the engine, bad input."""

import json

import pandas as pd
import pytest

from rigl_hw.cli import main
from rigl_hw.trace import pack_mask, read_trace
from rigl_hw.trace_synth import write_synthetic_trace
from simulator.engine import simulate_step
from simulator.hardware import load_hardware


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "t"
    write_synthetic_trace(out, "small_cnn", "erk", 0.8, steps=60, delta_t=10, alpha=0.3, t_end=50, batch=16, seed=2)
    return out


def test_simulate_json_and_csv(trace_dir, tmp_path, capsys):
    csv_path = tmp_path / "run.csv"
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json", "--out", str(csv_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"hardware", "trace", "steps", "mask_updates", "masks", "totals", "per_step", "layers"} <= set(out)
    assert out["masks"] == "synthetic" and out["steps"] == 60 and out["mask_updates"] == 4
    assert set(out["totals"]) == {"cycles", "time_s", "energy_j"}
    assert set(out["per_step"]) == {"normal", "update"}
    assert {r["pass"] for r in out["layers"]} == {"forward", "backward_data", "backward_weight"}
    # `layers` is a normal step with the initial masks: equal to a direct engine call
    tr = read_trace(trace_dir)
    masks = {s.name: p for s, p in zip(tr.specs, tr.packed_masks_at(0))}
    step = simulate_step(tr.specs, masks, load_hardware("skip-bitmask-32x32"), tr.batch_size, mapping="fixed")
    assert sum(r["cycles"] for r in out["layers"]) == pytest.approx(step.cycles)
    assert sum(r["energy_j"] for r in out["layers"]) == pytest.approx(step.energy_j)
    # the run total is the CSV's steps-weighted sum, and covers every step of the run
    table = pd.read_csv(csv_path)
    assert (table["cycles"] * table["steps"]).sum() == pytest.approx(out["totals"]["cycles"])
    per_snapshot = table.groupby(["snapshot", "step_kind"])["steps"].first()
    assert per_snapshot.sum() == 60
    assert {"dram_read_bytes", "energy_pj_mac"} <= set(table.columns)


def test_statistical_mode_close_to_real_on_random_masks(trace_dir, capsys):
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json"]) == 0
    real = json.loads(capsys.readouterr().out)
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json", "--mode", "statistical"]) == 0
    stat = json.loads(capsys.readouterr().out)
    assert stat["masks"] == "statistical"
    assert stat["totals"]["cycles"] == pytest.approx(real["totals"]["cycles"], rel=0.25)


def test_compare_mode_reports_both_runs_and_final_mask_layers(trace_dir, tmp_path, capsys):
    runs = {}
    for mode in ("real", "statistical"):
        assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json", "--mode", mode]) == 0
        runs[mode] = json.loads(capsys.readouterr().out)["totals"]
    csv_path = tmp_path / "cmp.csv"
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json", "--mode", "compare",
                 "--out", str(csv_path)]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert cmp["totals"] == runs
    assert cmp["ratio"]["cycles"] == pytest.approx(runs["real"]["cycles"] / runs["statistical"]["cycles"])
    # per layer: one normal step with the LAST snapshot's masks, real against statistical, from the engine
    tr = read_trace(trace_dir)
    last = int(tr.update_steps[-1]) + 1
    masks = {s.name: pack_mask(tr.mask_at(s.name, last)) for s in tr.specs}
    hw = load_hardware("skip-bitmask-32x32")
    real = simulate_step(tr.specs, masks, hw, tr.batch_size, mode="real", mapping="fixed").table
    stat = simulate_step(tr.specs, masks, hw, tr.batch_size, mode="statistical", mapping="fixed").table
    rows = pd.read_csv(csv_path)
    assert list(rows["cycles_real"]) == pytest.approx(list(real["cycles"]))
    assert list(rows["cycles_statistical"]) == pytest.approx(list(stat["cycles"]))
    assert [r["ratio"] for r in cmp["layers"]] == pytest.approx(list(real["cycles"] / stat["cycles"]))
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--mode", "compare"]) == 0
    assert "real / statistical" in capsys.readouterr().out


def test_dense_hardware_ignores_sparsity(trace_dir, capsys):
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "dense-32x32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fw = [r for r in out["layers"] if r["pass"] == "forward"]
    assert all(r["macs"] >= r["effectual_macs"] for r in fw)


def test_bad_inputs(trace_dir, tmp_path, capsys):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("name = 'x'\n[pe_array\nrows = 2\n")
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", str(bad_toml)]) == 2
    assert "malformed TOML" in capsys.readouterr().err
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "no-such-preset"]) == 2
    assert "no such preset" in capsys.readouterr().err
    assert main(["simulate", "--mapping", "fixed", str(tmp_path / "missing"), "--hardware", "dense-32x32"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a trace whose layer shapes do not match its masks
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(trace_dir, broken)
    doc = json.loads((broken / "trace.json").read_text())
    doc["layers"][0]["weight_shape"][0] += 3
    (broken / "trace.json").write_text(json.dumps(doc))
    assert main(["simulate", "--mapping", "fixed", str(broken), "--hardware", "dense-32x32"]) == 2
    assert "do not match" in capsys.readouterr().err
    doc["format_version"] = 7
    (broken / "trace.json").write_text(json.dumps(doc))
    assert main(["simulate", "--mapping", "fixed", str(broken), "--hardware", "dense-32x32"]) == 2
    assert "unsupported trace format version 7" in capsys.readouterr().err
    # unwritable --out: error, and no partial CSV
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "dense-32x32", "--out", str(tmp_path / "nodir" / "x.csv")]) == 2
    assert not (tmp_path / "nodir").exists()


def test_hardware_list_and_show(capsys):
    assert main(["hardware", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("dense-32x32", "skip-bitmask-32x32", "skip-csr-128x128", "eyeriss-v2-pe", "nm-2of4-tc"):
        assert name in text
    assert main(["hardware", "show", "eyeriss-v2-pe", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)
    compute = [a for a in spec["sparse"]["action"] if a["level"] == "compute"]
    assert spec["pe_array"]["rows"] == 1 and compute[0]["kind"] == "skip"
    assert set(compute[0]["condition_on"]) == {"weights", "inputs"}
    assert any("skip weights at weight_spad conditioned on inputs" in x for x in spec["sparse_features"])


def test_prefetched_keeps_order_raises_producer_errors_and_stops_early():
    import threading

    from simulator.trace_run import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("corrupt snapshot 2")

    got = []
    with pytest.raises(ValueError, match="corrupt snapshot 2"):
        for x in prefetched(broken()):
            got.append(x)
    assert got == [1]
    gen = prefetched(iter(range(10**9)), depth=2)       # consumer stops after 3 items
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()                                          # the producer thread ends, nothing left running
    assert not any(t.name == "trace-prefetch" for t in threading.enumerate())


def test_plot_data_adds_up_and_png_is_written(trace_dir, tmp_path, capsys):
    from simulator.run_plot import run_plot_data

    png, csv_path = tmp_path / "run.png", tmp_path / "run.csv"
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json",
                 "--out", str(csv_path), "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    d = run_plot_data(pd.read_csv(csv_path))
    snap = d["per_snapshot"]
    # every step of the run is in exactly one snapshot, and step-weighted costs give the run totals
    assert snap.normal_steps.sum() + snap.update_cycles.notna().sum() == out["steps"] == 60
    assert list(snap.first_step) == [0, 10, 20, 30, 40]
    cycles = (snap.normal_cycles * snap.normal_steps).sum() + snap.update_cycles.fillna(0).sum()
    assert cycles == pytest.approx(out["totals"]["cycles"])
    assert sum(d["energy"].values()) == pytest.approx(d["total_energy_pj"])
    assert d["total_energy_pj"] * 1e-12 == pytest.approx(out["totals"]["energy_j"])
    assert d["per_layer"].to_numpy().sum() == pytest.approx(sum(r["cycles"] for r in out["layers"]))
    assert main(["simulate", "--mapping", "fixed", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--plot",
                 str(tmp_path / "no" / "x.png")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "no").exists()
