"""`rigl-hw train` (and `python -m rigl_hw.train`, also under torchrun): arguments -> TrainConfig -> train().

Every option defaults to None here so that `--resume RUN_DIR` can tell what the user set: a resumed run
takes its settings from the checkpoint, and an explicitly given option that would change the
computation is refused (one line, exit 2). Options left out on a new run get TrainConfig's defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from ._choices import DATASETS, DECAY_SCHEDULES, DEVICES, DISTRIBUTIONS, LR_SCHEDULES, METHODS, OPTIMIZERS
from ._common import EXIT_INTERRUPTED, add_alias, add_json, print_json, say, standalone_main

# option -> (TrainConfig field, type, help); closed sets get `choices` from _CHOICES
_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--model", "model", str, "zoo model: mlp, small_cnn, char_gru, wide_resnet_22_2, ... (default mlp), or "
                              "package.module:factory (a callable returning an nn.Module; needs --input-shape)"),
    ("--dataset", "dataset", str, "offline data set (default digits; cifar10 needs --data-dir)"),
    ("--method", "method", str, "sparse training method (default rigl)"),
    ("--distribution", "distribution", str, "per-layer sparsity distribution (default erk)"),
    ("--sparsity", "sparsity", float, "overall sparsity S in [0, 1) (default 0.9)"),
    ("--steps", "steps", int, "optimizer steps of the 1x run (default 1000)"),
    ("--batch", "batch_size", int, "global batch size, samples per step, split across DDP ranks (default 64)"),
    ("--lr", "lr", float, "base learning rate (default 0.1)"),
    ("--optimizer", "optimizer", str, "optimizer (default sgd, with --momentum)"),
    ("--momentum", "momentum", float, "SGD momentum (default 0.9)"),
    ("--weight-decay", "weight_decay", float, "weight decay (default 5e-4)"),
    ("--grad-clip", "grad_clip", float, "max global gradient norm, 0 = off (default 0)"),
    ("--delta-t", "delta_t", int, "ΔT, steps between mask updates (default 100)"),
    ("--alpha", "alpha", float, "α, fraction of each layer's nonzeros changed at the first mask update, in (0, 1] "
                                "(default 0.3)"),
    ("--t-end", "t_end", int, "T_end, last update step of the 1x run (default 3/4 of --steps)"),
    ("--decay", "decay", str, "how the update fraction decays from α to 0 at T_end (default cosine)"),
    ("--multiplier", "multiplier", float, "train M x longer: scales steps, LR anchors and T_end (default 1)"),
    ("--lr-schedule", "lr_schedule", str, "cosine (to 0) | step (x0.1 at 50%% and 75%%) | constant (default cosine)"),
    ("--eval-every", "eval_every", int, "evaluate every N steps, 0 = at the end only (default 0)"),
    ("--checkpoint-every", "checkpoint_every", int, "checkpoint every N steps, 0 = at the end only (default 0)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--width", "width", float, "width multiplier of a zoo model (default 1.0)"),
    ("--seq-len", "seq_len", int, "sequence length for byte-level data (default 64)"),
    ("--data-dir", "data_dir", str, "folder with the CIFAR-10 binary files (cifar10 only)"),
    ("--grow-chunk-elements", "grow_chunk_elements", int, "chunked top-k with chunks of M entries (default: "
                                                          "exact top-k)"),
    ("--num-threads", "num_threads", int, "torch CPU threads (default: torch's)"),
    ("--eval-max-samples", "eval_max_samples", int, "evaluate on the first N test samples (default all)"),
    ("--operand-every", "operand_every", int, "log activation/gradient nonzeros every N steps, 0 = off (default 20)"),
    ("--operand-samples", "operand_samples", int, "samples per operand bitmap, one per mask snapshot (default 2)"),
)
_CHOICES = {"dataset": DATASETS, "method": METHODS, "distribution": DISTRIBUTIONS, "optimizer": OPTIMIZERS,
            "decay": DECAY_SCHEDULES, "lr_schedule": LR_SCHEDULES}
_ALIASES = {"--batch": "--batch-size"}         # the older spelling, still accepted (hidden from --help)


def _shape_list(text: str) -> list[int]:
    from ..user_model import UserModelError, parse_input_shape

    try:
        return list(parse_input_shape(text))
    except UserModelError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `rigl-hw train` options to `parser` (all default to None; see the module docstring)."""
    for flag, dest, typ, help_ in _OPTIONS:
        action = parser.add_argument(flag, dest=dest, type=typ, default=None, choices=_CHOICES.get(dest), help=help_,
                                     metavar=None if dest in _CHOICES else flag[2:].replace("-", "_").upper())
        if flag in _ALIASES:
            add_alias(parser, _ALIASES[flag], action)
    parser.add_argument("--input-shape", dest="input_shape", type=_shape_list, default=None, metavar="C,H,W|F",
                        help="per-sample input shape (no batch dimension) of a package.module:factory model, "
                             "C,H,W for images or F for features")
    parser.add_argument("--device", dest="device", choices=DEVICES, default=None,
                        help="auto (cuda when torch.cuda.is_available(), default), cpu or cuda; DDP uses nccl on "
                             "CUDA and gloo on CPU")
    parser.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                        help="bfloat16 autocast for forward and loss (weights and masks stay fp32)")
    parser.add_argument("--out", default=None, metavar="RUN_DIR",
                        help="output run directory (created: metrics.csv, checkpoint.pt, trace/)")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR exactly where its checkpoint left off")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (it is also off when stderr is not a terminal)")
    add_json(parser)
    return parser


def config_from_args(args: argparse.Namespace):
    """(TrainConfig, resume?) from parsed arguments; a resumed run's settings come from its checkpoint."""
    from ..checkpoint import CheckpointError, config_differences, load_checkpoint
    from ..train import RESUME_MUTABLE, TrainConfig, TrainConfigError

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if args.resume is None:
        if args.out is None:
            raise TrainConfigError("--out RUN_DIR is required (or --resume RUN_DIR to continue a run)")
        return TrainConfig.from_dict(given), False
    if args.out is not None and args.out != args.resume:
        raise TrainConfigError(f"--out {args.out} differs from --resume {args.resume}; a resumed run writes into "
                               "its own directory: drop --out")
    stored = load_checkpoint(args.resume)["config"]
    changed = config_differences({k: stored.get(k) for k in given}, given, RESUME_MUTABLE + ("data_dir",))
    if changed:
        raise CheckpointError(f"--resume {args.resume}: the run was trained with other settings "
                              f"({'; '.join(changed[:4])}); drop those options to continue it")
    merged = {**stored, **given, "out": args.resume}
    return TrainConfig.from_dict(merged), True


def run_train(args: argparse.Namespace) -> int:
    """Run `rigl-hw train`; 0 when done, 130 when interrupted (a checkpoint was written). --json: the run's
    summary as one JSON object on stdout (rank 0 only), the messages stay on stderr."""
    from ..train import train

    import warnings

    from ..atomic import refuse_self_overwrite

    config, resume = config_from_args(args)
    refuse_self_overwrite({"--out": config.out}, [config.data_dir], directories=True)
    with warnings.catch_warnings(record=True) as caught:   # shown once, summarised, after a run that finished
        warnings.simplefilter("always")
        result = train(config, resume=resume)
    seen: set[str] = set()
    for w in caught:
        key = str(w.message).split(" at step ")[0]
        if key not in seen and len(seen) < 3:
            seen.add(key)
            n = sum(str(c.message).startswith(key) for c in caught)
            say(f"rigl-hw: warning: {w.message}{f' ({n} times)' if n > 1 else ''}")
    if result.rank != 0:            # under DDP rank 0 reports for all
        return EXIT_INTERRUPTED if result.interrupted else 0
    if getattr(args, "json", False):
        print_json(train_summary(config, result))
    if result.interrupted:
        say(f"rigl-hw: interrupted at step {result.steps_done}/{result.total_steps}; checkpoint written. "
            f"Continue with: rigl-hw train --resume {result.run_dir}")
        return EXIT_INTERRUPTED
    ev = ", ".join(f"{k}={v:.4f}" for k, v in result.eval.items())
    say(f"trained {config.method} {config.model} for {result.steps_done} steps in {result.seconds:.1f} s: "
        f"{ev}; run dir {result.run_dir}")
    return 0


def train_summary(config, result) -> dict:
    """`rigl-hw train --json`: settings that define the run and what it ended with (seconds of wall time)."""
    nnz = {k: int(v) for k, v in result.nonzeros.items()}
    return {"run_dir": str(result.run_dir), "model": config.model, "dataset": config.dataset,
            "method": config.method, "distribution": config.distribution, "sparsity": config.sparsity,
            "batch": config.batch_size, "device": config.device, "steps_done": int(result.steps_done),
            "total_steps": int(result.total_steps), "interrupted": bool(result.interrupted),
            "seconds": float(result.seconds), "eval": {k: float(v) for k, v in result.eval.items()},
            "last_loss": float(result.last_loss), "skipped_steps": int(result.skipped_steps),
            "nonzeros": sum(nnz.values()), "nonzeros_per_layer": nnz,
            "checkpoint": str(result.checkpoint), "trace": str(Path(result.run_dir) / "trace")}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a sparse model (RigL, SET, SNFS, static, ...) and write its trace",
                       description="Sparse training on offline data sets. Writes RUN_DIR/metrics.csv, "
                                   "checkpoint.pt and trace/ (the simulator's input). Ctrl-C writes a checkpoint; "
                                   "--resume RUN_DIR continues exactly. Multi-process: "
                                   "torchrun --nproc_per_node 2 -m rigl_hw.train ...")
    add_train_arguments(p)
    p.set_defaults(func=run_train)
    return p


run = run_train


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m rigl_hw.train`): same options, same one-line errors, exit 2."""
    return standalone_main("python -m rigl_hw.train", "Sparse training (RigL and baselines); see `rigl-hw train`.",
                           add_train_arguments, run_train, argv)
