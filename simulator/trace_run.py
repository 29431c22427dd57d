"""Simulate a whole training trace on a hardware spec: the `rigl-hw simulate` job.

Reads a trace directory (rigl_hw.trace, numpy-only), streams its mask snapshots one at a time into
`simulator.engine.simulate_run`, and summarises the run: totals (cycles, seconds, joules), the mean
normal and update step, and the per-layer, per-pass cost of a normal step with the initial masks.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TypeVar

from rigl_hw.atomic import atomic_path
from rigl_hw.trace import Trace, read_trace
from simulator.mapped import MappedModel
from simulator.engine import RunResult, StepResult, compare_modes, simulate_run, simulate_step
from simulator.hardware import HardwareSpec, load_hardware

T = TypeVar("T")
SIM_MODES = ("real", "statistical")
CLI_MODES = SIM_MODES + ("compare",)


@dataclass
class TraceSimulation:
    trace: Trace
    hardware: HardwareSpec
    mode: str
    run: RunResult
    first_step: StepResult
    final_masks: list | None = None     # packed masks of the last snapshot (mode "real"), spec order
    mapping: str = "per-layer"          # engine mapping mode (per-layer | per-snapshot | fixed)
    objective: str = "latency"          # the mapper's objective (unused by mapping "fixed")
    searches: int = 0                   # mapper searches run (cache misses)

    @property
    def masks_label(self) -> str:
        """"real" or "synthetic" (the trace's masks), or "statistical" (no masks used)."""
        return "statistical" if self.mode == "statistical" else self.trace.masks_kind

    def summary(self) -> dict[str, Any]:
        t = self.first_step.table
        layers = [{"name": r["layer"], "pass": r["pass"], "cycles": float(r["cycles"]), "macs": float(r["macs"]),
                   "effectual_macs": float(r["effectual_macs"]), "energy_j": float(r["energy_pj"]) * 1e-12}
                  for r in t.to_dict("records")]
        return {
            "hardware": self.hardware.name,
            "trace": str(self.trace.path),
            "model": self.trace.meta.get("model"),
            "method": self.trace.method,
            "batch": self.trace.batch_size,
            "steps": self.trace.total_steps,
            "mask_updates": self.trace.n_updates,
            "masks": self.masks_label,
            "mapping": self.mapping,
            "objective": self.objective if self.mapping != "fixed" else None,
            "mapper_searches": self.searches,
            "totals": {"cycles": self.run.cycles, "time_s": self.run.time_s, "energy_j": self.run.energy_j},
            "per_step": {"normal": self.run.per_step("normal"), "update": self.run.per_step("update")},
            "layers": layers,
        }


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead of the consumer (same order, same
    values; an exception in the producer is raised here). The synthetic-mask replay and np.packbits
    release the GIL, so replaying the next snapshot overlaps simulating the current one."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(("error", e))

    worker = threading.Thread(target=produce, name="trace-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def simulate_trace(trace_dir: str | os.PathLike, hardware: str | os.PathLike | HardwareSpec,
                   mode: str = "real", progress: bool = False, mapping: str = "per-layer",
                   objective: str = "latency") -> TraceSimulation:
    """Simulate every interval of the trace with its masks (mode "real") or with random masks of the
    same densities in expectation (mode "statistical"), plus every mask-update step. progress: a tqdm
    bar over the mask snapshots on stderr. mapping / objective: as in `engine.simulate_run`."""
    if mode not in SIM_MODES:
        raise ValueError(f"--mode must be one of {SIM_MODES}, got {mode!r}")
    trace = read_trace(trace_dir)
    hw = hardware if isinstance(hardware, HardwareSpec) else load_hardware(hardware)
    specs = trace.specs
    snapshots = trace.iter_snapshots()
    first = next(snapshots)
    init_masks = {s.name: p for s, p in zip(specs, first[2])}
    dense_dw = bool(trace.meta.get("dense_weight_grad_every_step", False))
    last: list = [first[2]]
    if mode == "real":
        def all_snapshots():
            yield first[2]
            for _, _, packed in snapshots:
                last[0] = packed
                yield packed
        snaps: Any = prefetched(all_snapshots())  # replay the next masks while this interval simulates
        if progress:
            from tqdm import tqdm

            snaps = tqdm(snaps, total=trace.n_updates + 1, desc="simulate", unit="snapshot", leave=False)
        densities = None
    else:
        nnz = trace.initial_nonzeros()
        densities = {s.name: float(z) / s.n_params for s, z in zip(specs, nnz)}
        snaps = [{} for _ in range(trace.n_updates + 1)]
    model = None if mapping == "fixed" else MappedModel(hw, trace.batch_size, mapping, objective, mode)
    run = simulate_run(specs, trace.batch_size, trace.total_steps, trace.update_steps, snaps, hw,
                       dense_weight_grad_every_step=dense_dw, grown_per_update=trace.grown, mode=mode,
                       densities=densities, mapping=mapping, objective=objective, model=model)
    step = simulate_step(specs, init_masks if mode == "real" else None, hw, trace.batch_size,
                         dense_weight_grad=dense_dw, mode=mode, densities=densities, mapping=mapping,
                         objective=objective, model=model)
    return TraceSimulation(trace, hw, mode, run, step, last[0] if mode == "real" else None, mapping, objective,
                           model.searches if model is not None else 0)


def compare_trace(trace_dir: str | os.PathLike, hardware: str | os.PathLike | HardwareSpec,
                  mapping: str = "per-layer", objective: str = "latency") -> dict[str, Any]:
    """The trace simulated with its masks and statistically (random masks of the same densities):
    whole-run totals of both, their ratios (real / statistical), and `layers`, the per-layer, per-pass
    cycles of one normal step with the final masks in both modes (`engine.compare_modes`)."""
    hw = hardware if isinstance(hardware, HardwareSpec) else load_hardware(hardware)
    real = simulate_trace(trace_dir, hw, mode="real", mapping=mapping, objective=objective)
    stat = simulate_trace(trace_dir, hw, mode="statistical", mapping=mapping, objective=objective)
    trace = real.trace
    layers = compare_modes(trace.specs, {s.name: p for s, p in zip(trace.specs, real.final_masks)}, hw,
                           trace.batch_size, mapping=mapping, objective=objective)
    tot = {m: {"cycles": r.run.cycles, "time_s": r.run.time_s, "energy_j": r.run.energy_j}
           for m, r in (("real", real), ("statistical", stat))}
    return {"hardware": hw.name, "trace": str(trace.path), "model": trace.meta.get("model"),
            "method": trace.method, "masks": real.masks_label, "mapping": mapping,
            "objective": objective if mapping != "fixed" else None, "steps": trace.total_steps,
            "mask_updates": trace.n_updates, "totals": tot,
            "ratio": {k: tot["real"][k] / tot["statistical"][k] if tot["statistical"][k] else float("nan")
                      for k in tot["real"]},
            "layers": layers}


def write_csv_atomic(df, path: str | os.PathLike) -> Path:
    """Write a DataFrame to CSV via a temp file in the same directory and a rename."""
    out = Path(path)
    if out.parent and not out.parent.exists():
        raise FileNotFoundError(2, "output directory does not exist", str(out.parent))
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return out
