"""Benchmark: what recording operand sparsity (trace format v2) costs the trainer, side by side in one run.

Per model (small_cnn on 1x8x8 inputs and WRN-22-2 on 3x32x32, batch 32, CPU, RigL ERK 90%, SGD momentum),
through `rigl_hw.train.train_step` and the trainer's own recorder and trace writer, interleaved blocks of
  off      plain steps (what a run with operand_every=0, and every unlogged step, costs)
  on       steps hooked by rigl_hw.operand_stats.OperandRecorder counting input and dY nonzeros of every
           layer, plus TraceWriter.add_operands (operand_every=1: every step is a logged step)
  bitmap   one step that also samples the bitmaps (once per mask snapshot, i.e. once per ΔT steps)
Ratios are of per-step medians: on / off (the cost of one logged step), and the trainer's amortised cost
with operands logged every k steps (`--every`, the trainer's default operand_every=20) and one bitmap
step per ΔT: (t_bitmap + (ΔT/k - 1) t_on + (ΔT - ΔT/k) t_off) / (ΔT t_off), goal <= 1.03; also the same
with k = 1. The block order rotates every repeat. Times are this process's CPU time (time.process_time,
`--clock cpu`, the default: on a shared machine wall time measures the neighbours; run with `--threads 1`
so CPU time is the work done) or wall time (`--clock wall`).
`--train-steps N` also times whole `rigl_hw.train.train` runs of small_cnn on digits (operand_every k vs 0,
alternating, median of the repeats): that includes writing the trace with its bitmaps.

Run: .venv/bin/python studies/bench/operand_recording.py [--repeats 15] [--block 4] [--delta-t 100] [--every 20]
     [--models small_cnn wide_resnet_22_2] [--train-steps 0] [--threads N] [--clock cpu|wall] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

INPUT_SHAPES = {"small_cnn": (1, 8, 8), "wide_resnet_22_2": (3, 32, 32), "mlp": (64,)}


def _setup(model_name: str, batch: int, sparsity: float, delta_t: int, samples: int, seed: int = 0):
    import torch

    from rigl_hw.layers import trace_layer_specs
    from rigl_hw.methods import MethodConfig, make_method
    from rigl_hw.models import build_model
    from rigl_hw.operand_stats import OperandRecorder
    from rigl_hw.schedules import UpdateSchedule
    from rigl_hw.trace import TraceWriter

    torch.manual_seed(seed)
    model = build_model(model_name)
    x = torch.randn(batch, *INPUT_SHAPES[model_name], generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(2))
    specs = trace_layer_specs(model, x[:2])
    method = make_method(MethodConfig("rigl", "erk", sparsity, UpdateSchedule(delta_t=delta_t, t_end=10**9)),
                         model_name, specs)
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(3), None)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    writer = TraceWriter("/nonexistent-never-written", specs, masking.masks_numpy(), {})
    writer.set_operand_recording(samples, 1)
    return model, method, masking, opt, x, y, OperandRecorder(model, specs, samples), writer


def bench_steps(model_name: str, repeats: int, block: int, delta_t: int, every: int = 20, batch: int = 32,
                sparsity: float = 0.9, samples: int = 2, clock=time.process_time) -> dict:
    import torch.nn.functional as F

    from rigl_hw.train import train_step

    model, method, masking, opt, x, y, rec, writer = _setup(model_name, batch, sparsity, delta_t, samples)
    counter = iter(range(10**9))

    def steps(kind: str, n: int) -> float:
        t0 = clock()
        for _ in range(n):
            step = next(counter) * delta_t + 1          # never an update step; operand steps increase
            if kind != "off":
                rec.start(bitmaps=kind == "bitmap")
            train_step(model, F.cross_entropy, x, y, opt, method, masking, step)
            if kind != "off":
                got = rec.stop()
                writer.add_operands(step, got.counts)
                if got.packed is not None:
                    writer.operands.add_bitmaps(step, step, got.packed)
        return (clock() - t0) / n

    for kind in ("off", "on", "bitmap"):                 # warm-up
        steps(kind, 2)
    kinds = ["off", "on", "bitmap"]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(repeats):
        for kind in kinds[r % 3:] + kinds[:r % 3]:
            times[kind].append(steps(kind, 1 if kind == "bitmap" else block))
    med = {k: statistics.median(v) for k, v in times.items()}
    def amortised(k: int) -> float:
        logged = delta_t / k
        return (med["bitmap"] + (logged - 1) * med["on"] + (delta_t - logged) * med["off"]) / (delta_t * med["off"])
    return {"model": model_name, "batch": batch, "samples": samples, "delta_t": delta_t, "repeats": repeats,
            "block": block, "every": every, "median_s": med, "spread_s": {k: [min(v), max(v)] for k, v in times.items()},
            "on_vs_off": med["on"] / med["off"], "bitmap_vs_off": med["bitmap"] / med["off"],
            "amortised_vs_off": amortised(every), "amortised_every_step_vs_off": amortised(1)}


def bench_train(steps: int, repeats: int, delta_t: int, every: int, clock=time.process_time) -> dict:
    """Whole small_cnn runs on digits with operand recording on (every `every` steps) and off, alternating."""
    from rigl_hw.train import TrainConfig, train

    times: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for kind in (("off", "on") if r % 2 == 0 else ("on", "off")):
                cfg = TrainConfig(model="small_cnn", dataset="digits", steps=steps, delta_t=delta_t, batch_size=32,
                                  lr=0.05, progress=False, out=f"{tmp}/{kind}{r}",
                                  operand_every=every if kind == "on" else 0)
                t0 = clock()
                train(cfg)
                times[kind].append(clock() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": "small_cnn", "steps": steps, "delta_t": delta_t, "every": every, "repeats": repeats,
            "median_s": med,
            "spread_s": {k: [min(v), max(v)] for k, v in times.items()}, "on_vs_off": med["on"] / med["off"]}


def run(models=("small_cnn", "wide_resnet_22_2"), repeats: int = 15, block: int = 4, delta_t: int = 100,
        every: int = 20, train_steps: int = 0, clock_name: str = "cpu") -> dict:
    import numpy as np
    import torch

    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    out = {"clock": clock_name, "threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__, "goal": 1.03,
           "steps": [bench_steps(m, repeats, block, delta_t, every, clock=clock) for m in models]}
    if train_steps:
        out["train"] = bench_train(train_steps, max(3, repeats // 5), delta_t, every, clock=clock)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["small_cnn", "wide_resnet_22_2"], choices=sorted(INPUT_SHAPES))
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--block", type=int, default=4, help="steps per timed block")
    p.add_argument("--delta-t", type=int, default=100)
    p.add_argument("--every", type=int, default=20, help="operand_every of the amortised figure (default 20)")
    p.add_argument("--train-steps", type=int, default=0, help="also time whole small_cnn runs of N steps")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time (default) or wall time")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    res = run(a.models, a.repeats, a.block, a.delta_t, a.every, a.train_steps, a.clock)
    if a.json:
        print(json.dumps(res))
        return 0
    print(f"operand recording, {res['threads']} threads, {res['clock']} time, torch {res['torch']}; "
          f"goal: amortised <= {res['goal']}")
    for r in res["steps"]:
        m = r["median_s"]
        print(f"{r['model']} batch {r['batch']}, {r['repeats']} interleaved repeats of {r['block']} steps:")
        for k in ("off", "on", "bitmap"):
            lo, hi = r["spread_s"][k]
            print(f"  {k:<7} median {m[k] * 1e3:8.2f} ms/step   (range {lo * 1e3:.2f} .. {hi * 1e3:.2f})")
        print(f"  one logged step / off {r['on_vs_off']:.4f}   bitmap step / off {r['bitmap_vs_off']:.4f}")
        print(f"  amortised, logged every {r['every']} steps, one bitmap step per ΔT={r['delta_t']}: "
              f"{r['amortised_vs_off']:.4f}   (logged every step: {r['amortised_every_step_vs_off']:.4f})")
    if "train" in res:
        t = res["train"]
        print(f"whole runs, small_cnn on digits, {t['steps']} steps, operand_every {t['every']}, median of {t['repeats']}: "
              f"off {t['median_s']['off']:.3f} s, on {t['median_s']['on']:.3f} s, on / off {t['on_vs_off']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
