"""Per-action energy tables (pJ) with their sources, and the SRAM size -> access-energy interpolation.

Energy of a simulated run = sum over actions of (count x energy per action); nothing else is added.
All figures are 45 nm unless stated.

    sram_pj_per_access(size_bytes, access_bytes=8) -> pJ        Horowitz SRAM law
    default_storage_pj(size_bytes, word_bits) -> (read, write, source)   + register-file floor
    energy_table(name, number_format) -> EnergyTable            MAC / gated MAC / compare
    resolve_action_energies(hw) -> ActionEnergyTable            spec > per-bit/access > ERT > defaults
    format_energy_table(table) -> str                           `rigl-hw hardware show`
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
# Register-file regime for tiny PE-local stores. Accelergy's 45 nm register file (the eyeriss_like
# exercise's ERT, timeloop-accelergy-exercises commit 3263d52: psum_spad, 16 words x 16 bits, random
# address and data) costs 0.251 pJ per 16-bit access = 0.0157 pJ/bit, nearly flat in size (ifmap_spad,
# 12 words: 0.237 pJ). Horowitz's SRAM power law falls below that under ~83 B (0.156 pJ per 16 bits at
# 32 B), so a store's default is max(register-file floor, SRAM law): the floor rules up to the crossover.
RF_PJ_PER_BIT = 0.251 / 16
RF_SOURCE = "Accelergy 45 nm regfile (eyeriss_like ERT psum_spad 0.251 pJ / 16 bit)"
# Write vs read: Horowitz gives one SRAM access energy; Accelergy's 45 nm SRAM table (same ERT,
# shared_glb 64 KB, 64-bit block, random address and data) has write 75.215 pJ vs read 74.144 pJ.
SRAM_WRITE_OVER_READ = 75.215 / 74.144
# MAC action names an ERT may use, in order of preference (Timeloop charges mac_random per MAC).
ERT_MAC_ACTIONS = ("mac_random", "mac", "multiply_accumulate", "compute")
ERT_GATED_ACTIONS = ("mac_gated",)
ERT_REPRESENTATIVES = ("timeloop", "per_action")


def default_storage_pj(size_bytes: float, word_bits: int) -> tuple[float, float, str]:
    """Default (read pJ, write pJ, source) per word of `word_bits` for an on-chip store of `size_bytes`
    per instance: the register-file floor RF_PJ_PER_BIT x bits or Horowitz's SRAM law
    (`sram_pj_per_access`, linear in width), whichever is larger; SRAM writes cost
    SRAM_WRITE_OVER_READ x a read, register-file writes the same as a read."""
    sram = sram_pj_per_access(size_bytes, word_bits / 8.0)
    rf = RF_PJ_PER_BIT * word_bits
    if rf >= sram:
        return rf, rf, f"{RF_SOURCE}, {word_bits}-bit word"
    return (sram, sram * SRAM_WRITE_OVER_READ,
            f"Horowitz ISSCC 2014 45 nm SRAM law at {size_bytes:.0f} B, {word_bits}-bit word "
            f"(write x{SRAM_WRITE_OVER_READ:.4f}, Accelergy SRAM)")


def default_metadata_bits(hw, word_bits: int, level: str | None = None) -> int:
    """Bits of one metadata word of the spec's weight format (or, with a dense weight format, of the
    first [[sparse.format]] at `level`): bitmask 1, CSR/CSC/COO the index width, RLE the run width,
    N:M ceil(log2 M) per kept value, dense: a data word."""
    wf = hw.weight_format
    if wf.kind == "dense" and level is not None:
        wf = next((f for f in hw.sparse.format if f.level == level), wf)
    if wf.kind == "bitmask":
        return 1
    if wf.kind in ("csr", "csc", "coo"):
        return max(1, wf.index_bits)
    if wf.kind == "rle":
        return max(1, wf.run_bits)
    if wf.kind == "nm" and hw.sparsity.nm is not None:
        return max(1, math.ceil(math.log2(hw.sparsity.nm[1])))
    return word_bits


@dataclass(frozen=True)
class LevelEnergy:
    """Energy per action at one memory level, pJ per word of `word_bits` (per instance access).

    update_pj: one read-modify-write of a partial sum; metadata_*: per metadata word of
    `metadata_word_bits`; leakage_pj_per_cycle: the whole level (all instances). `sources` maps each
    field name to where its value came from ("spec read_pj", "ert:<component> ...", "Horowitz ...").
    instances: copies of the level (hw.instances); idle_pj_per_cycle: an ERT's idle energy per instance
    and cycle (reported; counted as leakage only with [energy] ert_idle_as_leakage = true).
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
    instances: int = 1
    idle_pj_per_cycle: float = 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "word_bits": self.word_bits, "instances": self.instances,
                "read_pj": self.read_pj, "write_pj": self.write_pj, "update_pj": self.update_pj,
                "metadata_read_pj": self.metadata_read_pj, "metadata_write_pj": self.metadata_write_pj,
                "metadata_word_bits": self.metadata_word_bits, "leakage_pj_per_cycle": self.leakage_pj_per_cycle,
                "idle_pj_per_cycle": self.idle_pj_per_cycle, "sources": dict(self.sources)}


@dataclass(frozen=True)
class ActionEnergyTable:
    """Per-action energies of a hardware spec: memory levels in `hw.memory` order (innermost first) and
    the MAC (pJ per effectual MAC at the spec's precision; gated: a clock-gated MAC)."""

    levels: tuple
    mac_pj: float
    gated_mac_pj: float
    mac_source: str
    gated_mac_source: str = ""
    ert_path: str | None = None

    def level(self, name: str) -> LevelEnergy:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"no memory level {name!r} in the energy table")

    def to_dict(self) -> dict:
        """JSON-able form (`rigl-hw hardware show --json`, key "energy")."""
        return {"levels": [lv.to_dict() for lv in self.levels],
                "mac": {"energy_pj": self.mac_pj, "gated_energy_pj": self.gated_mac_pj,
                        "sources": {"energy_pj": self.mac_source, "gated_energy_pj": self.gated_mac_source}},
                "ert": self.ert_path}


def _load_ert(hw):
    if hw.energy.ert is None:
        return None
    from pathlib import Path

    from simulator.ert import read_ert

    path = Path(hw.energy.ert)
    if not path.is_absolute() and hw.source_path is not None:
        path = Path(hw.source_path).resolve().parent / path
    return read_ert(path)


def _ert_component(ert, name: str | None, fallback: str) -> str | None:
    """The ERT component for a level/MAC: its ert_name must exist; without one, its own name if found."""
    if ert is None:
        return None
    if name is not None:
        return ert.find(name)
    return ert.find(fallback) if ert.has(fallback) else None


def _ert_storage(ert, comp: str, rep: str, block_words: float) -> dict[str, tuple[float, str]]:
    """{field: (pJ per word, source)} an ERT component gives a storage level."""
    tag = f"ert:{comp}"
    out: dict[str, tuple[float, str]] = {}
    per_block = f"/ {block_words:g} words per block" if block_words != 1 else "(1 word per block)"
    if rep == "timeloop":
        vec = ert.energy(comp, ("read", "write", "update"))
        if vec is not None:
            src = f"{tag} max over read/write variants {vec:g} pJ {per_block} (Timeloop vector access energy)"
            out["read_pj"] = out["write_pj"] = (vec / block_words, src)
    else:
        for field, act in (("read_pj", "read"), ("write_pj", "write"), ("update_pj", "update")):
            e = ert.energy(comp, (act,))
            if e is not None:
                out[field] = (e / block_words, f"{tag} {act} (max variant) {e:g} pJ {per_block}")
    for field, act in (("metadata_read_pj", "metadata_read"), ("metadata_write_pj", "metadata_write")):
        e = ert.energy(comp, (act,))
        if e is not None:
            out[field] = (e, f"{tag} {act} {e:g} pJ per metadata word")
    idle = ert.energy(comp, ("idle", "leak"))
    if idle is not None:
        out["idle_pj_per_cycle"] = (idle, f"{tag} idle {idle:g} pJ per instance per cycle")
    return out


def _resolve_level(hw, i: int, ert) -> LevelEnergy:
    from simulator.hardware import HardwareSpecError

    lv = hw.memory[i]
    bits = hw.word_bits(i)
    inst = hw.instances(i)
    last = i == len(hw.memory) - 1
    vals: dict[str, tuple[float, str]] = {}
    # 1. defaults (on-chip only: DRAM has no size-based default)
    if not last:
        rd, wr, src = default_storage_pj(lv.size_bytes, bits)
        vals["read_pj"], vals["write_pj"] = (rd, src), (wr, src)
    # 2. the ERT fills what the spec leaves out
    comp = _ert_component(ert, lv.ert_name, lv.name)
    if comp is not None:
        vals.update(_ert_storage(ert, comp, hw.energy.ert_representative, lv.access_bytes * 8 / bits))
    # 3. the spec's per-bit / per-access energies, then its per-action numbers
    if lv.energy_pj_per_bit is not None:
        e = lv.energy_pj_per_bit * bits
        s = f"spec energy_pj_per_bit {lv.energy_pj_per_bit:g} x {bits} bits"
        vals["read_pj"] = vals["write_pj"] = (e, s)
    elif lv.energy_pj_per_access is not None:
        e = lv.energy_pj_per_access * bits / (8 * lv.access_bytes)
        s = f"spec energy_pj_per_access {lv.energy_pj_per_access:g} per {lv.access_bytes} B x {bits} bits"
        vals["read_pj"] = vals["write_pj"] = (e, s)
    for field in ("read_pj", "write_pj", "update_pj", "metadata_read_pj", "metadata_write_pj"):
        v = getattr(lv, field)
        if v is not None:
            vals[field] = (v, f"spec {field}")
    if "read_pj" not in vals or "write_pj" not in vals:
        what = f"ERT component {comp!r} has no read/write action" if comp else "no energy given"
        raise HardwareSpecError(f"memory[{i}] ({lv.name}): {what}; give energy_pj_per_bit or read_pj and write_pj")
    rd, wr = vals["read_pj"][0], vals["write_pj"][0]
    vals.setdefault("update_pj", (rd + wr, "read + write (read-modify-write)"))
    mbits = lv.metadata_word_bits if lv.metadata_word_bits is not None else default_metadata_bits(hw, bits, lv.name)
    vals.setdefault("metadata_read_pj", (rd * mbits / bits, f"read_pj scaled to {mbits}-bit metadata words"))
    vals.setdefault("metadata_write_pj", (wr * mbits / bits, f"write_pj scaled to {mbits}-bit metadata words"))
    idle, idle_src = vals.get("idle_pj_per_cycle", (0.0, "none"))
    if lv.leakage_pj_per_cycle > 0:
        leak = (lv.leakage_pj_per_cycle, "spec leakage_pj_per_cycle")
    elif hw.energy.ert_idle_as_leakage and idle > 0:
        leak = (idle * inst, f"{idle_src} x {inst} instances")
    else:
        leak = (0.0, "none (static energy not modelled)")
    vals["leakage_pj_per_cycle"] = leak
    vals["idle_pj_per_cycle"] = (idle, idle_src)
    src = {k: v[1] for k, v in vals.items()}
    return LevelEnergy(lv.name, bits, rd, wr, vals["update_pj"][0], vals["metadata_read_pj"][0],
                       vals["metadata_write_pj"][0], mbits, leak[0], src, inst, idle)


def resolve_action_energies(hw) -> ActionEnergyTable:  # hw: simulator.hardware.HardwareSpec
    """The per-action energy table of `hw`, per field in this order of precedence: the spec's per-action
    number (read_pj, ...), its per-bit / per-access energy, the `[energy] ert` table (component by
    ert_name, else by the level's name), the 45 nm defaults (`default_storage_pj`; update = read +
    write; metadata at its own width). MAC: `[mac]`, else the ERT's mac_random / mac_gated, else the
    Horowitz figure of the number format (gated: GATED_MAC_RATIO x). Raises HardwareSpecError for a
    bad ERT or an ert_name it lacks."""
    from simulator.hardware import HardwareSpecError

    if hw.energy.ert_representative not in ERT_REPRESENTATIVES:
        raise HardwareSpecError(f"energy.ert_representative: {hw.energy.ert_representative!r} is not one of "
                                f"{list(ERT_REPRESENTATIVES)}")
    ert = _load_ert(hw)
    levels = tuple(_resolve_level(hw, i, ert) for i in range(len(hw.memory)))
    t = energy_table(hw.energy_table, hw.number_format)
    mac, mac_src = t.mac_pj, f"{t.name} mult {t.mult_pj:.3g} + add {t.add_pj:.3g} pJ (Horowitz ISSCC 2014)"
    gated, gated_src = None, ""
    comp = _ert_component(ert, hw.mac.ert_name, "mac")
    if comp is not None:
        act = next((a for a in ERT_MAC_ACTIONS if ert.energy(comp, (a,)) is not None), None)
        if act is None:
            raise HardwareSpecError(f"ERT {ert.path}: component {comp!r} has none of the MAC actions "
                                    f"{list(ERT_MAC_ACTIONS)} (it has {ert.action_names(comp)})")
        mac, mac_src = ert.energy(comp, (act,)), f"ert:{comp} {act}"
        g = ert.energy(comp, ERT_GATED_ACTIONS)
        if g is not None:
            gated, gated_src = g, f"ert:{comp} mac_gated"
    if hw.mac.energy_pj is not None:
        mac, mac_src = hw.mac.energy_pj, "spec [mac] energy_pj"
    if hw.mac.gated_energy_pj is not None:
        gated, gated_src = hw.mac.gated_energy_pj, "spec [mac] gated_energy_pj"
    if gated is None:
        gated, gated_src = GATED_MAC_RATIO * mac, "mac x 0.018/0.561 (Sparseloop 45 nm int8 gated/active)"
    return ActionEnergyTable(levels, mac, gated, mac_src, gated_src, None if ert is None else ert.path)


_DERIVED = ("read + write", "read_pj scaled", "write_pj scaled", "none")


def format_energy_table(table: ActionEnergyTable) -> str:
    """The per-action table as text (`rigl-hw hardware show`): one row per level, pJ per word, the
    source of read/write, then any other field whose value was given rather than derived."""
    head = (f"{'level':<14} {'bits':>4} {'inst':>6} {'read':>9} {'write':>9} {'update':>9} "
            f"{'meta rd':>8} {'meta wr':>8} {'mbits':>5} {'leak/cyc':>9}  source")
    lines = ["energy per action (pJ per word, per instance access):", head]
    extra = []
    for lv in table.levels:
        src = lv.sources["read_pj"]
        if lv.sources["write_pj"] != src:
            src += f"; write: {lv.sources['write_pj']}"
        lines.append(f"{lv.name:<14} {lv.word_bits:>4} {lv.instances:>6} {lv.read_pj:>9.4g} {lv.write_pj:>9.4g} "
                     f"{lv.update_pj:>9.4g} {lv.metadata_read_pj:>8.4g} {lv.metadata_write_pj:>8.4g} "
                     f"{lv.metadata_word_bits:>5} {lv.leakage_pj_per_cycle:>9.4g}  {src}")
        for k in ("update_pj", "metadata_read_pj", "metadata_write_pj", "leakage_pj_per_cycle", "idle_pj_per_cycle"):
            s = lv.sources.get(k, "")
            if s and not s.startswith(_DERIVED):
                extra.append(f"  {lv.name}.{k}: {s}")
    lines.append(f"{'mac':<14} {'':>4} {'':>6} {table.mac_pj:>9.4g} pJ per MAC, gated {table.gated_mac_pj:.4g} pJ  "
                 f"{table.mac_source}; gated: {table.gated_mac_source}")
    if extra:
        lines += ["other sources:", *extra]
    if table.ert_path:
        lines.append(f"ERT: {table.ert_path}")
    return "\n".join(lines)
