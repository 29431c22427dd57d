"""The trainer: one run of sparse training that writes metrics, checkpoints and the simulator's trace.

`train(TrainConfig(...))` fills a run directory:
  metrics.csv     step, loss, lr, is_update, skipped, then eval_loss / eval_accuracy / eval_bits_per_byte
                  on evaluation steps (after every `eval_every` steps and at the end)
  checkpoint.pt   every `checkpoint_every` steps, at the end and on Ctrl-C (rigl_hw.checkpoint contract)
  trace/          rigl_hw.trace format: layer specs, initial masks, the real masks at every update, the
                  per-step log; rewritten at every checkpoint so it always matches checkpoint.pt
One step (the masking.py lifecycle): forward, loss, backward (dense gradient); at update steps
method.update(...) and the trace records the new masks; mask_grads_() unless the method trains on dense
gradients (SNFS); gradient clipping; optimizer.step(); apply_masks_(). A non-finite loss skips the
optimizer step with a warning (update steps still run the method, which leaves such layers unchanged).
Operand sparsity (trace format v2): every `operand_every` steps, and at the first step of every mask
snapshot (sampled bitmaps), rigl_hw.operand_stats hooks that one step to count the nonzeros of every
conv/linear layer's input activations and output gradients; other steps carry no hooks.

Divergence: after `MAX_CONSECUTIVE_SKIPS` (10) non-finite steps in a row, or when the weights are not
finite at a checkpoint, the run stops with `TrainingDiverged` (one line, exit 2) and writes nothing:
the last good checkpoint, metrics.csv and trace stay as they were. A periodic checkpoint that falls
on a non-finite step waits for the next finite one, so no checkpoint is taken mid-divergence.

Files: a new run is built in a temp directory next to RUN_DIR (`.RUN_DIR.<pid>.<random>.tmp`) that is
renamed to RUN_DIR at its first checkpoint, so RUN_DIR is a complete run or absent; a failure before
removes the temp directory, and the temp leftovers of a killed run are removed on the next start.
A Ctrl-C while a checkpoint is being written is held until the write has finished.

Resume (`train(config, resume=True)`) restores model, masks, optimizer, method, RNG and data-stream
state from checkpoint.pt and rebuilds the trace writer from trace/ (replaying its updates), so the run
continues bit-identically. Under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP over gloo, every
rank draws the same global batch and keeps its slice, the gradient all-reduce happens before top-k so
every rank computes the same masks (checked at each update), and rank 0 alone writes files.
"""

from __future__ import annotations

import inspect
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import FILENAME as CHECKPOINT_FILE
from .checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .atomic import make_temp_dir, publish_dir, remove_stale_temps
from .data import BatchStream, Dataset, eval_batches, load_dataset
from .errors import ResourceLimitError, TrainingDiverged, retarget
from .train_config import TrainConfig, TrainConfigError, make_optimizer, method_config  # noqa: F401 (re-exported)
from .train_files import METRIC_FIELDS, MetricsCSV, rebuild_trace_writer, trace_meta  # noqa: F401 (re-exported)

# Settings that may differ when resuming (they do not change what is computed).
RESUME_MUTABLE = ("progress", "eval_every", "checkpoint_every", "num_threads", "out", "eval_max_samples",
                  "operand_every", "operand_samples",    # operand recording only changes what the trace holds
                  "device")
# Settings added after version-1 checkpoints were first written: absent there means their default.
_NEW_SETTINGS = ("input_shape", "bf16")
MAX_CONSECUTIVE_SKIPS = 10    # non-finite steps in a row after which a run counts as diverged
MAX_TRAIN_WEIGHTS = 2**30     # sparsifiable weights of a model trained here (4 GiB of fp32 weights)
RUN_FILES = {CHECKPOINT_FILE, "metrics.csv", "trace"}   # what a run directory holds


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int
    total_steps: int
    interrupted: bool
    last_loss: float
    eval: dict[str, float]
    skipped_steps: int
    nonzeros: dict[str, int]
    masks: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    rank: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    @property
    def trace_dir(self) -> Path:
        return self.run_dir / "trace"


# ------------------------------------------------------------------------------------------- pieces
def loss_of(data: Dataset, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if data.task == "lm":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return F.cross_entropy(logits, y)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset, max_samples: int = 0, device=None) -> dict[str, float]:
    """Mean test loss and accuracy (per byte for language models, plus bits per byte), in float32."""
    was = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for x, y in eval_batches(data, 256, max_samples):
        if device is not None:
            x, y = x.to(device), y.to(device)
        logits = model(x).float()
        logits = logits.reshape(-1, logits.shape[-1])
        yy = y.reshape(-1)
        total_loss += float(F.cross_entropy(logits, yy, reduction="sum"))
        correct += int((logits.argmax(-1) == yy).sum())
        count += yy.numel()
    model.train(was)
    out = {"eval_loss": total_loss / count, "eval_accuracy": correct / count}
    if data.task == "lm":
        out["eval_bits_per_byte"] = out["eval_loss"] / math.log(2.0)
    return out


def train_step(model, loss_fn, x, y, optimizer, method, masking, step, grad_clip=0.0, ddp=None, bf16=False):
    """One optimizer step; returns (loss, is_update, skipped). See the module docstring for the order.
    bf16: forward and loss under torch.autocast(bfloat16) on x's device; gradients land in fp32 weights."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
        loss = loss_fn(model(x), y)
    loss.backward()
    loss = loss.detach()
    if ddp is not None:   # all ranks agree whether to skip (a rank-local NaN would split them); log the global loss
        t = torch.stack([(~torch.isfinite(loss)).to(torch.float64), loss.to(torch.float64)])
        ddp.all_reduce(t)
        finite, loss = bool(t[0] == 0), (t[1] / ddp.get_world_size()).to(torch.float32)
    else:
        finite = bool(torch.isfinite(loss))
    is_update = masking is not None and method.is_update_step(step)
    if is_update:
        method.update(step, masking, optimizer)
    if not finite:
        warnings.warn(f"non-finite loss {float(loss):.4g} at step {step}; skipping its optimizer step",
                      RuntimeWarning, stacklevel=2)
        optimizer.zero_grad(set_to_none=True)
        return loss.item(), is_update, True
    if masking is not None and method.masks_gradients:   # after update(): grads of new masks
        masking.mask_grads_()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if masking is not None:
        masking.apply_masks_()
    return loss.item(), is_update, False


def _mask_digest(masking) -> torch.Tensor:
    """Per layer: (count, sum of active flat indices) in float64 — equal masks give equal digests."""
    rows = []
    for n in masking.names:
        idx = torch.nonzero(masking.mask(n).reshape(-1)).reshape(-1).to(torch.float64)
        rows.append(torch.stack([torch.tensor(float(idx.numel()), dtype=torch.float64, device=idx.device), idx.sum()]))
    return torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.float64)


def _check_ranks_agree(dist, masking, step: int) -> None:
    d = _mask_digest(masking)
    gathered = [torch.empty_like(d) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, d)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP ranks computed different masks at step {step}; gradients were not all-reduced")


class _Interrupt:
    """SIGINT handler: the first Ctrl-C finishes the current step, then checkpoints; a second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.saving = False          # a checkpoint is being written: a second Ctrl-C waits for it
        self.abort = False
        self._old = None

    def __enter__(self) -> "_Interrupt":
        if hasattr(signal, "SIGINT") and _is_main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            if self.saving:
                self.abort = True
                return
            raise KeyboardInterrupt
        self.requested = True

    def after_save(self) -> None:
        if self.abort:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _init_distributed(backend: str = "gloo"):
    """(torch.distributed or None, rank, world size, whether this call created the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None, 0, 1, False
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend)
        created = True
    return dist, dist.get_rank(), dist.get_world_size(), created


def train(config: TrainConfig, *, resume: bool = False, stop_at: int | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Run (or with resume=True continue) the training run `config` describes; see the module docstring.

    stop_at: stop after that many steps as if interrupted (checkpoint written; tests use it).
    on_step: called with the number of steps done after each step (rank 0 and others alike).
    """
    from .device import ddp_backend, resolve_device

    device_kind = resolve_device(config.device)
    dist, rank, world, created = _init_distributed(ddp_backend(device_kind))
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    finished = False
    try:
        result = _train(config, resume, stop_at, on_step, dist, rank, world, device_kind)
        finished = True
        return result
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        if created:
            if finished:
                dist.barrier()    # ranks leave together: rank 0's last writes can outlast the others' loops,
                                  # and a rank tearing gloo down while a peer is still connected can abort
            dist.destroy_process_group()


def _train(config, resume, stop_at, on_step, dist, rank, world, device_kind="cpu") -> TrainResult:
    import random

    from .layers import trace_layer_specs
    from .methods import make_method
    from .device import torch_device
    from .trace import TraceWriter
    from .user_model import build_run_model

    t0 = time.perf_counter()
    run_dir = Path(config.out)
    ckpt = None
    if resume:
        now = config.to_dict()
        ckpt = load_checkpoint(run_dir, config=now, ignore=RESUME_MUTABLE + ("data_dir",) + _NEW_SETTINGS)
        for k in _NEW_SETTINGS:         # absent in older checkpoints: compare against the default
            was = ckpt["config"].get(k, TrainConfig.__dataclass_fields__[k].default)
            if was != now[k]:
                raise CheckpointError(f"checkpoint in {run_dir} was trained with {k}={was!r}, this run has "
                                      f"{now[k]!r}; resume with the run's own settings or start a new run directory")
        if ckpt["model"].get("name") != config.model:
            raise CheckpointError(f"checkpoint in {run_dir} is for model {ckpt['model'].get('name')!r} but its "
                                  f"settings say {config.model!r}; it is corrupt: start a new run directory")
    elif (run_dir / CHECKPOINT_FILE).exists():
        raise TrainConfigError(f"{run_dir} already holds a checkpoint; pass --resume {run_dir} to continue it "
                               "or choose another --out")
    elif run_dir.exists() and (not run_dir.is_dir() or any(p.name not in RUN_FILES and not p.name.startswith(".")
                                                           for p in run_dir.iterdir())):
        raise TrainConfigError(f"--out {run_dir} exists and is not a run directory (it holds other files); "
                               "choose a new or empty directory")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, config.model, seed=config.seed, data_dir=config.data_dir,
                        seq_len=config.seq_len, corpus_bytes=config.corpus_bytes, input_shape=config.input_shape)
    num_classes = data.num_classes
    mcfg = method_config(config)
    width = config.width
    if config.method == "small_dense":   # the narrow dense model with the sparse model's parameter count
        from .zoo import model_specs

        method = make_method(mcfg, config.model, model_specs(config.model, config.width, num_classes))
        width = float(method.width(num_classes))
    from .zoo import MODEL_NAMES, model_specs

    if config.model in MODEL_NAMES:      # size check on the meta device before any weight is allocated
        n_weights = sum(s.n_params for s in model_specs(config.model, width, num_classes))
        if n_weights > MAX_TRAIN_WEIGHTS:
            raise ResourceLimitError(f"{config.model} at width {width:g} has {n_weights:.3g} weights, over the "
                                     f"training limit {MAX_TRAIN_WEIGHTS:.3g}; use a smaller --width")
    torch.manual_seed(config.seed)
    model = build_run_model(config.model, width, num_classes)
    specs = trace_layer_specs(model, data.x_train[:2])
    if config.method != "small_dense":
        method = make_method(mcfg, config.model, specs)
    snip_x, snip_y = BatchStream(data, config.batch_size, config.seed + 3_000_017).next()   # global batch
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(config.seed + 2_000_003),
                                lambda: loss_of(data, model(snip_x), snip_y))
    device = torch_device(device_kind)
    model.to(device)                    # masks are buffers: they move with the model
    optimizer = make_optimizer(config, model.parameters())
    stream = BatchStream(data, config.batch_size, config.seed + 1_000_003, rank, world)
    sched = config.update_schedule()
    lr_at = config.lr_at()
    total = config.total_steps
    start = 0
    current_masks = (masking.masks_numpy() if masking is not None
                     else {s.name: np.ones(s.weight_shape, dtype=bool) for s in specs})
    meta = trace_meta(config, width, sched)
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer"])
            method.load_state_dict(ckpt["method"])
            stream.load_state_dict(ckpt["rng"]["data"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"checkpoint in {run_dir} does not fit this run ({msg}); start a new run directory") from None
        restore_rng(ckpt["rng"])
        start = int(ckpt["step"])
        if masking is not None:
            current_masks = masking.masks_numpy()
    writer = metrics = None
    work = {"dir": run_dir, "temp": None}     # where files go now: a temp directory until the first checkpoint
    if rank == 0:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(run_dir.parent)                     # leftovers of a killed run
        if ckpt is not None:
            for d in (run_dir, run_dir / "trace"):
                remove_stale_temps(d)
            writer = rebuild_trace_writer(run_dir / "trace", specs, meta, start, current_masks)
        else:
            work["dir"] = work["temp"] = make_temp_dir(run_dir)
            writer = TraceWriter(work["dir"] / "trace", specs, current_masks, meta)
        metrics = MetricsCSV(work["dir"] / "metrics.csv", start)
    recorder = _operand_recorder(config, model, specs, writer, world)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers (masks, BN statistics) are not re-broadcast each forward: masks agree because every
        # rank computes them from the same all-reduced gradients (checked at each update), not by copy.
        key = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else "broadcast_buffers")
        net = DistributedDataParallel(model, **{key: False},
                                      **({"device_ids": [device.index]} if device.type == "cuda" else {}))

    def save(step: int) -> None:
        bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:                          # every rank stops; nothing is written, the last good checkpoint stays
            raise TrainingDiverged(
                f"training diverged: weights of {bad[0]} are not finite at step {step}; nothing was written"
                f"{_kept(run_dir)}; lower --lr (now {config.lr:g}) or set --grad-clip")
        if rank != 0:
            return
        writer.close()                  # trace first: on resume it must reach at least the checkpoint's step
        metrics.flush()
        save_checkpoint(work["dir"] / CHECKPOINT_FILE, {
            "model": {"name": config.model, "width": width, "num_classes": num_classes,
                      **({"input_shape": list(config.input_shape)} if config.input_shape else {})},
            **({"preprocessing": data.info["preprocessing"]} if "preprocessing" in data.info else {}),
            "model_state": model.state_dict(), "step": step, "optimizer": optimizer.state_dict(),
            "method": method.state_dict(),
            "schedule": {"lr_schedule": config.lr_schedule, "lr_now": lr_at(min(step, total - 1)),
                         "update": asdict(sched), "total_steps": total},
            "rng": capture_rng(stream.state_dict()), "config": config.to_dict()})
        if work["temp"] is not None:     # the first checkpoint: the run directory appears, complete
            publish_dir(work["temp"], run_dir)
            work["dir"], work["temp"] = run_dir, None
            writer.out_dir, metrics.path = run_dir / "trace", run_dir / "metrics.csv"

    loss_fn = lambda logits, y: loss_of(data, logits, y)  # noqa: E731
    last_loss, skipped, result_eval, interrupted, streak = float("nan"), 0, {}, False, 0
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, disable=not (config.progress and rank == 0 and sys.stderr.isatty()),
               file=sys.stderr, dynamic_ncols=True, desc=f"{config.method} {config.model}")
    step = start
    due = False                              # a periodic checkpoint is due (held while steps are non-finite)
    try:
        with _Interrupt() as intr:
            while step < total:
                lr = lr_at(step)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                x, y = stream.next()
                x, y = x.to(device), y.to(device)
                counting, operands = _start_operands(recorder, writer, step, config.operand_every), None
                try:
                    loss, is_update, skip = train_step(net, loss_fn, x, y, optimizer, method, masking, step,
                                                       config.grad_clip, dist, config.bf16)
                finally:
                    if counting:
                        operands = recorder.stop()
                if operands is not None:   # before add_update: bitmaps belong to the snapshot this step used
                    writer.add_operands(step, operands.counts)
                    if operands.packed is not None:
                        writer.add_operand_bitmaps(step, operands.packed)
                if is_update and dist is not None:
                    _check_ranks_agree(dist, masking, step)
                if writer is not None:
                    if is_update:
                        writer.add_update(step, masking.masks_numpy())
                    writer.log_step(step, loss, lr, is_update)
                row = {"step": step, "loss": loss, "lr": lr, "is_update": int(is_update), "skipped": int(skip)}
                last_loss, skipped, step = loss, skipped + int(skip), step + 1
                streak = streak + 1 if skip else 0
                if streak >= MAX_CONSECUTIVE_SKIPS:
                    raise TrainingDiverged(
                        f"training diverged: the loss was not finite for {streak} steps in a row (steps "
                        f"{step - streak}-{step - 1}; the limit is {MAX_CONSECUTIVE_SKIPS}){_kept(run_dir)}; "
                        f"lower --lr (now {config.lr:g}) or set --grad-clip")
                if rank == 0 and (step == total or (config.eval_every and step % config.eval_every == 0)):
                    result_eval = evaluate(model, data, config.eval_max_samples, device)
                    row.update(result_eval)
                    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{result_eval['eval_accuracy']:.3f}")
                if metrics is not None:
                    metrics.write(row)
                bar.update(1)
                if on_step is not None:
                    on_step(step)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                    due = True
                if due and streak == 0 and step < total:   # never checkpoint in the middle of non-finite steps
                    due = False
                    intr.saving = True
                    save(step)
                    intr.saving = False
                    intr.after_save()
                stop = torch.tensor(float(intr.requested or (stop_at is not None and step >= stop_at)),
                                    device=device if dist is not None and device.type == "cuda" else None)
                if dist is not None:
                    dist.all_reduce(stop, op=dist.ReduceOp.MAX)
                if bool(stop > 0) and step < total:
                    interrupted = True
                    break
            if step > start or not (run_dir / CHECKPOINT_FILE).exists():
                intr.saving = True
                save(step)
                intr.saving = False
                intr.after_save()
    except OSError as e:                 # name files at their place in RUN_DIR, not in the temp directory
        err = retarget(e, work["temp"], run_dir) if work["temp"] is not None else e
        if err is e:
            raise
        raise err from None
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
        if work["temp"] is not None:     # failed before the first checkpoint: no half-made run directory
            import shutil

            shutil.rmtree(work["temp"], ignore_errors=True)
    if rank == 0 and not result_eval and not interrupted:
        result_eval = evaluate(model, data, config.eval_max_samples, device)
    return TrainResult(run_dir=run_dir, steps_done=step, total_steps=total, interrupted=interrupted,
                       last_loss=last_loss, eval=result_eval, skipped_steps=skipped,
                       nonzeros={n: int(m.sum()) for n, m in current_masks.items()} if masking is None
                       else masking.nonzeros(),
                       masks=masking.masks_numpy() if masking is not None else {},
                       seconds=time.perf_counter() - t0, rank=rank)


def _operand_recorder(config, model, specs, writer, world):
    """The operand-sparsity recorder of rank 0 (None when off or on other ranks); declares it to the trace."""
    if writer is None or not config.operand_every:
        return None
    from .operand_stats import OperandRecorder

    samples = min(config.operand_samples, config.batch_size // world)
    if writer.operands.bitmaps:       # resumed: a trace keeps one bitmap size (the one it started with)
        samples = writer.operands.samples
    recorder = OperandRecorder(model, specs, samples)
    writer.set_operand_recording(recorder.samples, config.operand_every)
    return recorder


def _start_operands(recorder, writer, step: int, every: int) -> bool:
    """Hook the coming step if it is counted (every `every` steps) or opens a mask snapshot (bitmaps)."""
    if recorder is None:
        return False
    bitmaps = writer.wants_operand_bitmaps(step)
    if not (bitmaps or step % every == 0):
        return False
    recorder.start(bitmaps)
    return True


def _kept(run_dir: Path) -> str:
    """The clause of a divergence message saying which checkpoint survives."""
    if (run_dir / CHECKPOINT_FILE).exists():
        return f"; the last good checkpoint in {run_dir} is kept"
    return "; no checkpoint had been written yet (--checkpoint-every N keeps one)"


def main(argv: list[str] | None = None) -> int:
    """`python -m rigl_hw.train ...` (and under torchrun): the arguments of `rigl-hw train`."""
    from .cli.train import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    from rigl_hw.cli.train import main as _main

    sys.exit(_main())
