"""The README's main job on embedded defaults. At this stage: the Uniform-vs-ERK parameters/FLOPs
table of ResNet-50 and MobileNet-v1 (later stages add train -> trace -> simulate -> export)."""

from __future__ import annotations

import sys
from pathlib import Path

from .flops_report import flops_report


def uniform_vs_erk_table(models=("resnet50", "mobilenet_v1"), sparsities=(0.8, 0.9)) -> list[dict]:
    rows = []
    for model in models:
        for s in sparsities:
            for dist in ("uniform", "erk"):
                r = flops_report(model, dist, s, method="rigl", delta_t=100)
                rows.append({"model": model, "sparsity": s, "distribution": dist,
                             "params": r["params"]["sparse"], "params_ratio": r["params"]["sparse"] / r["params"]["dense"],
                             "inference_flops": r["inference_flops"]["sparse"],
                             "inference_ratio": r["inference_flops"]["ratio"],
                             "train_ratio": r["train_flops"]["ratio"]})
    return rows


def run_demo(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = uniform_vs_erk_table()
    header = "| model | S | distribution | params | params/dense | GFLOPs/sample | test FLOPs/dense | train FLOPs/dense (RigL, ΔT=100) |"
    lines = ["# Uniform vs ERK: parameters and FLOPs", "", header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sparsity']} | {r['distribution']} | {r['params']:,} | {r['params_ratio']:.3f} | "
                     f"{r['inference_flops'] / 1e9:.3f} | {r['inference_ratio']:.3f} | {r['train_ratio']:.3f} |")
    text = "\n".join(lines) + "\n"
    (out / "uniform_vs_erk.md").write_text(text)
    sys.stdout.write(text)
    return 0
