"""`rigl-hw study NAME --out DIR`: a reproducible study (CSV tables, PNG plots, report.md; studies.index)."""

from __future__ import annotations

import argparse

from ._choices import STUDY_NAMES
from ._common import CliError, add_json, positive_int, print_json, say


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("study", help="run a reproducible study (CSV tables, PNG plots, report.md)",
                       description="Studies: " + ", ".join(STUDY_NAMES) + ". Grids run on Dask (a local cluster "
                                   "by default); finished points are cached under DIR/.cache.")
    p.add_argument("name", metavar="NAME", choices=STUDY_NAMES, help="which study (all: every study and an index)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created; NAME=all writes one "
                                                               "subdirectory per study and DIR/index.md)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of an existing Dask scheduler, tcp://HOST:PORT (default: a local cluster)")
    p.add_argument("--workers", type=positive_int, default=2, help="local Dask workers (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny grids (seconds), for smoke tests")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--hardware", nargs="+", metavar="HW", default=None,
                   help="run on these presets or .toml specs instead of the study's own presets "
                        "(methods-small simulates its traces on the first one)")
    add_json(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studies.sweep import check_scheduler, check_workers

    check_workers(args.workers)          # before anything starts: a bad count or address never hangs
    check_scheduler(args.scheduler)
    if args.hardware and args.name == "methods-small" and len(args.hardware) > 1:
        raise CliError("methods-small simulates its traces on one hardware; give one --hardware")
    if args.hardware:
        from simulator.hardware import load_hardware

        for h in args.hardware:       # a bad spec fails before any study starts
            load_hardware(h)
    from studies.index import run_study

    path = run_study(args.name, args.out, scheduler=args.scheduler, n_workers=args.workers, quick=args.quick,
                     progress=args.progress, presets=tuple(args.hardware) if args.hardware else None)
    say(f"wrote {path}")
    if args.json:
        out = Path(args.out)
        reports = sorted(str(r) for r in out.rglob("report.md") if ".cache" not in r.relative_to(out).parts)
        print_json({"study": args.name, "out": str(out), "result": str(path), "quick": args.quick,
                    "hardware": list(args.hardware) if args.hardware else None, "reports": reports})
    return 0
