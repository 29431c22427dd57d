"""`rigl-hw map` and `rigl_hw.api.map_layer/map_model`: the mapper over a layer or a model's layers.

Layers come from `--layer "conv N=16 C=64 M=64 R=3 S=3 P=56 Q=56 stride=1"`, `--layer "gemm M=512 N=512
K=512"` or `--model` (zoo name, package.module:factory with `--input-shape`, or FILE.onnx); every
(layer, pass) is searched (or evaluated under `--mapping-file`). `map_request(MapRequest)` does the
work and returns a `MapReport`; `run_map(args)` prints it as a Timeloop-style loop nest with a
per-level table, or as one JSON object (`--json`). Argument parsing lives in rigl_hw/cli/map.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from simulator.access import SPACE_NAME, Evaluation, evaluate
from simulator.hardware import load_hardware
from simulator.mapper import map_layer
from simulator.nest import PASSES, MappingError, Problem, load_mapping
from simulator.sparse_features import Joint, joint_fractions, nest_masks, resolve

@dataclass(frozen=True)
class MapRequest:
    """What to map: one `layer` (the --layer text) or every layer of `model`, on `hardware` (preset name or
    TOML path); field names are the CLI's options (dashes as underscores, `--pass` -> pass_name)."""

    hardware: str
    layer: str | None = None
    model: str | None = None
    width: float = 1.0
    input_shape: Any = None                 # per-sample shape of a module:factory model ("C,H,W" or a tuple)
    distribution: str | None = None         # with sparsity: per-layer weight densities of --model
    sparsity: float | None = None
    pass_name: str = "forward"              # forward | backward_data | backward_weight | all
    batch: int | None = None                # N (default: the layer's N, else 1)
    objective: str = "latency"              # latency | energy | edp
    weight_density: float | None = None     # statistical weight density in [0, 1]
    weight_mask: str | None = None          # .npy mask of --layer's weight shape
    mapping_file: str | None = None         # mapping TOML to evaluate instead of searching (--layer only)
    input_density: float | None = None      # statistical input-activation density in [0, 1]
    input_mask: str | None = None           # .npy input-activation mask (N, C, H, W) of --layer
    grad_density: float | None = None       # statistical output-gradient density in [0, 1]
    grad_mask: str | None = None            # .npy output-gradient mask (N, M, P, Q) of --layer

    def __post_init__(self) -> None:
        from rigl_hw.user_model import parse_input_shape

        if (self.layer is None) == (self.model is None):
            raise MappingError("give exactly one of --layer and --model")
        if self.pass_name not in (*PASSES, "all"):
            raise MappingError(f"--pass {self.pass_name!r}: use one of {', '.join(PASSES)} or all")
        if self.weight_density is not None and self.weight_mask is not None:
            raise MappingError("--weight-density and --weight-mask both set a weight density; give one")
        object.__setattr__(self, "input_shape", parse_input_shape(self.input_shape))

    @classmethod
    def from_args(cls, args) -> "MapRequest":
        """The request of parsed `rigl-hw map` arguments."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


@dataclass(frozen=True)
class MapReport:
    """One evaluation per (layer, pass), in order; cycles per layer pass, energies in pJ."""

    hardware: str
    objective: str
    clock_hz: float                          # the hardware's PE-array clock (cycles -> seconds)
    given_mapping: bool                      # True: evaluated under the request's mapping, no search
    evaluations: list[tuple[str, Evaluation]] = field(repr=False)
    mappings_evaluated: int
    seconds: float                           # wall time of the search / evaluation
    operand_info: list[dict[str, Any]] = field(default_factory=list, repr=False)  # per evaluation: densities, exploited

    @property
    def rows(self) -> list[dict[str, Any]]:
        info = self.operand_info or [{} for _ in self.evaluations]
        return [{**_row(name, ev), **extra} for (name, ev), extra in zip(self.evaluations, info)]

    @property
    def totals(self) -> dict[str, float]:
        return {"cycles": sum(ev.cycles for _, ev in self.evaluations),
                "energy_pj": sum(ev.energy_pj for _, ev in self.evaluations)}

    def to_dict(self) -> dict[str, Any]:
        """The `rigl-hw map --json` object."""
        return {"hardware": self.hardware, "objective": self.objective, "layers": self.rows, "totals": self.totals,
                "search": {"mappings_evaluated": self.mappings_evaluated, "seconds": self.seconds}}


CONV_KEYS = ("N", "G", "M", "C", "P", "Q", "R", "S", "stride", "dilation")
GEMM_KEYS = ("M", "N", "K")


def _pair(key: str, text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        vals = [int(v) for v in parts]
    except ValueError:
        raise MappingError(f"--layer: {key}={text!r} must be an integer or AxB") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise MappingError(f"--layer: {key}={text!r} must be a positive integer or AxB")
    return (vals[0], vals[1])


def parse_layer(text: str, batch: int | None = None) -> tuple[str, dict[str, Any]]:
    """'conv N=.. C=..' or 'gemm M=.. N=.. K=..' -> (kind, keyword arguments of Problem)."""
    words = text.split()
    if not words or words[0] not in ("conv", "gemm"):
        raise MappingError(f"--layer {text!r}: must start with 'conv' or 'gemm', e.g. "
                           "\"conv N=16 C=64 M=64 R=3 S=3 P=56 Q=56 stride=1\" or \"gemm M=512 N=512 K=512\"")
    kind, keys = words[0], (CONV_KEYS if words[0] == "conv" else GEMM_KEYS)
    vals: dict[str, Any] = {}
    for w in words[1:]:
        if "=" not in w:
            raise MappingError(f"--layer {text!r}: {w!r} is not KEY=VALUE")
        k, v = w.split("=", 1)
        if k not in keys:
            raise MappingError(f"--layer: unknown dimension {k!r} for {kind} (use {', '.join(keys)})")
        if k in vals:
            raise MappingError(f"--layer: {k} given twice")
        if k in ("stride", "dilation"):
            vals[k] = _pair(k, v)
            continue
        try:
            iv = int(v)
        except ValueError:
            raise MappingError(f"--layer: {k}={v!r} must be a positive integer") from None
        if iv <= 0:
            raise MappingError(f"--layer: {k}={v!r} must be a positive integer")
        vals[k] = iv
    if kind == "gemm":
        missing = [k for k in GEMM_KEYS if k not in vals]
        if missing:
            raise MappingError(f"--layer {text!r}: gemm needs M, N and K (missing {', '.join(missing)})")
        return kind, {"M": vals["M"], "N": vals["N"], "C": vals["K"]}
    if "N" not in vals:
        vals["N"] = batch or 1
    return kind, vals


def _layer_jobs(args) -> list[tuple[str, dict, tuple[int, ...], float | None]]:
    """(name, Problem kwargs without pass, weight shape, density or None) per layer."""
    if args.layer:
        kind, kw = parse_layer(args.layer, args.batch)
        g = kw.get("G", 1)
        shape = (g * kw.get("M", 1), kw.get("C", 1), kw.get("R", 1), kw.get("S", 1)) if kind == "conv" \
            else (kw["M"], kw["C"])
        return [(kind, kw, shape, None)]
    from rigl_hw.zoo import model_allocation, model_specs
    from simulator.nest import Problem as _P

    batch = args.batch or 1
    if args.distribution is not None or args.sparsity is not None:
        if args.distribution is None or args.sparsity is None:
            raise MappingError("--distribution and --sparsity go together")
        specs, alloc = model_allocation(args.model, args.distribution, args.sparsity, args.width,
                                        input_shape=args.input_shape)
        dens = {n: z / p for n, z, p in zip(alloc.names, alloc.nonzeros, alloc.n_params)}
    else:
        specs, dens = model_specs(args.model, args.width, input_shape=args.input_shape), {}
    jobs = []
    for s in specs:
        p = _P.from_layer(s, batch)
        kw = {d: p.dim(d) for d in ("N", "G", "M", "C", "P", "Q", "R", "S")}
        kw.update(stride=p.stride, repeats=p.repeats)
        jobs.append((s.name, kw, tuple(s.weight_shape), dens.get(s.name)))
    return jobs


def _load_mask(path_text: str, flag: str) -> np.ndarray:
    path = Path(path_text)
    if not path.is_file():
        raise MappingError(f"{flag} {path}: not found")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise MappingError(f"{flag} {path}: not a numpy .npy array ({exc})") from None


def _check_density(flag: str, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise MappingError(f"{flag} {value}: must be in [0, 1]")
    return None if value is None else float(value)


def _density(args, shape: tuple[int, ...], layer_density: float | None) -> float | None:
    if args.weight_density is not None:
        return _check_density("--weight-density", args.weight_density)
    if args.weight_mask is not None:
        if not args.layer:
            raise MappingError("--weight-mask needs --layer (one mask for one layer)")
        mask = _load_mask(args.weight_mask, "--weight-mask")
        want = tuple(shape)
        if tuple(mask.shape) != want:
            raise MappingError(f"--weight-mask {args.weight_mask}: shape {tuple(mask.shape)} does not match the layer's "
                               f"weight shape {want}")
        return float(np.count_nonzero(mask)) / mask.size
    return layer_density


# index spaces whose zeros are operand sparsity in each pass (the written tensor is not: dX in
# backward_data, Y in forward); the W space of backward_weight is the sampled weight gradient
OPERAND_NAME = {"W": "weights", "I": "activations", "O": "gradients"}   # index space -> operand, for reports
PASS_SPACES = {"forward": ("W", "I"), "backward_data": ("W", "O"), "backward_weight": ("W", "I", "O")}


class OperandSparsity:
    """The operand options of `rigl-hw map` (--input-density/--input-mask, --grad-density/--grad-mask, with
    the weight's): per pass the densities by index space and, with mask files, the exact joint fractions."""

    def __init__(self, args):
        self.d_in = _check_density("--input-density", getattr(args, "input_density", None))
        self.d_grad = _check_density("--grad-density", getattr(args, "grad_density", None))
        self.in_mask = self.grad_mask = self.w_mask = None
        for flag, attr, mine in (("--input-mask", "input_mask", "in_mask"), ("--grad-mask", "grad_mask", "grad_mask")):
            if getattr(args, attr, None) is not None:
                if not args.layer:
                    raise MappingError(f"{flag} needs --layer (one mask for one layer)")
                setattr(self, mine, _load_mask(getattr(args, attr), flag))
        if self.in_mask is not None:
            self.d_in = float(np.count_nonzero(self.in_mask)) / max(1, self.in_mask.size)
        if self.grad_mask is not None:
            self.d_grad = float(np.count_nonzero(self.grad_mask)) / max(1, self.grad_mask.size)
        if args.weight_mask is not None and args.layer:
            self.w_mask = _load_mask(args.weight_mask, "--weight-mask")
        self.args = args
        self._masks: dict = {}

    @property
    def real(self) -> bool:
        return self.in_mask is not None or self.grad_mask is not None

    def densities(self, pass_name: str, d_w: float | None) -> dict:
        by = {"W": d_w, "I": self.d_in, "O": self.d_grad}
        return {SPACE_NAME[sp]: by[sp] for sp in PASS_SPACES[pass_name] if by[sp] is not None}

    def joint(self, problem: Problem, dens: dict) -> Joint | None:
        """Exact joint fractions of this pass's operand masks (None without activation/gradient masks)."""
        if not self.real:
            return None
        key = problem.shape_key()[:3]
        masks = self._masks.get(key)
        if masks is None:
            try:
                masks = nest_masks(problem, weights=self.w_mask, inputs=self.in_mask, grads=self.grad_mask)
            except ValueError as exc:
                flag = "--input-mask" if "input" in str(exc) else "--grad-mask" if "gradient" in str(exc) else "--weight-mask"
                raise MappingError(f"{flag}: {exc}") from None
            self._masks[key] = masks
        use = {sp: m for sp, m in masks.items() if sp in PASS_SPACES[problem.pass_name]}
        return Joint(dens, joint_fractions(problem, use))


def _row(name: str, ev: Evaluation) -> dict[str, Any]:
    return {
        "name": name, "pass": ev.problem.pass_name, "cycles": ev.cycles, "compute_cycles": ev.compute_cycles,
        "energy_pj": ev.energy_pj, "macs": ev.macs, "effectual_macs": ev.effectual_macs,
        "utilization": ev.utilization, "bottleneck": ev.bottleneck,
        "levels": {lv.name: {"read_bytes": lv.read_bytes, "write_bytes": lv.write_bytes, "energy_pj": lv.energy_pj}
                   for lv in ev.levels},
        "mapping": ev.mapping.to_dict(),
    }


def format_evaluation(name: str, ev: Evaluation) -> str:
    """The loop nest (Timeloop-style) and a per-level table."""
    kept = [tuple(lv.tile_words) for lv in ev.levels]
    tiles = [{r: int(round(v)) for r, v in lv.tile_words.items()} for lv in ev.levels]
    out = [f"== {name} / {ev.problem.pass_name}: {ev.cycles:,.0f} cycles (compute {ev.compute_cycles:,.0f}, "
           f"bound by {ev.bottleneck}), {ev.energy_pj / 1e6:,.3f} uJ, {ev.macs:,} MACs "
           f"({ev.effectual_macs:,.0f} effectual), utilization {ev.utilization:.3f}",
           ev.mapping.format_nest(kept, tiles),
           f"{'level':14s} {'read MB':>12s} {'write MB':>12s} {'energy uJ':>12s} {'cycles':>14s}"]
    for lv in ev.levels:
        out.append(f"{lv.name:14s} {lv.read_bytes / 1e6:12.3f} {lv.write_bytes / 1e6:12.3f} "
                   f"{lv.energy_pj / 1e6:12.3f} {lv.cycles:14,.0f}")
    out.append(f"{'MAC':14s} {'':>12s} {'':>12s} {ev.mac_energy_pj / 1e6:12.3f}")
    return "\n".join(out)


def map_request(req: MapRequest) -> MapReport:
    """Search (or, with req.mapping_file, evaluate) every (layer, pass) of the request."""
    hw = load_hardware(req.hardware)
    passes = PASSES if req.pass_name == "all" else (req.pass_name,)
    mapping = None
    if req.mapping_file:
        if not req.layer:
            raise MappingError("--mapping-file evaluates one layer: give it with --layer")
        mapping = load_mapping(req.mapping_file)
    jobs = _layer_jobs(req)
    ops = OperandSparsity(req)
    evals, info, evaluated, t0 = [], [], 0, time.perf_counter()
    for name, kw, shape, layer_density in jobs:
        d = _density(req, shape, layer_density)
        for pname in passes:
            problem = Problem(**kw, pass_name=pname, name=name)
            dens = ops.densities(pname, d)
            joint = ops.joint(problem, dens)
            if mapping is not None:
                ev = evaluate(problem, hw, mapping, densities=dens, joint=joint)
            else:
                res = map_layer(problem, hw, req.objective, densities=dens)
                evaluated += res.evaluated
                ev = res.evaluation if joint is None else evaluate(problem, hw, res.mapping, densities=dens, joint=joint)
            exploited = resolve(hw, problem).exploited
            info.append({"operand_densities": dens,
                         "exploited": sorted(OPERAND_NAME[sp] for sp in exploited if SPACE_NAME[sp] in dens),
                         "density_mode": "real" if joint is not None else "statistical"})
            evals.append((name, ev))
    return MapReport(hardware=hw.name, objective=req.objective, clock_hz=float(hw.pe_array.clock_hz),
                     given_mapping=mapping is not None,
                     evaluations=evals, mappings_evaluated=evaluated, seconds=time.perf_counter() - t0,
                     operand_info=info)


def run_map(args) -> int:
    """Entry point of `rigl-hw map` (args from rigl_hw.cli.map)."""
    rep = map_request(MapRequest.from_args(args))
    if args.json:
        print(json.dumps(rep.to_dict()))
        return 0
    totals, seconds = rep.totals, rep.seconds
    print("\n\n".join(format_evaluation(name, ev) for name, ev in rep.evaluations))
    print(f"\ntotal: {totals['cycles']:,.0f} cycles, {totals['energy_pj'] / 1e6:,.3f} uJ on {rep.hardware} "
          + (f"(the given mapping, evaluated in {seconds:.2f} s)" if rep.given_mapping else
             f"({rep.objective}-optimal; {rep.mappings_evaluated} mappings evaluated in {seconds:.2f} s)"))
    return 0
