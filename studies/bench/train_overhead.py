"""Benchmark of the trainer's sparse overhead, measured side by side in one run on one model.

WRN-22-2 at batch 32 on the CPU, ERK at 90%, SGD momentum, through `rigl_hw.train.train_step` (the
code the trainer runs). Every repeat times, interleaved, a block of dense steps, a block of masked
Static steps, a block of normal (non-update) RigL steps and one RigL update step (drop/grow top-k
on every layer plus the trace recording of the new masks); ratios are of the per-step medians.
  masked Static / dense                           goal <= 1.15x
  RigL amortised at ΔT / Static                   goal <= 1.05x, = (t_update + (ΔT-1) t_rigl) / (ΔT t_static)
  one RigL update step / normal RigL step         (reported)
Normal RigL and Static steps run the same code, so their difference is timing noise; the report also
gives the update's cost alone, 1 + (t_update - t_rigl) / (ΔT t_rigl).

Run: .venv/bin/python studies/bench/train_overhead.py [--repeats 7] [--block 3] [--delta-t 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _setup(method_name: str, model_name: str, batch: int, sparsity: float, delta_t: int, seed: int = 0):
    import torch

    from rigl_hw.layers import trace_layer_specs
    from rigl_hw.methods import MethodConfig, make_method
    from rigl_hw.models import build_model
    from rigl_hw.schedules import UpdateSchedule

    torch.manual_seed(seed)
    model = build_model(model_name)
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(2))
    specs = trace_layer_specs(model, x[:2])
    method = make_method(MethodConfig(method_name, "erk", sparsity, UpdateSchedule(delta_t=delta_t, t_end=10**9)),
                         model_name, specs)
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(3), None)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return model, method, masking, opt, specs, x, y


def run(repeats: int = 7, block: int = 3, delta_t: int = 100, batch: int = 32, sparsity: float = 0.9,
        model_name: str = "wide_resnet_22_2") -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from rigl_hw.trace import TraceWriter
    from rigl_hw.train import train_step

    variants = {name: _setup(name, model_name, batch, sparsity, delta_t) for name in ("dense", "static", "rigl")}
    mk, _, masking, _, specs, _, _ = variants["rigl"]
    writer = TraceWriter("/nonexistent-never-written", specs, masking.masks_numpy(), {})

    def steps(name: str, n: int, step: int) -> float:
        model, method, masking, opt, _, x, y = variants[name]
        t0 = time.perf_counter()
        for _ in range(n):
            _, is_update, _ = train_step(model, F.cross_entropy, x, y, opt, method, masking, step)
            if is_update:
                writer.add_update(step, masking.masks_numpy())
        return (time.perf_counter() - t0) / n

    for name in variants:                           # warm-up (allocator, first-call costs)
        steps(name, 2, 1)
    times: dict[str, list[float]] = {"dense": [], "static": [], "rigl": [], "rigl_update": []}
    for r in range(repeats):
        times["dense"].append(steps("dense", block, 1))
        times["static"].append(steps("static", block, 1))
        times["rigl"].append(steps("rigl", block, 1))                   # step 1: not an update step
        times["rigl_update"].append(steps("rigl", 1, delta_t * (r + 1)))  # an update step every repeat
    med = {k: statistics.median(v) for k, v in times.items()}
    amortised = (med["rigl_update"] + (delta_t - 1) * med["rigl"]) / delta_t
    nnz = sum(masking.nonzeros().values())
    return {
        "model": model_name, "batch": batch, "sparsity": sparsity, "delta_t": delta_t, "repeats": repeats,
        "block": block, "threads": torch.get_num_threads(), "nonzeros": nnz,
        "params_sparsifiable": int(sum(s.n_params for s in specs)),
        "median_s": med, "spread_s": {k: [min(v), max(v)] for k, v in times.items()},
        "static_vs_dense": med["static"] / med["dense"],
        "rigl_amortised_vs_static": amortised / med["static"],
        "rigl_update_vs_normal": med["rigl_update"] / med["rigl"],
        # the same amortised ratio with the (identical-code) normal-step noise taken out
        "rigl_amortised_update_only": 1.0 + (med["rigl_update"] - med["rigl"]) / (delta_t * med["rigl"]),
        "goals": {"static_vs_dense": 1.15, "rigl_amortised_vs_static": 1.05},
        "numpy": np.__version__, "torch": torch.__version__,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--block", type=int, default=3, help="steps per timed block")
    p.add_argument("--delta-t", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    res = run(a.repeats, a.block, a.delta_t, a.batch)
    if a.json:
        print(json.dumps(res))
        return 0
    m = res["median_s"]
    print(f"{res['model']} batch {res['batch']}, ERK {res['sparsity']:.0%} ({res['nonzeros']:,} of "
          f"{res['params_sparsifiable']:,} weights), {res['threads']} threads, {res['repeats']} interleaved repeats "
          f"of {res['block']} steps")
    for k in ("dense", "static", "rigl", "rigl_update"):
        lo, hi = res["spread_s"][k]
        print(f"  {k:<12} median {m[k] * 1e3:8.1f} ms/step   (range {lo * 1e3:.1f} .. {hi * 1e3:.1f})")
    print(f"masked Static / dense step         {res['static_vs_dense']:.3f}x   (goal <= 1.15x)")
    print(f"RigL (ΔT={res['delta_t']}) amortised / Static   {res['rigl_amortised_vs_static']:.3f}x   (goal <= 1.05x)")
    print(f"  (update cost alone, amortised:   {res['rigl_amortised_update_only']:.4f}x of a normal RigL step)")
    print(f"one RigL update step / normal step {res['rigl_update_vs_normal']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
