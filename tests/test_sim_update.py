"""Mask-update step cost: grows with the layer, shrinks with a larger on-chip top-k buffer."""

import dataclasses

import pytest

from simulator.hardware import load_hardware
from simulator.update import update_cost


def _cost(hw, n, density=0.1, frac=0.3):
    nnz = int(n * density)
    return update_cost(hw, n, nnz, int(frac * nnz), stored_weight_bytes=nnz * 2 + n / 8)


def test_cost_grows_with_layer_size():
    hw = load_hardware("skip-bitmask-32x32")
    sizes = [10_000, 100_000, 1_000_000, 10_000_000]
    costs = [_cost(hw, n) for n in sizes]
    for a, b in zip(costs, costs[1:]):
        assert b.cycles > a.cycles and b.energy_pj > a.energy_pj and b.dram_read_bytes > a.dram_read_bytes


def test_cost_does_not_grow_with_a_larger_topk_buffer():
    hw = load_hardware("skip-bitmask-32x32")
    prev = None
    for chunk in (1024, 8192, 65536, 1 << 20, 1 << 24):
        h = dataclasses.replace(hw, topk=dataclasses.replace(hw.topk, chunk_elements=chunk))
        c = _cost(h, 2_000_000)
        if prev is not None:
            assert c.cycles <= prev.cycles and c.dram_read_bytes <= prev.dram_read_bytes
            assert c.energy_pj <= prev.energy_pj
        prev = c
    small = dataclasses.replace(hw, topk=dataclasses.replace(hw.topk, chunk_elements=1024))
    big = dataclasses.replace(hw, topk=dataclasses.replace(hw.topk, chunk_elements=1 << 24))
    assert _cost(small, 2_000_000).cycles > 2 * _cost(big, 2_000_000).cycles  # spills: many passes
    assert _cost(small, 2_000_000).passes > _cost(big, 2_000_000).passes


def test_spill_passes_when_k_exceeds_chunk():
    hw = load_hardware("dense-32x32")
    h = dataclasses.replace(hw, topk=dataclasses.replace(hw.topk, chunk_elements=1000))
    c = update_cost(h, 100_000, 10_000, 3_000, stored_weight_bytes=20_000)
    assert c.passes == 3 + 3  # grow and drop each need ceil(3000/1000) passes
    # gradient (2 B + 1 mask bit per weight) read 3 times, active values 3 times, weights re-encoded
    assert c.dram_read_bytes == pytest.approx(3 * 100_000 * 2.125 + 3 * 10_000 * 2 + 20_000)


def test_no_change_costs_nothing():
    hw = load_hardware("dense-32x32")
    c = update_cost(hw, 1000, 100, 0, stored_weight_bytes=200)
    assert c.cycles == 0 and c.energy_pj == 0
    with pytest.raises(ValueError):
        update_cost(hw, 10, 20, 1, stored_weight_bytes=1)
