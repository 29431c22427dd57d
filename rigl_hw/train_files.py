"""Files of a run directory besides the checkpoint: metrics.csv and the trace's metadata and resume.

`MetricsCSV` appends one row per step (rank 0 only); `trace_meta` is the trace's meta.json content for
a run; `rebuild_trace_writer` replays the trace on disk up to the resumed step so the resumed run
appends to it exactly as an uninterrupted run would have.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .atomic import atomic_write_text
from .checkpoint import FILENAME as CHECKPOINT_FILE
from .checkpoint import CheckpointError
from .schedules import UpdateSchedule
from .train_config import TrainConfig

METRIC_FIELDS = ("step", "loss", "lr", "is_update", "skipped", "eval_loss", "eval_accuracy", "eval_bits_per_byte")


class MetricsCSV:
    """metrics.csv, rank 0 only. Rows are kept in memory and the whole file is rewritten atomically by
    `flush()` (at every checkpoint), so on disk it always matches checkpoint.pt and is never empty,
    header-only or cut mid-row after a failure. On resume, rows from the resumed step on are dropped."""

    def __init__(self, path: Path, start: int) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if start > 0 and self.path.exists():
            with self.path.open(newline="", encoding="utf-8", errors="replace") as f:
                self.rows = [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit() and int(r["step"]) < start]

    def write(self, row: Mapping[str, Any]) -> None:
        self.rows.append({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})

    def flush(self) -> None:
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())

    def close(self) -> None:
        """Nothing to release; rows after the last checkpoint are not written (they would not match it)."""


def trace_meta(config: TrainConfig, width: float, sched: UpdateSchedule) -> dict[str, Any]:
    return {"model": config.model, "width": width, "batch_size": config.batch_size,
            "total_steps": config.total_steps, "method": config.method,
            "hparams": {"distribution": config.distribution, "sparsity": config.sparsity,
                        "delta_t": sched.delta_t, "alpha": sched.alpha, "t_end": sched.t_end,
                        "decay": sched.decay, "multiplier": config.multiplier,
                        "grow_chunk_elements": config.grow_chunk_elements},
            "seed": config.seed, "dataset": config.dataset, "optimizer": config.optimizer, "lr": config.lr,
            "dense_weight_grad_every_step": config.method == "snfs"}


def rebuild_trace_writer(trace_dir: Path, specs, meta, start: int, current: Mapping[str, np.ndarray]):
    """A TraceWriter holding exactly what the trace on disk recorded before step `start` (resume)."""
    from .trace import TraceError, TraceWriter, read_trace, unpack_mask

    try:
        tr = read_trace(trace_dir)
    except TraceError as e:
        raise CheckpointError(f"cannot resume: the run's trace is unusable ({e}); start a new run directory") from None
    if [(s.name, s.weight_shape) for s in tr.specs] != [(s.name, s.weight_shape) for s in specs]:
        raise CheckpointError(f"cannot resume: {trace_dir} records other layers than this model; start a new run")
    writer, last = None, None
    for u, (_, _, packed) in enumerate(tr.iter_snapshots()):
        masks = {s.name: unpack_mask(p, s.weight_shape) for s, p in zip(specs, packed)}
        if u == 0:
            writer = TraceWriter(trace_dir, specs, masks, meta)
        elif int(tr.update_steps[u - 1]) < start:
            writer.add_update(int(tr.update_steps[u - 1]), masks)
        else:
            break
        last = masks                     # masks after the last replayed update
    if any(not np.array_equal(last[n].reshape(-1), np.asarray(current[n]).reshape(-1)) for n in current):
        raise CheckpointError(f"cannot resume: {trace_dir} and {CHECKPOINT_FILE} disagree on the masks; "
                              "start a new run directory")
    from .trace_operands import log_from_data

    writer.operands = log_from_data(tr.operands, start, len(writer._steps) + 1)   # operand records before start
    with (trace_dir / "steps.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if int(r["step"]) < start:
                writer.log_step(int(r["step"]), float(r["loss"]), float(r["lr"]), bool(int(r["is_update"])))
    return writer
