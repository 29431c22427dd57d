"""Validate the `eyeriss-v2-pe` preset against the Sparseloop artifact's Fig. 12 (Eyeriss v2 PE,
sparse MobileNet-0.5 layers L07-L27).

    .venv/bin/python studies/bench/eyeriss_v2_sparseloop.py --artifact PATH

PATH: a checkout of Accelergy-Project/micro22-sparseloop-artifact (or its
workspace/2022.micro.artifact/evaluation_setups/fig12_eyerissv2_pe_setup folder). That repository has
no licence, so nothing of it is in rigl-hw: this script reads, from the user's path, the real masks
(workload/mobilenet0.5-sparse/actual_data/actual_data_masks/Lxx_{weights,iacts}.txt: weights [M][C],
inputs [E][F][C], C innermost), the layer shapes and uniform densities (workload/...), the mapping of
each layer (mappings/mobilenet0.5-sparse/Lxx-perfect_factor.yaml), the chip's ground-truth cycles
(scripts/ground_truth_cycles.yaml) and Sparseloop's reference outputs (ref_outputs/.../stats.txt).

Per layer it prints: our real-mask cycles through `rigl-hw map --weight-mask --input-mask --mapping`
vs the ground truth (must be equal), our statistical cycles at the workload's uniform densities vs
Sparseloop's uniform-density cycles (within 0.5%), and our real-mask energy vs Sparseloop's actual-data
energy where the artifact has it (L07, L21, L27; within 10%). Exit 1 if a check fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]     # run as a file too: the package, not studies/bench/simulator.py

SUB = Path("workspace/2022.micro.artifact/evaluation_setups/fig12_eyerissv2_pe_setup")
LAYERS = ("L07", "L09", "L13", "L19", "L21", "L23", "L25", "L27")
DIM = {"E": "P", "F": "Q"}          # Sparseloop's output rows / columns -> ours
LEVEL = {"BackingStorage": "backing"}
ORDER = ("backing", "iact_spad", "weight_spad", "psum_spad", "reg")   # outermost first


def setup_dir(path: Path) -> Path:
    for cand in (path, path / SUB):
        if (cand / "workload" / "mobilenet0.5-sparse").is_dir():
            return cand
    print(f"eyeriss_v2_sparseloop: error: --artifact {path}: no {SUB}/workload/mobilenet0.5-sparse there; "
          "give the artifact checkout", file=sys.stderr)
    raise SystemExit(2)


def _ints(text: str, keys: str) -> dict[str, int]:
    return {k: int(re.search(rf"^\s*{k}:\s*(\d+)", text, re.M).group(1)) for k in keys}


def layer_shape(d: Path, layer: str) -> dict[str, int]:
    return _ints((d / f"workload/mobilenet0.5-sparse/actual_data/{layer}.yaml").read_text(), "CMEFNRS")


def uniform_densities(d: Path, layer: str) -> tuple[float, float]:
    text = (d / f"workload/mobilenet0.5-sparse/uniform/{layer}.yaml").read_text()
    get = lambda t: float(re.search(rf"{t}:\s*\n\s*distribution:.*\n\s*density:\s*([\d.]+)", text).group(1))  # noqa: E731
    return get("Weights"), get("Inputs")


def masks(d: Path, layer: str, shape: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    def bits(name: str) -> np.ndarray:
        s = (d / f"workload/mobilenet0.5-sparse/actual_data/actual_data_masks/{layer}_{name}.txt").read_text().strip()
        return np.frombuffer(s.encode(), dtype=np.uint8) == ord("1")
    M, C, E, F = shape["M"], shape["C"], shape["E"], shape["F"]
    w = bits("weights").reshape(M, C, 1, 1)
    a = bits("iacts").reshape(E, F, C).transpose(2, 0, 1)[None]
    return w, a


def mapping_toml(d: Path, layer: str, shape: dict[str, int]) -> str:
    """The artifact's mapping of `layer` in rigl-hw's mapping format (factor 0 = the remaining extent)."""
    import yaml

    entries = yaml.safe_load((d / f"mappings/mobilenet0.5-sparse/{layer}-perfect_factor.yaml").read_text())["mapping"]
    temporal = {}
    for e in entries:
        if e.get("type") != "temporal":
            continue
        f = dict(kv.split("=") for kv in e["factors"].split())
        temporal[LEVEL.get(e["target"], e["target"])] = ({k: int(v) for k, v in f.items()}, e["permutation"])
    used = {k: 1 for k in "MEFRSNGC"}
    for f, _ in temporal.values():
        for k, v in f.items():
            used[k] *= max(1, v)
    full = {k: shape.get(k, 1) for k in "MEFRSNGC"}
    out = []
    for name in ORDER:
        f, perm = temporal.get(name, ({}, ""))
        loops = []
        for k in reversed(perm):                          # Timeloop permutations are inner -> outer
            v = f.get(k, 1)
            if v == 0:
                v = full[k] // used[k]
            if v > 1:
                loops.append(f'["{DIM.get(k, k)}", {v}]')
        out.append(f'[[level]]\nname = "{name}"\ntemporal = [{", ".join(loops)}]\nspatial = []\n')
    return "\n".join(out)


def sparseloop(d: Path, kind: str, layer: str) -> tuple[int, float] | None:
    """(cycles, energy pJ: the sum of every component's Energy (total)) of a reference stats file."""
    sub = {"uniform": f"uniform_only/{layer}/uniform", "actual": f"uniform_actual/{layer}/actual_data"}[kind]
    p = d / "ref_outputs" / sub / "output" / "timeloop-model.stats.txt"
    if not p.is_file():
        return None
    text = p.read_text()
    cycles = int(re.search(r"^Cycles: (\d+)", text, re.M).group(1))
    energy = sum(float(x) for x in re.findall(r"Energy \(total\)\s*:\s*([\d.]+) pJ", text))
    return cycles, energy


def run_map(*args: str) -> dict:
    from rigl_hw.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["map", "--hardware", "eyeriss-v2-pe", *args, "--json"])
    if rc != 0:
        raise SystemExit(f"rigl-hw map failed (exit {rc})")
    return json.loads(buf.getvalue())["layers"][0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifact", required=True, type=Path, help="checkout of micro22-sparseloop-artifact")
    args = ap.parse_args(argv)
    d = setup_dir(args.artifact)
    truth = {k: int(v) for k, v in re.findall(r"^(L\d+):\s*(\d+)", (d / "scripts/ground_truth_cycles.yaml").read_text(), re.M)}
    ok = True
    print(f"{'layer':5} {'ours real':>10} {'truth':>10} {'=':>2} | {'ours stat':>12} {'Sparseloop':>10} {'diff':>7} | "
          f"{'ours uJ':>8} {'SL uJ':>6} {'diff':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for layer in LAYERS:
            shape = layer_shape(d, layer)
            w, a = masks(d, layer, shape)
            wf, af, mf = Path(tmp, "w.npy"), Path(tmp, "a.npy"), Path(tmp, f"{layer}.toml")
            np.save(wf, w)
            np.save(af, a)
            mf.write_text(mapping_toml(d, layer, shape))
            spec = f"conv N=1 C={shape['C']} M={shape['M']} P={shape['E']} Q={shape['F']}"
            real = run_map("--layer", spec, "--mapping", str(mf), "--weight-mask", str(wf), "--input-mask", str(af))
            dw, da = uniform_densities(d, layer)
            stat = run_map("--layer", spec, "--mapping", str(mf), "--weight-density", str(dw), "--input-density", str(da))
            exact = real["cycles"] == truth[layer]
            su = sparseloop(d, "uniform", layer)
            sd = stat["cycles"] / su[0] - 1
            sa = sparseloop(d, "actual", layer)
            line = (f"{layer:5} {real['cycles']:>10,.0f} {truth[layer]:>10,} {'ok' if exact else 'NO':>2} | "
                    f"{stat['cycles']:>12,.1f} {su[0]:>10,} {sd:>+7.2%} | {real['energy_pj'] / 1e6:>8.3f} ")
            ok &= exact and abs(sd) <= 0.005
            if sa is not None:
                ed = real["energy_pj"] / sa[1] - 1
                ok &= abs(ed) <= 0.10
                line += f"{sa[1] / 1e6:>6.2f} {ed:>+7.2%}"
            print(line)
    print("all checks pass" if ok else "A CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
