"""The study registry, the `all` runner and its index.md.

    STUDIES: dict[str, Callable]   name -> run(out_dir, scheduler=None, n_workers=2, quick=False, progress=True,
                                               presets=None) -> Path
    run_study(name, out_dir, scheduler=None, n_workers=2, quick=False, progress=True, presets=None) -> Path
                                                                                    ("all" -> run_all)
    run_all(out_dir, scheduler=None, n_workers=2, quick=False, progress=True, studies=None, presets=None) -> Path
                                                                                    (out_dir/index.md)

presets (`rigl-hw study NAME --hardware ...`): preset names or .toml specs that replace each study's
default hardware (methods-small simulates its traces on the first of them).

run_all runs every study into out_dir/<name>/ and writes out_dir/index.md linking each report.md.
`methods-small` (studies.methods_small, trains small models with torch) is imported only when it runs;
if it is missing or fails, the index says so and links nothing for it, and the other studies still
run. Bad input (an unknown preset, an unreachable Dask scheduler) stops the run with its own error;
any other failure of one of the simulator studies is recorded in the index and raised after it is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from studies import training_cost, uniform_vs_erk, update_interval


def _methods_small(out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False,
                   progress: bool = True, presets: tuple[str, ...] | None = None) -> Path:
    """studies.methods_small.run(out_dir, quick, preset) (it trains in-process and takes no Dask options;
    its traces are simulated on one hardware: the first of `presets`, else its default)."""
    from studies.methods_small import run

    return Path(run(out_dir, quick=quick, preset=presets[0] if presets else None))


STUDIES: dict[str, Callable[..., Path]] = {
    "uniform-vs-erk": uniform_vs_erk.run,
    "training-cost": training_cost.run,
    "update-interval": update_interval.run,
    "methods-small": _methods_small,
}
OPTIONAL = ("methods-small",)
ABOUT = {
    "uniform-vs-erk": "Uniform vs ERK: parameters, FLOPs, per-layer sparsity, and simulated time and energy of a step "
                      "and a whole run on dense and sparse arrays; MobileNet-v1 Big-Sparse.",
    "training-cost": "Every method's whole ResNet-50 ImageNet run on every hardware preset, time and energy next to "
                     "the FLOP ratio; share of the mask-update steps.",
    "update-interval": "RigL's update steps amortised per step against ΔT and the top-k buffer; the ΔT > 1/(1−S) "
                       "condition on hardware.",
    "methods-small": "Small-scale training of Static, SET, SNFS, RigL and Small-Dense (accuracy, 3 seeds).",
}


def _bad_input() -> tuple[type[BaseException], ...]:
    from simulator.hardware import HardwareSpecError
    from studies.sweep import SweepError

    return (HardwareSpecError, SweepError)


def run_study(name: str, out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False,
              progress: bool = True, presets: tuple[str, ...] | None = None) -> Path:
    """Run one study by name ("all" runs every study); returns its output directory (for "all": index.md).
    presets: hardware (preset names or .toml paths) to use instead of each study's own presets."""
    if name == "all":
        return run_all(out_dir, scheduler=scheduler, n_workers=n_workers, quick=quick, progress=progress,
                       presets=presets)
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose one of {', '.join([*STUDIES, 'all'])}")
    return STUDIES[name](out_dir, scheduler=scheduler, n_workers=n_workers, quick=quick, progress=progress,
                         presets=tuple(presets) if presets else None)


def run_all(out_dir, scheduler: str | None = None, n_workers: int = 2, quick: bool = False, progress: bool = True,
            studies: tuple[str, ...] | None = None, presets: tuple[str, ...] | None = None) -> Path:
    """Run every study (or those named) into out_dir/<name>/ and write out_dir/index.md; return its path."""
    from studies.common import StudyError, write_text

    names = list(studies) if studies is not None else list(STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise KeyError(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        t0 = time.perf_counter()
        try:
            path = STUDIES[name](out / name, scheduler=scheduler, n_workers=n_workers, quick=quick, progress=progress,
                                 presets=tuple(presets) if presets else None)
            report = Path(path) / "report.md"
            status = "ok" if report.exists() else "no report.md written"
            results.append((name, report if report.exists() else None, time.perf_counter() - t0, status, None))
        except _bad_input():
            raise
        except Exception as e:  # noqa: BLE001 - recorded in the index; simulator studies re-raised below
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            results.append((name, None, time.perf_counter() - t0, msg, e))
    lines = [f"# rigl-hw studies{' (QUICK MODE)' if quick else ''}", "",
             "| study | report | wall time | sweep points (computed / cached) | status |", "|---|---|---|---|---|"]
    for name, report, secs, status, _ in results:
        link = f"[{name}/report.md]({name}/report.md)" if report is not None else "–"
        info = out / name / "run_info.json"
        pts = "–"
        if report is not None and info.exists():
            i = json.loads(info.read_text())
            pts = f"{i['computed']} / {i['cached']}"
        lines.append(f"| {name} | {link} | {secs:.1f} s | {pts} | {status.replace('|', '/')} |")
    lines += ["", *[f"- **{n}**: {ABOUT.get(n, '')}" for n, *_ in results], "",
              f"Regenerate with `rigl-hw study all --out {out}`{' --quick' if quick else ''} (finished sweep points "
              "are cached under each study's `.cache/`).", ""]
    index = write_text(out / "index.md", "\n".join(lines))
    failed = [(n, e) for n, _, _, _, e in results if e is not None and n not in OPTIONAL]
    if failed:
        raise StudyError(f"{len(failed)} studies failed ({', '.join(n for n, _ in failed)}); see {index}") from failed[0][1]
    return index
