"""Assemble the `rigl-hw flops` report: per-layer parameters and FLOPs, totals, training cost.

Pure glue over zoo (layer tables), distributions and flops; returns plain dicts (JSON-ready).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from .distributions import DISTRIBUTIONS, DistributionError
from .flops import (IMAGENET_BATCH, IMAGENET_STEPS, METHODS, NEEDS_DELTA_T, FlopsError, inference_flops,
                    solve_width, training_flops)
from .zoo import MODEL_NAMES, check_model_name, model_allocation, model_specs


MASK_BITS_PER_WORD = 32   # the parameter budget counts 32-bit words: a 1-bit mask per weight is N/32 words


def small_dense_budget(nonzeros: int, dense_params: int) -> int:
    """The Small-Dense parameter budget of a sparse model: its nonzeros plus its bitmask (one bit per
    weight of the dense model, in 32-bit words), i.e. the sparse model's storage in parameters.

    This is the rule of the authors' counting code (rigl `get_stats` over micronet_challenge
    `counting.py`, which counts a sparse layer as nnz values + a 1-bit mask per entry). Against the
    ERK model it gives ResNet-50 widths of 0.337 at 90% (training FLOPs 0.121x at 1x, 0.605x at 5x: the
    paper's 0.12x / 0.60x) and 0.459 at 80% (0.22x); the paper's 80% cells (0.20x / 1.01x) imply a
    width of about 0.445, which no single counting rule reproduces together with the 90% cells
    (docs/training.md, "Small-Dense width")."""
    return int(nonzeros) + -(-int(dense_params) // MASK_BITS_PER_WORD)


def small_dense_width(model: str, target_params: int, num_classes: int | None = None) -> float:
    """Width multiplier whose dense sparsifiable-parameter count is the largest not above target_params
    (pass `small_dense_budget(...)` as the target for the Small-Dense baseline)."""
    return solve_width(lambda w: sum(s.n_params for s in model_specs(model, round(w, 4), num_classes)),
                       target_params, lo=0.01, hi=1.0, tol=1e-4)


def _onnx_allocation(model: str, input_shape) -> tuple[list, Any, float]:
    """Specs, a LayerAllocation of the file's own nonzeros, and its overall sparsity (ONNX, no distribution)."""
    from .distributions import LayerAllocation
    from .onnx_workload import onnx_workload

    w = onnx_workload(model, input_shape)
    specs = list(w.specs)
    nnz = w.nonzeros()
    alloc = LayerAllocation(names=tuple(s.name for s in specs), n_params=tuple(s.n_params for s in specs),
                            sparsity=tuple(1.0 - nnz[s.name] / s.n_params for s in specs),
                            nonzeros=tuple(nnz[s.name] for s in specs), in_budget=tuple(True for _ in specs))
    return specs, alloc, 1.0 - alloc.total_nonzeros / alloc.total_params


def flops_report(model: str, distribution: str | None, sparsity: float | None, width: float = 1.0,
                 power: float = 1.0, method: str | None = None, delta_t: int | None = None,
                 multiplier: float = 1.0, t_end: int | None = None, steps: int | None = None,
                 batch: int | None = None, input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """The report of `rigl-hw flops` (see README for the JSON schema). FLOPs are per sample except
    train_flops, which are per run.

    model: a zoo name, `package.module:factory` (with input_shape) or FILE.onnx. For an ONNX file,
    distribution and sparsity may be None: the file's own nonzeros (exact zeros of its weights) are used.
    """
    from .user_model import is_onnx_model

    check_model_name(model)
    if not width > 0:
        raise FlopsError(f"--width must be > 0, got {width}")
    from_file = is_onnx_model(model) and distribution is None and sparsity is None
    if from_file:
        distribution = "file"
    elif distribution is None or sparsity is None:
        raise FlopsError("--distribution and --sparsity are required (only an ONNX --model may omit both, to use "
                         "the sparsity stored in the file)")
    elif distribution not in DISTRIBUTIONS:
        raise DistributionError(f"unknown distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    if method is not None:
        if method not in METHODS:
            raise FlopsError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if method in NEEDS_DELTA_T and delta_t is None:
            raise FlopsError(f"method {method} needs --delta-t (steps between mask updates), e.g. --delta-t 100")
        if delta_t is not None and delta_t <= 0:
            raise FlopsError(f"--delta-t must be a positive number of steps, got {delta_t}")
        if not multiplier > 0:
            raise FlopsError(f"--multiplier must be > 0, got {multiplier}")
    if method == "small_dense" and model not in MODEL_NAMES:
        raise FlopsError(f"method small_dense needs a zoo model (it rebuilds the model at other widths); "
                         f"{model} is used as given")
    if method == "pruning" and from_file:
        raise FlopsError("method pruning needs --distribution (it re-allocates intermediate sparsities)")
    if from_file:
        specs, alloc, sparsity = _onnx_allocation(model, input_shape)
    else:
        specs, alloc = model_allocation(model, distribution, sparsity, width=width, power=power,
                                        input_shape=input_shape)
    nnz = alloc.as_dict()
    dense_f = inference_flops(specs)
    sparse_f = inference_flops(specs, nnz)
    f_d, f_s = float(dense_f.sum()), float(sparse_f.sum())
    report: dict[str, Any] = {
        "model": model, "width": width, "distribution": distribution, "sparsity": sparsity,
        "params": {"dense": alloc.total_params, "sparse": alloc.total_nonzeros},
        "inference_flops": {"dense": f_d, "sparse": f_s, "ratio": f_s / f_d},
    }
    if method is not None:
        n_steps = IMAGENET_STEPS if steps is None else steps
        n_batch = IMAGENET_BATCH if batch is None else batch
        if n_steps <= 0 or n_batch <= 0:
            raise FlopsError(f"--steps and --batch must be positive, got {n_steps} and {n_batch}")
        f_method = f_s
        extra: dict[str, Any] = {}
        if method == "small_dense":   # the ERK model's budget, as the authors' code (small_dense_budget)
            _, erk = model_allocation(model, "erk", sparsity, width=width, power=power)
            w = small_dense_width(model, small_dense_budget(erk.total_nonzeros, erk.total_params))
            f_method = float(inference_flops(model_specs(model, round(w * width, 4))).sum())
            extra["small_dense_width"] = round(w * width, 4)
        elif method == "dense":
            f_method = f_d

        @lru_cache(maxsize=None)
        def f_at(s: float) -> float:
            if s <= 0:
                return f_d
            sp, al = model_allocation(model, distribution, s, width=width, power=power, input_shape=input_shape)
            return float(inference_flops(sp, al.as_dict()).sum())

        tf = training_flops(method, f_method, f_d, delta_t=delta_t, multiplier=multiplier, steps=n_steps,
                            batch=n_batch, t_end=t_end, f_at_sparsity=f_at, final_sparsity=sparsity)
        report["train_flops"] = {"dense": tf.dense_total, "sparse": tf.total, "ratio": tf.ratio,
                                 "method": method, "multiplier": multiplier, "delta_t": delta_t,
                                 "steps": tf.steps, "batch": n_batch, **extra}
    report["layers"] = [
        {"name": s.name, "kind": s.kind, "shape": list(s.weight_shape), "params": s.n_params,
         "sparsity": 1.0 - nnz[s.name] / s.n_params, "inference_flops_dense": int(fd),
         "inference_flops": int(fs)}
        for s, fd, fs in zip(specs, dense_f, sparse_f)
    ]
    return report


def format_flops_table(report: dict[str, Any]) -> str:
    """Readable per-layer table and totals."""
    lines = [f"{report['model']} (width {report['width']}), {report['distribution']} at sparsity {report['sparsity']}",
             f"{'layer':<28} {'kind':<6} {'shape':<20} {'params':>10} {'sparsity':>8} {'MFLOPs dense':>13} {'MFLOPs':>10}"]
    for r in report["layers"]:
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(f"{r['name']:<28} {r['kind']:<6} {shape:<20} {r['params']:>10,} {r['sparsity']:>8.3f} "
                     f"{r['inference_flops_dense'] / 1e6:>13.2f} {r['inference_flops'] / 1e6:>10.2f}")
    p, f = report["params"], report["inference_flops"]
    lines += ["",
              f"sparsifiable params: dense {p['dense']:,}  sparse {p['sparse']:,}  ({p['sparse'] / p['dense']:.3f}x)",
              f"inference FLOPs per sample: dense {f['dense']:.4g}  sparse {f['sparse']:.4g}  ({f['ratio']:.3f}x)"]
    if "train_flops" in report:
        t = report["train_flops"]
        lines.append(f"training FLOPs per run ({t['method']}, {t['multiplier']}x, {t['steps']} steps x batch {t['batch']}): "
                     f"dense 1x {t['dense']:.4g}  {t['method']} {t['sparse']:.4g}  ({t['ratio']:.3f}x)")
    return "\n".join(lines)
