"""Benchmark of the mapper: all ResNet-50 layers x 3 passes at batch 256 on a preset, cold (cache off),
in one process; the two layers ZigZag 3.9.1 was run on (REFERENCES.md) with their latency-optimal
cycles and DRAM traffic; the same sweep with the shape cache on.

Run: .venv/bin/python studies/bench/mapper.py [--hardware dense-32x32] [--repeats 1] [--batch 256]
Goals (issue 10): <= 5 s cold on 2 cores; latency <= 1.02x ZigZag's on layer1.0.conv2 / layer4.0.conv2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

# ZigZag 3.9.1, latency-optimal, 32x32 array with dense-32x32's bandwidths, batch 256 (REFERENCES.md)
ZIGZAG = {"layer1.0.conv2": (29.71e6, 0.42e9), "layer4.0.conv2": (29.64e6, 0.96e9)}


def sweep(hw, specs, batch: int, use_cache: bool):
    from simulator.mapper import clear_cache, map_layer
    from simulator.nest import PASSES, Problem

    clear_cache()
    rows, evaluated = [], 0
    t0 = time.perf_counter()
    for s in specs:
        for p in PASSES:
            r = map_layer(Problem.from_layer(s, batch, p), hw, "latency", use_cache=use_cache)
            evaluated += r.evaluated
            rows.append((s.name, p, r.evaluation))
    return time.perf_counter() - t0, evaluated, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="dense-32x32")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    from rigl_hw.zoo import model_specs
    from simulator.hardware import load_hardware
    from simulator.mapper import map_layer
    from simulator.nest import Problem

    hw = load_hardware(args.hardware)
    specs = [s for s in model_specs("resnet50") if s.kind == "conv" or s.kind == "linear"]
    # compile the Numba kernels once (their on-disk cache makes this a no-op after the first run)
    t = time.perf_counter()
    map_layer(Problem(M=4, C=4, P=4, R=3), hw, use_cache=False)
    print(f"warm-up (Numba load/compile): {time.perf_counter() - t:.2f} s")

    cold = [sweep(hw, specs, args.batch, use_cache=False) for _ in range(args.repeats)]
    secs = statistics.median(c[0] for c in cold)
    _, evaluated, rows = cold[0]
    print(f"{len(specs)} layers x 3 passes at batch {args.batch} on {hw.name}, cache off: "
          f"median {secs:.2f} s over {args.repeats} run(s), {evaluated} mappings evaluated "
          f"({secs / len(rows) * 1e3:.1f} ms per (layer, pass)); goal <= 5 s")
    warm = sweep(hw, specs, args.batch, use_cache=True)
    print(f"same sweep with the shape cache on (repeated layers reuse one search): {warm[0]:.2f} s")
    ideal = {n: e.macs / (hw.pe_array.rows * hw.pe_array.cols) for n, p, e in rows if p == "forward"}
    for name, (zz_cycles, zz_dram) in ZIGZAG.items():
        ev = next(e for n, p, e in rows if n == name and p == "forward")
        print(f"{name} forward: {ev.cycles / 1e6:.2f}M cycles (ideal {ideal[name] / 1e6:.2f}M, ZigZag "
              f"{zz_cycles / 1e6:.2f}M: ratio {ev.cycles / zz_cycles:.3f}), DRAM {ev.dram_bytes() / 1e9:.2f} GB "
              f"(ZigZag {zz_dram / 1e9:.2f} GB), bound by {ev.bottleneck}")
    tot = sum(e.cycles for _, _, e in rows)
    comp = sum(e.macs for _, _, e in rows) / (hw.pe_array.rows * hw.pe_array.cols)
    print(f"whole training step: {tot / 1e6:.1f}M cycles, ideal compute {comp / 1e6:.1f}M ({tot / comp:.3f}x)")


if __name__ == "__main__":
    main()
