"""What a sparse model costs per inference on a hardware spec (`rigl-hw simulate FILE.onnx --inference`).

The forward rows of `engine.simulate_step` (one training step's forward pass is exactly one
inference of the batch): per layer cycles, MACs, bytes per memory level and pJ, for a batch of
`batch` samples, with the weight masks of the model (an ONNX file's exact zeros or sparse
initializers, via rigl_hw.onnx_workload; or a trace's final masks). Totals are per batch and per
sample. Units: cycles and pJ in the table; seconds and joules in the totals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from rigl_hw.layers import LayerSpec
from simulator.engine import StepResult, simulate_step
from simulator.hardware import HardwareSpec, load_hardware


@dataclass
class InferenceResult:
    """One forward pass of `batch` samples. table: one row per layer (the engine's forward rows)."""

    source: str
    model: str
    hardware: str
    batch: int
    table: pd.DataFrame
    clock_hz: float
    params: int
    nonzeros: int

    # cycles, time_s, energy_j: a StepResult's (the forward rows of one step)
    cycles = StepResult.cycles
    time_s = StepResult.time_s
    energy_j = StepResult.energy_j

    def summary(self) -> dict[str, Any]:
        layers = [{"name": r["layer"], "cycles": float(r["cycles"]), "macs": float(r["macs"]),
                   "dense_macs": float(r["dense_macs"]), "energy_j": float(r["energy_pj"]) * 1e-12}
                  for r in self.table.to_dict("records")]
        return {"source": self.source, "model": self.model, "hardware": self.hardware, "batch": self.batch,
                "mode": "inference", "params": self.params, "nonzeros": self.nonzeros,
                "density": self.nonzeros / self.params if self.params else float("nan"),
                "per_batch": {"cycles": self.cycles, "time_s": self.time_s, "energy_j": self.energy_j},
                "per_sample": {"cycles": self.cycles / self.batch, "time_s": self.time_s / self.batch,
                               "energy_j": self.energy_j / self.batch},
                "layers": layers}


def simulate_forward(specs: Sequence[LayerSpec], packed_masks: Mapping[str, np.ndarray], hw: HardwareSpec,
                     batch: int, *, source: str = "", model: str = "") -> InferenceResult:
    """Forward pass of `specs` at `batch` with packed masks (layers without a mask run dense)."""
    if int(batch) <= 0:
        raise ValueError(f"--batch must be a positive number of samples, got {batch}")
    step = simulate_step(specs, packed_masks, hw, int(batch))
    fwd = step.table[step.table["pass"] == "forward"].reset_index(drop=True)
    nnz = 0
    for s in specs:
        p = packed_masks.get(s.name)
        nnz += s.n_params if p is None else int(np.unpackbits(p, count=s.n_params).sum())
    return InferenceResult(source=source, model=model, hardware=hw.name, batch=int(batch), table=fwd,
                           clock_hz=hw.pe_array.clock_hz, params=sum(s.n_params for s in specs), nonzeros=nnz)


def simulate_inference(source: str | os.PathLike, hardware: str | os.PathLike | HardwareSpec, batch: int | None = None,
                       input_shape: Sequence[int] | None = None) -> InferenceResult:
    """One inference of an ONNX file's model (its own masks), or of a trace directory's final masks
    (batch defaults to 1 for ONNX, to the trace's batch for a trace)."""
    hw = hardware if isinstance(hardware, HardwareSpec) else load_hardware(hardware)
    src = str(source)
    if src.lower().endswith(".onnx"):
        from rigl_hw.onnx_workload import onnx_workload

        w = onnx_workload(src, input_shape)
        name = w.metadata.get("rigl_hw.model") or os.path.basename(src)
        return simulate_forward(w.specs, w.packed_masks(), hw, batch or 1, source=src, model=str(name))
    from rigl_hw.trace import read_trace

    trace = read_trace(src)
    last = None
    for _, _, packed in trace.iter_snapshots():
        last = packed
    masks = {s.name: p for s, p in zip(trace.specs, last)}
    return simulate_forward(trace.specs, masks, hw, batch or trace.batch_size, source=src,
                            model=str(trace.meta.get("model")))
