"""Benchmark of the mapper: all ResNet-50 layers x 3 passes at batch 256 on a preset, each variant in a
fresh process (cold: no mapping cached anywhere, Numba kernels loaded from their on-disk JIT cache):

  off           every (layer, pass) searched (mapper cache off): 162 searches
  shape-cache   the in-process (shape, density, hardware) cache on: 72 distinct searches, the rest hits
  2-workers     the same 72 searches spread over 2 forked processes (simulator.mapper.map_layers)

and the two layers ZigZag 3.9.1 was run on (REFERENCES.md) with their latency-optimal cycles and DRAM
traffic. Medians of --repeats runs, wall and CPU seconds (CPU: this process and its workers; on a
loaded machine wall time is not the code's cost). --reference DIR times the same variants with the
code of another checkout (e.g. a `git worktree` of main) side by side.

Run: .venv/bin/python studies/bench/mapper.py [--hardware dense-32x32] [--repeats 3] [--batch 256]
     [--reference DIR]
Goals (issue 10): <= 5 s cold on 2 cores; latency <= 1.02x ZigZag's on layer1.0.conv2 / layer4.0.conv2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [os.environ.get("RIGL_HW_BENCH_CODE", str(ROOT))]   # --reference: the other checkout's code

# ZigZag 3.9.1, latency-optimal, 32x32 array with dense-32x32's bandwidths, batch 256 (REFERENCES.md)
ZIGZAG = {"layer1.0.conv2": (29.71e6, 0.42e9), "layer4.0.conv2": (29.64e6, 0.96e9)}
VARIANTS = ("off", "shape-cache", "2-workers")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_variant(hardware: str, batch: int, variant: str) -> dict:
    """One cold sweep in this process (call it in a fresh one); returns seconds, CPU seconds, searches,
    mappings evaluated and, for the ZigZag layers, cycles and DRAM bytes."""
    from rigl_hw.zoo import model_specs
    from simulator.hardware import load_hardware
    from simulator import mapper
    from simulator.nest import PASSES, Problem

    hw = load_hardware(hardware)
    specs = [s for s in model_specs("resnet50") if s.kind in ("conv", "linear")]
    mapper.map_layer(Problem(M=4, C=4, P=4, R=3), hw, use_cache=False)   # load the Numba kernels
    mapper.clear_cache()
    jobs = [(Problem.from_layer(s, batch, p), None) for s in specs for p in PASSES]
    t0, c0 = time.perf_counter(), _cpu()
    if variant == "off":
        res = [mapper.map_layer(p, hw, "latency", use_cache=False) for p, _ in jobs]
    elif variant == "shape-cache":
        res = [mapper.map_layer(p, hw, "latency") for p, _ in jobs]
    elif hasattr(mapper, "map_layers"):
        res = mapper.map_layers(jobs, hw, "latency", workers=2)
    else:
        return {}
    secs, cpu = time.perf_counter() - t0, _cpu() - c0
    out = {"seconds": secs, "cpu_seconds": cpu, "passes": len(jobs), "searches": sum(not r.cached for r in res),
           "evaluated": sum(r.evaluated for r in res), "layers": {}}
    names = [p.name for p, _ in jobs]
    for (p, _), r in zip(jobs, res):
        if p.name in ZIGZAG and p.pass_name == "forward":
            ev = r.evaluation
            out["layers"][p.name] = [ev.cycles, ev.dram_bytes(), ev.macs / (hw.pe_array.rows * hw.pe_array.cols),
                                     ev.bottleneck]
    out["total_cycles"] = sum(r.evaluation.cycles for r in res)
    out["ideal_cycles"] = sum(r.evaluation.macs for r in res) / (hw.pe_array.rows * hw.pe_array.cols)
    out["n_layers"] = len(set(names))
    out["mappings"] = [r.mapping.to_dict() for r in res]
    return out


def _spawn(code_root: Path, args, variant: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root), RIGL_HW_BENCH_CODE=str(code_root))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--hardware", args.hardware,
           "--batch", str(args.batch)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=code_root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="dense-32x32")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--reference", type=Path, help="a checkout of other code to time side by side")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.hardware, args.batch, args.child)))
        return
    roots = [("this", ROOT)] + ([("reference", args.reference.resolve())] if args.reference else [])
    runs: dict = {}
    for _ in range(args.repeats):   # interleaved, so load changes hit every variant alike
        for v in args.variants.split(","):
            for label, root in roots:
                runs.setdefault((label, v), []).append(_spawn(root, args, v))
    n_layers = runs[("this", args.variants.split(",")[0])][0].get("n_layers")
    print(f"ResNet-50, {n_layers} layers x 3 passes at batch {args.batch} on {args.hardware}, each run a fresh "
          f"process (medians of {args.repeats}; goal <= 5 s)")
    base = {}
    for (label, v), rs in runs.items():
        if not rs[0]:
            print(f"  {label:9s} {v:12s} (not available in that code)")
            continue
        wall = statistics.median(r["seconds"] for r in rs)
        cpu = statistics.median(r["cpu_seconds"] for r in rs)
        base.setdefault(v, {})[label] = (wall, cpu, rs[0])
        r = rs[0]
        each = ", ".join(f"{x['seconds']:.2f}" for x in rs)
        print(f"  {label:9s} {v:12s} wall {wall:6.2f} s, CPU {cpu:6.2f} s ({wall / 5:.2f}x of goal); "
              f"{r['searches']} searches, {r['evaluated']} mappings evaluated "
              f"({cpu / max(1, r['evaluated']) * 1e3:.3f} ms CPU each); runs {each}")
    if args.reference:
        for v, d in base.items():
            if "reference" in d and "this" in d:
                same = d["this"][2]["mappings"] == d["reference"][2]["mappings"] and \
                    d["this"][2]["total_cycles"] == d["reference"][2]["total_cycles"]
                print(f"  {v:12s} reference / this: wall {d['reference'][0] / d['this'][0]:.2f}x, CPU "
                      f"{d['reference'][1] / d['this'][1]:.2f}x; same mappings and cycles: {same}")
    r = runs[("this", args.variants.split(",")[0])][0]
    for name, (zz_cycles, zz_dram) in ZIGZAG.items():
        cyc, dram, ideal, bn = r["layers"][name]
        print(f"{name} forward: {cyc / 1e6:.2f}M cycles (ideal {ideal / 1e6:.2f}M, ZigZag {zz_cycles / 1e6:.2f}M: "
              f"ratio {cyc / zz_cycles:.3f}), DRAM {dram / 1e9:.2f} GB (ZigZag {zz_dram / 1e9:.2f} GB), bound by {bn}")
    print(f"whole training step: {r['total_cycles'] / 1e6:.1f}M cycles, ideal compute {r['ideal_cycles'] / 1e6:.1f}M "
          f"({r['total_cycles'] / r['ideal_cycles']:.3f}x)")


if __name__ == "__main__":
    main()
