"""`rigl-hw simulate TRACE --hardware A B ...`: dense baseline, ratios, memory-stall share, JSON/CSV/plot;
`rigl-hw study NAME --hardware ...`."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from rigl_hw.cli import main
from rigl_hw.trace import read_trace
from rigl_hw.trace_synth import write_synthetic_trace
from simulator.engine import simulate_run
from simulator.hardware import PRESET_DIR, load_hardware

HW = ("dense-32x32", "skip-bitmask-32x32", "eyeriss-v2-pe")


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "t"
    write_synthetic_trace(out, "small_cnn", "erk", 0.8, steps=60, delta_t=10, alpha=0.3, t_end=50, batch=16, seed=3)
    return out


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_multi_hardware_ratios_equal_separate_runs(trace_dir, tmp_path, capsys):
    csv_path = tmp_path / "all.csv"
    many = _json(capsys, ["simulate", str(trace_dir), "--hardware", *HW, "--json", "--out", str(csv_path)])
    assert [r["hardware"] for r in many["runs"]] == list(HW) and many["steps"] == 60
    tr = read_trace(trace_dir)
    table = pd.read_csv(csv_path)
    for name, run in zip(HW, many["runs"]):
        single = _json(capsys, ["simulate", str(trace_dir), "--hardware", name, "--json"])
        assert single["totals"] == pytest.approx(run["totals"])
        # the dense run, computed independently: every layer without a mask, no updates, same steps
        dense = simulate_run(tr.specs, tr.batch_size, tr.total_steps, np.array([0]), [{}], load_hardware(name))
        assert set(dense.table["step_kind"]) == {"normal"} and dense.table["steps"].iloc[0] == 60
        b = run["baseline"]
        assert b["totals"]["time_s"] == pytest.approx(dense.time_s)
        assert b["totals"]["energy_j"] == pytest.approx(dense.energy_j)
        assert b["ratio"]["time"] == pytest.approx(single["totals"]["time_s"] / dense.time_s)
        assert b["ratio"]["energy"] == pytest.approx(single["totals"]["energy_j"] / dense.energy_j)
        # stall share = 1 - compute / cycles of the run's table (steps-weighted), and per layer
        t = table[table["hardware"] == name]
        assert run["stall_share"] == pytest.approx(1 - (t.compute_cycles * t.steps).sum() / (t.cycles * t.steps).sum())
        for lr in run["layers"]:
            assert lr["stall_share"] == pytest.approx(1 - lr["compute_cycles"] / lr["cycles"])
    # the sparse-skipping array is faster than its dense run; the dense array is not (mask updates cost)
    r = {x["hardware"]: x["baseline"]["ratio"] for x in many["runs"]}
    assert r["skip-bitmask-32x32"]["energy"] < 1 < r["dense-32x32"]["time"]
    assert any(x["stall_share"] > 0 for x in many["runs"])


def test_single_hardware_schema_text_and_baseline_none(trace_dir, capsys):
    one = _json(capsys, ["simulate", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json"])
    assert {"hardware", "totals", "per_step", "layers", "stall_share", "baseline", "runs"} <= set(one)
    assert len(one["runs"]) == 1 and one["runs"][0]["totals"] == one["totals"]
    none = _json(capsys, ["simulate", str(trace_dir), "--hardware", "skip-bitmask-32x32", "--json", "--baseline", "none"])
    assert "baseline" not in none and none["totals"] == one["totals"]
    assert main(["simulate", str(trace_dir), "--hardware", "dense-32x32", "skip-bitmask-32x32"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.strip().startswith("skip-bitmask-32x32 "))
    b = one["baseline"]
    assert row.split()[6:8] == [f"{b['ratio']['time']:.3f}", f"{b['ratio']['energy']:.3f}"]
    assert row.split()[3] == f"{100 * one['stall_share']:.1f}%"


def test_comparison_plot_and_bad_input(trace_dir, tmp_path, capsys):
    from simulator.compare_plot import comparison_plot_data

    png = tmp_path / "cmp.png"
    out = _json(capsys, ["simulate", str(trace_dir), "--hardware", "dense-32x32", "skip-bitmask-32x32", "--json",
                         "--plot", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    d = comparison_plot_data(out)
    assert d["time_ratio"] == [r["baseline"]["ratio"]["time"] for r in out["runs"]]
    assert d["stall_pct"] == [100 * r["stall_share"] for r in out["runs"]]
    # the same spec twice (a copy under another path): labels stay apart
    copy = tmp_path / "mine.toml"
    shutil.copy(PRESET_DIR / "dense-32x32.toml", copy)
    two = _json(capsys, ["simulate", str(trace_dir), "--hardware", "dense-32x32", str(copy), "--json"])
    assert [r["label"] for r in two["runs"]] == ["dense-32x32", str(copy)]
    assert two["runs"][0]["totals"] == two["runs"][1]["totals"]
    assert main(["simulate", str(trace_dir), "--hardware", "dense-32x32", "nope", "--json"]) == 2
    assert main(["simulate", str(trace_dir), "--hardware", "dense-32x32", "skip-bitmask-32x32", "--mode", "compare"]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.count("rigl-hw: error:") == 2 and "--mode compare takes one" in err.err


def test_study_runs_on_the_given_hardware(tmp_path, capsys):
    spec = tmp_path / "my-array.toml"
    text = (PRESET_DIR / "skip-bitmask-32x32.toml").read_text().replace('name = "skip-bitmask-32x32"',
                                                                         'name = "my-array"')
    spec.write_text(text.replace("rows = 32", "rows = 16"))
    out = tmp_path / "ui"
    assert main(["study", "update-interval", "--out", str(out), "--quick", "--no-progress", "--workers", "1",
                 "--hardware", str(spec)]) == 0
    csvs = list(out.glob("*.csv"))
    assert csvs
    presets = set().union(*(set(pd.read_csv(c)["preset"]) for c in csvs if "preset" in pd.read_csv(c).columns))
    assert presets == {str(spec)}
    # the study's number for that point comes from the 16-row array, not the 32-row preset it was copied from
    from dataclasses import replace

    from test_studies import direct_run, masks_of

    r = pd.read_csv(out / "intervals.csv").query("delta_t == 10 and chunk_elements == 4096").iloc[0]
    specs, alloc, masks = masks_of("mlp", "erk", 0.9)
    runs = {}
    for name in (str(spec), "skip-bitmask-32x32"):
        base = load_hardware(name)
        runs[name] = direct_run(specs, alloc, masks, replace(base, topk=replace(base.topk, chunk_elements=4096)),
                                delta_t=10).cycles
    assert r.run_cycles == pytest.approx(runs[str(spec)], rel=1e-9)
    assert runs[str(spec)] != pytest.approx(runs["skip-bitmask-32x32"], rel=1e-3)
    assert main(["study", "update-interval", "--out", str(tmp_path / "bad"), "--quick", "--hardware", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_run_fanned_feeds_every_worker_the_same_items_and_raises_the_first_error():
    import threading

    from simulator.trace_run import run_fanned

    assert run_fanned(iter(range(50)), [list, sum, lambda it: [x * 2 for x in it]]) == [
        list(range(50)), sum(range(50)), [x * 2 for x in range(50)]]

    def dies(it):
        for x in it:
            if x == 3:
                raise ValueError("worker failed at 3")

    with pytest.raises(ValueError, match="worker failed at 3"):
        run_fanned(iter(range(10**6)), [list, dies])           # the producer stops early, list gets END

    def broken():
        yield 1
        raise RuntimeError("replay failed")

    with pytest.raises(RuntimeError, match="replay failed"):
        run_fanned(broken(), [list, list])
    assert not any(t.name.startswith("trace-fan-") for t in threading.enumerate())
