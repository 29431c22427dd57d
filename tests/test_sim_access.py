"""The mapping-driven access model: Timeloop's eyeriss_like AlexNet conv1 exactly, brute force on
random small mappings, the three passes, capacities and densities."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from simulator.access import check_mapping, evaluate, resolve_keeps
from simulator.hardware import load_hardware, spec_from_dict
from simulator.nest import LevelMapping, Mapping, MappingError, Problem, load_mapping, mapping_from_dict

from simulator.tiles import loop_array, loop_strides, transfer_count, transfer_count_fast

from access_naive import naive_counts
from sim_helpers import prime_factors

DATA = Path(__file__).parent / "data"
ALEXNET1 = Problem(C=3, M=96, R=11, S=11, P=55, Q=55, stride=(4, 4), name="conv1")


@pytest.fixture(scope="module")
def eyeriss():
    return load_hardware("eyeriss-like")


@pytest.fixture(scope="module")
def alexnet_eval(eyeriss):
    return evaluate(ALEXNET1, eyeriss, load_mapping(DATA / "eyeriss_like_alexnet_conv1.toml"))


def test_eyeriss_alexnet_conv1_matches_timeloop(alexnet_eval):
    # Timeloop timeloop-mapper.stats.txt, eyeriss_like exercise @3263d52 (timeloop-accelergy-exercises)
    e = alexnet_eval
    assert e.macs == 105_415_200
    assert e.cycles == 798_600
    assert e.pes_used == 132
    c = {lv.name: lv.counts for lv in e.levels}
    assert c["DRAM"]["weights"].reads == 1_916_640
    assert c["DRAM"]["inputs"].reads == 412_005
    assert c["DRAM"]["outputs"].updates == 290_400
    assert c["DRAM"]["outputs"].reads == 0
    glb_i, glb_o = c["shared_glb"]["inputs"], c["shared_glb"]["outputs"]
    assert (glb_i.reads, glb_i.fills) == (412_005, 412_005)
    assert (glb_o.reads, glb_o.updates, glb_o.fills) == (580_800, 871_200, 290_400)
    ps = c["psum_spad"]["outputs"]   # Timeloop prints per instance; 132 instances used
    assert (ps.reads / 132, ps.updates / 132, ps.fills / 132) == (774_400, 798_600, 72_600)
    w = c["weights_spad"]["weights"]
    assert (w.reads / 132, w.fills / 132) == (798_600, 14_520)
    i = c["ifmap_spad"]["inputs"]
    assert (i.reads / 132, i.fills / 132) == (798_600, 37_455)   # 165 x (11 + 54 x 4)
    assert e.energy_pj / 1e6 == pytest.approx(866.32, rel=0.01)
    # per-MAC breakdown Timeloop prints: mac 2.20, psum 0.52, weights 1.61, ifmap 0.25, glb 0.46, DRAM 3.18
    per_mac = {lv.name: lv.energy_pj / e.macs for lv in e.levels}
    for name, want in (("psum_spad", 0.52), ("weights_spad", 1.61), ("ifmap_spad", 0.25),
                       ("shared_glb", 0.46), ("DRAM", 3.18)):
        assert per_mac[name] == pytest.approx(want, abs=0.006), name
    assert e.mac_energy_pj / e.macs == pytest.approx(2.20)


def test_format_nest_is_timeloop_style(alexnet_eval):
    m = alexnet_eval.mapping
    text = m.format_nest(kept=[tuple(lv.tile_words) for lv in alexnet_eval.levels],
                         tiles=[lv.tile_words for lv in alexnet_eval.levels])
    assert "shared_glb [ inputs:2497 outputs:5280 ]" in text
    assert "for M in [0:12) (Spatial-X)" in text
    assert mapping_from_dict(__import__("tomllib").loads(m.to_toml())) == m


TINY = {
    "name": "tiny", "number_format": "bf16",
    "pe_array": {"rows": 4, "cols": 4, "clock_hz": 1e9, "macs_per_pe": 2, "fill_drain": False},
    "memory": [
        {"name": "reg", "size_bytes": 4096, "read_bw_bytes_per_cycle": 64, "write_bw_bytes_per_cycle": 64,
         "instances": 16, "mesh_x": 4},
        {"name": "buf", "size_bytes": 65536, "read_bw_bytes_per_cycle": 64, "write_bw_bytes_per_cycle": 64,
         "instances": 4, "mesh_x": 2},
        {"name": "glb", "size_bytes": 1 << 20, "read_bw_bytes_per_cycle": 64, "write_bw_bytes_per_cycle": 64},
        {"name": "dram", "size_bytes": 1 << 30, "read_bw_bytes_per_cycle": 8, "write_bw_bytes_per_cycle": 8,
         "energy_pj_per_bit": 8.0},
    ],
}
SLOTS = [(0, "t"), (1, "t"), (1, "X"), (1, "Y"), (2, "t"), (2, "X"), (2, "Y"), (3, "t"), (3, "X")]
LIMIT = {(1, "X"): 2, (1, "Y"): 2, (2, "X"): 2, (2, "Y"): 2, (3, "X"): 2}


def random_mapping(problem: Problem, rng: random.Random) -> Mapping:
    names = ["dram", "glb", "buf", "reg"]
    temporal = {i: {} for i in range(4)}
    spatial = {i: {} for i in range(4)}
    used = {k: 1 for k in LIMIT}
    for d, size in problem.dims.items():
        for f in prime_factors(size):
            options = [s for s in SLOTS if s[1] == "t" or used[s] * f <= LIMIT[s]]
            lv, kind = rng.choice(options)
            if kind == "t":
                temporal[lv][d] = temporal[lv].get(d, 1) * f
            else:
                used[(lv, kind)] *= f
                spatial[lv][(d, kind)] = spatial[lv].get((d, kind), 1) * f
    levels = []
    for i in range(4):
        t = list(temporal[i].items())
        rng.shuffle(t)
        sp = tuple((d, b, a) for (d, a), b in spatial[i].items())
        keep = None if i == 0 else tuple(r for r in ("weights", "inputs", "outputs") if rng.random() < 0.6)
        levels.append(LevelMapping(names[i], tuple(t), sp, keep))
    return Mapping(tuple(levels))


@pytest.mark.parametrize("seed", range(24))
def test_closed_form_equals_brute_force(seed):
    rng = random.Random(seed)
    latch = seed % 2 == 1
    tiny = dict(TINY, pe_array=dict(TINY["pe_array"], operand_registers=latch))
    hw = spec_from_dict(tiny)
    dims = dict(N=rng.choice([1, 2]), M=rng.choice([2, 4]), C=rng.choice([1, 2, 3]), P=rng.choice([2, 3, 4]),
                Q=rng.choice([1, 2]), R=rng.choice([1, 2, 3]), S=rng.choice([1, 2]))
    problem = Problem(**dims, stride=(rng.choice([1, 2, 3]), rng.choice([1, 2])),
                      dilation=(rng.choice([1, 1, 2]), 1), pass_name=rng.choice(
                          ["forward", "backward_data", "backward_weight"]))
    mapping = random_mapping(problem, rng)
    ev = evaluate(problem, hw, mapping)
    keeps = resolve_keeps(hw, mapping)
    want = naive_counts(problem, mapping, keeps, latch)
    loops = loop_strides(mapping)
    la = loop_array(loops)
    for (i, role), (r, f, u) in want.items():
        c = ev.levels[i].counts[role]
        assert (c.reads, c.fills, c.updates) == (r, f, u), (i, role, mapping.format_nest())
    # the Numba kernel equals its pure-Python reference on every (child, parent) pair
    for space in ("W", "I", "O"):
        for child in range(1, 5):
            for parent in [None] + list(range(child)):
                assert transfer_count_fast(problem, la, space, child, parent, 4, latch) == \
                    transfer_count(problem, loops, space, child, parent, 4, latch)


def test_mapping_errors(eyeriss):
    m = load_mapping(DATA / "eyeriss_like_alexnet_conv1.toml")
    with pytest.raises(MappingError, match="factors of M multiply to 96, the problem has M=64"):
        check_mapping(Problem(C=3, M=64, R=11, S=11, P=55, Q=55, stride=(4, 4)), eyeriss, m)
    # 24 output channels per PE: the weights_spad (192 words) would need 11 x 24 = 264 words
    p24 = Mapping(m.levels[:5] + (LevelMapping("psum_spad", (("M", 24),), (), ("outputs",)),))
    with pytest.raises(MappingError, match="weights_spad: tiles need 528 B per instance, it holds 384 B"):
        check_mapping(Problem(C=3, M=288, R=11, S=11, P=55, Q=55, stride=(4, 4)), eyeriss, p24)
    wide = Mapping((m.levels[0], LevelMapping("shared_glb", (("P", 55),), (("M", 24, "X"),),
                                              ("inputs", "outputs"))) + m.levels[2:5]
                   + (LevelMapping("psum_spad", (("M", 4),), (), ("outputs",)),))
    with pytest.raises(MappingError, match=r"spatial fanout 24x1 \(X x Y\) exceeds the hardware's 14x1"):
        check_mapping(ALEXNET1, eyeriss, wide)
    with pytest.raises(MappingError, match="bypasses"):
        check_mapping(ALEXNET1, eyeriss, Mapping(m.levels[:3] + (LevelMapping("ifmap_spad", (), (), ("weights",)),)
                                                 + m.levels[4:]))


def test_same_iteration_space_for_all_passes(eyeriss):
    m = load_mapping(DATA / "eyeriss_like_alexnet_conv1.toml")
    evs = {p: evaluate(Problem(C=3, M=96, R=11, S=11, P=55, Q=55, stride=(4, 4), pass_name=p), eyeriss,
                       Mapping((m.levels[0],) + m.levels[1:]), check=False)
           for p in ("forward", "backward_data", "backward_weight")}
    assert {e.macs for e in evs.values()} == {105_415_200}
    # backward_data writes dX: the DRAM receives each input gradient at least once
    assert evs["backward_data"].level("DRAM").counts["outputs"].updates >= 154_587
    # backward_weight writes dW at DRAM at least once per weight
    assert evs["backward_weight"].level("DRAM").counts["outputs"].updates >= 34_848


def test_problem_from_layer_conv_linear_gru():
    from rigl_hw.layers import LayerSpec

    conv = LayerSpec("c", "c.weight", "conv", (64, 16, 3, 3), in_hw=(56, 56), out_hw=(28, 28), groups=2,
                     stride=(2, 2), padding=(1, 1))
    p = Problem.from_layer(conv, 8, "backward_data")
    assert (p.N, p.G, p.M, p.C, p.P, p.Q, p.R, p.S, p.stride) == (8, 2, 32, 16, 28, 28, 3, 3, (2, 2))
    assert p.macs == 8 * conv.dense_macs and p.space_of("outputs") == "I"
    lin = LayerSpec("fc", "fc.weight", "linear", (10, 2048))
    assert Problem.from_layer(lin, 4).dims == {**Problem().dims, "N": 4, "M": 10, "C": 2048}
    hh = LayerSpec("gru.weight_hh_l0", "gru.weight_hh_l0", "gru", (96, 32), in_hw=(20, 1), out_hw=(20, 1))
    ih = LayerSpec("gru.weight_ih_l0", "gru.weight_ih_l0", "gru", (96, 16), in_hw=(20, 1), out_hw=(20, 1))
    ph, pi = Problem.from_layer(hh, 4), Problem.from_layer(ih, 4)
    assert (ph.N, ph.repeats, pi.N, pi.repeats) == (4, 20, 80, 1)
    assert ph.macs == 4 * hh.dense_macs and pi.macs == 4 * ih.dense_macs


def test_sparse_counts_scale_with_density_and_floor_at_compulsory(eyeriss):
    hw = load_hardware("skip-bitmask-32x32")
    p = Problem(N=2, M=64, C=64, P=14, Q=14, R=3, S=3)
    m = Mapping((LevelMapping("dram", (("N", 2), ("P", 14))),
                 LevelMapping("glb", (("C", 2), ("Q", 14)), (("M", 32, "X"), ("C", 32, "Y"))),
                 LevelMapping("regfile", (("M", 2), ("R", 3), ("S", 3)), (), ("weights",))))
    dense, half = evaluate(p, hw, m), evaluate(p, hw, m, densities={"weights": 0.5})
    assert half.effectual_macs == dense.macs / 2
    assert half.compute_cycles == pytest.approx((dense.compute_cycles - 62) / 2 + 62)
    w_d, w_h = dense.levels[0].counts["weights"], half.levels[0].counts["weights"]
    assert w_h.reads == w_d.reads / 2 and w_h.metadata_reads == pytest.approx(w_d.reads / 16)  # 1 bit / 16-bit word
    assert half.levels[0].counts["inputs"].reads == dense.levels[0].counts["inputs"].reads
    with pytest.raises(MappingError, match="outside"):
        evaluate(p, hw, m, densities={"weights": 1.5})


def test_mapping_file_that_is_not_utf8_or_toml_is_one_line(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_bytes(b"[[level]]\nname = \"\xff\"\n")
    with pytest.raises(MappingError, match=r"^mapping file .*not UTF-8 text .*save it as UTF-8$"):
        load_mapping(bad)
    bad.write_text("[[level]\n")
    with pytest.raises(MappingError, match=r"^mapping file .*malformed TOML"):
        load_mapping(bad)
    with pytest.raises(MappingError, match=r"^mapping file .*not found"):
        load_mapping(tmp_path / "absent.toml")
