"""Run ZigZag (zigzag-dse 3.9.1) on one-layer workload YAMLs and print one JSON object per run.

This file runs ONLY under ZigZag's own interpreter (`.zigzag/bin/python`), started as a subprocess by
`studies/bench/mapper_vs_zigzag.py --run-zigzag`; it never imports rigl_hw or simulator, and nothing in
the package or the tests imports it.

Usage: .zigzag/bin/python studies/bench/zigzag/run_zigzag.py --accelerator A.yaml --mapping M.yaml
         --opt latency|energy --out OUT.json LAYER.yaml [LAYER.yaml ...]

Per layer it records what ZigZag's chosen cost-model evaluation (CME) holds: latency_total0/1/2 (cycles;
2 is the one ZigZag minimises and reports), ideal_cycle, ideal_temporal_cycle, stall_slack_comb,
data_onloading/offloading cycles, systolic drain, MAC and memory energy (pJ) with the per-operand,
per-level, per-direction breakdown, the bits moved per operand, level and direction (from the
mapping's unit data movement, exact, before ZigZag rounds them to accesses), the temporal mapping per
operand, and the search wall time (seconds, the whole ZigZag call for that layer).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import time
from contextlib import redirect_stdout
from importlib.metadata import version
from pathlib import Path

from zigzag.api import get_hardware_performance_zigzag
from zigzag.hardware.architecture.memory_port import DataDirection
from zigzag.mapping.data_movement import DataMoveAttr

DIRECTIONS = tuple(DataDirection)


def _name(x) -> str:
    return str(x.name if hasattr(x, "name") else x)


def _moved_bits(cme, layer_op, lvl: int) -> dict[str, int]:
    """Bits moved at memory level `lvl` of `layer_op`, per direction (all memory instances together)."""
    umdm = cme.mapping.unit_mem_data_movement[layer_op][lvl]
    amount = umdm.get_attribute(DataMoveAttr.DATA_TRANS_AMOUNT_PER_PERIOD)
    prec = umdm.get_attribute(DataMoveAttr.DATA_PRECISION)
    count = umdm.get_attribute(DataMoveAttr.DATA_TRANS_PERIOD_COUNT)
    units = cme.mapping.spatial_mapping.unit_count[layer_op][lvl + 1]
    return {d.value: int(round(amount.get(d) * prec.get(d) * count.get(d) * units)) for d in DIRECTIONS}


def summarize(cme) -> dict:
    """The numbers of one CME as plain JSON data."""
    layer = cme.layer
    ops = list(layer.layer_operands)
    levels: dict[str, dict] = {}
    for op in ops:
        mem_op = cme.memory_operand_links.layer_to_mem_op(op)
        per_level = []
        for lvl in range(cme.mapping.mem_level[op]):
            mem = cme.accelerator.get_memory_level(mem_op, lvl)
            energy = cme.mem_energy_breakdown_further[op][lvl]
            per_level.append({
                "memory": mem.name,
                "bits": _moved_bits(cme, op, lvl),
                "energy_pj": {d.value: float(energy.get(d)) for d in DIRECTIONS},
                "accesses": {d.value: int(cme.memory_word_access[op][lvl].get(d)) for d in DIRECTIONS},
            })
        levels[_name(op)] = per_level
    tm = cme.mapping.temporal_mapping.mapping_dic_origin
    return {
        "latency_total0": float(cme.latency_total0),
        "latency_total1": float(cme.latency_total1),
        "latency_total2": float(cme.latency_total2),
        "ideal_cycle": float(cme.ideal_cycle),
        "ideal_temporal_cycle": float(cme.ideal_temporal_cycle),
        "stall_slack_comb": float(cme.stall_slack_comb),
        "data_onloading_cycle": float(cme.data_onloading_cycle),
        "data_offloading_cycle": float(cme.data_offloading_cycle),
        "systolic_drain_cycle": float(getattr(cme, "systolic_drain_cycle", 0.0)),
        "mac_energy_pj": float(cme.mac_energy),
        "mem_energy_pj": float(cme.mem_energy),
        "energy_pj": float(cme.energy_total),
        "total_mac_count": int(layer.total_mac_count),
        "operands": levels,
        "temporal_mapping": {_name(op): [[(_name(d), int(s)) for d, s in lv] for lv in tm[op]] for op in ops},
        "spatial_mapping": str(layer.spatial_mapping),
        "double_buffer": {_name(op): list(map(bool, v)) for op, v in cme.double_buffer_true.items()},
        "stall_slack_per_port": [{p: float(v) for p, v in lv.items()} for lv in cme.stall_slack_comb_collect],
    }


def run_layer(workload: Path, accelerator: Path, mapping: Path, opt: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="zigzag-") as dump:
        t0 = time.perf_counter()
        with redirect_stdout(io.StringIO()):
            _, _, cmes = get_hardware_performance_zigzag(
                str(workload), str(accelerator), str(mapping), opt=opt, dump_folder=dump,
                loma_show_progress_bar=False)
        seconds = time.perf_counter() - t0
    cme = cmes[0][1][0][0]
    out = summarize(cme)
    out["search_seconds"] = seconds
    out["workload"] = workload.name
    out["layer"] = str(cme.layer.name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerator", type=Path, required=True)
    ap.add_argument("--mapping", type=Path, required=True)
    ap.add_argument("--opt", choices=("latency", "energy", "EDP"), default="latency")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("workloads", type=Path, nargs="+")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)
    results = []
    for wl in args.workloads:
        r = run_layer(wl, args.accelerator, args.mapping, args.opt)
        print(f"{r['layer']}: {r['latency_total2']:.0f} cycles, {r['energy_pj']:.4g} pJ, "
              f"{r['search_seconds']:.1f} s", file=sys.stderr, flush=True)
        results.append(r)
    args.out.write_text(json.dumps({"zigzag_version": version("zigzag-dse"), "opt": args.opt,
                                    "layers": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
