"""Sparse-optimisation features (simulator/sparse_features.py) in the mapping-driven model: the exact
joint pair count against brute force, the statistical scaling per level, formats, the shorthand's
equivalence, the Eyeriss v2 PE on synthetic masks, and spec validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.access import evaluate
from simulator.hardware import HardwareSpecError, load_hardware, spec_from_dict
from simulator.hardware import read_toml
from simulator.nest import LevelMapping, Mapping, Problem
from simulator.sparse_features import (Joint, joint_count, joint_count_naive, joint_fractions, nest_masks,
                                       resolve)

PROBLEMS = [
    Problem(N=2, M=3, C=4, P=3, Q=2, R=2, S=3),
    Problem(N=1, G=2, M=2, C=3, P=2, Q=3, R=3, S=1, stride=(2, 1)),
    Problem(N=2, M=4, C=2, P=2, Q=2, R=2, S=2, dilation=(2, 1), pass_name="backward_weight"),
]


def _rand_masks(p: Problem, rng: np.random.Generator, d=(0.5, 0.6, 0.4)) -> dict:
    return {"W": rng.random((p.G, p.M, p.C, p.R, p.S)) < d[0],
            "I": rng.random((p.N, p.G, p.C, p.H, p.W)) < d[1],
            "O": rng.random((p.N, p.G, p.M, p.P, p.Q)) < d[2]}


@pytest.mark.parametrize("p", PROBLEMS)
def test_joint_count_equals_brute_force(p):
    rng = np.random.default_rng(3)
    masks = _rand_masks(p, rng)
    for k in range(1, 4):
        for sub in itertools.combinations("WIO", k):
            got, iters = joint_count(p, masks, sub)
            assert iters == p.macs
            assert got == joint_count_naive(p, masks, sub), sub


def test_nest_masks_padding_and_shape_errors():
    p = Problem(N=2, M=4, C=3, P=5, Q=5, R=3, S=3)           # 'same' 3x3 conv on 5x5: pad 1
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 5, 5)) < 0.5
    m = nest_masks(p, inputs=x)["I"]
    assert m.shape == (2, 1, 3, 7, 7) and m[:, 0, :, 1:6, 1:6].sum() == x.sum() and m.sum() == x.sum()
    with pytest.raises(ValueError, match="does not match the layer's weight shape"):
        nest_masks(p, weights=np.ones((4, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"must be \(N, 3, H, W\)"):
        nest_masks(p, inputs=np.ones((2, 4, 5, 5)))
    with pytest.raises(ValueError, match="does not give"):
        nest_masks(p, inputs=np.ones((2, 3, 9, 5)))
    with pytest.raises(ValueError, match=r"must be \(N, 4, 5, 5\)"):
        nest_masks(p, grads=np.ones((2, 4, 5, 4)))
    with pytest.raises(ValueError, match="same samples"):
        nest_masks(p, inputs=np.ones((2, 3, 5, 5)), grads=np.ones((1, 4, 5, 5)))
    s2 = Problem(N=1, M=2, C=2, P=3, Q=3, R=3, S=3, stride=(2, 2))   # 6x6, 3x3 stride 2 pad 1 -> 3x3
    assert nest_masks(s2, inputs=np.ones((1, 2, 6, 6)))["I"].shape == (1, 1, 2, 7, 7)


def _pe_mapping(p: Problem) -> Mapping:
    """Sparseloop's L07-style mapping on the eyeriss-v2-pe preset: M/8, C/8, Q, P at the backing store;
    C8 then M8 at psum_spad (the weight tile is M8 x C8)."""
    return Mapping((LevelMapping("backing", (("M", p.M // 8), ("C", p.C // 8), ("Q", p.Q), ("P", p.P))),
                    LevelMapping("iact_spad"), LevelMapping("weight_spad"),
                    LevelMapping("psum_spad", (("C", 8), ("M", 8))), LevelMapping("reg")))


def test_eyeriss_v2_pe_real_cycles_are_the_pair_count_and_statistical_is_the_product():
    hw = load_hardware("eyeriss-v2-pe")
    p = Problem(N=1, M=16, C=16, P=6, Q=6)
    rng = np.random.default_rng(7)
    w = rng.random((16, 16, 1, 1)) < 0.45
    w[3] = False                                       # structure: an empty filter, a dense channel
    w[:, 5] = True
    a = rng.random((1, 16, 6, 6)) < 0.7
    a[:, 2] = False
    masks = nest_masks(p, weights=w, inputs=a)
    brute = joint_count_naive(p, masks, "WI")
    dens = {"weights": float(w.mean()), "inputs": float(a.mean())}
    ev = evaluate(p, hw, _pe_mapping(p), densities=dens, joint=Joint(dens, joint_fractions(p, masks)))
    assert ev.cycles == pytest.approx(brute, abs=1e-6) and ev.effectual_macs == pytest.approx(brute)
    # every weight-spad read serves one effectual pair; every psum update is one effectual MAC
    assert ev.level("weight_spad").counts["weights"].reads == pytest.approx(brute)
    assert ev.level("psum_spad").counts["outputs"].updates == pytest.approx(brute)
    # compressed inputs: the iact spad moves only the nonzeros (8 M-refetches of the whole input)
    assert ev.level("iact_spad").counts["inputs"].fills == pytest.approx(a.sum() * 2)
    st = evaluate(p, hw, _pe_mapping(p), densities=dens)
    assert st.cycles == pytest.approx(p.macs * dens["weights"] * dens["inputs"])
    assert st.energy_pj < evaluate(p, hw, _pe_mapping(p)).energy_pj


def _spec(extra: str = "", mode: str = "none", operands: str = '["weights"]', fmt: str = "dense") -> dict:
    import tomllib
    text = f"""
name = "t"
number_format = "bf16"
[pe_array]
rows = 1
cols = 1
clock_hz = 1e9
fill_drain = false
[sparsity]
mode = "{mode}"
operands = {operands}
[weight_format]
kind = "{fmt}"
[[memory]]
name = "buf"
size_bytes = 1048576
read_bw_bytes_per_cycle = 1e15
write_bw_bytes_per_cycle = 1e15
read_pj = 1.0
write_pj = 2.0
metadata_read_pj = 0.5
metadata_write_pj = 0.5
[[memory]]
name = "dram"
size_bytes = 1099511627776
read_bw_bytes_per_cycle = 1e15
write_bw_bytes_per_cycle = 1e15
energy_pj_per_bit = 1.0
{extra}
"""
    return spec_from_dict(tomllib.loads(text))


P1 = Problem(N=4, M=8, C=8, P=4, Q=4, R=3, S=3)
MAP1 = Mapping((LevelMapping("dram", (("M", 2),)), LevelMapping("buf", (("N", 4), ("M", 4), ("C", 8), ("P", 4),
                                                                         ("Q", 4), ("R", 3), ("S", 3)))))


def test_storage_skip_scales_the_levels_reads_by_the_condition_density():
    base = _spec()
    act = _spec('[[sparse.action]]\nlevel = "buf"\nkind = "skip"\ntarget = "weights"\ncondition_on = ["inputs"]\n')
    dens = {"weights": 0.5, "inputs": 0.3}
    e0, e1 = evaluate(P1, base, MAP1, densities=dens), evaluate(P1, act, MAP1, densities=dens)
    r0, r1 = e0.level("buf").counts["weights"].reads, e1.level("buf").counts["weights"].reads
    assert r1 == pytest.approx(r0 * 0.3)
    assert e0.level("buf").counts["inputs"].reads == e1.level("buf").counts["inputs"].reads
    assert e1.cycles == e0.cycles                       # storage skipping alone does not skip compute
    assert e0.energy_pj - e1.energy_pj == pytest.approx((r0 - r1) * 1.0)  # read_pj = 1 per word
    gate = _spec('[[sparse.action]]\nlevel = "buf"\nkind = "gate"\ntarget = "weights"\ncondition_on = ["inputs"]\n')
    eg = evaluate(P1, gate, MAP1, densities=dens)
    assert eg.level("buf").counts["weights"].reads == r0          # gated accesses keep their slots
    assert eg.energy_pj == pytest.approx(e1.energy_pj)            # ... and cost no energy


def test_compute_skip_and_gate_from_the_general_form():
    dens = {"weights": 0.5, "inputs": 0.3}
    dense = evaluate(P1, _spec(), MAP1, densities=dens)
    sk = evaluate(P1, _spec('[[sparse.action]]\nlevel = "compute"\nkind = "skip"\ncondition_on = ["weights", "inputs"]\n'),
                  MAP1, densities=dens)
    assert sk.compute_cycles == pytest.approx(dense.compute_cycles * 0.15)
    gt = _spec('[[sparse.action]]\nlevel = "compute"\nkind = "gate"\ncondition_on = ["inputs"]\n')
    eg = evaluate(P1, gt, MAP1, densities=dens)
    assert eg.cycles == dense.cycles and eg.effectual_macs == pytest.approx(P1.macs * 0.3)


def test_shorthand_maps_onto_the_general_form_with_identical_numbers():
    short = _spec(mode="skip", fmt="bitmask")
    general = _spec('[[sparse.action]]\nlevel = "compute"\nkind = "skip"\ncondition_on = ["weights"]\n'
                    '[[sparse.format]]\nlevel = "buf"\ntensor = "weights"\nkind = "bitmask"\n'
                    '[[sparse.format]]\nlevel = "dram"\ntensor = "weights"\nkind = "bitmask"\n')
    general = general.__class__(**{**general.__dict__, "pe_array": short.pe_array.__class__(
        **{**short.pe_array.__dict__, "operand_registers": True})})
    short = short.__class__(**{**short.__dict__, "pe_array": general.pe_array})
    for pname in ("forward", "backward_data"):          # roles = index spaces' operands in these passes
        p = Problem(**{**P1.__dict__, "pass_name": pname})
        a, b = evaluate(p, short, MAP1, densities={"weights": 0.4}), evaluate(p, general, MAP1, densities={"weights": 0.4})
        assert a.cycles == b.cycles and a.energy_pj == pytest.approx(b.energy_pj, rel=1e-12)
        for la, lb in zip(a.levels, b.levels):
            assert la.counts == lb.counts
    assert resolve(short, P1).exploited == frozenset("W")


def test_bitmask_format_moves_nonzeros_plus_one_bit_per_element():
    bm = _spec('[[sparse.format]]\nlevel = "buf"\ntensor = "inputs"\nkind = "bitmask"\n')
    d = {"inputs": 0.25}
    e0, e1 = evaluate(P1, _spec(), MAP1, densities=d), evaluate(P1, bm, MAP1, densities=d)
    c0, c1 = e0.level("buf").counts["inputs"], e1.level("buf").counts["inputs"]
    assert c1.fills == pytest.approx(c0.fills * 0.25)
    assert c1.metadata_fills == pytest.approx(c0.fills / 16)        # 1 bit per element, 16-bit words
    assert c1.reads == pytest.approx(max(c0.reads * 0.25, c1.reads))


@pytest.mark.parametrize("extra, msg", [
    ('[[sparse.action]]\nlevel = "l2"\nkind = "skip"\ntarget = "weights"\ncondition_on = ["inputs"]\n', "is not a memory level"),
    ('[[sparse.action]]\nlevel = "buf"\nkind = "skip"\ncondition_on = ["inputs"]\n', "needs target"),
    ('[[sparse.action]]\nlevel = "buf"\nkind = "skip"\ntarget = "weights"\ncondition_on = []\n', "at least one tensor"),
    ('[[sparse.action]]\nlevel = "compute"\nkind = "skip"\ntarget = "weights"\ncondition_on = ["inputs"]\n', "has no target"),
    ('[[sparse.action]]\nlevel = "buf"\nkind = "drop"\ntarget = "weights"\ncondition_on = ["inputs"]\n', "is not one of"),
    ('[[sparse.format]]\nlevel = "buf"\ntensor = "outputs"\nkind = "bitmask"\n', "stored dense"),
    ('[[sparse.format]]\nlevel = "buf"\ntensor = "inputs"\nkind = "ellpack"\n', "is not one of"),
    ('[[sparse.format]]\nlevel = "buf"\ntensor = "inputs"\nkind = "rle"\n[[sparse.format]]\nlevel = "buf"\n'
     'tensor = "inputs"\nkind = "rle"\n', "a second format"),
])
def test_bad_sparse_features_are_one_line_errors(extra, msg):
    with pytest.raises(HardwareSpecError, match=msg) as e:
        _spec(extra)
    assert "\n" not in str(e.value)


def test_compute_action_and_shorthand_mode_together_is_an_error():
    with pytest.raises(HardwareSpecError, match="also given by sparsity.mode"):
        _spec('[[sparse.action]]\nlevel = "compute"\nkind = "skip"\ncondition_on = ["inputs"]\n', mode="skip")
