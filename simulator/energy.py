"""Per-action energy tables (pJ) with their sources, and the SRAM size -> access-energy interpolation.

Energy of a simulated run = sum over actions of (count x energy per action); nothing else is added.
All figures are 45 nm unless stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Sparseloop (Wu et al., MICRO 2022) 45 nm tables: a gated int8 MAC costs 0.018 pJ vs 0.561 pJ active.
GATED_MAC_RATIO = 0.018 / 0.561  # ~3.2 %

# Horowitz, "Computing's energy problem", ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V).
# (mult pJ, add pJ) per number format.
_HOROWITZ_ARITH_PJ = {
    "fp32": (3.7, 0.9),   # 32-bit float mult 3.7 pJ, add 0.9 pJ
    "int8": (0.2, 0.03),  # 8-bit int mult 0.2 pJ, add 0.03 pJ
    # bf16 is not in Horowitz. Derivation: Horowitz's fp16 mult is 1.1 pJ with an 11-bit significand;
    # an array multiplier's energy grows ~ with significand bits squared, so an 8-bit bf16 significand
    # gives 1.1 * (8/11)^2 = 0.58 pJ. Training accumulates bf16 products in fp32 (mixed precision),
    # so the add is Horowitz's fp32 add, 0.9 pJ.
    "bf16": (1.1 * (8 / 11) ** 2, 0.9),
}

# SRAM, 64-bit access (Horowitz 2014): 10 pJ at 8 KB, 20 pJ at 32 KB, 100 pJ at 1 MB.
_SRAM_ANCHORS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))

# DRAM: Horowitz 2014 gives 1.3-2.6 nJ per 64-bit access (20-40 pJ/bit, DDR3-era);
# per bit: LPDDR4 8 pJ/bit, HBM2 3.9 pJ/bit, DDR3 70 pJ/bit (REFERENCES.md figures).
DRAM_PJ_PER_BIT = {"lpddr4": 8.0, "hbm2": 3.9, "ddr3": 70.0}
DRAM_PJ_PER_64BIT_ACCESS = (1300.0, 2600.0)


def sram_pj_per_access(size_bytes: float, access_bytes: int = 8) -> float:
    """Energy (pJ) of one access of `access_bytes` bytes to an SRAM of `size_bytes` bytes.

    Piecewise linear in log(size) -> log(energy) through Horowitz's three anchors (a power law between
    them: exponent 0.5 from 8 KB to 32 KB, 0.46 from 32 KB to 1 MB), extrapolated with the end
    segments' exponents. Linear in log(size) alone would go negative below ~2 KB; the power law gives
    2.5 pJ per 64 bits for a 512 B register file. Scaled linearly with access width (64-bit base).
    """
    if size_bytes <= 0 or access_bytes <= 0:
        raise ValueError(f"size_bytes and access_bytes must be positive, got {size_bytes}, {access_bytes}")
    xs = [math.log(s) for s, _ in _SRAM_ANCHORS]
    ys = [math.log(e) for _, e in _SRAM_ANCHORS]
    x = math.log(size_bytes)
    i = 0 if x < xs[1] else 1
    slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    return math.exp(ys[i] + slope * (x - xs[i])) * access_bytes / 8.0


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action, pJ. A MAC is one multiply plus one add."""

    name: str
    mult_pj: float
    add_pj: float
    gated_ratio: float = GATED_MAC_RATIO

    @property
    def mac_pj(self) -> float:
        """Energy of one effectual multiply-accumulate, pJ."""
        return self.mult_pj + self.add_pj

    @property
    def gated_mac_pj(self) -> float:
        """Energy of one clock-gated (ineffectual) MAC, pJ (~3 % of an active one)."""
        return self.gated_ratio * self.mac_pj

    @property
    def compare_pj(self) -> float:
        """Energy of one magnitude comparison in the top-k unit, pJ (taken as one add)."""
        return self.add_pj


def _horowitz45(number_format: str) -> EnergyTable:
    mult, add = _HOROWITZ_ARITH_PJ[number_format]
    return EnergyTable(name=f"horowitz45-{number_format}", mult_pj=mult, add_pj=add)


ENERGY_TABLES = {"horowitz45": _horowitz45}


def energy_table(name: str, number_format: str) -> EnergyTable:
    """Energy table `name` (e.g. "horowitz45") for a number format (fp32, bf16, int8)."""
    if name not in ENERGY_TABLES:
        raise ValueError(f"energy table {name!r} is not one of {sorted(ENERGY_TABLES)}")
    if number_format not in _HOROWITZ_ARITH_PJ:
        raise ValueError(f"number format {number_format!r} is not one of {sorted(_HOROWITZ_ARITH_PJ)}")
    return ENERGY_TABLES[name](number_format)


def level_pj_per_byte(level) -> float:  # level: simulator.hardware.MemoryLevel
    """Energy (pJ) per byte moved at a memory level: per bit x 8, or per access / access_bytes, or the
    SRAM interpolation on the level's size when the spec gives neither."""
    if level.energy_pj_per_bit is not None:
        return 8.0 * level.energy_pj_per_bit
    if level.energy_pj_per_access is not None:
        return level.energy_pj_per_access / level.access_bytes
    return sram_pj_per_access(level.size_bytes, level.access_bytes) / level.access_bytes


# --- per-action energies of a whole spec (the mapping-driven model's energy input) ----------------
@dataclass(frozen=True)
class LevelEnergy:
    """Energy per action at one memory level, pJ per word of `word_bits` (per instance access).

    update_pj: one read-modify-write of a partial sum; metadata_*: per metadata word of
    `metadata_word_bits`; leakage_pj_per_cycle: the whole level (all instances). `sources` maps each
    field name to where its value came from ("spec", "ert:<component>", "horowitz45 SRAM 8 KB ...").
    """

    name: str
    word_bits: int
    read_pj: float
    write_pj: float
    update_pj: float
    metadata_read_pj: float
    metadata_write_pj: float
    metadata_word_bits: int
    leakage_pj_per_cycle: float
    sources: dict


@dataclass(frozen=True)
class ActionEnergyTable:
    """Per-action energies of a hardware spec: memory levels in `hw.memory` order (innermost first) and
    the MAC (pJ per effectual MAC at the spec's precision; gated: a clock-gated MAC)."""

    levels: tuple
    mac_pj: float
    gated_mac_pj: float
    mac_source: str

    def level(self, name: str) -> LevelEnergy:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"no memory level {name!r} in the energy table")


def resolve_action_energies(hw) -> ActionEnergyTable:  # hw: simulator.hardware.HardwareSpec
    """The per-action energy table of `hw`: the spec's own per-word numbers where it gives them, else
    defaults from its per-bit / per-access energy or the 45 nm SRAM interpolation (per word of the
    level's width; an update costs a read plus a write), and the MAC from `[mac]` or the energy table."""
    levels = []
    for i, lv in enumerate(hw.memory):
        bits = hw.word_bits(i)
        per_word = level_pj_per_byte(lv) * bits / 8.0
        src_default = ("spec energy_pj_per_bit" if lv.energy_pj_per_bit is not None else
                       "spec energy_pj_per_access" if lv.energy_pj_per_access is not None else
                       f"horowitz45 SRAM interpolation at {lv.size_bytes} B")
        rd = lv.read_pj if lv.read_pj is not None else per_word
        wr = lv.write_pj if lv.write_pj is not None else per_word
        up = lv.update_pj if lv.update_pj is not None else rd + wr
        mbits = lv.metadata_word_bits if lv.metadata_word_bits is not None else bits
        mrd = lv.metadata_read_pj if lv.metadata_read_pj is not None else rd * mbits / bits
        mwr = lv.metadata_write_pj if lv.metadata_write_pj is not None else wr * mbits / bits
        src = {"read_pj": "spec" if lv.read_pj is not None else src_default,
               "write_pj": "spec" if lv.write_pj is not None else src_default,
               "update_pj": "spec" if lv.update_pj is not None else "read + write",
               "metadata_read_pj": "spec" if lv.metadata_read_pj is not None else "read_pj scaled to metadata bits",
               "metadata_write_pj": "spec" if lv.metadata_write_pj is not None else "write_pj scaled to metadata bits",
               "leakage_pj_per_cycle": "spec"}
        levels.append(LevelEnergy(lv.name, bits, rd, wr, up, mrd, mwr, mbits, lv.leakage_pj_per_cycle, src))
    t = energy_table(hw.energy_table, hw.number_format)
    mac = hw.mac.energy_pj if hw.mac.energy_pj is not None else t.mac_pj
    gated = hw.mac.gated_energy_pj if hw.mac.gated_energy_pj is not None else t.gated_ratio * mac
    src = "spec [mac]" if hw.mac.energy_pj is not None else f"{t.name} (Horowitz ISSCC 2014)"
    return ActionEnergyTable(tuple(levels), mac, gated, src)
