"""Validate the simulator's dense mode against the real SCALE-Sim v3 (`scalesim==3.0.0`).

Builds ResNet-50's 54 conv/fc layers (batch 1, 224x224, `rigl_hw.zoo.model_specs`) as a SCALE-Sim
topology, runs SCALE-Sim on a few sample layers per dataflow (32x32 array, os and ws) in a subprocess
with its own interpreter (`.scalesim/`, never a dependency of the package or the tests), and compares
per-layer compute cycles with rigl-hw's dense mode (`simulator.dataflow.dense_folds` and the forward
rows of `simulate_step` on dense-32x32 with the same dataflow). It also compares rigl-hw's 54-layer
totals with SCALE-Sim's published totals (REFERENCES.md), times rigl-hw against SCALE-Sim, and checks
two conventions SCALE-Sim imposes on its inputs:

* padding: SCALE-Sim has none and computes the output size as ceil((H - F + S) / S), i.e.
  ceil((H - F) / S) + 1, where PyTorch floors. Giving it the padded size H + 2p adds an output row and
  column to every layer where (H + 2p - F) is not a multiple of S (conv1 and all stride-2 convs of
  ResNet-50); we give it the effective input (H_out - 1) S + F, the padded rows the conv actually
  reads, which makes both output sizes equal. The bench reports what H + 2p would have given.
* groups: SCALE-Sim has no `groups`; a layer whose name contains "DP" is expanded into `Channels`
  separate one-channel layers (depthwise, NumFilt should be 1). ResNet-50 has only groups == 1 layers;
  a tiny DP layer is run to show the one difference: rigl-hw pipelines a grouped conv's folds as one
  GEMM (total - 1 once), SCALE-Sim runs g layers (- 1 each), so SCALE-Sim is g - 1 cycles lower.

Run: .venv/bin/python studies/bench/scalesim_compare.py [--layers A,B,...] [--timeout S] [--repeats N]
Install SCALE-Sim first (own venv, gitignored):
  python3 -m venv .scalesim && .scalesim/bin/pip install scalesim==3.0.0 "numpy<2.4"
Without .scalesim the SCALE-Sim runs are skipped (the published-totals check still runs).
The SCALE-Sim full-network time printed here is an EXTRAPOLATION from the sampled layers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCALESIM_PY = ROOT / ".scalesim" / "bin" / "python"

ARRAY = 32
DATAFLOWS = ("os", "ws")
# SCALE-Sim v3 on ResNet-50 (54 layers, batch 1), 32x32, from REFERENCES.md: cycles and wall seconds
PUBLISHED = {"os": (5_198_850, 930.0), "ws": (6_349_206, 831.0)}
# conv 7x7 s2 (padded), 1x1 s1, 3x3 s2 (padded), fc as a 1x1 conv on a 1x1 input
DEFAULT_LAYERS = ("conv1", "layer1.0.conv1", "layer3.0.conv2", "fc")
HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Stride,\n"
DP_TINY = ("DPtiny", 10, 10, 3, 3, 8, 1, 1)  # depthwise 3x3 over 8 channels, 8x8 output (no padding)

CONFIG = """[general]
run_name = {run}

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 6144
FilterSramSzkB = 6144
OfmapSramSzkB = 2048
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {df}
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


# --- worker: runs under .scalesim/bin/python, imports only the stdlib and scalesim -------------------
def worker(job_file: str) -> None:
    """Print one JSON line per result (flushed, so a timeout keeps what finished)."""
    jobs = json.loads(Path(job_file).read_text())
    t = time.perf_counter()
    from scalesim.scale_sim import scalesim
    from scalesim.topology_utils import topologies

    print(json.dumps({"kind": "import", "seconds": time.perf_counter() - t}), flush=True)
    for key, topo_file in jobs["dims"].items():  # SCALE-Sim's own output sizes, no simulation
        tp = topologies()
        tp.load_arrays(topofile=topo_file)
        tp.topo_calc_hyperparams(topofilename=topo_file)
        dims = [[tp.get_layer_name(i), *map(int, tp.get_layer_ofmap_dims(i))] for i in range(tp.get_num_layers())]
        print(json.dumps({"kind": "dims", "key": key, "dims": dims}), flush=True)
    for job in jobs["runs"]:
        t = time.perf_counter()
        s = scalesim(save_disk_space=True, verbose=False, config=job["config"], topology=job["topology"],
                     layout=jobs["layout"], input_type_gemm=False)
        s.run_scale(job["out"])
        dt = time.perf_counter() - t
        items = [o.get_compute_report_items() for o in s.runner.single_layer_sim_object_list]
        print(json.dumps({"kind": "run", "name": job["name"], "dataflow": job["dataflow"], "seconds": dt,
                          "compute_cycles": [int(i[1]) for i in items],
                          "stall_cycles": [int(i[2]) for i in items]}), flush=True)


# --- main: runs under the project venv ---------------------------------------------------------------
def effective_input(spec) -> tuple[int, int]:
    """Input size SCALE-Sim needs for PyTorch's output size: the padded rows the conv reads."""
    (kh, kw), (sh, sw), (oh, ow) = spec.kernel_hw, spec.stride, spec.out_hw
    return (oh - 1) * sh + kh, (ow - 1) * sw + kw


def padded_input(spec) -> tuple[int, int]:
    (ph, pw), (h, w) = spec.padding, spec.in_hw
    return h + 2 * ph, w + 2 * pw


def topo_row(spec, hw_in: tuple[int, int]) -> str:
    """name, IfmapH, IfmapW, FiltH, FiltW, Channels, NumFilt, Stride, (fc: a 1x1 conv on a 1x1 input)."""
    if spec.groups != 1 or spec.stride[0] != spec.stride[1] or "DP" in spec.name:
        raise ValueError(f"layer {spec.name!r}: SCALE-Sim takes groups == 1 and one stride only")
    if spec.kind == "linear":
        return f"{spec.name}, 1, 1, 1, 1, {spec.in_channels}, {spec.out_channels}, 1,\n"
    kh, kw = spec.kernel_hw
    return (f"{spec.name}, {hw_in[0]}, {hw_in[1]}, {kh}, {kw}, {spec.in_channels}, {spec.out_channels}, "
            f"{spec.stride[0]},\n")


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (Numba JIT / caches)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run_scalesim(specs, names, workdir: Path, timeout: float) -> tuple[list[dict], str | None]:
    """Write configs/topologies, run the worker; returns (JSON records, error or None)."""
    by_name = {s.name: s for s in specs}
    layout = workdir / "layout.csv"
    layout.write_text("Layer name,\n")  # always opened; a header-only file is enough
    jobs = {"layout": str(layout), "dims": {}, "runs": []}
    for key, size in (("effective", effective_input), ("padded", padded_input)):
        p = workdir / f"resnet50_{key}.csv"
        p.write_text(HEADER + "".join(topo_row(s, size(s)) for s in specs))
        jobs["dims"][key] = str(p)
    for df in DATAFLOWS:
        cfg = workdir / f"scale_{df}.cfg"
        cfg.write_text(CONFIG.format(run=f"rn50_{df}", rows=ARRAY, cols=ARRAY, df=df))
        for name in names:
            p = workdir / f"layer_{name}.csv"
            p.write_text(HEADER + topo_row(by_name[name], effective_input(by_name[name])))
            jobs["runs"].append({"name": name, "dataflow": df, "config": str(cfg), "topology": str(p),
                                 "out": str(workdir / f"out_{df}_{name}")})
        p = workdir / "dp_tiny.csv"
        p.write_text(HEADER + ", ".join(map(str, DP_TINY)) + ",\n")
        jobs["runs"].append({"name": DP_TINY[0], "dataflow": df, "config": str(cfg), "topology": str(p),
                             "out": str(workdir / f"out_{df}_dp")})
    job_file = workdir / "jobs.json"
    job_file.write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    cmd = [str(SCALESIM_PY), str(Path(__file__).resolve()), "--worker", str(job_file)]
    err = None
    try:
        cp = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
        out = cp.stdout
        if cp.returncode:
            err = f"SCALE-Sim worker exited {cp.returncode}: {cp.stderr.strip().splitlines()[-1:] or ''}"
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"SCALE-Sim worker stopped at the {timeout:.0f} s timeout; results so far are kept"
    recs = []
    for line in out.splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # SCALE-Sim's own prints
    return recs, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=",".join(DEFAULT_LAYERS),
                    help="comma-separated ResNet-50 layer names to run through SCALE-Sim")
    ap.add_argument("--timeout", type=float, default=420.0, help="seconds for all SCALE-Sim runs together")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--workdir", default=None, help="keep SCALE-Sim inputs/outputs here (default: a temp dir)")
    args = ap.parse_args()

    sys.path[:0] = [str(ROOT)]
    import dataclasses

    from rigl_hw.zoo import model_specs
    from simulator import load_hardware
    from simulator.dataflow import Geometry, dense_folds
    from simulator.engine import simulate_step

    specs = model_specs("resnet50")
    assert len(specs) == 54 and all(s.groups == 1 for s in specs)
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    unknown = [n for n in names if n not in {s.name for s in specs}]
    if unknown:
        ap.error(f"unknown layers {unknown}")
    geom = Geometry(ARRAY, ARRAY)
    bad = 0

    def ours(df, spec_list=specs):
        return [int(dense_folds(df, s.out_positions, s.out_channels, s.fan_in, geom).cycles) for s in spec_list]

    cyc = {df: ours(df) for df in DATAFLOWS}
    hws = {df: dataclasses.replace(load_hardware("dense-32x32"), dataflow=df) for df in DATAFLOWS}
    eng = {}
    for df in DATAFLOWS:
        t = simulate_step(specs, None, hws[df], 1).table
        eng[df] = [int(c) for c in t[t["pass"] == "forward"]["compute_cycles"]]

    print(f"ResNet-50, 54 layers (all groups == 1), batch 1, 224x224, {ARRAY}x{ARRAY} array")
    print("\n(1) rigl-hw 54-layer dense compute cycles vs SCALE-Sim v3's published totals (REFERENCES.md)")
    for df in DATAFLOWS:
        want = PUBLISHED[df][0]
        ok = sum(cyc[df]) == want and cyc[df] == eng[df]
        bad += not ok
        print(f"  {df}: dense_folds {sum(cyc[df]):,}  engine forward {sum(eng[df]):,}  published {want:,}  "
              f"-> {'EQUAL' if ok else 'DIFFERENT'}")

    t_folds = {df: _median_time(lambda df=df: ours(df), args.repeats) for df in DATAFLOWS}
    t_step = {df: _median_time(lambda df=df: simulate_step(specs, None, hws[df], 1), max(3, args.repeats // 4))
              for df in DATAFLOWS}
    print(f"\n(2) rigl-hw time, all 54 layers, median of {args.repeats} after warm-up")
    for df in DATAFLOWS:
        print(f"  {df}: dense_folds (forward cycles) {t_folds[df] * 1e3:.3f} ms "
              f"({t_folds[df] / 54 * 1e6:.1f} us/layer); simulate_step (3 passes + memory + energy) "
              f"{t_step[df] * 1e3:.1f} ms")

    if not SCALESIM_PY.exists():
        print(f"\n(3) SKIPPED: SCALE-Sim venv not found at {SCALESIM_PY}. Install it with\n"
              '  python3 -m venv .scalesim && .scalesim/bin/pip install scalesim==3.0.0 "numpy<2.4"')
        return 1 if bad else 0

    with tempfile.TemporaryDirectory(prefix="scalesim_") as tmp:
        wd = Path(args.workdir) if args.workdir else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        recs, err = run_scalesim(specs, names, wd, args.timeout)
        wall = time.perf_counter() - t
    if err:
        print(f"\nWARNING: {err}")
    runs = [r for r in recs if r["kind"] == "run"]
    imp = next((r["seconds"] for r in recs if r["kind"] == "import"), float("nan"))
    idx = {s.name: i for i, s in enumerate(specs)}

    print(f"\n(3) SCALE-Sim v3 (real run, {ARRAY}x{ARRAY}, InterfaceBandwidth CALC) vs rigl-hw, per layer "
          f"(subprocess wall {wall:.1f} s, SCALE-Sim import {imp:.2f} s)")
    print(f"  {'df':2s} {'layer':16s} {'ifmap':>9s} {'M':>6s} {'N':>5s} {'K':>5s} {'SCALE-Sim':>10s} {'rigl-hw':>10s} "
          f"{'equal':>5s} {'stall':>5s} {'SCALE-Sim s':>11s} {'rigl-hw us':>10s}")
    sample = {df: [0, 0.0] for df in DATAFLOWS}  # cycles, seconds
    for r in runs:
        df = r["dataflow"]
        if r["name"] == DP_TINY[0]:
            continue
        s = specs[idx[r["name"]]]
        got, mine = r["compute_cycles"][0], cyc[df][idx[r["name"]]]
        ok = got == mine
        bad += not ok
        sample[df][0] += got
        sample[df][1] += r["seconds"]
        us = _median_time(lambda: dense_folds(df, s.out_positions, s.out_channels, s.fan_in, geom), args.repeats) * 1e6
        h, w = effective_input(s) if s.kind == "conv" else (1, 1)
        print(f"  {df:2s} {s.name:16s} {f'{h}x{w}':>9s} {s.out_positions:6d} {s.out_channels:5d} {s.fan_in:5d} "
              f"{got:10,d} {mine:10,d} {'yes' if ok else 'NO':>5s} {r['stall_cycles'][0]:5d} "
              f"{r['seconds']:11.2f} {us:10.1f}")
    done = {(r["dataflow"], r["name"]) for r in runs}
    missing = [f"{df}:{n}" for df in DATAFLOWS for n in names if (df, n) not in done]
    if missing:
        print(f"  not run (timeout or error): {', '.join(missing)}")

    print("\n(4) Full-network SCALE-Sim time: an EXTRAPOLATION from the sampled layers above, not a run")
    for df in DATAFLOWS:
        c, sec = sample[df]
        n = sum(1 for r in runs if r["dataflow"] == df and r["name"] != DP_TINY[0])
        if not n:
            print(f"  {df}: no sampled layer finished")
            continue
        total = sum(cyc[df])
        by_cycles = sec / c * total  # SCALE-Sim's run time grows with the cycles it simulates
        by_layers = sec / n * 54
        rec = PUBLISHED[df][1]
        print(f"  {df}: {sec:.1f} s for {n} layers, {c:,} cycles ({sec / c * 1e6:.0f} us per simulated cycle)")
        print(f"      extrapolated 54 layers: {by_cycles:.0f} s (per simulated cycle), {by_layers:.0f} s "
              f"(per layer); recorded full run {rec:.0f} s")
        print(f"      vs rigl-hw {t_folds[df] * 1e3:.3f} ms (dense_folds): {by_cycles / t_folds[df]:,.0f}x faster; "
              f"vs simulate_step {t_step[df] * 1e3:.1f} ms: {by_cycles / t_step[df]:,.0f}x")

    print("\n(5) Input conventions (SCALE-Sim's own output sizes from its topology parser)")
    dims = {r["key"]: r["dims"] for r in recs if r["kind"] == "dims"}
    for key, label in (("effective", "effective input (H_out-1)S+F"), ("padded", "padded input H+2p")):
        if key not in dims:
            print(f"  {label}: not computed")
            continue
        diff = [s.name for s, d in zip(specs, dims[key]) if (d[1], d[2]) != tuple(s.out_hw)]
        tot = {df: sum(int(dense_folds(df, d[1] * d[2], s.out_channels, s.fan_in, geom).cycles)
                       for s, d in zip(specs, dims[key])) for df in DATAFLOWS}
        print(f"  {label}: {len(diff)} layers with output size != PyTorch's"
              f"{(' (' + ', '.join(diff) + ')') if diff else ''}; closed-form totals at SCALE-Sim's sizes: "
              + ", ".join(f"{df} {tot[df]:,} ({'= published' if tot[df] == PUBLISHED[df][0] else '!= published'})"
                          for df in DATAFLOWS))
        if key == "effective":
            bad += bool(diff)

    dp = {r["dataflow"]: r for r in runs if r["name"] == DP_TINY[0]}
    if dp:
        _, h, w, kh, kw, ch, nf, st = DP_TINY
        m = ((h - kh) // st + 1) * ((w - kw) // st + 1)
        print(f"\n(6) Depthwise: SCALE-Sim expands a 'DP' layer into {ch} one-channel layers (it has no groups)")
        for df, r in dp.items():
            theirs = sum(r["compute_cycles"])
            mine = int(dense_folds(df, m, nf, kh * kw, geom, groups=ch).cycles)
            print(f"  {df}: {ch} x {r['compute_cycles'][0]} = {theirs} (SCALE-Sim) vs {mine} (rigl-hw, groups={ch}, one "
                  f"pipeline): rigl-hw - SCALE-Sim = {mine - theirs} (= groups - 1: one '-1' per layer)")
    print(f"\nResult: {'all compared cycles EQUAL' if not bad else f'{bad} DISAGREEMENT(S), see above'}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        sys.exit(main())
