"""Cost of the mask-update work of one layer on a RigL update step (beyond the training passes).

The dense backward-weight GEMM of an update step is simulated by the engine as that step's
backward_weight pass (sparse = "none"); this module adds the rest:

1. grow: top-k of |gradient| over the N_l weights (the mask bits say which are inactive), streamed
   through the top-k unit at `elements_per_cycle`. With S = `chunk_elements`: when N_l <= S the
   gradient fits on chip and is read once; otherwise it is read in ceil(N_l/S) chunks, each chunk's
   best min(k, S) candidates merged into a running top-k kept on chip; when k > S the running top-k
   does not fit and the selection takes ceil(k/S) passes over the data (each pass re-reads N_l values).
2. drop: bottom-k of |theta| among the nnz active weights (compressed values), same streaming rule.
3. re-encode: read and write the compressed weights (values + metadata).
4. zero the optimizer state at the 2k changed positions: 2k x states scattered DRAM writes of one
   access (the DRAM level's access_bytes) each.
Each part costs max(compute cycles, DRAM bytes / DRAM bandwidth); the parts run one after another.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.dataflow import _cdiv
from simulator.energy import energy_table, level_pj_per_byte


@dataclass(frozen=True)
class UpdateCost:
    """Mask-update cost of one layer: cycles, DRAM bytes, comparisons, energy (pJ) by component."""

    cycles: float
    dram_read_bytes: float
    dram_write_bytes: float
    comparisons: float
    passes: int
    energy_pj_topk: float
    energy_pj_dram: float

    @property
    def energy_pj(self) -> float:
        return self.energy_pj_topk + self.energy_pj_dram


def _select(n_elems: int, k: int, elem_bytes: float, epc: int, chunk: int, bw: float) -> tuple[float, float, float, int]:
    """Streaming selection of k among n_elems: (cycles, DRAM read bytes, comparisons, passes)."""
    if n_elems <= 0 or k <= 0:
        return 0.0, 0.0, 0.0, 0
    keep = min(k, chunk)
    if n_elems <= chunk:
        passes, chunks = 1, 1
    else:
        passes, chunks = _cdiv(k, chunk), _cdiv(n_elems, chunk)
    per_pass_cmp = n_elems + chunks * keep
    per_pass_cycles = _cdiv(n_elems, epc) + chunks * _cdiv(keep, epc)
    per_pass_bytes = n_elems * elem_bytes
    cycles = passes * max(per_pass_cycles, per_pass_bytes / bw)
    return float(cycles), float(passes * per_pass_bytes), float(passes * per_pass_cmp), passes


def update_cost(hw, n_params: int, nnz: int, k: int, stored_weight_bytes: float,
                optimizer_states: int = 1) -> UpdateCost:
    """Cost of growing and dropping k weights of a layer with n_params weights, nnz of them active.

    stored_weight_bytes: compressed size (values + metadata) of the layer's weights;
    optimizer_states: tensors of optimizer state per weight (1 for SGD momentum, 2 for Adam).
    """
    if min(n_params, nnz, k, optimizer_states) < 0 or nnz > n_params:
        raise ValueError(f"bad update sizes: n_params={n_params}, nnz={nnz}, k={k}, states={optimizer_states}")
    vb = hw.value_bytes
    dram = hw.dram
    bw_r, bw_w = dram.read_bw_bytes_per_cycle, dram.write_bw_bytes_per_cycle
    epc, chunk = hw.topk.elements_per_cycle, hw.topk.chunk_elements
    k = min(k, nnz, n_params - nnz) if n_params > nnz else 0
    g_cyc, g_bytes, g_cmp, g_pass = _select(n_params, k, vb + 1 / 8, epc, chunk, bw_r)  # |grad| + mask bit
    d_cyc, d_bytes, d_cmp, d_pass = _select(nnz, k, vb, epc, chunk, bw_r)
    enc_cyc = max(stored_weight_bytes / bw_r, stored_weight_bytes / bw_w) if k > 0 else 0.0
    zero_bytes = 2.0 * k * optimizer_states * dram.access_bytes
    zero_cyc = zero_bytes / bw_w
    reads = g_bytes + d_bytes + (stored_weight_bytes if k > 0 else 0.0)
    writes = (stored_weight_bytes if k > 0 else 0.0) + zero_bytes
    table = energy_table(hw.energy_table, hw.number_format)
    cmp = g_cmp + d_cmp
    return UpdateCost(
        cycles=g_cyc + d_cyc + enc_cyc + zero_cyc,
        dram_read_bytes=reads,
        dram_write_bytes=writes,
        comparisons=cmp,
        passes=g_pass + d_pass,
        energy_pj_topk=cmp * table.compare_pj,
        energy_pj_dram=(reads + writes) * level_pj_per_byte(dram),
    )
