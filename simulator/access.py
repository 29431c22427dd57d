"""Access counts, latency and energy of one mapped layer pass (the mapping-driven model).

`evaluate(problem, hw, mapping, densities=None) -> Evaluation`. Counting rules (Timeloop's, checked
against its `eyeriss_like` AlexNet conv1 statistics in tests/test_sim_access.py):

* words of a tensor at a level: its tile (loops at that level and inside); a child's FILLS are its
  own deltas (simulator/tiles.py), the parent's READS for them the union of the children's deltas
  (multicast). The innermost keeper of an operand is read once per MAC (no operand latching).
* written tensor ("outputs" role, partial sums): UPDATES at a level = the union of what its children
  drain (spatial reduction); at the innermost keeper one per MAC. Its READS = transfers down to the
  children (or the MACs' read-modify-writes) minus its footprint: the first touch of each point
  needs no read (Timeloop: reads = updates - partition size). The outermost level is never read for a
  point it has not been written.
* partial sums are stored and moved at the MAC's accumulator width (`[mac] accumulator_bits`,
  default 32 bits), except the final write of each output to the outermost level (number format).
* latency = max(compute, max over levels of read words / read bandwidth and written words / write
  bandwidth per used instance): every level overlaps fully with compute (double-buffered streaming,
  Timeloop's rule); the slowest one sets the pace.
* energy = sum over levels and actions of count x pJ per word from `resolve_action_energies(hw)`
  (scaled by bits / word_bits; a read-back paired with an update at the innermost keeper costs the
  table's update_pj instead of read + write) + effectual MACs x mac_pj + gated MACs x gated_mac_pj
  + leakage x cycles.
Sparse operands (`densities = {"weights": d, ...}` by index space, or `joint=` exact joint fractions
from masks): the spec's features (simulator/sparse_features.py) scale each level's accesses; see
docs/simulator.md "Operand sparsity".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.energy import resolve_action_energies
from simulator.nest import DIMS, ROLES, Mapping, MappingError, Problem
from simulator.nest_kernel import nest_counts
from simulator.sparse_features import Joint, fiber_length, resolve
from simulator.sparse_features import metadata_bits_per_element as _meta_bits
from simulator.tiles import loop_array, loop_strides, tensor_size, tile_extents, tile_points

from simulator.sparse_features import OPERAND_SPACE, SPACE_NAME  # noqa: E402,F401  (re-exported)


@dataclass(frozen=True)
class TensorCounts:
    """Words moved for one tensor at one level, summed over its used instances."""

    reads: int = 0        # words read out (to children / MACs / the parent), read-backs included
    fills: int = 0        # words written from the parent
    updates: int = 0      # partial-sum words written back by the children / MACs
    readbacks: int = 0    # of `reads`: read-modify-write reads of an update at this level
    metadata_reads: float = 0.0
    metadata_fills: float = 0.0
    bits: int = 16        # bits per word moved for this tensor here
    gated: float = 0.0    # of reads / updates: gated accesses (take bandwidth, cost no energy)


@dataclass(frozen=True)
class LevelResult:
    name: str
    instances_used: int
    tile_words: dict          # role -> words per instance (compressed for a sparse operand)
    counts: dict              # role -> TensorCounts
    read_bytes: float
    write_bytes: float
    energy_pj: float
    cycles: float             # cycles this level needs for its traffic at its bandwidth


@dataclass(frozen=True)
class Evaluation:
    problem: Problem
    mapping: Mapping
    macs: int
    effectual_macs: float
    pes_used: int
    compute_cycles: float
    cycles: float
    utilization: float        # effectual MACs / (cycles x PEs)
    energy_pj: float
    mac_energy_pj: float
    leakage_pj: float
    levels: tuple             # LevelResult, outermost first (mapping order)
    bottleneck: str = ""

    def level(self, name: str) -> LevelResult:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def dram_bytes(self) -> float:
        return self.levels[0].read_bytes + self.levels[0].write_bytes


# --- hardware geometry ------------------------------------------------------------------------
def mesh(hw, h: int) -> tuple[int, int]:
    """(X, Y) instances of hardware level h (innermost = 0)."""
    n = hw.instances(h)
    lv = hw.memory[h]
    if lv.mesh_x is not None:
        x = lv.mesh_x
    elif n == hw.pe_array.rows * hw.pe_array.cols:
        x = hw.pe_array.cols
    else:
        x = n
    return x, n // x


def fanout_limits(hw, h: int) -> tuple[int, int]:
    """Spatial (X, Y) fanout from hardware level h to the level inside it (h = 0: to its MACs)."""
    if h == 0:
        return hw.pe_array.macs_per_pe, 1
    (xo, yo), (xi, yi) = mesh(hw, h), mesh(hw, h - 1)
    if xi % xo or yi % yo:
        raise MappingError(f"hardware {hw.name}: level {hw.memory[h - 1].name} mesh {xi}x{yi} is not a "
                           f"multiple of {hw.memory[h].name} mesh {xo}x{yo}")
    return xi // xo, yi // yo


def accumulator_bits(hw) -> int:
    return hw.mac.accumulator_bits if hw.mac.accumulator_bits is not None else 32


# --- checks ------------------------------------------------------------------------------------
def resolve_keeps(hw, mapping: Mapping) -> list[tuple[str, ...]]:
    """Roles kept at each mapping level (outermost first); the outermost keeps all three."""
    n = len(hw.memory)
    if len(mapping.levels) != n:
        raise MappingError(f"mapping has {len(mapping.levels)} levels, hardware {hw.name} has {n} "
                           f"({', '.join(lv.name for lv in reversed(hw.memory))})")
    keeps = []
    for i, lm in enumerate(mapping.levels):
        lv = hw.memory[n - 1 - i]
        if lm.name != lv.name:
            raise MappingError(f"mapping level {i} is {lm.name!r}, hardware {hw.name} has {lv.name!r} there "
                               "(levels go outermost first)")
        keep = lv.tensors if lm.keep is None else lm.keep
        extra = sorted(set(keep) - set(lv.tensors))
        if extra:
            raise MappingError(f"mapping level {lm.name}: keeps {extra[0]!r}, which the hardware level bypasses")
        keeps.append(tuple(r for r in ROLES if r in keep))
    if set(keeps[0]) != set(ROLES):
        raise MappingError(f"mapping level {mapping.levels[0].name}: the outermost level must keep all tensors")
    return keeps


def role_bits(hw, problem: Problem, role: str, h: int) -> int:
    return accumulator_bits(hw) if role == "outputs" else hw.word_bits(h)


def stored_words(problem: Problem, hw, i: int, role: str, ext: dict, joint: Joint) -> float:
    """Words (of this role's width) one instance of mapping level i holds for `role`'s tile `ext`:
    the points, or nonzeros + metadata words where the level stores the role compressed."""
    space = problem.space_of(role)
    n = tile_points(problem, ext, space)
    h = len(hw.memory) - 1 - i
    fmt = resolve(hw, problem).fmt(hw.memory[h].name, role, joint, problem) if role != "outputs" else None
    if fmt is None:
        return n
    d = joint.density(space)
    mw = hw.memory[h].metadata_word_bits or hw.word_bits(h)
    meta_bits = _meta_bits(fmt, d, fiber_length(fmt, problem, role, ext), mw, hw.sparsity.nm)
    return math.ceil(n * d) + math.ceil(n * meta_bits / hw.word_bits(h))


def tile_words(problem: Problem, hw, loops, i: int, role: str, densities: dict, joint: Joint | None = None) -> float:
    """Words (of this role's width) one instance of mapping level i holds for `role`."""
    return stored_words(problem, hw, i, role, tile_extents(loops, i), joint or Joint(densities))


def check_mapping(problem: Problem, hw, mapping: Mapping, densities: dict | None = None,
                  joint: Joint | None = None) -> list[tuple[str, ...]]:
    """Raise MappingError (one line) unless `mapping` covers `problem` and fits `hw`; returns the keeps."""
    densities = densities or {}
    joint = joint or Joint(densities)
    keeps = resolve_keeps(hw, mapping)
    for d in DIMS:
        got = mapping.factor_product(d)
        if got != problem.dim(d):
            raise MappingError(f"mapping: the factors of {d} multiply to {got}, the problem has {d}={problem.dim(d)}")
    n = len(hw.memory)
    loops = loop_strides(mapping)
    for i, lm in enumerate(mapping.levels):
        h = n - 1 - i
        fx, fy = fanout_limits(hw, h)
        sx = math.prod(b for _, b, a in lm.spatial if a == "X")
        sy = math.prod(b for _, b, a in lm.spatial if a == "Y")
        if sx > fx or sy > fy:
            raise MappingError(f"mapping level {lm.name}: spatial fanout {sx}x{sy} (X x Y) exceeds the "
                               f"hardware's {fx}x{fy} below it")
        if i == 0:
            continue
        lv = hw.memory[h]
        cap_bits = lv.size_bytes * 8 / (2 if lv.double_buffer else 1)
        used, shared = 0.0, 0.0
        for role in keeps[i]:
            bits = tile_words(problem, hw, loops, i, role, densities, joint) * role_bits(hw, problem, role, h)
            part = (lv.partition_bytes or {}).get(role)
            if part is not None:
                pbits = part * 8 / (2 if lv.double_buffer else 1)
                if bits > pbits:
                    raise MappingError(f"mapping level {lm.name}: the {role} tile needs {bits / 8:.0f} B, its "
                                       f"partition holds {pbits / 8:.0f} B")
                used += pbits
            else:
                shared += bits
        if used + shared > cap_bits:
            raise MappingError(f"mapping level {lm.name}: tiles need {(used + shared) / 8:.0f} B per instance, "
                               f"it holds {cap_bits / 8:.0f} B{' (double-buffered)' if lv.double_buffer else ''}")
    return keeps


# --- evaluation ---------------------------------------------------------------------------------
_ENERGY_CACHE: dict = {}


def _energies(hw):
    """resolve_action_energies(hw), memoised per spec object (specs are frozen)."""
    hit = _ENERGY_CACHE.get(id(hw))
    if hit is None or hit[0] is not hw:
        if len(_ENERGY_CACHE) > 64:
            _ENERGY_CACHE.clear()
        hit = (hw, resolve_action_energies(hw))
        _ENERGY_CACHE[id(hw)] = hit
    return hit[1]


def _sparse(problem: Problem, hw, densities: dict, joint: Joint | None = None) -> tuple[float, float, float]:
    """(effectual fraction of MACs, cycle fraction, gated fraction). Skipping hardware removes the
    MACs with a zero operand it exploits from the PE schedule (cycles x effectual fraction, the same
    fold count at every level: tiles stay as mapped); gating hardware keeps the cycles and pays the
    gated MAC energy; 'none' multiplies zeros."""
    return resolve(hw, problem).compute_fractions(joint or Joint(densities))


def evaluate(problem: Problem, hw, mapping: Mapping, *, densities: dict | None = None,
             check: bool = True, joint: Joint | None = None) -> Evaluation:
    """Access counts, cycles and energy of `problem` mapped by `mapping` on `hw` (see module doc).
    joint: exact joint nonzero fractions from masks (real mode, `sparse_features.joint_fractions`);
    densities alone: statistical mode (independent uniform zeros)."""
    densities = dict(densities or {})
    for k, v in densities.items():
        if k not in SPACE_NAME.values():
            raise MappingError(f"densities: unknown tensor {k!r} (use weights, inputs, outputs)")
        if not 0.0 <= float(v) <= 1.0:
            raise MappingError(f"densities: {k} = {v} is outside [0, 1]")
    jt = joint if joint is not None else Joint(densities)
    keeps = check_mapping(problem, hw, mapping, densities, jt) if check else resolve_keeps(hw, mapping)
    n = len(hw.memory)
    loops = loop_strides(mapping)
    la = loop_array(loops)
    latch = hw.pe_array.operand_registers
    raw = nest_counts(problem, la, keeps, n, latch)   # per role and chain pair: moved, footprint, fills
    rep = problem.repeats
    temporal_iters = math.prod(b for (_, _, b, sp, _) in loops if not sp)
    pes = math.prod(b for (_, _, b, sp, _) in loops if sp)
    sf = resolve(hw, problem)
    eff_frac, cyc_frac, gated_frac = sf.compute_fractions(jt)
    macs = problem.macs
    eff_macs = macs * eff_frac
    inst_used = [math.prod(b for (lv, _, b, sp, _) in loops if sp and lv < i) for i in range(n + 1)]
    acc = accumulator_bits(hw)
    vbits = 8 * hw.value_bytes
    lname = [hw.memory[n - 1 - i].name for i in range(n)]   # mapping index -> level name

    counts: list[dict[str, TensorCounts]] = [dict() for _ in range(n)]
    for ri, role in enumerate(ROLES):
        space = problem.space_of(role)
        dens = jt.density(space)
        written = role == "outputs"
        holders = [i for i in range(n) if role in keeps[i]]
        fmts = {i: (None if written else sf.fmt(lname[i], role, jt, problem)) for i in holders}
        own = frozenset((space,))
        acc_r = {i: 0.0 for i in holders}
        acc_f = {i: 0.0 for i in holders}
        acc_u = {i: 0.0 for i in holders}
        acc_rb = {i: 0.0 for i in holders}
        acc_g = {i: 0.0 for i in holders}   # gated words (in reads / updates): bandwidth, no energy
        chain = holders + [n]  # n: the MACs
        for k, (a, b) in enumerate(zip(chain[:-1], chain[1:])):
            moved = int(raw[ri, k, 0]) * inst_used[a] * rep
            fp = int(raw[ri, k, 1]) * inst_used[a] * rep   # each point moves at least once
            act = sf.action(lname[a], role)
            cond = act[1] if act is not None else frozenset()
            comp_a = own if fmts[a] is not None else frozenset()
            if b == n:
                # MAC-side accesses of the innermost keeper: the shorthand's skipped MACs read no operand
                # and write no partial sum (no operand registers); with registers only the compressed
                # operand's zeros are saved (they are not stored)
                if sf.implicit_mac:
                    scale = jt.prob(sf.compute_on | cond)
                else:
                    scale = jt.prob(cond | comp_a)
                floor = fp * jt.prob(comp_a)
            else:
                scale = jt.prob(cond | comp_a)
                floor = 0.0
            if act is not None and act[0] == "gate":
                kept = moved * jt.prob(comp_a) if b != n or not sf.implicit_mac else moved * scale
                kept = max(kept, floor)
                moved_eff = max(moved * scale, floor)
                acc_g[a] += kept - moved_eff
                moved = kept
            else:
                moved = max(moved * scale, floor)
            if written:
                acc_u[a] += moved      # children drain into a; a serves as many fills / MAC RMWs
                rd = max(0.0, moved - fp)
                acc_r[a] += rd
                if b == n:
                    acc_rb[a] += rd
                else:
                    acc_f[b] += int(raw[ri, k, 2]) * inst_used[b] * rep
            else:
                acc_r[a] += moved
                if b != n:
                    comp_b = own if fmts[b] is not None else frozenset()
                    acc_f[b] += int(raw[ri, k, 2]) * inst_used[b] * rep * jt.prob(cond | comp_b)
        for i in holders:
            h = n - 1 - i
            bits = acc if written else hw.word_bits(h)
            per_word = 0.0
            f = fmts[i]
            if f is not None:
                mw = hw.memory[h].metadata_word_bits or hw.word_bits(h)
                mb = _meta_bits(f, dens, fiber_length(f, problem, role, tile_extents(loops, i)), mw, hw.sparsity.nm)
                per_word = mb / max(dens, 1e-12) / mw   # metadata words per nonzero word moved
            counts[i][role] = TensorCounts(
                reads=acc_r[i], fills=acc_f[i], updates=acc_u[i], readbacks=acc_rb[i],
                metadata_reads=acc_r[i] * per_word, metadata_fills=acc_f[i] * per_word, bits=bits,
                gated=acc_g[i])

    table = _energies(hw)
    compute_cycles = temporal_iters * rep * cyc_frac
    if hw.pe_array.fill_drain and pes > 1:
        # a streaming array fills and drains its pipeline once per nest (tiles are double-buffered)
        sx = math.prod(b for lm in mapping.levels for (_, b, a) in lm.spatial if a == "X")
        sy = math.prod(b for lm in mapping.levels for (_, b, a) in lm.spatial if a == "Y")
        compute_cycles += (sx + sy - 2) * rep
    results = []
    energy = 0.0
    worst, bottleneck = compute_cycles, "compute"
    for i, lm in enumerate(mapping.levels):
        h = n - 1 - i
        le = table.levels[h]
        rbytes = wbytes = e = 0.0
        for role, c in counts[i].items():
            scale = c.bits / le.word_bits
            final = 0.0
            if i == 0 and role == "outputs":
                # the final write of each point is at the number format's width
                final = min(c.updates, tensor_size(problem, problem.space_of(role)) * rep)
            wr_words = c.fills + c.updates
            rbytes += c.reads * c.bits / 8 + c.metadata_reads * (hw.memory[h].metadata_word_bits or le.word_bits) / 8
            wbytes += (wr_words - final) * c.bits / 8 + final * vbits / 8 \
                + c.metadata_fills * (hw.memory[h].metadata_word_bits or le.word_bits) / 8
            g_r = c.gated if role != "outputs" else 0.0
            g_u = c.gated if role == "outputs" else 0.0
            e += scale * ((c.reads - c.readbacks - g_r) * le.read_pj + c.readbacks * le.update_pj
                          + (c.fills + c.updates - c.readbacks - g_u - final) * le.write_pj)
            e += final * vbits / le.word_bits * le.write_pj   # final writes at the number format's width
            e += c.metadata_reads * le.metadata_read_pj + c.metadata_fills * le.metadata_write_pj
        lv = hw.memory[h]
        used = max(1, inst_used[i])
        share = used / hw.instances(h)
        cyc = max(rbytes / (lv.read_bw_bytes_per_cycle * share), wbytes / (lv.write_bw_bytes_per_cycle * share))
        if cyc > worst:
            worst, bottleneck = cyc, lm.name
        tiles = {r: tile_words(problem, hw, loops, i, r, densities, jt) for r in keeps[i]}
        results.append(LevelResult(lm.name, used, tiles, counts[i], rbytes, wbytes, e, cyc))
        energy += e
    cycles = worst
    mac_e = eff_macs * table.mac_pj + macs * gated_frac * table.gated_mac_pj
    leak = sum(le.leakage_pj_per_cycle for le in table.levels) * cycles
    total = energy + mac_e + leak
    util = eff_macs / (cycles * hw.pe_array.rows * hw.pe_array.cols * hw.pe_array.macs_per_pe) if cycles else 0.0
    return Evaluation(problem, mapping, macs, eff_macs, pes, compute_cycles, cycles, util, total, mac_e, leak,
                      tuple(results), bottleneck)
