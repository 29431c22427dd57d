"""Energy tables, compressed sizes, traffic and the energy = sum(counts x table) identity."""


import numpy as np
import pytest

from sim_helpers import linear, pack
from simulator.energy import GATED_MAC_RATIO, energy_table, level_pj_per_byte, sram_pj_per_access
from simulator.engine import simulate_step
from simulator.hardware import load_hardware
from simulator.memory import weight_storage_bytes


def test_horowitz_figures():
    fp32 = energy_table("horowitz45", "fp32")
    assert fp32.mac_pj == pytest.approx(3.7 + 0.9)
    assert energy_table("horowitz45", "int8").mac_pj == pytest.approx(0.23)
    bf16 = energy_table("horowitz45", "bf16")
    assert bf16.mult_pj == pytest.approx(1.1 * 64 / 121) and bf16.add_pj == 0.9
    assert fp32.gated_mac_pj / fp32.mac_pj == pytest.approx(0.018 / 0.561)
    assert 0.025 < GATED_MAC_RATIO < 0.035
    with pytest.raises(ValueError):
        energy_table("nope", "fp32")


def test_sram_interpolation_hits_anchors_and_is_monotone():
    assert sram_pj_per_access(8 * 1024) == pytest.approx(10)
    assert sram_pj_per_access(32 * 1024) == pytest.approx(20)
    assert sram_pj_per_access(1024 * 1024) == pytest.approx(100)
    sizes = [256, 1024, 8192, 20000, 32768, 300000, 1 << 20, 8 << 20]
    e = [sram_pj_per_access(s) for s in sizes]
    assert all(a < b for a, b in zip(e, e[1:])) and e[0] > 0
    assert sram_pj_per_access(8192, access_bytes=4) == pytest.approx(5)


def test_dram_per_bit():
    hw = load_hardware("dense-32x32")
    assert level_pj_per_byte(hw.dram) == pytest.approx(64.0)  # LPDDR4 8 pJ/bit
    assert level_pj_per_byte(load_hardware("skip-csr-128x128").dram) == pytest.approx(8 * 3.9)


def test_weight_storage_formats():
    n, k, nnz, vb = 10, 20, 30, 2
    assert weight_storage_bytes("dense", nnz, n, k, vb) == (400.0, 0.0)
    assert weight_storage_bytes("bitmask", nnz, n, k, vb) == (60.0, 200 / 8)
    assert weight_storage_bytes("csr", nnz, n, k, vb, index_bits=16, pointer_bits=32) == (60.0, (30 * 16 + 11 * 32) / 8)
    assert weight_storage_bytes("csc", nnz, n, k, vb, index_bits=8, pointer_bits=16) == (60.0, (30 * 8 + 21 * 16) / 8)
    assert weight_storage_bytes("coo", nnz, n, k, vb, index_bits=8) == (60.0, 30 * 16 / 8)
    assert weight_storage_bytes("rle", nnz, n, k, vb, run_bits=4) == (60.0, 15.0)
    assert weight_storage_bytes("nm", nnz, n, k, vb, nm=(2, 4)) == (60.0, 30 * 2 / 8)
    assert weight_storage_bytes("nm", nnz, n, k, vb, nm=(2, 4), nm_ok=False) == (400.0, 0.0)


HAND = """
name = "hand"
dataflow = "ws"
number_format = "fp32"
[pe_array]
rows = 2
cols = 2
clock_hz = 1e9
[sparsity]
mode = "gate"
[[memory]]
name = "rf"
size_bytes = 64
read_bw_bytes_per_cycle = 1000
write_bw_bytes_per_cycle = 1000
access_bytes = 4
energy_pj_per_access = 1.0
[[memory]]
name = "glb"
size_bytes = 4096
read_bw_bytes_per_cycle = 1000
write_bw_bytes_per_cycle = 1000
access_bytes = 8
energy_pj_per_access = 10.0
[[memory]]
name = "dram"
size_bytes = 1048576
read_bw_bytes_per_cycle = 1000
write_bw_bytes_per_cycle = 1000
energy_pj_per_bit = 8.0
"""


def test_energy_is_sum_of_counts_times_table_on_a_hand_case(tmp_path):
    p = tmp_path / "hand.toml"
    p.write_text(HAND)
    hw = load_hardware(str(p))
    spec = linear("fc", 4, 2)
    mask = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)  # 3 of 8 weights
    row = simulate_step([spec], {"fc": pack(mask)}, hw, batch=1, mapping="fixed").table.iloc[0]
    assert row["pass"] == "forward"
    # MACs: 1 x 2 x 4 = 8 dense, 3 effectual (active), 5 gated; fp32 MAC 4.6 pJ, gated 3.2 %
    assert (row["dense_macs"], row["macs"], row["gated_macs"]) == (8, 3, 5)
    assert row["energy_pj_mac"] == pytest.approx(3 * 4.6 + 5 * 4.6 * 0.018 / 0.561)
    # register file: 2 reads + 1 write of 4 bytes per active MAC, 1 read per gated MAC, 1 pJ per 4 B
    assert (row["rf_read_bytes"], row["rf_write_bytes"]) == (4 * (2 * 3 + 5), 4 * 3)
    assert row["energy_pj_rf"] == pytest.approx((44 + 12) / 4 * 1.0)
    # GLB (ws, 2x2, K=4 -> 2 folds streaming M=1 row): weights 32 B once, inputs 2x1x2 folds x 4 B,
    # psums 2 cols x 2 folds x 4 B written, read back except the final 8 B of outputs
    assert (row["glb_read_bytes"], row["glb_write_bytes"]) == (32 + 16 + 8, 16)
    assert row["energy_pj_glb"] == pytest.approx((56 + 16) / 8 * 10.0)
    # DRAM: input 16 B + weights 32 B read (fit), outputs 8 B written; 8 pJ/bit
    assert (row["dram_read_bytes"], row["dram_write_bytes"]) == (48, 8)
    assert row["energy_pj_dram"] == pytest.approx(56 * 8 * 8.0)
    assert row["energy_pj"] == pytest.approx(row["energy_pj_mac"] + row["energy_pj_rf"] + row["energy_pj_glb"]
                                             + row["energy_pj_dram"])
    # gate mode keeps the dense cycles: ws 2 folds x (2R + C + M - 2 = 5) - 1
    assert row["cycles"] == 9


def test_roofline_binds_when_bandwidth_is_low(tmp_path):
    p = tmp_path / "slow.toml"
    p.write_text(HAND.replace("read_bw_bytes_per_cycle = 1000\nwrite_bw_bytes_per_cycle = 1000\nenergy_pj_per_bit",
                              "read_bw_bytes_per_cycle = 1\nwrite_bw_bytes_per_cycle = 1\nenergy_pj_per_bit"))
    hw = load_hardware(str(p))
    spec = linear("fc", 4, 2)
    row = simulate_step([spec], {"fc": pack(np.ones((2, 4), bool))}, hw, batch=1, mapping="fixed").table.iloc[0]
    assert row["compute_cycles"] == 9
    assert row["cycles"] == pytest.approx(48 - 1)  # 48 B of DRAM reads at 1 B/cycle, minus SCALE-Sim's -1


def test_dram_refetch_when_operands_do_not_fit():
    hw = load_hardware("dense-32x32")
    big = linear("big", 4096, 4096, positions=64)
    small = linear("small", 64, 64, positions=4)
    for spec, batch, refetch in ((small, 1, False), (big, 8, True)):
        row = simulate_step([spec], None, hw, batch, mapping="fixed").table.iloc[0]
        once = (batch * spec.in_channels * spec.in_positions + spec.n_params) * hw.value_bytes
        assert (row["dram_read_bytes"] > once) == refetch
