"""Memory traffic per level for one GEMM, compressed-weight sizes, and the per-fold bandwidth roofline.

Levels are the spec's `memory` list, innermost first: the first is PE-local (register files /
scratch pads), the one just inside DRAM is the global buffer (GLB), the last is DRAM. With two levels
the first is the GLB; with one, only DRAM is modelled. All traffic is in bytes.

Assumptions (docs/simulator.md has the full list):
* PE-local: every issued MAC reads two operands and writes one partial sum (3 x value bytes); a gated
  MAC only reads the operand that is tested for zero (1 x value bytes).
* GLB <-> array, from the fold table (sum over folds of the streamed length L, "stream_sum"):
    ws: stationary weights loaded once (compressed bytes); L input rows of R*P values per fold;
        C partial sums per streamed row written, and read back except on the first reduction fold;
    os: per streamed step R*P inputs and C*P weights (times the compressed/dense byte ratio);
        R*C outputs written once per fold;
    is: stationary inputs loaded once; per streamed step R*P weights; C partial sums as in ws.
* DRAM: each operand gets a third of the GLB. Both operands are read once if they fit; otherwise the
  cheaper of two blockings: hold ceil(A/share) blocks of A and re-read B once per block, or the
  reverse, capped by the dataflow's reuse counts (ws: inputs once per N-tile; os: inputs per N-tile,
  weights per M-tile; is: weights per M-tile). Outputs are written once, or once per reduction fold
  plus read-backs when the partial sums do not fit (ws, is).
"""

from __future__ import annotations

import math

from simulator.dataflow import FoldTable, Geometry, _cdiv
from simulator.workload import Gemm


def weight_storage_bytes(kind: str, nnz: int, n_rows: int, n_cols: int, value_bytes: int, *,
                         index_bits: int = 16, pointer_bits: int = 32, run_bits: int = 4,
                         nm: tuple[int, int] | None = None, nm_ok: bool = True) -> tuple[float, float]:
    """(value bytes, metadata bytes) of a weight matrix of n_rows x n_cols with nnz nonzeros.

    dense: all values, no metadata; bitmask: nnz values + n_rows*n_cols bits; csr: nnz*index_bits +
    (n_rows+1)*pointer_bits; csc: nnz*index_bits + (n_cols+1)*pointer_bits; coo: nnz*2*index_bits;
    rle: nnz*run_bits; nm: nnz*log2(M) bits (stored dense when the mask does not conform: nm_ok=False).
    """
    dense = float(n_rows * n_cols * value_bytes)
    vals = float(nnz * value_bytes)
    if kind == "dense" or (kind == "nm" and not nm_ok):
        return dense, 0.0
    if kind == "bitmask":
        bits = n_rows * n_cols
    elif kind == "csr":
        bits = nnz * index_bits + (n_rows + 1) * pointer_bits
    elif kind == "csc":
        bits = nnz * index_bits + (n_cols + 1) * pointer_bits
    elif kind == "coo":
        bits = nnz * 2 * index_bits
    elif kind == "rle":
        bits = nnz * run_bits
    elif kind == "nm":
        if nm is None:
            raise ValueError("format 'nm' needs nm=(N, M)")
        bits = nnz * math.ceil(math.log2(nm[1]))
    else:
        raise ValueError(f"weight format {kind!r} is unknown")
    return vals, bits / 8.0


def gemm_traffic(hw, gemm: Gemm, table: FoldTable, *, dataflow: str, issued_macs: float,
                 gated_macs: float, weight_bytes: float, output_elems: float) -> dict[str, tuple[float, float]]:
    """{level name: (read bytes, write bytes)} of one GEMM (all groups and repeats).

    weight_bytes: stored bytes (values + metadata) of the sparse/weight operand; output_elems: elements
    actually produced (nnz for a sampled weight gradient).
    """
    vb = hw.value_bytes
    geom = Geometry.of(hw)
    R, C, P = geom.rows, geom.cols, geom.macs_per_pe
    m, n, k, g = gemm.m, gemm.n, gemm.k, gemm.groups * gemm.repeats
    levels = hw.memory
    out: dict[str, tuple[float, float]] = {lv.name: (0.0, 0.0) for lv in levels}
    if len(levels) >= 3:
        out[levels[0].name] = (vb * (2.0 * issued_macs + gated_macs), vb * issued_macs)
    ls = table.stream_sum
    folds = float(table.mult.sum())
    # ratio of stored bytes to dense bytes of the "B" operand: compressed weights stream as such
    if gemm.pass_name == "backward_weight":
        b_dense = float(gemm.b_elems * vb)
        b_stored, b_ratio = b_dense, 1.0
    else:
        b_dense = float(n * k * g * vb)
        b_stored = weight_bytes
        b_ratio = weight_bytes / b_dense if b_dense else 1.0
    o_bytes = float(output_elems * vb)
    kfolds = _cdiv(k, R * P)
    if dataflow == "ws":
        psum_w = vb * C * ls
        glb_r = b_stored + vb * R * P * ls + max(psum_w - o_bytes, 0.0)
        glb_w = psum_w
        reuse = {"a": _cdiv(n, C), "b": m}
    elif dataflow == "os":
        glb_r = vb * P * ls * (R + C * b_ratio)
        glb_w = vb * R * C * folds
        reuse = {"a": _cdiv(n, C), "b": _cdiv(m, R)}
        kfolds = 1
    else:
        psum_w = vb * C * ls
        glb_r = vb * m * k * g + vb * R * P * ls * b_ratio + max(psum_w - o_bytes, 0.0)
        glb_w = psum_w
        reuse = {"a": n, "b": _cdiv(m, C)}
    if len(levels) >= 2:
        out[levels[-2].name] = (glb_r, glb_w)
        share = levels[-2].size_bytes / 3.0
    else:
        share = 0.0
    a_bytes = float(gemm.a_elems * vb)
    # operand b in DRAM: stored weights, or the layer input for dW
    b_bytes = b_stored if gemm.pass_name != "backward_weight" else float(gemm.b_elems * vb)
    dram_r = _blocked_reads(a_bytes, b_bytes, share, reuse["a"], reuse["b"])
    if o_bytes <= share or kfolds <= 1:
        dram_w = o_bytes
    else:
        dram_w = o_bytes * kfolds
        dram_r += o_bytes * (kfolds - 1)
    out[levels[-1].name] = (dram_r, dram_w)
    return out


def _blocked_reads(a: float, b: float, share: float, reuse_a: int, reuse_b: int) -> float:
    """DRAM read bytes of two operands through a buffer share: each once when both fit; otherwise the
    cheaper blocking: keep blocks of one operand (ceil(size/share) blocks) and re-read the other once
    per block, but never more often than its reuse count in the dataflow."""
    if a <= share and b <= share:
        return a + b
    if share <= 0:
        return a * reuse_a + b * reuse_b
    hold_a = a + b * min(reuse_b, math.ceil(a / share))
    hold_b = b + a * min(reuse_a, math.ceil(b / share))
    return min(hold_a, hold_b)


def traffic_cycles(hw, traffic: dict[str, tuple[float, float]]) -> float:
    """Cycles the busiest memory level needs for this traffic (separate read and write ports)."""
    worst = 0.0
    for lv in hw.memory:
        r, w = traffic[lv.name]
        worst = max(worst, r / lv.read_bw_bytes_per_cycle, w / lv.write_bw_bytes_per_cycle)
    return worst


def roofline_cycles(hw, table: FoldTable, traffic: dict[str, tuple[float, float]]) -> tuple[float, float, float]:
    """(cycles, compute-only cycles, folds): per fold, max(compute, traffic of the busiest level / its
    bandwidth), with each level's traffic spread evenly over the folds."""
    return table.totals(traffic_cycles(hw, traffic))


def traffic_energy_pj(hw, traffic: dict[str, tuple[float, float]]) -> dict[str, float]:
    """{level name: pJ} = bytes moved x energy per byte of the level."""
    from simulator.energy import level_pj_per_byte

    return {lv.name: (traffic[lv.name][0] + traffic[lv.name][1]) * level_pj_per_byte(lv) for lv in hw.memory}

