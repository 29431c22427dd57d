"""`rigl-hw hardware list | show NAME`: the shipped presets, and one validated spec with its energy table."""

from __future__ import annotations

import argparse

from ._common import add_json, print_json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("hardware", help="list or show simulated hardware presets")
    hsub = p.add_subparsers(dest="hardware_command", required=True, metavar="COMMAND")
    ls = hsub.add_parser("list", help="names and descriptions of the shipped presets")
    add_json(ls)
    ls.set_defaults(func=run_list)
    show = hsub.add_parser("show", help="the full validated spec of a preset or a TOML file and its resolved "
                                        "per-action energy table (pJ per word, with sources)")
    show.add_argument("name", metavar="HW", help="preset name (see `rigl-hw hardware list`) or path to a .toml spec")
    add_json(show)
    show.set_defaults(func=run_show)
    return p


def run_list(args: argparse.Namespace) -> int:
    from simulator.hardware import list_presets, load_hardware

    specs = [(name, load_hardware(name)) for name in list_presets()]
    if args.json:
        print_json({"presets": [{"name": name, "rows": s.pe_array.rows, "cols": s.pe_array.cols,
                                 "clock_hz": s.pe_array.clock_hz, "dataflow": s.dataflow,
                                 "number_format": s.number_format, "sparsity": s.sparsity.mode,
                                 "weight_format": s.weight_format.kind, "description": s.description}
                                for name, s in specs]})
        return 0
    for name, spec in specs:
        arr = spec.pe_array
        print(f"{name:<22} {arr.rows}x{arr.cols} {spec.dataflow:<3} {spec.number_format:<5} "
              f"sparsity={'skip' if spec.skips else spec.sparsity.mode:<5} format={spec.weight_format.kind:<8} {spec.description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from simulator.energy import format_energy_table, resolve_action_energies
    from simulator.hardware import load_hardware
    from simulator.sparse_features import describe as describe_sparse

    hw = load_hardware(args.name)
    table = resolve_action_energies(hw)  # before any output: a bad ERT fails with nothing printed
    spec = hw.to_dict()
    if args.json:
        resolved = table.to_dict()
        spec["energy"] = {**spec["energy"], "ert_file": resolved.pop("ert"), **resolved}
        spec["sparse_features"] = describe_sparse(hw)
        print_json(spec)
        return 0

    def show(d: dict, indent: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                print(f"{indent}{k}:")
                show(v, indent + "  ")
            elif isinstance(v, (list, tuple)) and v and isinstance(v[0], dict):
                for i, item in enumerate(v):
                    print(f"{indent}{k}[{i}]:")
                    show(item, indent + "  ")
            else:
                print(f"{indent}{k}: {v}")
    show(spec)
    print("sparse features (simulator/sparse_features.py):")
    for line in describe_sparse(hw):
        print(f"  {line}")
    print(format_energy_table(table))
    return 0

