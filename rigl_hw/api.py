"""The notebook API: one call per CLI command, each returning a dataclass (`to_pandas()` for its table).

    from rigl_hw import api
    api.flops(model, distribution, sparsity, ...)   -> FlopsResult        (rigl-hw flops)
    api.train(out=..., **settings)                  -> TrainRun           (rigl-hw train)
    api.read_trace(path)                            -> TraceInfo          (a trace directory)
    api.simulate(trace_or_onnx, hardware, ...)      -> SimulationResult   (rigl-hw simulate)
    api.map_layer(layer, hardware, ...)             -> MapResult          (rigl-hw map --layer)
    api.map_model(model, hardware, ...)             -> MapResult          (rigl-hw map --model)
    api.export(checkpoint_or_model, out, ...)       -> ExportResult       (rigl-hw export)

Argument names are the CLI's option names with dashes as underscores (`--delta-t` -> `delta_t`,
`--mapping-file` -> `mapping_file`; `--pass` is `pass_name`, a Python keyword otherwise). `train`
takes TrainConfig fields: `--batch` is `batch_size` there (`batch` is accepted too). `model` is a zoo name, "package.module:factory" (with
`input_shape`) or an ONNX path wherever the CLI accepts one. Bad input raises the same one-line
errors (ValueError subclasses) the CLI prints. Importing this module does not import torch; `train`
and `export` do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["flops", "train", "read_trace", "simulate", "map_layer", "map_model", "export",
           "FlopsResult", "TrainRun", "TraceInfo", "SimulationResult", "MapResult", "ExportResult"]


# ------------------------------------------------------------------------------------------- flops
@dataclass(frozen=True)
class FlopsResult:
    """`rigl-hw flops`: parameters and FLOPs per sample (train_flops: per run). raw: the CLI's JSON."""

    model: str
    distribution: str
    sparsity: float
    params_dense: int
    params_sparse: int
    inference_flops_dense: float
    inference_flops_sparse: float
    train_flops: dict[str, Any] | None
    layers: list[dict[str, Any]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    @property
    def inference_ratio(self) -> float:
        return self.inference_flops_sparse / self.inference_flops_dense

    def to_pandas(self):
        """One row per layer: name, kind, shape, params, sparsity, inference_flops_dense, inference_flops."""
        import pandas as pd

        return pd.DataFrame(self.layers)


def flops(model: str, distribution: str | None = None, sparsity: float | None = None, *, width: float = 1.0,
          power: float = 1.0, method: str | None = None, delta_t: int | None = None, multiplier: float = 1.0,
          t_end: int | None = None, steps: int | None = None, batch: int | None = None,
          input_shape: Sequence[int] | str | None = None) -> FlopsResult:
    """Parameters and FLOPs of `model` under a distribution (an ONNX model may omit both: its own zeros)."""
    from .flops_report import flops_report
    from .user_model import parse_input_shape

    r = flops_report(model=model, distribution=distribution, sparsity=sparsity, width=width, power=power,
                     method=method, delta_t=delta_t, multiplier=multiplier, t_end=t_end, steps=steps, batch=batch,
                     input_shape=parse_input_shape(input_shape))
    return FlopsResult(model=r["model"], distribution=r["distribution"], sparsity=float(r["sparsity"]),
                       params_dense=int(r["params"]["dense"]), params_sparse=int(r["params"]["sparse"]),
                       inference_flops_dense=float(r["inference_flops"]["dense"]),
                       inference_flops_sparse=float(r["inference_flops"]["sparse"]),
                       train_flops=r.get("train_flops"), layers=r["layers"], raw=r)


# ------------------------------------------------------------------------------------------- train
@dataclass(frozen=True)
class TrainRun:
    """`rigl-hw train`: the run directory and what the run ended with (eval metrics, nonzeros per layer)."""

    run_dir: Path
    steps_done: int
    total_steps: int
    interrupted: bool
    eval: dict[str, float]
    nonzeros: dict[str, int]
    seconds: float

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def trace_dir(self) -> Path:
        return self.run_dir / "trace"

    def to_pandas(self):
        """metrics.csv: one row per step (loss, lr, is_update, skipped; eval columns on eval steps)."""
        import pandas as pd

        return pd.read_csv(self.run_dir / "metrics.csv")


def train(out: str | os.PathLike, *, resume: bool = False, **settings: Any) -> TrainRun:
    """Train one run into `out`; settings are TrainConfig fields (the CLI's options: model, dataset, method,
    distribution, sparsity, steps, batch_size (or batch), delta_t, device, bf16, input_shape, ...). resume=True
    continues the run in `out` (settings then default to the checkpoint's)."""
    from .train import train as _train
    from .train_config import TrainConfig

    if "batch" in settings:                     # the CLI's spelling (`--batch`) of TrainConfig.batch_size
        if "batch_size" in settings:
            raise ValueError("give batch or batch_size, not both (they are the same setting)")
        settings["batch_size"] = settings.pop("batch")
    if resume:
        from .checkpoint import load_checkpoint

        stored = load_checkpoint(out)["config"]
        config = TrainConfig.from_dict({**stored, **settings, "out": str(out)})
    else:
        config = TrainConfig.from_dict({"progress": False, **settings, "out": str(out)})
    r = _train(config, resume=resume)
    return TrainRun(run_dir=Path(r.run_dir), steps_done=r.steps_done, total_steps=r.total_steps,
                    interrupted=r.interrupted, eval=dict(r.eval), nonzeros=dict(r.nonzeros), seconds=r.seconds)


# ------------------------------------------------------------------------------------------- traces
@dataclass(frozen=True)
class TraceInfo:
    """A trace directory: run settings, layer specs and mask-update schedule. `trace`: the full reader
    object (rigl_hw.trace.Trace: snapshots, counts)."""

    path: Path
    model: str
    method: str
    masks: str
    batch_size: int
    total_steps: int
    update_steps: list[int]
    trace: Any = field(repr=False)

    @property
    def specs(self):
        return list(self.trace.specs)

    def to_pandas(self):
        """One row per layer: name, kind, weight shape, params, initial nonzeros and density."""
        import pandas as pd

        nnz = self.trace.initial_nonzeros()
        return pd.DataFrame([{"name": s.name, "kind": s.kind, "shape": "x".join(map(str, s.weight_shape)),
                              "params": s.n_params, "initial_nonzeros": int(z), "density": int(z) / s.n_params}
                             for s, z in zip(self.trace.specs, nnz)])

    def steps(self):
        """steps.csv: one row per logged step (step, loss, lr, is_update)."""
        import pandas as pd

        return pd.read_csv(self.path / "steps.csv")


def read_trace(path: str | os.PathLike) -> TraceInfo:
    """Read a trace directory written by `train` or `trace synth`."""
    from .trace import read_trace as _read

    t = _read(path)
    return TraceInfo(path=Path(t.path), model=str(t.meta.get("model")), method=t.method, masks=t.masks_kind,
                     batch_size=t.batch_size, total_steps=t.total_steps,
                     update_steps=[int(v) for v in t.update_steps], trace=t)


# ------------------------------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class SimulationResult:
    """`rigl-hw simulate`: totals in cycles, seconds and joules (whole run, or one inference batch),
    `summary` (the CLI's JSON) and `table` (per layer and pass; per snapshot for a run)."""

    hardware: str
    mode: str
    cycles: float
    time_s: float
    energy_j: float
    summary: dict[str, Any] = field(repr=False)
    table: Any = field(repr=False)

    def to_pandas(self):
        return self.table


def simulate(source: str | os.PathLike, hardware: str | os.PathLike, *, mode: str = "real",
             inference: bool = False, batch: int | None = None,
             input_shape: Sequence[int] | str | None = None) -> SimulationResult:
    """Simulate a trace directory's training run on `hardware` (a preset name or a TOML file), or with
    inference=True (always for FILE.onnx) one forward pass of `batch` samples."""
    from .user_model import parse_input_shape

    if inference or str(source).lower().endswith(".onnx"):
        from simulator.inference import simulate_inference

        r = simulate_inference(source, hardware, batch=batch, input_shape=parse_input_shape(input_shape))
        return SimulationResult(hardware=r.hardware, mode="inference", cycles=r.cycles, time_s=r.time_s,
                                energy_j=r.energy_j, summary=r.summary(), table=r.table)
    if batch is not None:
        raise ValueError("batch sets the inference batch; pass inference=True (a trace keeps its own batch)")
    from simulator.trace_run import simulate_trace

    s = simulate_trace(source, hardware, mode=mode)
    return SimulationResult(hardware=s.hardware.name, mode=mode, cycles=s.run.cycles, time_s=s.run.time_s,
                            energy_j=s.run.energy_j, summary=s.summary(), table=s.run.table)


# ------------------------------------------------------------------------------------------- map
@dataclass(frozen=True)
class MapResult:
    """`rigl-hw map`: the best (or the given) mapping of every (layer, pass). Totals over them: cycles,
    seconds at the hardware's clock, joules; `layers` the CLI's JSON rows (loop nest in "mapping"),
    `report` the simulator's MapReport (Evaluation objects; `format()` prints what the CLI prints)."""

    hardware: str
    objective: str
    cycles: float
    time_s: float
    energy_j: float
    mappings_evaluated: int
    seconds: float                 # wall time of the search
    layers: list[dict[str, Any]] = field(repr=False)
    report: Any = field(repr=False)

    def to_pandas(self):
        """One row per (layer, pass): name, pass, cycles, compute_cycles, time_s, energy_pj, macs,
        effectual_macs, utilization, bottleneck, and read/write bytes and energy (pJ) per memory level."""
        import pandas as pd

        rows = []
        for r in self.layers:
            row = {k: v for k, v in r.items() if k not in ("levels", "mapping")}
            row["time_s"] = r["cycles"] / self.report.clock_hz
            for level, v in r["levels"].items():
                row.update({f"{level}_{k}": x for k, x in v.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def format(self) -> str:
        """The Timeloop-style loop nest and per-level table of every (layer, pass), as `rigl-hw map` prints."""
        from simulator.map_cli import format_evaluation

        return "\n\n".join(format_evaluation(name, ev) for name, ev in self.report.evaluations)


def _map(**request: Any) -> MapResult:
    from simulator.map_cli import MapRequest, map_request

    rep = map_request(MapRequest(**request))
    t = rep.totals
    return MapResult(hardware=rep.hardware, objective=rep.objective, cycles=float(t["cycles"]),
                     time_s=float(t["cycles"]) / rep.clock_hz, energy_j=float(t["energy_pj"]) * 1e-12,
                     mappings_evaluated=rep.mappings_evaluated, seconds=rep.seconds, layers=rep.rows, report=rep)


def map_layer(layer: str, hardware: str | os.PathLike, *, pass_name: str = "forward", batch: int | None = None,
              objective: str = "latency", weight_density: float | None = None,
              weight_mask: str | os.PathLike | None = None, mapping_file: str | os.PathLike | None = None,
              input_density: float | None = None, input_mask: str | os.PathLike | None = None,
              grad_density: float | None = None, grad_mask: str | os.PathLike | None = None) -> MapResult:
    """Map one layer, "conv N=16 C=64 M=64 R=3 S=3 P=56 Q=56 stride=1" or "gemm M=512 N=512 K=512", on
    `hardware` (preset name or TOML); pass_name: forward | backward_data | backward_weight | all;
    weight_mask: a .npy file of the weight's shape; mapping_file: evaluate that mapping, no search;
    input_* / grad_*: activation and output-gradient zeros (densities, or .npy masks (N, C, H, W) /
    (N, M, P, Q)), used where the hardware exploits them."""
    s = lambda x: None if x is None else str(x)  # noqa: E731
    return _map(hardware=str(hardware), layer=layer, pass_name=pass_name, batch=batch, objective=objective,
                weight_density=weight_density, weight_mask=s(weight_mask), mapping_file=s(mapping_file),
                input_density=input_density, input_mask=s(input_mask), grad_density=grad_density,
                grad_mask=s(grad_mask))


def map_model(model: str, hardware: str | os.PathLike, *, distribution: str | None = None,
              sparsity: float | None = None, width: float = 1.0, input_shape: Sequence[int] | str | None = None,
              pass_name: str = "forward", batch: int | None = None, objective: str = "latency",
              weight_density: float | None = None, input_density: float | None = None,
              grad_density: float | None = None) -> MapResult:
    """Map every sparsifiable layer of `model` (zoo name, "package.module:factory" with input_shape, or
    FILE.onnx) at `batch` samples (default 1); distribution + sparsity give per-layer weight densities,
    weight_density one density for all layers (default: dense)."""
    return _map(hardware=str(hardware), model=model, distribution=distribution, sparsity=sparsity, width=width,
                input_shape=input_shape, pass_name=pass_name, batch=batch, objective=objective,
                weight_density=weight_density, input_density=input_density, grad_density=grad_density)


# ------------------------------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportResult:
    """`rigl-hw export`: the written file, its size and per-weight sparsity. report: export.ExportReport."""

    path: Path
    format: str
    file_bytes: int
    report: Any = field(repr=False)

    def to_pandas(self):
        """One row per exported weight: onnx_name, param, shape, numel, nnz, density, stored_as, mask_nnz."""
        import pandas as pd

        return pd.DataFrame([{"onnx_name": r.onnx_name, "param": r.param, "shape": "x".join(map(str, r.shape)),
                              "numel": r.numel, "nnz": r.nnz, "density": r.density, "stored_as": r.stored_as,
                              "mask_nnz": r.mask_nnz} for r in self.report.layers])


def export(checkpoint_or_model: Any, out: str | os.PathLike, *, format: str = "dense", verify: bool = False,
           **options: Any) -> ExportResult:
    """Export a checkpoint (file or run directory) or an nn.Module (with example_input=...; PyTorch prune /
    ao masks are baked) to ONNX; options are export_onnx's (opset, keep_batchnorm, input_shape, ...)."""
    from export.onnx_export import export_onnx

    r = export_onnx(checkpoint_or_model, out, format=format, verify=verify, **options)
    return ExportResult(path=Path(r.path), format=r.format, file_bytes=r.file_bytes, report=r)
