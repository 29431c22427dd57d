"""Benchmark of the simulator: JIT compile time, one ResNet-50 training step at batch 256 with ERK-90%
bitmasks, a synthetic 32k-step (Delta T = 100) run with 250 mask snapshots, its peak memory, and the
54-layer batch-1 dense cycles against SCALE-Sim v3's recorded totals, and (e) the user's path: a
`rigl-hw trace synth` trace simulated in-process and by the `rigl-hw simulate` command.

Run: .venv/bin/python studies/bench/simulator.py [--hardware NAME] [--repeats N] [--mappings fixed,per-layer]
Every timed part runs once per engine mapping, side by side (medians). (f) maps all 54 layers x 3 passes
cold (mapper cache off). Goals (issue 10): a mapped step <= 5 ms once mapped (evaluation reuse);
the 32k-step, 250-snapshot run as a `rigl-hw simulate` process <= 5 s.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# SCALE-Sim v3 totals for ResNet-50 (54 layers, batch 1) and their wall times, from REFERENCES.md
SCALESIM = {("os", 32): (5_198_850, 930.0), ("ws", 32): (6_349_206, 831.0),
            ("os", 128): (645_320, 299.0), ("ws", 128): (916_490, 242.0)}


def _densities(specs, sparsity: float) -> dict[str, float]:
    try:  # the project's ERK, when present
        from rigl_hw.distributions import erk_sparsities

        sp = erk_sparsities({s.name: s.weight_shape for s in specs}, sparsity)
        return {k: 1.0 - v for k, v in sp.items()}
    except ImportError:
        from sim_helpers import erk_densities

        return erk_densities(specs, sparsity)


def _random_masks(specs, dens, rng) -> dict[str, np.ndarray]:
    return {s.name: np.packbits(rng.random(s.n_params) < dens[s.name], bitorder="big") for s in specs}


class SyntheticSnapshots:
    """250 snapshots made lazily (one in memory at a time): each update re-draws `frac` of every
    layer's mask bytes at the layer's density, so every snapshot differs from the previous one."""

    def __init__(self, specs, dens, n, frac=0.03, seed=0):
        self.specs, self.dens, self.n, self.frac, self.seed = specs, dens, n, frac, seed

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        cur = _random_masks(self.specs, self.dens, rng)
        yield cur
        for _ in range(self.n - 1):
            nxt = {}
            for s in self.specs:
                m = cur[s.name].copy()
                idx = rng.integers(0, m.size, size=max(1, int(self.frac * m.size)))
                bits = rng.random((idx.size, 8)) < self.dens[s.name]
                m[idx] = np.packbits(bits, axis=1, bitorder="big")[:, 0]
                nxt[s.name] = m
            cur = nxt
            yield cur


def _trace_path(hardware: str, cli_repeats: int = 3, mapping: str = "per-layer") -> None:
    """(e) The user's path: `rigl-hw trace synth` with the issue's flags, then `simulate_trace` in this
    process and `rigl-hw simulate --json` as a fresh process (import, JIT cache load, trace read,
    replay of every update's masks, simulation, output), median of `cli_repeats`."""
    import subprocess
    import tempfile

    from rigl_hw.trace_synth import write_synthetic_trace
    from simulator.trace_run import simulate_trace

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = write_synthetic_trace(Path(tmp) / "r50", "resnet50", "erk", 0.9, steps=32_000, delta_t=100,
                                     alpha=0.3, t_end=25_000, batch=4096)
        t_synth = time.perf_counter() - t
        t = time.perf_counter()
        sim = simulate_trace(path, hardware, mapping=mapping)
        t_sim = time.perf_counter() - t
        cli, cpu = [], []
        for _ in range(cli_repeats):
            t, c = time.perf_counter(), _children_cpu()
            subprocess.run([sys.executable, "-m", "rigl_hw", "simulate", str(path), "--hardware", hardware, "--json",
                            "--mapping", mapping],
                           check=True, capture_output=True, cwd=ROOT)
            cli.append(time.perf_counter() - t)
            cpu.append(_children_cpu() - c)
    med = statistics.median(cli)
    print(f"\n(e) [{mapping}] trace synth (ResNet-50 ERK 90%, 32,000 steps, Delta T = 100, batch 4096) -> "
          f"simulate on {hardware}")
    print(f"  trace synth {t_synth:.2f} s; simulate_trace {t_sim:.2f} s ({sim.trace.n_updates} updates, "
          f"{sim.run.cycles:.4g} cycles); `rigl-hw simulate` process median {med:.2f} s "
          f"(goal <= 5 s: {med / 5:.2f}x of goal; runs {', '.join(f'{c:.2f}' for c in cli)}), CPU median "
          f"{statistics.median(cpu):.2f} s (the comparable figure on a loaded machine)")


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes of this one."""
    import os

    t = os.times()
    return t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="skip-bitmask-32x32")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--mappings", default="fixed,per-layer", help="engine mappings to time, comma-separated")
    ap.add_argument("--skip-process", action="store_true", help="skip (e), the `rigl-hw simulate` processes")
    args = ap.parse_args()
    mappings = args.mappings.split(",")

    t0 = time.perf_counter()
    from sim_helpers import conv, pack, resnet50_specs
    from simulator import load_hardware
    from simulator.dataflow import Geometry, dense_folds
    from simulator.engine import simulate_run, simulate_step

    t_import = time.perf_counter() - t0
    hw = load_hardware(args.hardware)
    tiny = conv("t", 8, 8, 3, 4)
    t0 = time.perf_counter()
    for df_hw in ("skip-bitmask-32x32", "nm-2of4-tc", "eyeriss-v2-pe"):  # touches every kernel
        for mp in mappings:
            simulate_step([tiny], {"t": pack(np.ones((8, 72), bool))}, load_hardware(df_hw), 1, mapping=mp)
    t_jit = time.perf_counter() - t0
    print(f"import {t_import:.2f} s; first calls (Numba compile, or load from its cache) {t_jit:.2f} s")

    specs = resnet50_specs()
    dens = _densities(specs, 0.9)
    masks = _random_masks(specs, dens, np.random.default_rng(0))
    from simulator import mapper
    from simulator.mapped import MappedModel

    if any(m != "fixed" for m in mappings):
        mapper.clear_cache()
        t = time.perf_counter()
        model = MappedModel(hw, 256, use_cache=False)
        simulate_step(specs, masks, hw, 256, model=model)
        t_map = time.perf_counter() - t
        print(f"\n(f) mapping all 54 ResNet-50 layers x 3 passes at batch 256 on {args.hardware}, cache off: "
              f"{t_map:.1f} s for {model.searches} searches (incl. one step's evaluation)")
    masks2 = _random_masks(specs, dens, np.random.default_rng(1))
    print(f"\n(a) ResNet-50 training step, batch 256, ERK-90% random bitmasks, {args.repeats} repeats "
          "(once mapped: a MappedModel kept across steps; 'new masks' alternates two mask sets)")
    for name in dict.fromkeys([args.hardware, "dense-32x32", "skip-csr-128x128", "nm-2of4-tc"]):
        h = load_hardware(name)
        for mp in mappings:
            model = None if mp == "fixed" else MappedModel(h, 256, mp)
            simulate_step(specs, masks, h, 256, mapping=mp, model=model)
            simulate_step(specs, masks2, h, 256, mapping=mp, model=model)
            ts, tn = [], []
            for i in range(args.repeats):
                t = time.perf_counter()
                r = simulate_step(specs, masks, h, 256, mapping=mp, model=model)
                ts.append(time.perf_counter() - t)
                t = time.perf_counter()
                simulate_step(specs, masks2 if i % 2 == 0 else masks, h, 256, mapping=mp, model=model)
                tn.append(time.perf_counter() - t)
            med, medn = statistics.median(ts) * 1e3, statistics.median(tn) * 1e3
            print(f"  {name:20s} {mp:12s} median {med:6.1f} ms same masks (goal <= 5 ms: {med / 5:.2f}x), "
                  f"{medn:6.1f} ms new masks; {r.cycles:.4g} cycles, {r.time_s * 1e3:.2f} ms simulated, "
                  f"{r.energy_j:.3g} J")

    steps, delta_t, n_snap = 32_000, 100, 250
    u = np.arange(n_snap) * delta_t  # 0 = initial masks, then updates every 100 steps to 24,900
    snaps = SyntheticSnapshots(specs, dens, n_snap)
    t = time.perf_counter()
    n_gen = sum(1 for _ in snaps)
    t_gen = time.perf_counter() - t
    fracs = np.full(n_snap - 1, 0.1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for mp in mappings:
        t = time.perf_counter()
        run = simulate_run(specs, 256, steps, u, snaps, hw, topk_fraction_per_update=fracs, mapping=mp)
        t_run = time.perf_counter() - t
        print(f"\n(b) [{mp}] synthetic ResNet-50 run: {steps} steps, Delta T = {delta_t}, {n_gen} mask snapshots "
              f"(mapper cache warm): end to end {t_run:.2f} s, of which making the snapshots ~{t_gen:.2f} s; "
              f"simulated {run.time_s:.4g} s, {run.energy_j:.4g} J")
    t = time.perf_counter()
    run = simulate_run(specs, 256, steps, u, snaps, hw, topk_fraction_per_update=fracs, mapping="fixed")
    t_run = time.perf_counter() - t
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()  # a second run: tracemalloc slows numpy-heavy Python ~2x, so it is not timed
    simulate_run(specs, 256, steps, u, snaps, hw, topk_fraction_per_update=fracs, mapping="fixed")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n(b) [fixed] synthetic ResNet-50 run: {steps} steps, Delta T = {delta_t}, {n_gen} mask snapshots")
    print(f"  end to end {t_run:.2f} s (goal <= 10 s: {t_run / 10:.2f}x of goal), of which making the "
          f"snapshots ~{t_gen:.2f} s (timed alone); {len(run.table)} table rows")
    print(f"  simulated: {run.time_s:.4g} s, {run.energy_j:.4g} J; per normal step "
          f"{run.per_step('normal')['cycles']:.4g} cycles, per update step {run.per_step('update')['cycles']:.4g}")
    print(f"\n(c) peak memory of (b): tracemalloc peak {peak / 2**20:.1f} MiB (Python + numpy allocations, "
          f"second run); process max RSS {rss0:.0f} MiB before (b), {maxrss_mb:.0f} MiB after")

    print("\n(d) 54 ResNet-50 layers, batch 1, dense compute cycles vs SCALE-Sim v3 (recorded runs)")
    for (df, R), (want, scalesim_s) in SCALESIM.items():
        t = time.perf_counter()
        got = sum(dense_folds(df, s.out_positions, s.out_channels, s.fan_in, Geometry(R, R)).cycles for s in specs)
        dt = time.perf_counter() - t
        print(f"  {df} {R}x{R}: ours {got:,.0f} vs SCALE-Sim {want:,} ({'equal' if got == want else 'DIFFERENT'}); "
              f"{dt * 1e3:.2f} ms vs {scalesim_s:.0f} s recorded ({scalesim_s / dt:,.0f}x)")

    if not args.skip_process:
        for mp in mappings:
            _trace_path(args.hardware, mapping=mp)


if __name__ == "__main__":
    main()
