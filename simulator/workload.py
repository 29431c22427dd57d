"""Lower one training step of a list of LayerSpec at batch B into GEMMs per layer and pass.

A GEMM computes an M x N output with a K-long reduction, `groups` times (independent small GEMMs for
grouped/depthwise convs) and `repeats` times in sequence (the hidden GRU matrix, once per time step).
Its sparsity (the weight mask) sits on one of three places:

  "weight"   forward: the N x K operand is W (row n = output channel, K = C_in/g * kh * kw);
  "weight_t" backward_data: the N x K operand is W^T (N = C_in/g * kh * kw, K = C_out/g), so per-row
             nonzero counts come from the mask's *columns*;
  "output"   backward_weight on a normal step: dW (M = C_out/g rows, N = C_in/g * kh * kw columns) is
             only computed at the mask's active positions (a sampled dense-dense product);
  "none"     dense (backward_weight on RigL update steps, every step for SNFS).

backward_data is lowered in the col2im form dX_col = dY . W (M = B * output positions): its MAC count
equals the forward's for any stride, and the overlap-add of col2im is not counted as MACs. See
docs/simulator.md for why this form was chosen over the transposed convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rigl_hw.layers import LayerSpec

PASSES = ("forward", "backward_data", "backward_weight")


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a pass (dimensions per group; elements are whole-tensor counts over all groups).

    a_elems: unique elements of the streamed input operand (activations or output gradients).
    b_elems: elements of the second operand held in memory (weights, or the layer input for dW).
    o_elems: elements of the output tensor (dense; the engine uses nnz for a sampled dW).
    """

    layer: str
    pass_name: str
    m: int
    n: int
    k: int
    groups: int
    sparse: str
    a_elems: int
    b_elems: int
    o_elems: int
    repeats: int = 1

    @property
    def dense_macs(self) -> int:
        """Multiply-accumulates of the dense GEMM, all groups and repeats."""
        return self.m * self.n * self.k * self.groups * self.repeats


def _positions(spec: LayerSpec) -> tuple[int, int, int]:
    """(output positions per GEMM row block, repeats, input positions) per sample."""
    if spec.kind == "gru" and "weight_hh" in spec.name:
        return 1, spec.out_positions, 1  # recurrence: one GEMM per time step, in sequence
    return spec.out_positions, 1, spec.in_positions


def lower_layer(spec: LayerSpec, batch: int, *, dense_weight_grad: bool) -> list[Gemm]:
    """The three GEMMs (forward, backward_data, backward_weight) of one layer at batch `batch`."""
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    g = spec.groups
    n_g = spec.out_channels // g
    k_g = spec.fan_in
    pos, rep, in_pos = _positions(spec)
    m = batch * pos
    x_elems = batch * spec.in_channels * in_pos * rep
    y_elems = batch * spec.out_channels * pos * rep
    w = spec.n_params
    return [
        Gemm(spec.name, "forward", m, n_g, k_g, g, "weight", x_elems, w, y_elems, rep),
        Gemm(spec.name, "backward_data", m, k_g, n_g, g, "weight_t", y_elems, w, x_elems, rep),
        Gemm(spec.name, "backward_weight", n_g, k_g, m, g, "none" if dense_weight_grad else "output",
             y_elems, x_elems, w, rep),
    ]


def lower_step(specs: Sequence[LayerSpec], batch: int, *, dense_weight_grad: bool = False) -> list[Gemm]:
    """All GEMMs of one training step, layer by layer in forward order, passes in PASSES order."""
    return [gm for s in specs for gm in lower_layer(s, batch, dense_weight_grad=dense_weight_grad)]
