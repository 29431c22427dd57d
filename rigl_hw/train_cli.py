"""`rigl-hw train` (and `python -m rigl_hw.train`, also under torchrun): arguments -> TrainConfig -> train().

Every option defaults to None here so that `--resume RUN_DIR` can tell what the user set: a resumed run
takes its settings from the checkpoint, and an explicitly given option that would change the
computation is refused (one line, exit 2). Options left out on a new run get TrainConfig's defaults.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Sequence

EXIT_INTERRUPTED = 130

# option -> (TrainConfig field, type, help)
_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--model", "model", str, "zoo model: mlp, small_cnn, char_gru, wide_resnet_22_2, ... (default mlp), or "
                              "package.module:factory (a callable returning an nn.Module; needs --input-shape)"),
    ("--dataset", "dataset", str, "digits | synthetic | bytes | cifar10 (default digits)"),
    ("--method", "method", str, "dense, static, snip, set, rigl, snfs, pruning, small_dense (default rigl)"),
    ("--distribution", "distribution", str, "uniform | er | erk (default erk)"),
    ("--sparsity", "sparsity", float, "overall sparsity S in [0, 1) (default 0.9)"),
    ("--steps", "steps", int, "optimizer steps of the 1x run (default 1000)"),
    ("--batch-size", "batch_size", int, "global batch size (default 64)"),
    ("--lr", "lr", float, "base learning rate (default 0.1)"),
    ("--optimizer", "optimizer", str, "sgd | adam | adamw (default sgd)"),
    ("--momentum", "momentum", float, "SGD momentum (default 0.9)"),
    ("--weight-decay", "weight_decay", float, "weight decay (default 5e-4)"),
    ("--grad-clip", "grad_clip", float, "max global gradient norm, 0 = off (default 0)"),
    ("--delta-t", "delta_t", int, "ΔT, steps between mask updates (default 100)"),
    ("--alpha", "alpha", float, "α, initial update fraction in (0, 1] (default 0.3)"),
    ("--t-end", "t_end", int, "T_end, last update step of the 1x run (default 3/4 of --steps)"),
    ("--decay", "decay", str, "cosine | constant | inverse_power (default cosine)"),
    ("--multiplier", "multiplier", float, "train M x longer: scales steps, LR anchors and T_end (default 1)"),
    ("--lr-schedule", "lr_schedule", str, "cosine | step | constant (default cosine)"),
    ("--eval-every", "eval_every", int, "evaluate every N steps, 0 = at the end only (default 0)"),
    ("--checkpoint-every", "checkpoint_every", int, "checkpoint every N steps, 0 = at the end only (default 0)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--width", "width", float, "model width multiplier (default 1)"),
    ("--seq-len", "seq_len", int, "sequence length for byte-level data (default 64)"),
    ("--data-dir", "data_dir", str, "folder with the CIFAR-10 binary files"),
    ("--grow-chunk-elements", "grow_chunk_elements", int, "chunked top-k with chunks of M entries"),
    ("--num-threads", "num_threads", int, "torch CPU threads"),
    ("--eval-max-samples", "eval_max_samples", int, "evaluate on the first N test samples (default all)"),
    ("--operand-every", "operand_every", int, "log activation/gradient nonzeros every N steps, 0 = off (default 20)"),
    ("--operand-samples", "operand_samples", int, "samples per operand bitmap, one per mask snapshot (default 2)"),
)


def _shape_list(text: str) -> list[int]:
    from .user_model import UserModelError, parse_input_shape

    try:
        return list(parse_input_shape(text))
    except UserModelError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `rigl-hw train` options to `parser` (all default to None; see the module docstring)."""
    for flag, dest, typ, help_ in _OPTIONS:
        parser.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    parser.add_argument("--input-shape", dest="input_shape", type=_shape_list, default=None, metavar="C,H,W|F",
                        help="per-sample input shape of a package.module:factory model")
    parser.add_argument("--device", dest="device", choices=("auto", "cpu", "cuda"), default=None,
                        help="auto (cuda when torch.cuda.is_available(), default), cpu or cuda; DDP uses nccl on "
                             "CUDA and gloo on CPU")
    parser.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                        help="bfloat16 autocast for forward and loss (weights and masks stay fp32)")
    parser.add_argument("--out", default=None, help="run directory (metrics.csv, checkpoint.pt, trace/)")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR exactly where its checkpoint left off")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (it is also off when stderr is not a terminal)")
    return parser


def config_from_args(args: argparse.Namespace):
    """(TrainConfig, resume?) from parsed arguments; a resumed run's settings come from its checkpoint."""
    from .checkpoint import CheckpointError, config_differences, load_checkpoint
    from .train import RESUME_MUTABLE, TrainConfig, TrainConfigError

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
    """Run `rigl-hw train`; 0 when done, 130 when interrupted (a checkpoint was written)."""
    from .train import train

    import warnings

    from .atomic import refuse_self_overwrite

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
            print(f"rigl-hw: warning: {w.message}{f' ({n} times)' if n > 1 else ''}", file=sys.stderr)
    if result.rank != 0:            # under DDP rank 0 reports for all
        return EXIT_INTERRUPTED if result.interrupted else 0
    if result.interrupted:
        print(f"rigl-hw: interrupted at step {result.steps_done}/{result.total_steps}; checkpoint written. "
              f"Continue with: rigl-hw train --resume {result.run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    ev = ", ".join(f"{k}={v:.4f}" for k, v in result.eval.items())
    print(f"trained {config.method} {config.model} for {result.steps_done} steps in {result.seconds:.1f} s: "
          f"{ev}; run dir {result.run_dir}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m rigl_hw.train`): same options, same one-line errors, exit 2."""
    from .cli import Parser, run_guarded

    parser = Parser(prog="python -m rigl_hw.train",
                    description="Sparse training (RigL and baselines); see `rigl-hw train`.")
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    return run_guarded(args)


if __name__ == "__main__":
    sys.exit(main())
