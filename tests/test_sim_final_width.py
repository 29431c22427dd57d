"""Partial sums move at the accumulator width, the final write of each output at the number format's
width: in the byte counts AND in the energy (they once disagreed: the DRAM energy of a 32-bit
accumulator charged every final output write at 32 bits while its bytes counted 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.access import evaluate
from simulator.hardware import load_hardware
from simulator.nest import LevelMapping, Mapping, Problem

ZIGZAG_SPEC = Path(__file__).resolve().parents[1] / "studies" / "bench" / "zigzag_32x32.toml"
ALL = ("weights", "inputs", "outputs")


@pytest.fixture(scope="module")
def hw():
    return load_hardware(ZIGZAG_SPEC)   # 16-bit words, 32-bit accumulator, read_pj == write_pj per level


def _mapping(dram, glb, rf, glb_keep=ALL, rf_keep=ALL):
    return Mapping((LevelMapping("dram", tuple(dram), (), ALL),
                    LevelMapping("glb", tuple(glb), (("M", 32, "X"), ("C", 32, "Y")), glb_keep),
                    LevelMapping("regfile", tuple(rf), (), rf_keep)))


def test_final_output_writes_at_number_format_width(hw):
    # 1x1 conv whose whole reduction (C = 64 = 32 spatial x 2) completes in the PEs: every output
    # reaches DRAM once, final; DRAM never reads an output back
    p = Problem(N=4, M=64, C=64, P=8, Q=8)
    ev = evaluate(p, hw, _mapping([("N", 4), ("P", 8)], [("Q", 8)], [("M", 2), ("C", 2)]))
    dram = ev.level("dram")
    out = dram.counts["outputs"]
    n_out = 4 * 64 * 8 * 8
    assert (out.reads, out.updates) == (0, n_out)
    w, i = dram.counts["weights"], dram.counts["inputs"]
    assert (w.reads, i.reads) == (64 * 64, 4 * 64 * 8 * 8)
    # bytes: 16-bit reads of weights and inputs, 16-bit final writes
    assert dram.read_bytes == (w.reads + i.reads) * 2
    assert dram.write_bytes == n_out * 2
    # energy: the same words at 128 pJ per 16-bit word (read and write), independently of the 32-bit psums
    assert dram.energy_pj == pytest.approx((w.reads + i.reads + n_out) * 128.0, rel=1e-12)


def test_partial_sums_that_spill_are_charged_at_accumulator_width(hw):
    # C split between DRAM and the PEs: the first C half's partial sums go to DRAM at 32 bits and are
    # read back once; only the final write is 16 bits
    p = Problem(N=4, M=64, C=128, P=8, Q=8)
    ev = evaluate(p, hw, _mapping([("C", 2), ("N", 4), ("P", 8)], [("Q", 8)], [("M", 2), ("C", 2)]))
    dram = ev.level("dram")
    out = dram.counts["outputs"]
    n_out = 4 * 64 * 8 * 8
    assert (out.updates, out.reads) == (2 * n_out, n_out)
    assert dram.write_bytes == n_out * 4 + n_out * 2      # one 32-bit spill, one 16-bit final write
    w, i = dram.counts["weights"].reads, dram.counts["inputs"].reads
    expect = (w + i) * 128.0 + out.reads * 2 * 128.0 + n_out * 2 * 128.0 + n_out * 128.0
    assert dram.energy_pj == pytest.approx(expect, rel=1e-12)
