"""Engine rows from the mapping-driven model (nest.py + access.py + mapper.py).

`MappedModel(hw, batch, mapping="per-layer"|"per-snapshot", objective=..., mode=...)` prices one
(layer, pass) with a searched mapping and returns a row in the engine's table layout
(simulator/engine.py `_columns`). RigL keeps each layer's nonzero count constant, so "per-layer"
searches ONE mapping per (layer, pass) from the density the layer first has and evaluates every later
mask snapshot under it; "per-snapshot" re-searches whenever a layer's density changes.

Real masks under a mapping (skipping hardware, unstructured): the PEs run in lockstep; each temporal
step of the innermost weight tile waits for the PE with the most nonzeros in its slice. A PE's slice is
the weight tile of the innermost level keeping the weight-indexed tensor (tM rows x tC*tR*tS columns of
the (C_out, fan_in) mask, columns taken contiguous: exact when the tile spans the whole kernel R x S),
the PEs of one step are the spatial factors above that level on M (rows) and C, R, S (columns). The
compute cycle fraction is f = sum_steps max_PE nnz / (steps x tile size) instead of the density d
(f >= d, = d when balanced); statistical mode uses E[max of n_PE Binomial(tile, d)] / tile. N:M
hardware runs at n/m when the mask conforms (never for the sampled weight gradient), else dense.
Evaluations are reused while (mapping, density) is unchanged; only f is recounted per mask.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulator.access import Evaluation, evaluate, resolve_keeps
from simulator.dataflow import MaskCounts, expected_ceil_max_binom, nm_conforms
from simulator.kernels import _lockstep_max_sum
from simulator.mapper import OBJECTIVES, map_layer
from simulator.nest import Mapping, Problem
from simulator.sparse_features import SPACE_NAME, Joint, effective_sparsity, resolve

# index spaces of each pass's operands other than the weights (the written tensor is never one)
PASS_OPERANDS = {"forward": ("I",), "backward_data": ("O",), "backward_weight": ("I", "O")}
from simulator.tiles import loop_strides, tile_extents

MAPPINGS = ("per-layer", "per-snapshot", "fixed")
_SPARSE = {"forward": "weight", "backward_data": "weight", "backward_weight": "output"}


@dataclasses.dataclass(frozen=True)
class PeSlices:
    """How a mapping lays the weight-indexed tensor over PEs: per-PE tile (rows, cols) of the
    (C_out, fan_in) mask and the spatial PE grid (rows, cols) of one lockstep step."""

    tile_rows: int
    tile_cols: int
    pe_rows: int
    pe_cols: int

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols


def pe_slices(problem: Problem, hw, mapping: Mapping) -> PeSlices:
    """The per-PE weight slice of `mapping` (see module doc)."""
    keeps = resolve_keeps(hw, mapping)
    role = next(r for r in ("weights", "inputs", "outputs") if problem.space_of(r) == "W")
    inner = max(i for i, k in enumerate(keeps) if role in k)
    loops = loop_strides(mapping)
    ext = tile_extents(loops, inner)
    sp = {d: 1 for d in ("M", "C", "R", "S")}
    for lv, d, b, spatial, _ in loops:
        if spatial and lv < inner and d in sp:
            sp[d] *= b
    return PeSlices(ext["M"], ext["C"] * ext["R"] * ext["S"], sp["M"], sp["C"] * sp["R"] * sp["S"])


def lockstep_fraction(counts: MaskCounts, sl: PeSlices) -> float:
    """sum over lockstep steps of the max per-PE nonzeros / (steps x per-PE tile size) (module doc);
    the per-step maxima come from the Numba kernel kernels._lockstep_max_sum."""
    tr, tc = sl.tile_rows, sl.tile_cols
    rt, _ = counts.tiles(tc, tr)        # (n_rows, n_col_tiles): nonzeros of each row in each col tile
    g, rpg = counts.groups, counts.rows_per_group
    total, br, bc = _lockstep_max_sum(rt, g, rpg, tr, sl.pe_rows, sl.pe_cols)
    return float(total) / (g * br * bc * tr * tc)


def lockstep_fraction_naive(mask: np.ndarray, groups: int, sl: PeSlices) -> float:
    """Reference of `lockstep_fraction` on an unpacked bool mask (n_rows, n_cols): loops over every
    step and PE."""
    rows, cols = mask.shape
    rpg = rows // groups
    total, steps = 0, 0
    br, bc = sl.tile_rows * sl.pe_rows, sl.tile_cols * sl.pe_cols
    for gi in range(groups):
        m = mask[gi * rpg:(gi + 1) * rpg]
        for r0 in range(0, rpg, br):
            for c0 in range(0, cols, bc):
                best = 0
                for pr in range(sl.pe_rows):
                    for pc in range(sl.pe_cols):
                        a, b = r0 + pr * sl.tile_rows, c0 + pc * sl.tile_cols
                        best = max(best, int(m[a:a + sl.tile_rows, b:b + sl.tile_cols].sum()))
                total += best
                steps += 1
    return total / (steps * sl.tile_rows * sl.tile_cols)


def expected_lockstep_fraction(density: float, sl: PeSlices) -> float:
    """E[max of n_PE iid Binomial(tile, d)] / tile: the statistical-mode lockstep fraction."""
    n = sl.tile_rows * sl.tile_cols
    if density >= 1.0 or density <= 0.0:
        return float(density)
    return expected_ceil_max_binom(n, density, sl.pes, 1) / n


def with_cycle_fraction(ev: Evaluation, hw, frac: float, base_frac: float) -> Evaluation:
    """`ev` with its compute cycles' sparse fraction `base_frac` replaced by `frac` (cycles, leakage and
    utilization follow; access counts are unchanged)."""
    if abs(frac - base_frac) < 1e-15:
        return ev
    temporal = math.prod(b for lm in ev.mapping.levels for _, b in lm.temporal) * ev.problem.repeats
    fill = ev.compute_cycles - temporal * base_frac
    compute = temporal * frac + fill
    cycles = max([compute] + [lv.cycles for lv in ev.levels])
    leak = ev.leakage_pj * cycles / ev.cycles if ev.cycles else ev.leakage_pj
    pes = hw.pe_array.rows * hw.pe_array.cols * hw.pe_array.macs_per_pe
    util = ev.effectual_macs / (cycles * pes) if cycles else 0.0
    return dataclasses.replace(ev, compute_cycles=compute, cycles=cycles, leakage_pj=leak,
                               energy_pj=ev.energy_pj - ev.leakage_pj + leak, utilization=util)


class MappedModel:
    """Prices (layer, pass) rows with searched mappings; holds the per-layer mappings and reusable
    evaluations. `searches`: mapper searches run (cache misses), `lookups`: mappings asked for."""

    def __init__(self, hw, batch: int, mapping: str = "per-layer", objective: str = "latency",
                 mode: str = "real", use_cache: bool = True):
        if mapping not in MAPPINGS[:2]:
            raise ValueError(f"mapping {mapping!r} is not one of {list(MAPPINGS[:2])}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
        self.hw, self.batch, self.mapping, self.objective, self.mode = hw, batch, mapping, objective, mode
        self.use_cache = use_cache
        self.searches = 0
        self.lookups = 0
        self._maps: dict = {}      # (layer, pass, dense_dw) -> (density mapped at, Mapping, PeSlices)
        self._evals: dict = {}     # (layer, pass, dense_dw, density, mapping) -> Evaluation
        self._problems: dict = {}
        self._fracs: dict = {}     # (layer, pass) -> (packed mask, PeSlices, lockstep fraction)
        self._rows: dict = {}      # (layer, pass, dense_dw) -> (packed mask or None, density, row)
        # layer -> {"I": input-activation density, "O": output-gradient density} (a trace's operand
        # sparsity, rigl_hw.trace_operands); used in the passes and index spaces the spec exploits
        self.operand_densities: dict = {}

    def densities(self, spec, pass_name: str, d: float) -> dict:
        """Densities by index space for this pass: the weight density plus the trace's activation /
        gradient densities where the hardware exploits them (resolve(...).exploited)."""
        dens = {"weights": d} if d < 1 else {}
        od = self.operand_densities.get(spec.name)
        if od:
            ex = resolve(self.hw, self.problem(spec, pass_name)).exploited
            for sp in PASS_OPERANDS[pass_name]:
                v = od.get(sp)
                if v is not None and sp in ex and v < 1.0:
                    dens[SPACE_NAME[sp]] = float(v)
        return dens

    def exploited(self, spec, pass_name: str) -> list[str]:
        """Operands (weights / activations / gradients) whose zeros this pass of `spec` exploits here."""
        names = {"W": "weights", "I": "activations", "O": "gradients"}
        ex = resolve(self.hw, self.problem(spec, pass_name)).exploited
        have = {"W"} | set(self.operand_densities.get(spec.name, {}))
        return sorted(names[sp] for sp in ex & have if sp == "W" or sp in PASS_OPERANDS[pass_name])

    def problem(self, spec, pass_name: str) -> Problem:
        key = (spec.name, pass_name)
        p = self._problems.get(key)
        if p is None:
            p = self._problems[key] = Problem.from_layer(spec, self.batch, pass_name)
        return p

    def mapping_for(self, spec, pass_name: str, density: float, dense_dw: bool = False):
        """(Mapping, PeSlices) for this layer pass: searched once per layer ("per-layer") or again when
        the density changes ("per-snapshot")."""
        key = (spec.name, pass_name, dense_dw)
        hit = self._maps.get(key)
        if hit is not None and (self.mapping == "per-layer" or hit[0] == density):
            return hit[1], hit[2]
        self.lookups += 1
        prob = self.problem(spec, pass_name)
        res = map_layer(prob, self.hw, self.objective, densities=self.densities(spec, pass_name, density) or None,
                        use_cache=self.use_cache)
        if not res.cached:
            self.searches += 1
        sl = pe_slices(prob, self.hw, res.mapping)
        self._maps[key] = (density, res.mapping, sl)
        return res.mapping, sl

    def evaluation(self, spec, pass_name: str, counts: MaskCounts | None, density: float,
                   dense_dw: bool = False) -> Evaluation:
        """The mapped evaluation of one pass with the real mask `counts` (or `density` in statistical
        mode / without a mask), lockstep imbalance included."""
        d = counts.density if counts is not None else float(density)
        if dense_dw:
            d = 1.0
        mapping, sl = self.mapping_for(spec, pass_name, d, dense_dw)
        ekey = (spec.name, pass_name, dense_dw, d, mapping)
        ev = self._evals.get(ekey)
        if ev is None:
            if len(self._evals) > 4096:
                self._evals.clear()
            ev = evaluate(self.problem(spec, pass_name), self.hw, mapping,
                          densities=self.densities(spec, pass_name, d) or None, check=False)
            self._evals[ekey] = ev
        sp = effective_sparsity(self.hw)
        if sp.mode != "skip" or "weights" not in sp.operands or d >= 1.0:
            return ev
        dens = self.densities(spec, pass_name, d)
        base = d   # access.py's cycle fraction from the weight density ...
        other = 1.0
        if len(dens) > 1:   # ... times the activation / gradient operands' (independent) share
            prob = self.problem(spec, pass_name)
            other = resolve(self.hw, prob).compute_fractions(Joint(dens))[1] / d
        if sp.nm is not None:
            ok = (counts is not None and self.mode == "real" and _SPARSE[pass_name] != "output"
                  and nm_conforms(counts, sp.nm, "weight"))
            frac = sp.nm[0] / sp.nm[1] if ok else 1.0
        elif counts is not None and self.mode == "real":
            fkey = (spec.name, pass_name)
            hit = self._fracs.get(fkey)
            if hit is not None and hit[1] == sl and (hit[0] is counts.packed or np.array_equal(hit[0], counts.packed)):
                frac = hit[2]       # the mask did not change: reuse its count
            else:
                frac = lockstep_fraction(counts, sl)
                self._fracs[fkey] = (counts.packed, sl, frac)
        else:
            frac = expected_lockstep_fraction(d, sl)
        return with_cycle_fraction(ev, self.hw, frac * other, base * other)

    def row(self, spec, pass_name: str, counts: MaskCounts | None, density: float, weight_bytes: float,
            dense_dw: bool = False) -> tuple:
        """The engine's row (simulator/engine.py `_columns` order) for this pass; reused while the
        layer's mask (or, without one, its density) and its mapping do not change."""
        rkey = (spec.name, pass_name, dense_dw)
        packed = None if counts is None else counts.packed
        hit = self._rows.get(rkey)
        if hit is not None and hit[1] == density and hit[3] == weight_bytes and (
                (packed is None and hit[0] is None) or (packed is not None and hit[0] is not None and (
                    hit[0] is packed or np.array_equal(hit[0], packed)))):
            if self.mapping == "per-layer" or hit[4] == self._maps.get(rkey, (None, None))[1]:
                return hit[2]
        row = self._row(spec, pass_name, counts, density, weight_bytes, dense_dw)
        self._rows[rkey] = (packed, density, row, weight_bytes, self._maps[rkey][1])
        return row

    def _row(self, spec, pass_name: str, counts: MaskCounts | None, density: float, weight_bytes: float,
             dense_dw: bool) -> tuple:
        ev = self.evaluation(spec, pass_name, counts, density, dense_dw)
        hw = self.hw
        mode = effective_sparsity(hw).mode
        d = 1.0 if dense_dw else (counts.density if counts is not None else float(density))
        eff = float(ev.macs) * d                      # useful MACs (nonzero weight), as in the fixed model
        issued = float(ev.macs) if mode == "none" else float(ev.effectual_macs)
        gated = float(ev.macs) - float(ev.effectual_macs) if mode == "gate" else 0.0
        by = {lv.name: lv for lv in ev.levels}
        lvls = [by[lv.name] for lv in hw.memory]
        reads = tuple(lv.read_bytes for lv in lvls)
        writes = tuple(lv.write_bytes for lv in lvls)
        e_lv = tuple(lv.energy_pj for lv in lvls)
        temporal = math.prod(b for lm in ev.mapping.levels for _, b in lm.temporal)
        return ((spec.name, pass_name, ev.cycles, ev.compute_cycles, float(temporal), float(ev.macs), issued,
                 gated, eff, weight_bytes) + reads + writes + (ev.mac_energy_pj,) + e_lv
                + (0.0, ev.leakage_pj, ev.energy_pj, compact(ev.mapping)))


def compact(mapping: Mapping) -> str:
    """One-line mapping: levels outermost first, `LEVEL[temporal dims+bounds | spatial]`."""
    parts = []
    for lm in mapping.levels:
        t = " ".join(f"{d}{b}" for d, b in lm.temporal)
        s = " ".join(f"{d}{b}{a}" for d, b, a in lm.spatial)
        parts.append(f"{lm.name}[{t}{' | ' + s if s else ''}]")
    return " ".join(parts)
