"""studies/bench/mapper_vs_zigzag.py: the ZigZag workloads, the one architecture in both tools' formats,
and the recorded ZigZag results (checked against independent formulas; ZigZag itself is never run)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from simulator.hardware import load_hardware
from studies.bench import mapper_vs_zigzag as bench

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def specs():
    return {s.name: s for s in bench.layer_specs(bench.LAYERS)}


@pytest.fixture(scope="module")
def doc():
    return bench.load_zigzag(bench.DATA)


def test_layer_selection_covers_the_brief(specs):
    assert len(bench.LAYERS) >= 10
    assert {"layer1.0.conv2", "layer4.0.conv2"} <= set(bench.LAYERS)
    kinds = {(s.kernel_hw, s.stride) for s in specs.values()}
    assert ((1, 1), (1, 1)) in kinds and ((1, 1), (2, 2)) in kinds and ((3, 3), (2, 2)) in kinds


def test_shapes_and_workload_yaml(specs):
    s = bench.layer_shape(specs["layer4.0.conv2"], 256)
    assert s == {"B": 256, "K": 512, "C": 512, "OY": 7, "OX": 7, "FY": 3, "FX": 3, "SY": 2, "SX": 2}
    # 256 x 512 x 512 x 9 x 49, the same MACs as layer1.0.conv2 (256 x 64 x 64 x 9 x 3136)
    assert bench.shape_macs(s) == 29_595_009_024 == bench.shape_macs(bench.layer_shape(specs["layer1.0.conv2"], 256))
    for name, spec in specs.items():
        sh = bench.layer_shape(spec, 256)
        assert bench.shape_macs(sh) == 256 * spec.dense_macs, name
    text = bench.workload_yaml("layer4.0.conv2", s)
    assert "loop_sizes: [256, 512, 512, 7, 7, 3, 3]" in text
    assert "dimension_relations: [ix=2*ox+1*fx, iy=2*oy+1*fy]" in text
    assert "padding" not in text.replace("no padding", "")
    # the extent the conv reads: 3x3 stride 2 to 7x7 reads 15 rows; 1x1 stride 2 to 28 reads 55 of 56
    assert bench.input_extent(s) == (15, 15)
    assert bench.input_extent(bench.layer_shape(specs["layer2.0.downsample.0"], 256)) == (55, 55)
    assert bench.input_extent(bench.layer_shape(specs["layer1.0.conv2"], 256)) == (58, 58)
    # rows actually read: all of the extent when the kernel covers the stride, else every stride-th
    assert bench.input_touched(bench.layer_shape(specs["layer2.0.downsample.0"], 256)) == (28, 28)
    assert bench.input_touched(bench.layer_shape(specs["layer2.0.conv2"], 256)) == (57, 57)
    assert bench.input_touched(s) == (15, 15)


def test_committed_workloads_match_generated(specs):
    for name in bench.LAYERS:
        path = bench.WORKLOAD_DIR / f"{name}.b256.yaml"
        assert path.read_text() == bench.workload_yaml(name, bench.layer_shape(specs[name], 256))


def _yaml_memories() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(bench.ACCELERATOR.read_text())


def test_same_architecture_and_energies_in_both_tools():
    hw = load_hardware(bench.HARDWARE)
    zz = _yaml_memories()
    assert zz["operational_array"]["sizes"] == [hw.pe_array.rows, hw.pe_array.cols] == [32, 32]
    assert zz["operational_array"]["unit_energy"] == hw.mac.energy_pj
    names = list(zz["memories"])
    assert names == [lv.name for lv in hw.memory]
    for i, (name, lv) in enumerate(zip(names, hw.memory)):
        m = zz["memories"][name]
        inst = hw.instances(i)
        assert inst == (1024 if m["served_dimensions"] == [] else 1), name
        assert m["size"] == 8 * lv.size_bytes, name
        word = hw.word_bits(i)
        assert word == 16
        for kind, cost, pj, bw in (("read", "r_cost", lv.read_pj, lv.read_bw_bytes_per_cycle),
                                   ("write", "w_cost", lv.write_pj, lv.write_bw_bytes_per_cycle)):
            ports = [p for p in m["ports"] if p["type"] == kind]
            assert ports, (name, kind)
            for p in ports:
                assert p["bandwidth_min"] == word  # accesses counted per word ...
                assert m[cost] == pytest.approx(pj * p["bandwidth_max"] / word)  # ... so cost/word == ours
            assert sum(p["bandwidth_max"] for p in ports) * inst / 8 == bw, (name, kind)
    dram = hw.memory[-1]
    assert dram.read_pj == pytest.approx(16 * dram.energy_pj_per_bit)  # 8 pJ/bit x 16-bit words
    mapping = bench.MAPPING.read_text()
    assert re.search(r"D1:\s*- K, 32\s*D2:\s*- C, 32", mapping)
    assert hw.dataflow == "ws"


def test_recorded_zigzag_results_are_consistent(doc, specs):
    assert doc["zigzag_version"] == "3.9.1" and doc["batch"] == 256
    assert list(doc["layers"]) == list(bench.LAYERS)
    hw = load_hardware(bench.HARDWARE)
    for name, lay in doc["layers"].items():
        sh = bench.layer_shape(specs[name], 256)
        assert lay["shape"] == sh
        macs = bench.shape_macs(sh)
        k, c, b = sh["K"], sh["C"], sh["B"]
        h, w = bench.input_touched(sh)
        compulsory = {"weights": k * c * sh["FY"] * sh["FX"] * 2, "inputs": b * c * h * w * 2,
                      "outputs": b * k * sh["OY"] * sh["OX"] * 2}
        for opt in ("latency", "energy"):
            r = lay[opt]
            assert r["total_mac_count"] == macs
            assert r["ideal_cycle"] == math.ceil(macs / 1024)
            assert r["latency_total2"] == pytest.approx(
                r["ideal_temporal_cycle"] + r["stall_slack_comb"] + r["data_onloading_cycle"]
                + r["data_offloading_cycle"] + r["systolic_drain_cycle"])
            assert r["latency_total2"] >= r["ideal_cycle"]
            assert r["mac_energy_pj"] == pytest.approx(macs * hw.mac.energy_pj)
            by_level = bench.energy_by_level(r)
            assert sum(by_level.values()) == pytest.approx(r["energy_pj"])
            # every level's energy is words moved x our per-word energy (the per-access energies agree)
            for levels in r["operands"].values():
                for lv, spec_lv in zip(levels, hw.memory):
                    words = {d: bits / 16 for d, bits in lv["bits"].items()}
                    for d, e in lv["energy_pj"].items():
                        pj = spec_lv.read_pj if d.startswith("rd") else spec_lv.write_pj
                        assert e == pytest.approx(words[d] * pj, rel=1e-6), (name, opt, lv["memory"], d)
            d = bench.dram_bytes(r)
            for t, need in compulsory.items():  # never below compulsory traffic
                moved = d[t]["write"] if t == "outputs" else d[t]["read"]
                assert moved >= need * (1 - 1e-9), (name, opt, t)
        assert lay["energy"]["energy_pj"] <= lay["latency"]["energy_pj"] * (1 + 1e-9)
        assert lay["latency"]["latency_total2"] <= lay["energy"]["latency_total2"]


def test_zigzag_table_without_mapper(capsys, monkeypatch):
    monkeypatch.setattr(bench, "mapper_available", lambda: "not yet")
    assert bench.main(["--layers", "layer1.0.conv2,layer4.0.conv2"]) == 0
    out = capsys.readouterr().out
    assert "layer4.0.conv2" in out and "ZigZag table only" in out and "REFERENCES.md quotes" in out


def test_bad_input_is_one_line_exit_2(capsys, tmp_path):
    assert bench.main(["--layers", "layer9.conv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rigl-hw: error: layer 'layer9.conv'")
    assert bench.main(["--json", str(tmp_path / "none.json")]) == 2
    assert "--run-zigzag" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": {"x": {}}}))
    assert bench.main(["--json", str(bad), "--layers", "layer1.0.conv1"]) == 2
    assert "not a mapper_vs_zigzag JSON" in capsys.readouterr().err


def test_adapter_reads_the_mapper_api(specs):
    """`our_search` returns the real mapper's pick for the bench's architecture: the same cycles, energy and
    DRAM bytes as `map_layer` itself, never below the ideal compute or the compulsory DRAM traffic."""
    import math

    from simulator.hardware import load_hardware
    from simulator.mapper import map_layer
    from simulator.nest import Problem

    hw = load_hardware(str(ROOT / "studies" / "bench" / "zigzag_32x32.toml"))
    spec = specs["layer4.1.conv1"]
    got = bench.our_search(spec, 1, hw, "latency")
    ev = map_layer(Problem.from_layer(spec, 1, "forward"), hw, "latency", use_cache=False).evaluation
    assert got["cycles"] == ev.cycles and got["energy_pj"] == ev.energy_pj
    assert got["dram_bytes"] == ev.dram_bytes() and got["mappings_evaluated"] > 0 and got["seconds"] > 0
    assert got["cycles"] >= math.ceil(bench.shape_macs(bench.layer_shape(spec, 1)) / 1024)
    compulsory = 2 * (spec.n_params + spec.in_channels * spec.in_positions + spec.out_channels * spec.out_positions)
    assert got["dram_bytes"] >= 0.99 * compulsory   # bf16: weights, inputs, outputs each once (inputs may be fewer: stride)


def test_goal_check_flags_a_missed_layer(monkeypatch, capsys, doc, specs):
    zz = {r["layer"]: r for r in bench.zigzag_rows(doc)}
    names = ["layer1.0.conv2", "layer4.0.conv2"]
    sub = {**doc, "layers": {n: doc["layers"][n] for n in names}}

    def fake(cycle_factor):
        def our_search(spec, batch, hw, objective):
            r = zz[spec.name]
            e = r["energy_pj"] if objective == "latency" else r["e_energy_pj"]
            return {"cycles": r["cycles"] * cycle_factor, "energy_pj": e * 1.05, "dram_bytes": r["dram_bytes"],
                    "mappings_evaluated": 10, "seconds": r["seconds"] / 500}
        return our_search

    monkeypatch.setattr(bench, "our_search", fake(1.01))
    rows = bench.compare(sub, None, [specs[n] for n in names])
    assert [round(r["cycle_ratio"], 6) for r in rows] == [1.01, 1.01]
    assert [round(r["energy_ratio"], 6) for r in rows] == [1.05, 1.05]
    assert all(round(r["speedup"]) == 500 for r in rows)
    assert bench.print_compare(rows) == 0
    monkeypatch.setattr(bench, "our_search", fake(1.03))  # 3 % slower than ZigZag: misses <= 1.02
    assert bench.print_compare(bench.compare(sub, None, [specs[n] for n in names])) == 2
    assert capsys.readouterr().out.count("MISSED") == 2
