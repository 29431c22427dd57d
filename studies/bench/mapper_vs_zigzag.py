"""Our mapper side by side with ZigZag (zigzag-dse 3.9.1) on ResNet-50 layers, one 32x32 architecture.

The machine is `studies/bench/zigzag_32x32.toml` (our schema) = `studies/bench/zigzag/accelerator_32x32.yaml`
(ZigZag's): dense-32x32's 32x32 bf16 MAC array, 512 B register file per PE, 1 MiB GLB (128 B/cycle read,
64 B/cycle write), DRAM 32 B/cycle read and 32 B/cycle write, with the SAME per-word energies (pJ per
16-bit word: regfile 0.625, GLB 25, DRAM 128 = 8 pJ/bit; MAC 1.48). The array unrolls M (ZigZag K) over
its 32 columns and C over its 32 rows in both tools (`zigzag/mapping_32x32.yaml`); temporal loops are
searched. Workloads: LAYERS at batch 256, forward pass, written as one-layer ZigZag YAMLs
(`zigzag/workloads/`). Inputs are given at the extent the conv reads, (P-1)*stride + R, with no
padding declared, exactly as `simulator.nest.Problem.from_layer` counts them (ZigZag would otherwise
subtract the padding from the input tensor: 56x56 instead of 58x58 for a 3x3/pad-1 layer). ZigZag counts the input
rows a conv touches, the distinct stride*p + r: a 1x1 stride-2 conv (the downsamples) moves 28x28 of
its 55x55 extent, so its compulsory input traffic is a quarter of the extent (`input_touched`).

Run:
  .venv/bin/python studies/bench/mapper_vs_zigzag.py                 # table from the recorded JSON
  .venv/bin/python studies/bench/mapper_vs_zigzag.py --run-zigzag    # re-run ZigZag, rewrite the JSON
Install ZigZag first (own venv, git-ignored; never a dependency of the package or the tests):
  make zigzag-env     (python3 -m venv .zigzag && .zigzag/bin/pip install zigzag-dse==3.9.1 six)
Goals (issue 10): our latency-optimal cycles <= 1.02x ZigZag's on every layer, energy within 10% with
the same per-access energies, search >= 100x faster.

How ZigZag 3.9.1 computes what it reports (read from zigzag/cost_model/cost_model.py; core must match):

* Latency, `latency_total2` (what `opt="latency"` minimises) = ideal_temporal_cycle + stall_slack_comb
  + data_onloading_cycle + data_offloading_cycle + systolic_drain_cycle.
  - ideal_cycle = ceil(MACs / 1024); ideal_temporal_cycle = product of all temporal loop bounds (equals
    ideal_cycle when the spatial unrolling divides the layer; it is what the array takes without stalls).
  - Per operand, memory level and direction (4 "data transfer links": read to low, write from high,
    read to high, write from low), a period = product of the temporal loops at and below that level;
    per period it moves amount x precision bits in real_cycle = ceil(bits / port bandwidth_max) cycles.
    The allowed window is the whole period when the level is double-buffered for that operand (ZigZag
    decides: its tile uses <= 50% of the level, or fits in what the other operands sharing the level
    leave free), else the period divided by the top irrelevant loop at that level (the instant window).
    Reads and writes toward the level above use the window of the level above.
    Stall per link = (real - allowed) x (period_count - 1), negative = slack.
  - Links on one physical port combine: sum of positive stalls + max(0, sum of slacks + sum of
    windows - union of windows). Two links that each need the port every cycle therefore serialise
    (each transfer takes >= 1 port-cycle whatever its width): a PE register file with ONE read port for
    inputs, weights and partial sums stalls 2.3x (67.4M cycles for layer1.0.conv2; 58.7M with 8 B
    ports), which is why the accelerator gives each operand and direction its own 32-bit RF port.
  - stall_slack_comb = max over all ports (ports work in parallel); memory levels overlap fully.
  - Onloading / offloading: the first fill of the lowest levels before compute and the last drain after
    it (hundreds of cycles here). systolic_drain_cycle = sum over systolic dims of (unrolled size - 1)
    = 62, once per layer (this build's tpu_like option; dense-32x32 has fill_drain).
* Energy = MAC energy (1.48 pJ x MACs, no gating) + sum over operand, level and direction of accesses x
  r_cost / w_cost. Accesses = ceil(bits per period / bandwidth_min) x bandwidth_min / bandwidth_max x
  periods x memory instances holding distinct data; with bandwidth_min = 16 bits and costs =
  (bandwidth_max / 16) x per-word energy this is exactly words x per-word energy. A partial sum is 32
  bits (O precision 32, two words) until its final write, which is 16 bits (O_final); the first read of
  a partial sum is not skipped at the innermost level (O reads to the MAC = MACs). The API sets
  access_same_data_considered_as_no_access: data read repeatedly from the innermost level while the
  loops below it do not change it (and it fits the read port) is charged once ("it stays at the
  memory's output pins"), e.g. a weight held over an innermost OX loop. The breakdown is per
  operand (W, I, O) x level x direction, recorded in the JSON.
* Search: LOMA enumerates loop orders of the prime factors (lpf_limit 6) with memory allocation bottom
  up; `opt="latency"` keeps the lowest latency_total2 and breaks exact ties only by energy, so the
  latency-optimal mapping can spend far more energy than a mapping a few cycles slower (partial sums
  ping-ponging through DRAM). The JSON therefore also records `opt="energy"`; the energy ratio printed is
  against the energy-optimal run (our energy objective), and against the latency run for reference.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # before this folder: studies/bench/simulator.py would shadow the package

from rigl_hw.atomic import atomic_write_text  # noqa: E402

ZIGZAG_PY = ROOT / ".zigzag" / "bin" / "python"
HERE = Path(__file__).resolve().parent
ZZ_DIR = HERE / "zigzag"
ACCELERATOR = ZZ_DIR / "accelerator_32x32.yaml"
MAPPING = ZZ_DIR / "mapping_32x32.yaml"
WORKLOAD_DIR = ZZ_DIR / "workloads"
RUNNER = ZZ_DIR / "run_zigzag.py"
HARDWARE = HERE / "zigzag_32x32.toml"
DATA = HERE / "data" / "zigzag_resnet50_32x32.json"
BATCH = 256
ARRAY_MACS = 32 * 32
# 1x1, 3x3, stride-2 3x3 and 1x1 downsamples, from every stage of ResNet-50
LAYERS = ("layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3", "layer2.0.conv2", "layer2.0.downsample.0",
          "layer2.1.conv1", "layer3.0.conv2", "layer3.1.conv2", "layer3.1.conv3", "layer4.0.conv2",
          "layer4.0.downsample.0", "layer4.1.conv1")
OPERANDS = {"W": "weights", "I": "inputs", "O": "outputs"}
# REFERENCES.md's ZigZag numbers at batch 256 (cycles, DRAM bytes), setting not recorded there
REFERENCE_QUOTES = {"layer1.0.conv2": (29.71e6, 0.42e9), "layer4.0.conv2": (29.64e6, 0.96e9)}
GOAL_CYCLES, GOAL_ENERGY, GOAL_SPEEDUP = 1.02, 0.10, 100.0


class BenchError(ValueError):
    """Bad input or missing prerequisites: the CLI prints it as one line and exits 2."""


# --- workloads (pure) ---------------------------------------------------------------------------
def layer_shape(spec: Any, batch: int) -> dict[str, int]:
    """ZigZag loop bounds of a conv/linear LayerSpec at `batch` (B, K, C, OY, OX, FY, FX, strides)."""
    if spec.kind == "conv":
        if spec.groups != 1:
            raise BenchError(f"layer {spec.name}: groups={spec.groups} is not supported by this bench")
        kh, kw = spec.kernel_hw
        return {"B": batch, "K": spec.out_channels, "C": spec.in_channels, "OY": spec.out_hw[0],
                "OX": spec.out_hw[1], "FY": kh, "FX": kw, "SY": spec.stride[0], "SX": spec.stride[1]}
    if spec.kind == "linear":
        out_f, in_f = spec.weight_shape
        return {"B": batch * spec.out_positions, "K": out_f, "C": in_f, "OY": 1, "OX": 1, "FY": 1, "FX": 1,
                "SY": 1, "SX": 1}
    raise BenchError(f"layer {spec.name}: kind {spec.kind!r} has no ZigZag workload here")


def shape_macs(shape: dict[str, int]) -> int:
    """MACs of a layer shape."""
    return math.prod(shape[d] for d in ("B", "K", "C", "OY", "OX", "FY", "FX"))


def input_extent(shape: dict[str, int]) -> tuple[int, int]:
    """Rows, columns of input the conv reads: (OY-1)*SY + FY, (OX-1)*SX + FX (no dilation)."""
    return (shape["OY"] - 1) * shape["SY"] + shape["FY"], (shape["OX"] - 1) * shape["SX"] + shape["FX"]


def input_touched(shape: dict[str, int]) -> tuple[int, int]:
    """Rows, columns of input the conv actually reads: the distinct values of stride*o + f, which is the
    extent when the kernel covers the stride (R >= S) and P*R when it does not (a 1x1 stride-2 conv
    reads every other row: 28 of 55). ZigZag sizes the input this way."""
    def one(o: int, s: int, f: int) -> int:
        return (o - 1) * s + f if f >= s else o * f
    return one(shape["OY"], shape["SY"], shape["FY"]), one(shape["OX"], shape["SX"], shape["FX"])


def workload_yaml(name: str, shape: dict[str, int]) -> str:
    """A one-layer ZigZag workload (YAML): bf16 operands, 32-bit partial sums, 16-bit final outputs."""
    dims = ("B", "K", "C", "OY", "OX", "FY", "FX")
    return "\n".join([
        f"# {name}: {shape_macs(shape)} MACs; input extent {input_extent(shape)} (no padding declared)",
        "- id: 0",
        f"  name: {name}",
        "  operator_type: Conv",
        "  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
        f"  dimension_relations: [ix={shape['SX']}*ox+1*fx, iy={shape['SY']}*oy+1*fy]",
        f"  loop_dims: [{', '.join(dims)}]",
        f"  loop_sizes: [{', '.join(str(shape[d]) for d in dims)}]",
        "  operand_precision: {W: 16, I: 16, O: 32, O_final: 16}",
        "  operand_source: {I: 0}",
        "",
    ])


def layer_specs(names: tuple[str, ...] = LAYERS) -> list[Any]:
    from rigl_hw.zoo import model_specs  # imports torch (meta device) only here

    by_name = {s.name: s for s in model_specs("resnet50")}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BenchError(f"layer {missing[0]!r} is not a ResNet-50 layer (e.g. {', '.join(LAYERS[:3])})")
    return [by_name[n] for n in names]


# --- ZigZag results -----------------------------------------------------------------------------
def dram_bytes(run: dict) -> dict[str, dict[str, float]]:
    """DRAM traffic of one ZigZag run, bytes per tensor: read = DRAM -> GLB (incl. partial sums read
    back), write = GLB -> DRAM."""
    out = {}
    for op, tensor in OPERANDS.items():
        top = run["operands"][op][-1]
        out[tensor] = {"read": top["bits"]["rd_out_to_low"] / 8, "write": top["bits"]["wr_in_by_low"] / 8}
    return out


def energy_by_level(run: dict) -> dict[str, float]:
    """pJ per memory level (all tensors and directions), plus "mac"."""
    out: dict[str, float] = {"mac": run["mac_energy_pj"]}
    for levels in run["operands"].values():
        for lv in levels:
            out[lv["memory"]] = out.get(lv["memory"], 0.0) + sum(lv["energy_pj"].values())
    return out


def run_zigzag(specs: list[Any], batch: int, opts: tuple[str, ...] = ("latency", "energy")) -> dict:
    """Write the workloads, run ZigZag per objective in its own interpreter, return the JSON document."""
    if not ZIGZAG_PY.exists():
        raise BenchError(f"{ZIGZAG_PY} not found; create ZigZag's venv with `make zigzag-env`")
    WORKLOAD_DIR.mkdir(parents=True, exist_ok=True)
    shapes, files = {}, []
    for spec in specs:
        shapes[spec.name] = layer_shape(spec, batch)
        path = WORKLOAD_DIR / f"{spec.name}.b{batch}.yaml"
        atomic_write_text(path, workload_yaml(spec.name, shapes[spec.name]))
        files.append(path)
    doc: dict[str, Any] = {"batch": batch, "accelerator": str(ACCELERATOR.relative_to(ROOT)),
                           "mapping": str(MAPPING.relative_to(ROOT)), "search": "LOMA, lpf_limit 6, uneven",
                           "layers": {n: {"shape": s, "macs": shape_macs(s)} for n, s in shapes.items()}}
    for opt in opts:
        with tempfile.TemporaryDirectory(prefix="zz-") as tmp:
            out = Path(tmp) / "out.json"
            cmd = [str(ZIGZAG_PY), str(RUNNER), "--accelerator", str(ACCELERATOR), "--mapping", str(MAPPING),
                   "--opt", opt, "--out", str(out), *map(str, files)]
            proc = subprocess.run(cmd, cwd=tmp, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise BenchError(f"ZigZag failed ({opt}): {proc.stderr.strip().splitlines()[-1:]}")
            res = json.loads(out.read_text())
        doc["zigzag_version"] = res["zigzag_version"]
        for r in res["layers"]:
            doc["layers"][r["layer"]][opt] = r
    return doc


def load_zigzag(path: Path = DATA) -> dict:
    """The recorded ZigZag JSON (raises BenchError with the fix when absent or malformed)."""
    if not path.is_file():
        raise BenchError(f"{path} not found; run with --run-zigzag first")
    try:
        doc = json.loads(path.read_text())
        for name, lay in doc["layers"].items():
            lay["latency"]["latency_total2"], lay["shape"]["B"]  # noqa: B018  (presence check)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchError(f"{path}: not a mapper_vs_zigzag JSON ({exc!r}); re-run with --run-zigzag") from None
    return doc


# --- our side (the one place that knows core's API) ---------------------------------------------
def our_search(spec: Any, batch: int, hw: Any, objective: str) -> dict[str, Any]:
    """Our mapper on one layer (forward pass), cache off: cycles, energy_pj, DRAM bytes, mappings
    evaluated, seconds. The one adapter to `simulator.mapper.map_layer`."""
    from simulator.mapper import map_layer
    from simulator.nest import Problem

    problem = Problem.from_layer(spec, batch, "forward")
    t0 = time.perf_counter()
    res = map_layer(problem, hw, objective=objective, use_cache=False)
    seconds = time.perf_counter() - t0
    ev = res.evaluation
    return {"cycles": float(ev.cycles), "energy_pj": float(ev.energy_pj), "dram_bytes": float(ev.dram_bytes()),
            "mappings_evaluated": int(res.evaluated), "seconds": float(seconds)}


def mapper_available() -> str | None:
    """None when our mapper imports, else why not."""
    try:
        import simulator.mapper  # noqa: F401
        from simulator.nest import Problem  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


# --- report -------------------------------------------------------------------------------------
def zigzag_rows(doc: dict) -> list[dict[str, Any]]:
    """One row per layer of the recorded ZigZag results (latency and energy objectives)."""
    rows = []
    for name, lay in doc["layers"].items():
        lat, en = lay["latency"], lay.get("energy")
        d = dram_bytes(lat)
        rows.append({
            "layer": name, "macs": lay["macs"], "cycles": lat["latency_total2"], "ideal": lat["ideal_cycle"],
            "stall": lat["stall_slack_comb"], "energy_pj": lat["energy_pj"],
            "dram_bytes": sum(v["read"] + v["write"] for v in d.values()), "dram": d,
            "seconds": lat["search_seconds"],
            "e_cycles": en["latency_total2"] if en else None, "e_energy_pj": en["energy_pj"] if en else None,
            "e_dram_bytes": sum(v["read"] + v["write"] for v in dram_bytes(en).values()) if en else None,
            "e_seconds": en["search_seconds"] if en else None,
        })
    return rows


def print_zigzag(doc: dict) -> None:
    print(f"ZigZag {doc['zigzag_version']} on {doc['accelerator']}, batch {doc['batch']} "
          f"(latency-optimal | energy-optimal)")
    print(f"{'layer':24s} {'ideal':>11s} {'cycles':>11s} {'stall':>9s} {'energy uJ':>10s} {'DRAM MB':>9s} "
          f"{'W/I/O MB':>20s} {'s':>5s} | {'cycles':>11s} {'energy uJ':>10s} {'DRAM MB':>8s} {'s':>5s}")
    for r in zigzag_rows(doc):
        w, i, o = (r["dram"][t]["read"] / 1e6 + r["dram"][t]["write"] / 1e6 for t in ("weights", "inputs", "outputs"))
        tail = (f"{r['e_cycles']:11.0f} {r['e_energy_pj'] / 1e6:10.1f} {r['e_dram_bytes'] / 1e6:8.1f} "
                f"{r['e_seconds']:5.1f}" if r["e_cycles"] is not None else "")
        print(f"{r['layer']:24s} {r['ideal']:11.0f} {r['cycles']:11.0f} {r['stall']:9.0f} "
              f"{r['energy_pj'] / 1e6:10.1f} {r['dram_bytes'] / 1e6:9.1f} {f'{w:.1f}/{i:.1f}/{o:.1f}':>20s} "
              f"{r['seconds']:5.1f} | {tail}")
    for name, (cyc, dram) in REFERENCE_QUOTES.items():
        if name in doc["layers"]:
            lat = doc["layers"][name]["latency"]
            got = sum(v["read"] + v["write"] for v in dram_bytes(lat).values())
            print(f"REFERENCES.md quotes {name}: {cyc / 1e6:.2f}M cycles, {dram / 1e9:.2f} GB DRAM; "
                  f"this setting: {lat['latency_total2'] / 1e6:.2f}M, {got / 1e9:.2f} GB")


def compare(doc: dict, hw: Any, specs: list[Any]) -> list[dict[str, Any]]:
    """Our mapper next to ZigZag per layer (latency objective; energy vs ZigZag's energy optimum)."""
    rows = []
    for spec, zz in zip(specs, zigzag_rows(doc)):
        ours = our_search(spec, doc["batch"], hw, "latency")
        ours_e = our_search(spec, doc["batch"], hw, "energy") if zz["e_energy_pj"] is not None else None
        rows.append({**{f"zz_{k}": v for k, v in zz.items()}, "layer": spec.name,
                     "cycles": ours["cycles"], "energy_pj": ours["energy_pj"], "dram_bytes": ours["dram_bytes"],
                     "evaluated": ours["mappings_evaluated"], "seconds": ours["seconds"],
                     "cycle_ratio": ours["cycles"] / zz["cycles"],
                     "energy_ratio_lat": ours["energy_pj"] / zz["energy_pj"],
                     "energy_ratio": (ours_e["energy_pj"] / zz["e_energy_pj"]) if ours_e else None,
                     "speedup": zz["seconds"] / max(ours["seconds"], 1e-9)})
    return rows


def print_compare(rows: list[dict[str, Any]]) -> int:
    print(f"\nours vs ZigZag (goals: cycles <= {GOAL_CYCLES}x, energy within {GOAL_ENERGY:.0%}, "
          f"search >= {GOAL_SPEEDUP:.0f}x faster)")
    print(f"{'layer':24s} {'ours cyc':>11s} {'zz cyc':>11s} {'ratio':>6s} {'E/E(lat)':>8s} {'E/E(en)':>8s} "
          f"{'DRAM MB':>8s} {'zz MB':>8s} {'evals':>7s} {'ms':>7s} {'speedup':>8s}")
    bad = 0
    for r in rows:
        er = r["energy_ratio"] if r["energy_ratio"] is not None else r["energy_ratio_lat"]
        ok = r["cycle_ratio"] <= GOAL_CYCLES and abs(er - 1) <= GOAL_ENERGY and r["speedup"] >= GOAL_SPEEDUP
        bad += not ok
        en = f"{r['energy_ratio']:8.3f}" if r["energy_ratio"] is not None else f"{'-':>8s}"
        print(f"{r['layer']:24s} {r['cycles']:11.0f} {r['zz_cycles']:11.0f} {r['cycle_ratio']:6.3f} "
              f"{r['energy_ratio_lat']:8.3f} {en} {r['dram_bytes'] / 1e6:8.1f} {r['zz_dram_bytes'] / 1e6:8.1f} "
              f"{r['evaluated']:7d} {r['seconds'] * 1e3:7.1f} {r['speedup']:8.0f}{'' if ok else '  MISSED'}")
    tot_ours = sum(r["seconds"] for r in rows)
    tot_zz = sum(r["zz_seconds"] for r in rows)
    print(f"search time: ours {tot_ours:.2f} s, ZigZag {tot_zz:.1f} s, ratio {tot_zz / max(tot_ours, 1e-9):.0f}x; "
          f"{len(rows) - bad}/{len(rows)} layers meet every goal")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-zigzag", action="store_true", help="re-run ZigZag (.zigzag venv) and rewrite the JSON")
    ap.add_argument("--json", type=Path, default=DATA, help="recorded ZigZag results (default: %(default)s)")
    ap.add_argument("--layers", default=",".join(LAYERS), help="comma-separated ResNet-50 layer names")
    ap.add_argument("--latency-only", action="store_true", help="with --run-zigzag: skip the energy-optimal run")
    args = ap.parse_args(argv)
    try:
        names = tuple(n.strip() for n in args.layers.split(",") if n.strip())
        if not names:
            raise BenchError("--layers: give at least one ResNet-50 layer name")
        specs = layer_specs(names)
        if args.run_zigzag:
            doc = run_zigzag(specs, BATCH, ("latency",) if args.latency_only else ("latency", "energy"))
            atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")
            print(f"wrote {args.json}")
        else:
            doc = load_zigzag(args.json)
            keep = [n for n in names if n in doc["layers"]]
            if len(keep) != len(names):
                raise BenchError(f"layer {sorted(set(names) - set(keep))[0]!r} is not in {args.json}; "
                                 "re-run with --run-zigzag --layers ...")
            doc = {**doc, "layers": {n: doc["layers"][n] for n in names}}
        print_zigzag(doc)
        why = mapper_available()
        if why is not None:
            print(f"\nour mapper is not importable yet ({why}): ZigZag table only")
            return 0
        from simulator.hardware import load_hardware

        return 1 if print_compare(compare(doc, load_hardware(HARDWARE), specs)) else 0
    except BenchError as exc:
        print(f"rigl-hw: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
