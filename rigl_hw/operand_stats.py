"""Operand sparsity of one training step, measured with hooks (torch): what trace format v2 records.

`OperandRecorder(model, specs, samples)` watches every conv and linear layer of the specs (GRU matrices
are not watched). `start(bitmaps)` registers, for one step only, a forward hook per layer that counts the
nonzeros of its input on the device (torch.count_nonzero of t.bool(), no host sync) and puts a tensor hook on its
output that does the same for the output gradient dL/dY when backward reaches it; with `bitmaps` the
hooks also keep the nonzero pattern of the first `samples` samples. `stop()` removes every hook and
moves the counts (one stacked tensor) and the bitmaps (one concatenated tensor) to the host in one
transfer each. Steps run without `start()` carry no hooks and cost nothing.

A layer called several times in one step sums its counts over the calls; its bitmap is the first call's
(when that call has the layer's natural shape, `rigl_hw.trace_operands.operand_shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .layers import LayerSpec
from .trace_operands import OPERANDS, operand_shapes


@dataclass
class OperandStep:
    """One step's operand record: counts per layer (spec order) and, if sampled, packed bitmaps per layer."""

    counts: dict[str, list[int]]                     # input_nnz, input_numel, grad_nnz, grad_numel
    packed: dict[str, list[np.ndarray]] | None       # {"input": [...], "grad": [...]}; empty array: none


class OperandRecorder:
    """Counts input-activation and output-gradient nonzeros of the specs' conv/linear layers (see module doc)."""

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], samples: int) -> None:
        if samples <= 0:
            raise ValueError(f"operand samples must be positive, got {samples}")
        self.samples = int(samples)
        self.n_layers = len(specs)
        self._watch: list[tuple[int, nn.Module, tuple[tuple[int, ...], tuple[int, ...]]]] = []
        for i, s in enumerate(specs):
            shapes = operand_shapes(s, self.samples)
            if shapes is None:
                continue
            module = model.get_submodule(s.name)
            self._watch.append((module, self._forward_hook(i, shapes, self._grad_hook(i, shapes[1]))))
        self._handles: list = []
        self._active = False

    # --- per step -------------------------------------------------------------------------------
    def start(self, bitmaps: bool) -> None:
        """Hook the watched layers for the coming forward and backward pass."""
        if self._active:
            raise RuntimeError("OperandRecorder.start() called twice without stop()")
        self._active, self._want_bits = True, bool(bitmaps)
        self._counts: list[torch.Tensor] = []
        self._where: list[int] = []                          # operand * n_layers + layer, per entry of _counts
        self._numel = [0] * (len(OPERANDS) * self.n_layers)
        self._bits: dict[tuple[int, int], torch.Tensor] = {}
        self._handles = [module.register_forward_hook(hook) for module, hook in self._watch]

    def stop(self) -> OperandStep:
        """Remove the hooks and return what the step recorded (host numpy/int values)."""
        if not self._active:
            raise RuntimeError("OperandRecorder.stop() without start()")
        for h in self._handles:
            h.remove()
        self._handles, self._active = [], False
        nnz = [0] * (len(OPERANDS) * self.n_layers)
        if self._counts:
            for j, v in zip(self._where, torch.stack(self._counts).tolist()):   # the one transfer of the counts
                nnz[j] += v
        L = self.n_layers
        counts = {"input_nnz": nnz[:L], "input_numel": self._numel[:L],
                  "grad_nnz": nnz[L:], "grad_numel": self._numel[L:]}
        packed = self._packed_bitmaps() if self._want_bits else None
        self._counts, self._bits = [], {}
        return OperandStep(counts, packed)

    # --- hooks ----------------------------------------------------------------------------------
    def _observe(self, i: int, k: int, t: torch.Tensor, shape: tuple[int, ...]) -> None:
        self._counts.append(torch.count_nonzero(t.bool()))   # on the CPU ~10x faster than on the float tensor
        j = k * self.n_layers + i
        self._where.append(j)
        self._numel[j] += t.numel()
        if self._want_bits and (i, k) not in self._bits and t.dim() == len(shape) \
                and tuple(t.shape[1:]) == shape[1:] and t.shape[0] >= shape[0]:
            self._bits[(i, k)] = t.detach()[: shape[0]] != 0

    def _forward_hook(self, i: int, shapes: tuple[tuple[int, ...], tuple[int, ...]], grad_hook):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor):
                self._observe(i, 0, inputs[0], shapes[0])
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(grad_hook)
        return hook

    def _grad_hook(self, i: int, shape: tuple[int, ...]):
        def hook(grad: torch.Tensor) -> None:
            if self._active:
                self._observe(i, 1, grad, shape)
        return hook

    def _packed_bitmaps(self) -> dict[str, list[np.ndarray]]:
        empty = np.zeros(0, dtype=np.uint8)
        out = {op: [empty] * self.n_layers for op in OPERANDS}
        if not self._bits:
            return out
        keys = sorted(self._bits)
        flat = torch.cat([self._bits[key].reshape(-1) for key in keys]).cpu().numpy()   # one transfer
        offsets = np.cumsum([0] + [self._bits[key].numel() for key in keys])
        for (i, k), a, b in zip(keys, offsets[:-1], offsets[1:]):
            out[OPERANDS[k]][i] = np.packbits(flat[a:b], bitorder="big")
        return out
