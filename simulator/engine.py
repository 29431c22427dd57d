"""Simulate training steps (and whole runs) of a sparse model on a HardwareSpec.

`simulate_step` gives one step's cost per layer and pass (forward, backward_data, backward_weight,
plus mask_update on update steps); `simulate_run` multiplies each mask interval's normal-step cost by
its length and adds every update step. Masks are bit-packed uint8 arrays (np.packbits over the weight
flattened to (C_out, C_in/groups*kh*kw) in C order, bitorder "big"); shapes come from the LayerSpec.
Units: cycles, bytes, pJ in tables; seconds and joules in totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from rigl_hw.layers import LayerSpec
from simulator.sparse_features import effective_sparsity
from simulator.dataflow import (Geometry, MaskCounts, _table, dense_folds, effectual_pairs,
                                expected_tile_var, nm_conforms, real_tile_var, sparse_folds)
from simulator.energy import energy_table, level_pj_per_byte
from simulator.mapped import MAPPINGS, MappedModel
from simulator.nest import MappingError
from simulator.memory import gemm_traffic, roofline_cycles, weight_storage_bytes
from simulator.update import update_cost
from simulator.workload import Gemm, lower_layer

MODES = ("real", "statistical")
OBJECTIVES = ("latency", "energy", "edp")


class SimulationError(ValueError):
    """Inputs that cannot be simulated (mask/shape mismatch, missing mask, bad run schedule)."""


def _columns(hw) -> list[str]:
    names = [lv.name for lv in hw.memory]
    return (["layer", "pass", "cycles", "compute_cycles", "folds", "dense_macs", "macs", "gated_macs",
             "effectual_macs", "weight_bytes"]
            + [f"{n}_read_bytes" for n in names] + [f"{n}_write_bytes" for n in names]
            + ["energy_pj_mac"] + [f"energy_pj_{n}" for n in names]
            + ["energy_pj_topk", "energy_pj_leakage", "energy_pj", "mapping"])


@dataclass
class _Ctx:
    """Per-(hardware, batch) constants shared by every pass."""

    hw: object
    geom: Geometry
    batch: int
    mode: str
    mac_pj: float
    gated_pj: float
    compare_pj: float
    pj_per_byte: list[float]
    model: MappedModel | None = None   # None: the fixed fold model (dataflow.py + memory.py)

    @classmethod
    def make(cls, hw, batch: int, mode: str, mapping: str = "per-layer", objective: str = "latency",
             model: MappedModel | None = None) -> "_Ctx":
        if mode not in MODES:
            raise SimulationError(f"mode {mode!r} is not one of {MODES}")
        if mapping not in MAPPINGS:
            raise SimulationError(f"mapping {mapping!r} is not one of {list(MAPPINGS)}")
        if objective not in OBJECTIVES:
            raise SimulationError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
        t = energy_table(hw.energy_table, hw.number_format)
        if mapping != "fixed" and model is None:
            model = MappedModel(hw, batch, mapping, objective, mode)
        if mapping == "fixed":
            model = None
        elif (model.hw is not hw or model.batch != batch or model.mapping != mapping
              or model.objective != objective or model.mode != mode):
            raise SimulationError("model: a MappedModel built for another hardware, batch, mapping, objective "
                                  "or mode")
        return cls(hw, Geometry.of(hw), batch, mode, t.mac_pj, t.gated_mac_pj, t.compare_pj,
                   [level_pj_per_byte(lv) for lv in hw.memory], model)


def _weight_bytes(hw, spec: LayerSpec, counts: MaskCounts | None, nnz: float) -> float:
    sp, wf = hw.sparsity, hw.weight_format
    nm_ok = sp.nm is not None and counts is not None and nm_conforms(counts, sp.nm, "weight")
    v_b, m_b = weight_storage_bytes(wf.kind, int(round(nnz)), spec.out_channels, spec.fan_in, hw.value_bytes,
                                    index_bits=wf.index_bits, pointer_bits=wf.pointer_bits,
                                    run_bits=wf.run_bits, nm=sp.nm, nm_ok=nm_ok)
    return v_b + m_b


def _row(ctx: _Ctx, spec: LayerSpec, gm: Gemm, counts: MaskCounts | None, density: float,
         act_mask: np.ndarray | None) -> tuple:
    """One (layer, pass) row from the fixed fold model or, when ctx.model is set, from a mapping."""
    if ctx.model is None:
        return _pass_row(ctx, spec, gm, counts, density, act_mask)
    if act_mask is not None:
        raise SimulationError(f"layer {spec.name!r}: activation masks are priced by the fixed model only "
                              "(mapping='fixed')")
    nnz = counts.nnz if counts is not None else density * spec.n_params
    dense_dw = gm.pass_name == "backward_weight" and gm.sparse == "none"
    try:
        return ctx.model.row(spec, gm.pass_name, counts, density, _weight_bytes(ctx.hw, spec, counts, nnz),
                             dense_dw)
    except MappingError as e:
        raise SimulationError(f"layer {spec.name!r} {gm.pass_name}: {e}") from None


def preferred_tiles(hw, spec: LayerSpec) -> tuple[int, int]:
    """(col_tile, row_tile) for the mask kernel so that one pass serves all three GEMMs."""
    R, C, P = hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.macs_per_pe
    if hw.sparsity.nm is not None:
        return hw.sparsity.nm[1], hw.sparsity.nm[1]
    rows_pg = spec.out_channels // spec.groups
    return {"os": (spec.fan_in, rows_pg), "ws": (C, rows_pg), "is": (R * P, R * P)}[hw.dataflow]


def mask_counts(spec: LayerSpec, packed: np.ndarray, hw=None) -> MaskCounts:
    """Validate a packed mask against its LayerSpec and wrap it for counting."""
    need = -(-spec.n_params // 8)
    if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != need:
        got = f"{packed.dtype} {packed.shape}" if isinstance(packed, np.ndarray) else type(packed).__name__
        raise SimulationError(f"layer {spec.name!r}: mask must be packed uint8 of {need} bytes for weight "
                              f"shape {spec.weight_shape}, got {got}")
    mc = MaskCounts(packed, spec.out_channels, spec.fan_in, spec.groups)
    if hw is not None:
        mc.default_tiles = preferred_tiles(hw, spec)
    return mc


def _pass_row(ctx: _Ctx, spec: LayerSpec, gm: Gemm, counts: MaskCounts | None, density: float,
              act_mask: np.ndarray | None) -> tuple:
    hw, geom, sp = ctx.hw, ctx.geom, effective_sparsity(ctx.hw)
    vb = hw.value_bytes
    dense_macs = float(gm.dense_macs)
    nnz = counts.nnz if counts is not None else density * spec.n_params
    d = nnz / spec.n_params
    sparse_op = gm.sparse != "none" and (counts is not None or d < 1.0)
    effectual = dense_macs * d if sparse_op else dense_macs
    issued, gated = dense_macs, 0.0
    nm_ok = False
    if sp.nm is not None and counts is not None:
        nm_ok = nm_conforms(counts, sp.nm, "weight")
    if sp.mode == "skip" and sparse_op and "weights" in sp.operands:
        if sp.nm is not None:
            ok = gm.sparse != "output" and counts is not None and nm_conforms(counts, sp.nm, gm.sparse)
            k_eff = -(-gm.k // sp.nm[1]) * sp.nm[0] if ok else gm.k
            table = dense_folds(hw.dataflow, gm.m, gm.n, k_eff, geom, gm.groups, gm.repeats)
            issued = float(gm.m * gm.n * k_eff * gm.groups * gm.repeats)
        else:
            if ctx.mode == "statistical" or counts is None:
                var = expected_tile_var(hw.dataflow, gm.sparse, gm, d, geom)
            else:
                var = real_tile_var(hw.dataflow, gm.sparse, counts, geom)
            table = sparse_folds(hw.dataflow, gm.sparse, gm.m, gm.n, gm.k, geom, var, gm.repeats)
            issued = effectual
        if act_mask is not None and gm.pass_name == "forward" and "activations" in sp.operands:
            if counts is None:
                raise SimulationError(f"layer {spec.name!r}: activation skipping needs the real weight mask")
            pairs = float(effectual_pairs(spec, counts, act_mask) * gm.repeats)
            table = _table([pairs], [1.0], 0, False)
            effectual = issued = pairs
    else:
        table = dense_folds(hw.dataflow, gm.m, gm.n, gm.k, geom, gm.groups, gm.repeats)
        if sp.mode == "gate" and sparse_op:
            issued, gated = effectual, dense_macs - effectual
    wbytes = _weight_bytes(hw, spec, counts, nnz)
    out_elems = nnz if (gm.sparse == "output" and sp.mode != "none") else gm.o_elems
    traffic = gemm_traffic(hw, gm, table, dataflow=hw.dataflow, issued_macs=issued, gated_macs=gated,
                           weight_bytes=wbytes, output_elems=out_elems)
    cycles, compute, folds = roofline_cycles(hw, table, traffic)
    e_mac = issued * ctx.mac_pj + gated * ctx.gated_pj
    rw = [traffic[lv.name] for lv in hw.memory]
    e_lv = [(r + w) * e for (r, w), e in zip(rw, ctx.pj_per_byte)]
    return ((spec.name, gm.pass_name, cycles, compute, folds, dense_macs, issued, gated, effectual, wbytes)
            + tuple(r for r, _ in rw) + tuple(w for _, w in rw)
            + (e_mac,) + tuple(e_lv) + (0.0, 0.0, e_mac + sum(e_lv), "fixed:" + hw.dataflow))


def _update_row(ctx: _Ctx, spec: LayerSpec, counts: MaskCounts | None, density: float, k: int,
                optimizer_states: int) -> tuple:
    hw = ctx.hw
    nnz = counts.nnz if counts is not None else int(round(density * spec.n_params))
    wf = hw.weight_format
    v_b, m_b = weight_storage_bytes(wf.kind, nnz, spec.out_channels, spec.fan_in, hw.value_bytes,
                                    index_bits=wf.index_bits, pointer_bits=wf.pointer_bits,
                                    run_bits=wf.run_bits, nm=hw.sparsity.nm,
                                    nm_ok=counts is not None and hw.sparsity.nm is not None
                                    and nm_conforms(counts, hw.sparsity.nm, "weight"))
    u = update_cost(hw, spec.n_params, nnz, k, v_b + m_b, optimizer_states)
    n_lv = len(hw.memory)
    reads = (0.0,) * (n_lv - 1) + (u.dram_read_bytes,)
    writes = (0.0,) * (n_lv - 1) + (u.dram_write_bytes,)
    e_lv = (0.0,) * (n_lv - 1) + (u.energy_pj_dram,)
    return ((spec.name, "mask_update", u.cycles, u.cycles, 0.0, 0.0, 0.0, 0.0, 0.0, v_b + m_b)
            + reads + writes + (0.0,) + e_lv + (u.energy_pj_topk, 0.0, u.energy_pj, ""))


@dataclass
class StepResult:
    """One training step: `table` has one row per layer and pass (cycles, MACs, bytes per level, pJ)."""

    table: pd.DataFrame
    clock_hz: float

    @property
    def cycles(self) -> float:
        return float(self.table["cycles"].sum())

    @property
    def time_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def energy_j(self) -> float:
        return float(self.table["energy_pj"].sum()) * 1e-12


def _layer_inputs(specs, masks, mode, densities):
    if mode not in MODES:
        raise SimulationError(f"mode {mode!r} is not one of {MODES}")
    out = []
    for s in specs:
        packed = None if masks is None else masks.get(s.name)
        dens = None if densities is None else densities.get(s.name)
        if packed is None and dens is None:
            dens = 1.0  # a layer without mask or density is dense
        out.append((s, packed, dens))
    return out


def simulate_step(specs: Sequence[LayerSpec], masks: Mapping[str, np.ndarray] | None, hw, batch: int, *,
                  update_step: bool = False, dense_weight_grad: bool = False,
                  activation_masks: Mapping[str, np.ndarray] | None = None, mode: str = "real",
                  densities: Mapping[str, float] | None = None, topk_fraction: float = 0.3,
                  optimizer_states: int = 1, mapping: str = "per-layer", objective: str = "latency",
                  model: MappedModel | None = None) -> StepResult:
    """Cost of one training step of `specs` at batch `batch` on `hw`.

    masks: layer name -> packed mask (a layer absent from masks and densities is dense);
    update_step: a RigL mask-update step (dense weight gradient plus mask_update rows that grow/drop
    k = topk_fraction x nnz weights); dense_weight_grad: dense weight gradient on this step (SNFS);
    activation_masks: layer name -> bool input-activation mask (used by single-PE two-sided skipping);
    mode: "real" (tiles from the masks) or "statistical" (expected cycles for random masks of the
    same density; densities: layer name -> density for layers without masks);
    mapping: "per-layer" (default: one searched mapping per layer and pass from its density),
    "per-snapshot" (re-searched when the density changes) or "fixed" (the fixed fold model);
    objective: the mapper's "latency" | "energy" | "edp"; model: a `MappedModel` kept across calls
    so that mappings and evaluations are reused (a layer whose density did not change reuses its
    evaluation; only the lockstep imbalance of its mask is recounted).
    """
    ctx = _Ctx.make(hw, batch, mode, mapping, objective, model)
    rows = []
    for s, packed, dens in _layer_inputs(specs, masks, mode, densities):
        counts = mask_counts(s, packed, hw) if packed is not None else None
        act = None if activation_masks is None else activation_masks.get(s.name)
        for gm in lower_layer(s, batch, dense_weight_grad=dense_weight_grad or update_step):
            rows.append(_row(ctx, s, gm, counts, dens if dens is not None else 0.0, act))
        if update_step:
            nnz = counts.nnz if counts is not None else dens * s.n_params
            rows.append(_update_row(ctx, s, counts, dens or 0.0, int(round(topk_fraction * nnz)),
                                    optimizer_states))
    return StepResult(pd.DataFrame(rows, columns=_columns(hw)), hw.pe_array.clock_hz)


# --- whole runs -------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """A whole run. `table`: one row per (snapshot, step kind, layer, pass) with `steps`, the number of
    steps that row's cost is paid (normal steps of the interval, or 1 for its update step)."""

    table: pd.DataFrame
    clock_hz: float
    total_steps: int
    n_updates: int

    @property
    def cycles(self) -> float:
        return float((self.table["cycles"] * self.table["steps"]).sum())

    @property
    def time_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def energy_j(self) -> float:
        return float((self.table["energy_pj"] * self.table["steps"]).sum()) * 1e-12

    def per_step(self, kind: str) -> dict[str, float]:
        """Mean cycles and energy (J) of one step of `kind` ("normal" or "update")."""
        t = self.table[self.table["step_kind"] == kind]
        groups = t.groupby("snapshot")
        steps = groups["steps"].first()
        if steps.sum() == 0:
            return {"cycles": 0.0, "energy_j": 0.0}
        cyc = (groups["cycles"].sum() * steps).sum() / steps.sum()
        en = (groups["energy_pj"].sum() * steps).sum() / steps.sum() * 1e-12
        return {"cycles": float(cyc), "energy_j": float(en)}


def _check_schedule(total_steps: int, update_steps: np.ndarray, n_snap: int | None) -> np.ndarray:
    u = np.asarray(update_steps, dtype=np.int64).ravel()
    if n_snap is not None and n_snap < 1:
        raise SimulationError("mask_snapshots: need at least the initial masks")
    if u.size == 0 or u[0] != 0 or (n_snap is not None and u.size == n_snap - 1):
        u = np.concatenate([[0], u])
    if n_snap is not None and u.size != n_snap:
        raise SimulationError(f"update_steps has {u.size - 1} updates for {n_snap} mask snapshots")
    if np.any(np.diff(u) <= 0) or u[-1] >= total_steps:
        raise SimulationError("update_steps must increase strictly and stay below total_steps")
    return u


def _as_mapping(specs: Sequence[LayerSpec], snap) -> Mapping[str, np.ndarray]:
    if isinstance(snap, Mapping):
        return snap
    snap = list(snap)
    if len(snap) != len(specs):
        raise SimulationError(f"a mask snapshot has {len(snap)} masks for {len(specs)} layers")
    return {s.name: m for s, m in zip(specs, snap)}


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is b or (a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))


def simulate_run(specs: Sequence[LayerSpec], batch: int, total_steps: int, update_steps: np.ndarray,
                 mask_snapshots: Iterable, hw, *, dense_weight_grad_every_step: bool = False,
                 topk_fraction_per_update: np.ndarray | None = None, grown_per_update: np.ndarray | None = None,
                 optimizer_states: int = 1, mode: str = "real",
                 densities: Mapping[str, float] | None = None, mapping: str = "per-layer",
                 objective: str = "latency", model: MappedModel | None = None) -> RunResult:
    """Simulate a whole training run from its mask snapshots.

    update_steps[0] = 0 stands for the initial masks (mask_snapshots[0], in force from step 0); for i >= 1
    step update_steps[i] is a mask-update step: its forward/backward use snapshot i-1 with a dense weight
    gradient, it grows/drops k weights per layer, and snapshot i is in force from the next step on. (An
    update_steps without the leading 0 is accepted, as rigl_hw.trace stores it.) mask_snapshots may be
    any iterable (a generator keeps one snapshot in memory at a time) of {layer name: packed mask} or of
    lists of packed masks in spec order. Weights grown/dropped per layer at update i: grown_per_update
    [i-1, layer] (e.g. a trace's `grown`), else topk_fraction_per_update[i-1] x nnz, else the number of
    weights snapshot i activates that snapshot i-1 did not. Per-layer results are reused while a
    layer's mask does not change. mapping / objective / model: as in `simulate_step` (per-layer: the
    mapping is searched from the first snapshot's density and every snapshot is evaluated under it).
    """
    n_snap = len(mask_snapshots) if hasattr(mask_snapshots, "__len__") else None
    u = _check_schedule(total_steps, update_steps, n_snap)
    ctx = _Ctx.make(hw, batch, mode, mapping, objective, model)
    ends = np.append(u[1:], total_steps)
    fracs = None if topk_fraction_per_update is None else np.asarray(topk_fraction_per_update, dtype=float)
    if fracs is not None and fracs.size != u.size - 1:
        raise SimulationError(f"topk_fraction_per_update has {fracs.size} entries for {u.size - 1} updates")
    dense_dw: dict[str, tuple] = {}
    prev_rows: dict[str, list[tuple]] = {}
    prev_mask: dict[str, np.ndarray | None] = {}
    prev_counts: dict[str, MaskCounts | None] = {}
    out: list[tuple] = []
    grown = None if grown_per_update is None else np.asarray(grown_per_update, dtype=np.int64)
    if grown is not None and grown.shape != (u.size - 1, len(specs)):
        raise SimulationError(f"grown_per_update has shape {grown.shape}, expected {(u.size - 1, len(specs))}")
    i = -1
    for i, snap in enumerate(mask_snapshots):
        if i >= u.size:
            raise SimulationError(f"more mask snapshots than the {u.size} the update steps imply")
        snap = _as_mapping(specs, snap)
        n_normal = int(ends[i] - u[i] - (1 if i > 0 else 0))
        for li, s in enumerate(specs):
            packed = snap.get(s.name)
            dens = 1.0 if packed is None else 0.0
            if densities is not None and packed is None and s.name in densities:
                dens = densities[s.name]
            if s.name not in dense_dw:
                gms = lower_layer(s, batch, dense_weight_grad=True)
                dense_dw[s.name] = _row(ctx, s, gms[2], None, 1.0, None)
            if i > 0:  # the update step that produced this snapshot, run with the previous masks
                old_c = prev_counts[s.name]
                if grown is not None:
                    k = int(grown[i - 1, li])
                elif fracs is not None:
                    nnz = old_c.nnz if old_c is not None else dens * s.n_params
                    k = int(round(fracs[i - 1] * nnz))
                elif old_c is not None and packed is not None:
                    k = int(np.bitwise_count(packed & ~prev_mask[s.name]).sum())
                else:
                    k = 0
                fw, bd = prev_rows[s.name][:2]
                upd = _update_row(ctx, s, old_c, dens, k, optimizer_states)
                for r in (fw, bd, dense_dw[s.name], upd):
                    out.append((i, "update", 1) + r)
            if i > 0 and _same(packed, prev_mask[s.name]):
                rows = prev_rows[s.name]
                counts = prev_counts[s.name]
            else:
                counts = mask_counts(s, packed, hw) if packed is not None else None
                gms = lower_layer(s, batch, dense_weight_grad=False)
                rows = [_row(ctx, s, gm, counts, dens, None) for gm in gms]
            prev_rows[s.name], prev_mask[s.name], prev_counts[s.name] = rows, packed, counts
            normal = rows if not dense_weight_grad_every_step else rows[:2] + [dense_dw[s.name]]
            for r in normal:
                out.append((i, "normal", n_normal) + r)
    if i + 1 != u.size:
        raise SimulationError(f"{i + 1} mask snapshots for the {u.size} the update steps imply")
    cols = ["snapshot", "step_kind", "steps"] + _columns(hw)
    return RunResult(pd.DataFrame(out, columns=cols), hw.pe_array.clock_hz, int(total_steps), int(u.size - 1))


def compare_modes(specs: Sequence[LayerSpec], masks: Mapping[str, np.ndarray], hw, batch: int, *,
                  mapping: str = "per-layer", objective: str = "latency") -> pd.DataFrame:
    """Real-mask cycles next to the statistical expectation for random masks of the same densities,
    per layer and pass: columns layer, pass, density, cycles_real, cycles_statistical, ratio
    (real / statistical; > 1 when the real masks are less balanced than random ones)."""
    real = simulate_step(specs, masks, hw, batch, mode="real", mapping=mapping, objective=objective).table
    stat = simulate_step(specs, masks, hw, batch, mode="statistical", mapping=mapping, objective=objective).table
    dens = {s.name: (mask_counts(s, masks[s.name]).density if s.name in masks else 1.0) for s in specs}
    out = pd.DataFrame({"layer": real["layer"], "pass": real["pass"],
                        "density": real["layer"].map(dens),
                        "cycles_real": real["cycles"], "cycles_statistical": stat["cycles"]})
    out["ratio"] = out["cycles_real"] / out["cycles_statistical"]
    return out
