"""Simulate a whole training trace on a hardware spec: the `rigl-hw simulate` job.

Reads a trace directory (rigl_hw.trace, numpy-only), streams its mask snapshots one at a time into
`simulator.engine.simulate_run`, and summarises the run: totals (cycles, seconds, joules), the mean
normal and update step, and the per-layer, per-pass cost of a normal step with the initial masks.
Memory-stall share = cycles beyond compute / all cycles (`stall_share`), per run and per layer.
The dense baseline (`dense_baseline_run`) is the same trace's layers, batch and step count simulated
with all-dense masks and no mask updates on the same hardware; `compare_hardware` runs one trace on
several specs and `comparison_summary` puts them in one object with ratios to each one's dense run.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np

from rigl_hw.atomic import atomic_path
from rigl_hw.trace import Trace, read_trace
from simulator.mapped import MappedModel
from simulator.engine import RunResult, StepResult, compare_modes, simulate_run, simulate_step
from simulator.hardware import HardwareSpec, load_hardware

T = TypeVar("T")
SIM_MODES = ("real", "statistical")
CLI_MODES = SIM_MODES + ("compare",)
BASELINES = (None, "dense")


@dataclass
class TraceSimulation:
    trace: Trace
    hardware: HardwareSpec
    mode: str
    run: RunResult
    first_step: StepResult
    final_masks: list | None = None     # packed masks of the last snapshot (mode "real"), spec order
    dense: RunResult | None = None      # the dense baseline on the same hardware (baseline="dense")
    label: str | None = None            # how the user named the hardware (preset or path)
    mapping: str = "per-layer"          # engine mapping mode (per-layer | per-snapshot | fixed)
    objective: str = "latency"          # the mapper's objective (unused by mapping "fixed")
    searches: int = 0                   # mapper searches run (cache misses)
    _model: Any = None                  # the MappedModel (None for mapping "fixed")

    def operands_exploited(self) -> dict[str, list[str]]:
        """Per pass, the operands whose zeros the simulation used: weights always where the hardware
        skips or gates them, activations / gradients where the trace records them (format v2) and the
        hardware exploits them (the mapping-driven model; "fixed" uses weights only)."""
        from simulator.nest import PASSES

        model = self._model
        out: dict[str, set] = {p: set() for p in PASSES}
        for s in self.trace.specs:
            for p in PASSES:
                if model is not None:
                    out[p] |= set(model.exploited(s, p))
                elif self.hardware.skips or self.hardware.sparsity.mode == "gate":
                    out[p].add("weights")
        return {p: sorted(v) for p, v in out.items()}

    @property
    def masks_label(self) -> str:
        """"real" or "synthetic" (the trace's masks), or "statistical" (no masks used)."""
        return "statistical" if self.mode == "statistical" else self.trace.masks_kind

    def summary(self) -> dict[str, Any]:
        t = self.first_step.table
        layers = [{"name": r["layer"], "pass": r["pass"], "cycles": float(r["cycles"]), "macs": float(r["macs"]),
                   "effectual_macs": float(r["effectual_macs"]), "energy_j": float(r["energy_pj"]) * 1e-12,
                   "compute_cycles": float(r["compute_cycles"]),
                   "stall_share": _share(float(r["cycles"]), float(r["compute_cycles"]))}
                  for r in t.to_dict("records")]
        out = {
            "hardware": self.hardware.name,
            "hardware_source": self.label or self.hardware.source_path,
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
            "operands_exploited": self.operands_exploited(),
            "totals": {"cycles": self.run.cycles, "time_s": self.run.time_s, "energy_j": self.run.energy_j},
            "per_step": {"normal": self.run.per_step("normal"), "update": self.run.per_step("update")},
            "stall_share": stall_share(self.run.table),
            "layers": layers,
        }
        if self.dense is not None:
            d = self.dense
            out["baseline"] = {
                "kind": "dense",
                "totals": {"cycles": d.cycles, "time_s": d.time_s, "energy_j": d.energy_j},
                "stall_share": stall_share(d.table),
                "ratio": {"time": _ratio(self.run.time_s, d.time_s), "energy": _ratio(self.run.energy_j, d.energy_j)},
            }
        return out


def _share(cycles: float, compute: float) -> float:
    return (cycles - compute) / cycles if cycles > 0 else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def stall_share(table) -> float:
    """Memory-stall share of a step or run table: (cycles - compute_cycles) / cycles, each row weighted
    by its `steps` where the table has that column (a RunResult.table)."""
    w = table["steps"] if "steps" in table.columns else 1.0
    return _share(float((table["cycles"] * w).sum()), float((table["compute_cycles"] * w).sum()))


def dense_baseline_run(trace: Trace, hw: HardwareSpec, *, mapping: str = "per-layer", objective: str = "latency",
                       model: MappedModel | None = None) -> RunResult:
    """The trace's run done densely on `hw`: every layer without a mask (density 1), the same batch and
    number of steps, no mask-update steps (`simulate_run` with one empty snapshot), priced with the same
    mapping mode and objective as the run it is compared with."""
    return simulate_run(trace.specs, trace.batch_size, trace.total_steps, np.array([0]), [{}], hw,
                        mapping=mapping, objective=objective, model=model)


class PrefetchError(RuntimeError):
    """The prefetch thread stopped without handing over a result or an error (e.g. out of memory)."""

    user_error = True


def prefetched(items: Iterator[T], depth: int = 2, poll_s: float = 0.5) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead of the consumer (same order, same
    values; an exception in the producer is raised here). The synthetic-mask replay and np.packbits
    release the GIL, so replaying the next snapshot overlaps simulating the current one.

    The thread imports nothing: callers import what `items` needs first (an import on a thread under a
    tight memory limit could hang). If the thread dies without reporting (it could not even allocate
    its error), the consumer notices within `poll_s` seconds and raises PrefetchError instead of waiting."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

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
            failure.append(e)       # kept even if the queue hand-over below fails
            put(("error", e))

    worker = threading.Thread(target=produce, name="trace-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            try:
                kind, value = q.get(timeout=poll_s)
            except queue.Empty:
                if worker.is_alive():
                    continue
                if q.empty():
                    if failure:
                        raise failure[0]
                    raise PrefetchError("the trace-replay thread stopped without a result (out of memory?); "
                                        "raise the memory limit or simulate a smaller trace")
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def run_fanned(items: Iterator[T], workers: Sequence[Any], depth: int = 2) -> list[Any]:
    """Run each `workers[i](iterator)` in its own thread, every iterator yielding the same `items` (read
    once, here, up to `depth` ahead of the slowest worker); return their results in order. The first
    error (a worker's or the producer's) is raised after every thread has stopped."""
    n = len(workers)
    end = object()
    qs: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in range(n)]
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    lock = threading.Lock()

    def feed(q: queue.Queue) -> Iterator[T]:
        while True:
            v = q.get()
            if v is end:
                return
            yield v

    def work(i: int) -> None:
        try:
            results[i] = workers[i](feed(qs[i]))
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), name=f"trace-fan-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()

    def put(i: int, v: Any) -> None:
        while threads[i].is_alive():
            try:
                qs[i].put(v, timeout=0.05)
                return
            except queue.Full:
                continue

    try:
        for item in items:
            if errors:
                break
            for i in range(n):
                put(i, item)
    except BaseException as e:  # noqa: BLE001 - the producer's error, raised below
        with lock:
            errors.insert(0, e)
    finally:
        for i in range(n):
            put(i, end)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return results


def operand_densities(trace: Trace) -> dict[str, dict[str, float]]:
    """layer -> {"I": input-activation density, "O": output-gradient density} pooled over the whole run
    (trace format v2, rigl_hw.trace_operands); {} for a version-1 trace or one without operand counts."""
    ops = getattr(trace, "operands", None)
    if ops is None or not ops.has_densities:
        return {}
    d_in, d_g = ops.mean_density("input"), ops.mean_density("grad")
    out = {}
    for i, s in enumerate(trace.specs):
        row = {sp: float(v[i]) for sp, v in (("I", d_in), ("O", d_g)) if np.isfinite(v[i])}
        if row:
            out[s.name] = row
    return out


def simulate_trace(trace_dir: str | os.PathLike, hardware: str | os.PathLike | HardwareSpec,
                   mode: str = "real", progress: bool = False, baseline: str | None = None,
                   mapping: str = "per-layer", objective: str = "latency") -> TraceSimulation:
    """Simulate every interval of the trace with its masks (mode "real") or with random masks of the
    same densities in expectation (mode "statistical"), plus every mask-update step. progress: a tqdm
    bar over the mask snapshots on stderr. baseline "dense": also run `dense_baseline_run`.
    mapping / objective: as in `engine.simulate_run`."""
    return compare_hardware(trace_dir, [hardware], mode=mode, baseline=baseline, progress=progress,
                            mapping=mapping, objective=objective)[0]


def compare_hardware(trace_dir: str | os.PathLike, hardware: Sequence[str | os.PathLike | HardwareSpec],
                     mode: str = "real", baseline: str | None = "dense", progress: bool = False,
                     mapping: str = "per-layer", objective: str = "latency") -> list[TraceSimulation]:
    """The trace simulated on each spec (`simulate_trace` for each, with baseline "dense" by default).
    All specs are loaded first, so a bad one fails before any work; with several specs the trace's mask
    snapshots are replayed once and fed to one simulation thread per spec (`run_fanned`). Each spec
    has its own MappedModel (one mapping search per layer and pass, reused by every snapshot and by the
    first-step table); the dense baseline searches its own mappings at density 1."""
    if mode not in SIM_MODES:
        raise ValueError(f"--mode must be one of {SIM_MODES}, got {mode!r}")
    if baseline not in BASELINES:
        raise ValueError(f"--baseline must be one of {[b for b in BASELINES if b]}, got {baseline!r}")
    if not hardware:
        raise ValueError("--hardware: give at least one preset or .toml spec")
    hws = [h if isinstance(h, HardwareSpec) else load_hardware(h) for h in hardware]
    trace = read_trace(trace_dir)
    specs = trace.specs
    snapshots = trace.iter_snapshots()
    first = next(snapshots)
    init_masks = {s.name: p for s, p in zip(specs, first[2])}
    dense_dw = bool(trace.meta.get("dense_weight_grad_every_step", False))
    last: list = [first[2]]
    densities = None
    if mode == "statistical":
        nnz = trace.initial_nonzeros()
        densities = {s.name: float(z) / s.n_params for s, z in zip(specs, nnz)}

    models = {id(hw): None if mapping == "fixed" else MappedModel(hw, trace.batch_size, mapping, objective, mode)
              for hw in hws}
    op_dens = operand_densities(trace)
    for m in models.values():
        if m is not None:
            m.operand_densities = op_dens

    def run_on(hw: HardwareSpec):
        def run(snaps) -> RunResult:
            return simulate_run(specs, trace.batch_size, trace.total_steps, trace.update_steps, snaps, hw,
                                dense_weight_grad_every_step=dense_dw, grown_per_update=trace.grown, mode=mode,
                                densities=densities, mapping=mapping, objective=objective, model=models[id(hw)])
        return run

    if mode == "real":
        if trace.masks_kind == "synthetic" and trace.n_updates:
            import numpy as np

            from rigl_hw.replay_kernel import drop_grow   # import and compile (Numba) here, not on the thread

            drop_grow(np.array([True, False]), np.array([0], dtype=np.int64), 0, 0)
        def all_snapshots():
            yield first[2]
            for _, _, packed in snapshots:
                last[0] = packed
                yield packed
        # one spec: replay the next masks in a second thread while this interval simulates
        snaps: Any = prefetched(all_snapshots()) if len(hws) == 1 else all_snapshots()
        if progress:
            from tqdm import tqdm

            snaps = tqdm(snaps, total=trace.n_updates + 1, desc="simulate", unit="snapshot", leave=False)
        runs = [run_on(hws[0])(snaps)] if len(hws) == 1 else run_fanned(snaps, [run_on(hw) for hw in hws])
    else:
        runs = [run_on(hw)([{} for _ in range(trace.n_updates + 1)]) for hw in hws]
    sims = []
    for h, hw, run in zip(hardware, hws, runs):
        model = models[id(hw)]
        step = simulate_step(specs, init_masks if mode == "real" else None, hw, trace.batch_size,
                             dense_weight_grad=dense_dw, mode=mode, densities=densities, mapping=mapping,
                             objective=objective, model=model)
        # the dense run picks its own mappings (density 1): a per-layer model keeps the sparse run's
        dense = dense_baseline_run(trace, hw, mapping=mapping, objective=objective) if baseline == "dense" else None
        label = None if isinstance(h, HardwareSpec) else str(h)
        sims.append(TraceSimulation(trace, hw, mode, run, step, last[0] if mode == "real" else None, dense, label,
                                    mapping, objective, model.searches if model is not None else 0, model))
    return sims


TRACE_KEYS = ("trace", "model", "method", "batch", "steps", "mask_updates", "masks", "mapping", "objective")


def comparison_summary(sims: Sequence[TraceSimulation]) -> dict[str, Any]:
    """One object for `simulate --json`: the trace's keys and "runs" (one `summary()` per hardware).
    With one hardware the run's own keys are also at the top level (the single-hardware schema)."""
    runs = [s.summary() for s in sims]
    names = [r["hardware"] for r in runs]
    for r in runs:  # a unique label per run: the spec's name, or how it was given when names repeat
        r["label"] = r["hardware"] if names.count(r["hardware"]) == 1 else str(r["hardware_source"])
    if len(runs) == 1:
        return {**runs[0], "runs": runs}
    return {**{k: runs[0][k] for k in TRACE_KEYS}, "runs": runs}


def comparison_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The hardware-comparison table: per run, time (s), energy (J), stall share and, with a dense
    baseline, the dense run's time, energy and stall share and the ratios to it."""
    rows = []
    for r in summary["runs"]:
        row = {"hardware": r["label"], "time_s": r["totals"]["time_s"], "energy_j": r["totals"]["energy_j"],
               "stall_share": r["stall_share"]}
        b = r.get("baseline")
        if b is not None:
            row.update({"dense_time_s": b["totals"]["time_s"], "dense_energy_j": b["totals"]["energy_j"],
                        "time_ratio": b["ratio"]["time"], "energy_ratio": b["ratio"]["energy"],
                        "dense_stall_share": b["stall_share"]})
        rows.append(row)
    return rows


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
