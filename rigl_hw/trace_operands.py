"""Operand sparsity in traces (format version 2): input activations and output gradients (numpy-only).

What a version-2 trace adds, per sparse layer i (spec order) of a conv or linear layer (GRU matrices are
not recorded: their operand counts are 0 and they have no bitmaps):

trace.json  "operands": {"samples": n, "every": k, "bitmaps": "real" | "synthetic" | "none",
                         "seed": s (synthetic bitmaps only)}
masks.npz   operand_steps  int64 (T,)    steps whose operands were counted (increasing)
            input_nnz      int64 (T, L)  nonzero input activations of layer i at that step (whole local batch)
            input_numel    int64 (T, L)  input activation elements counted (0: layer not recorded)
            grad_nnz       int64 (T, L)  nonzero output gradients dL/dY (whole local batch)
            grad_numel     int64 (T, L)  output gradient elements counted (0: not recorded)
            bitmap_steps   int64 (U+1,)  the step whose operands were sampled for mask snapshot u
                                         (the first step that trains with it); -1: none sampled
            real bitmaps only, for every u with bitmap_steps[u] >= 0:
            input_bits_<u> uint8         bit-packed nonzero bitmaps of the first n samples, layers
                                         concatenated, each layer byte-aligned (np.packbits, C order, "big")
            input_ptr_<u>  int64 (L+1,)  byte offsets of each layer in input_bits_<u> (empty: not recorded)
            grad_bits_<u>, grad_ptr_<u>  the same for the output gradients
Natural shapes (`operand_shapes`): conv inputs (n, C, H, W), output gradients (n, M, P, Q); linear layers
(n, F) and (n, M), or (n, T, F) and (n, T, M) when the layer is applied at T positions per sample.
Synthetic bitmaps are not stored: they are regenerated on read from `seed`, with exactly
round(density x size) ones at random positions (density = the layer's recorded mean density).
Densities are nnz / numel, so they are exact; a step's density covers the whole (local) batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .layers import LayerSpec

OPERANDS = ("input", "grad")
BITMAP_KINDS = ("real", "synthetic", "none")
COUNT_KEYS = ("input_nnz", "input_numel", "grad_nnz", "grad_numel")


class OperandFormatError(ValueError):
    """A version-2 operand field is missing, of the wrong shape, or inconsistent (raised as TraceError),
    or a density given by the user lies outside [0, 1]."""

    user_error = True


def operand_shapes(spec: LayerSpec, n: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input shape, output-gradient shape) of `n` samples of `spec`, or None for layers not recorded (GRU)."""
    if spec.kind == "conv":
        return ((n, spec.in_channels, *spec.in_hw), (n, spec.out_channels, *spec.out_hw))
    if spec.kind == "linear":
        pos = int(spec.in_hw[0])
        if pos == 1:
            return (n, spec.in_channels), (n, spec.out_channels)
        return (n, pos, spec.in_channels), (n, pos, spec.out_channels)
    return None


def packed_bytes(shape: Sequence[int]) -> int:
    """Bytes of a bit-packed bool array of `shape`: ceil(elements / 8)."""
    return (int(math.prod(shape)) + 7) // 8


def check_density(name: str, value: float | None) -> float | None:
    """A density given by the user: None (not given) or a finite number in [0, 1]."""
    if value is None:
        return None
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise OperandFormatError(f"{name} must be a density in [0, 1], got {value}")
    return v


@dataclass
class OperandLog:
    """What the trainer recorded so far (writer side): counts per counted step, bitmaps per snapshot."""

    n_layers: int
    samples: int = 0
    every: int = 0
    steps: list[int] = field(default_factory=list)
    counts: dict[str, list[list[int]]] = field(default_factory=lambda: {k: [] for k in COUNT_KEYS})
    bitmaps: dict[int, tuple[int, dict[str, list[np.ndarray]]]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.samples > 0

    def add_counts(self, step: int, counts: Mapping[str, Sequence[int]]) -> None:
        if self.steps and step <= self.steps[-1]:
            raise OperandFormatError(f"operand steps must increase: {step} after {self.steps[-1]}")
        for k in COUNT_KEYS:
            row = [int(v) for v in counts[k]]
            if len(row) != self.n_layers:
                raise OperandFormatError(f"{k} has {len(row)} layers, the trace has {self.n_layers}")
            self.counts[k].append(row)
        self.steps.append(int(step))

    def add_bitmaps(self, snapshot: int, step: int, packed: Mapping[str, Sequence[np.ndarray]]) -> None:
        self.bitmaps[int(snapshot)] = (int(step), {op: [np.asarray(p, np.uint8) for p in packed[op]]
                                                    for op in OPERANDS})

    def truncate(self, start: int, n_snapshots: int) -> None:
        """Forget what was recorded at steps >= start and for snapshots >= n_snapshots (resume)."""
        keep = sum(1 for s in self.steps if s < start)
        self.steps = self.steps[:keep]
        for k in COUNT_KEYS:
            self.counts[k] = self.counts[k][:keep]
        self.bitmaps = {u: v for u, v in self.bitmaps.items() if u < n_snapshots and v[0] < start}

    def arrays(self, n_updates: int) -> dict[str, np.ndarray]:
        """The masks.npz entries of this log (see module docstring)."""
        L = self.n_layers
        out = {"operand_steps": np.asarray(self.steps, dtype=np.int64)}
        for k in COUNT_KEYS:
            out[k] = np.asarray(self.counts[k], dtype=np.int64).reshape(-1, L)
        bsteps = np.full(n_updates + 1, -1, dtype=np.int64)
        for u, (step, packed) in sorted(self.bitmaps.items()):
            if u > n_updates:
                continue
            bsteps[u] = step
            for op in OPERANDS:
                parts = packed[op]
                out[f"{op}_bits_{u}"] = (np.concatenate(parts) if parts else np.zeros(0, np.uint8)).astype(np.uint8)
                out[f"{op}_ptr_{u}"] = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
        out["bitmap_steps"] = bsteps
        return out

    def meta(self) -> dict[str, Any]:
        return {"samples": self.samples, "every": self.every, "bitmaps": "real" if self.enabled else "none"}


class OperandData:
    """Operand sparsity read from a trace (reader side); empty for version-1 traces. Numpy arrays only."""

    def __init__(self, specs: Sequence[LayerSpec], meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 npz: Any = None) -> None:
        self.specs = list(specs)
        self.meta = dict(meta)
        self.samples = int(self.meta.get("samples", 0))
        self.bitmap_kind = str(self.meta.get("bitmaps", "none"))
        self.steps = np.asarray(arrays["operand_steps"], dtype=np.int64)
        self._counts = {k: np.asarray(arrays[k], dtype=np.int64) for k in COUNT_KEYS}
        self.bitmap_steps = np.asarray(arrays["bitmap_steps"], dtype=np.int64)
        self._npz = npz

    @classmethod
    def empty(cls, specs: Sequence[LayerSpec], n_updates: int) -> "OperandData":
        L = len(specs)
        z = np.zeros((0, L), np.int64)
        return cls(specs, {}, {"operand_steps": np.zeros(0, np.int64), **{k: z for k in COUNT_KEYS},
                               "bitmap_steps": np.full(n_updates + 1, -1, np.int64)})

    @property
    def has_densities(self) -> bool:
        return bool(self.steps.size) and bool(np.any(self._counts["input_numel"] > 0) or
                                              np.any(self._counts["grad_numel"] > 0))

    @property
    def has_bitmaps(self) -> bool:
        return self.bitmap_kind != "none" and bool(np.any(self.bitmap_steps >= 0))

    def nnz(self, operand: str) -> np.ndarray:
        """(T, L) int64 nonzero counts of `operand` ("input" or "grad") at each of `steps`."""
        return self._counts[f"{_check_operand(operand)}_nnz"]

    def numel(self, operand: str) -> np.ndarray:
        """(T, L) int64 elements counted (0 where the layer is not recorded)."""
        return self._counts[f"{_check_operand(operand)}_numel"]

    def density(self, operand: str) -> np.ndarray:
        """(T, L) float64 density nnz / numel of `operand` at each of `steps`; NaN where not recorded."""
        nnz, numel = self.nnz(operand), self.numel(operand)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(numel > 0, nnz / np.maximum(numel, 1), np.nan)

    @property
    def input_density(self) -> np.ndarray:
        return self.density("input")

    @property
    def grad_density(self) -> np.ndarray:
        return self.density("grad")

    def mean_density(self, operand: str, first: int = 0, last: int | None = None) -> np.ndarray:
        """(L,) density of `operand` pooled over the counted steps in [first, last): sum nnz / sum numel
        (NaN for layers never recorded there), e.g. over one mask snapshot's steps."""
        sel = (self.steps >= first) & (self.steps < (np.iinfo(np.int64).max if last is None else last))
        nnz, numel = self.nnz(operand)[sel].sum(0), self.numel(operand)[sel].sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(numel > 0, nnz / np.maximum(numel, 1), np.nan)

    def bitmap(self, snapshot: int, layer: int | str, operand: str) -> np.ndarray | None:
        """Bool array (natural shape, `samples` first) of the nonzeros of `operand` of `layer` sampled for
        mask snapshot `snapshot`; None where nothing was sampled (no bitmap for that snapshot, or a GRU layer)."""
        op = _check_operand(operand)
        i = self._layer_index(layer)
        if not (0 <= snapshot < self.bitmap_steps.size) or self.bitmap_steps[snapshot] < 0 or self.bitmap_kind == "none":
            return None
        shapes = operand_shapes(self.specs[i], self.samples)
        if shapes is None:
            return None
        shape = shapes[OPERANDS.index(op)]
        if self.bitmap_kind == "synthetic":
            return self._synthetic_bitmap(snapshot, i, op, shape)
        ptr = self._npz[f"{op}_ptr_{snapshot}"]
        if ptr[i + 1] == ptr[i]:
            return None
        packed = self._npz[f"{op}_bits_{snapshot}"][ptr[i]:ptr[i + 1]]
        n = int(math.prod(shape))
        return np.unpackbits(packed, count=n, bitorder="big").astype(bool).reshape(shape)

    def bitmaps(self, snapshot: int) -> dict[str, dict[str, np.ndarray | None]]:
        """{layer name: {"input": array | None, "grad": array | None}} for mask snapshot `snapshot`."""
        return {s.name: {op: self.bitmap(snapshot, i, op) for op in OPERANDS} for i, s in enumerate(self.specs)}

    def _layer_index(self, layer: int | str) -> int:
        if isinstance(layer, str):
            names = [s.name for s in self.specs]
            if layer not in names:
                raise OperandFormatError(f"trace has no layer {layer!r}; layers: {names[:6]}...")
            return names.index(layer)
        return int(layer)

    def _synthetic_bitmap(self, snapshot: int, i: int, op: str, shape: tuple[int, ...]) -> np.ndarray | None:
        cache = self.__dict__.setdefault("_mean_cache", {})
        if op not in cache:
            cache[op] = self.mean_density(op)
        d = cache[op][i]
        if not np.isfinite(d):
            return None
        size = int(math.prod(shape))
        k = int(round(float(d) * size))
        rng = np.random.default_rng([int(self.meta["seed"]), snapshot, i, OPERANDS.index(op)])
        flat = np.zeros(size, dtype=bool)
        flat[rng.choice(size, size=k, replace=False)] = True
        return flat.reshape(shape)


def _check_operand(operand: str) -> str:
    if operand not in OPERANDS:
        raise OperandFormatError(f"operand must be one of {OPERANDS}, got {operand!r}")
    return operand


def read_operands(specs: Sequence[LayerSpec], meta: Mapping[str, Any], npz: Any, names: set[str],
                  n_updates: int, total_steps: int) -> OperandData:
    """Validate and wrap the version-2 fields of a trace (OperandFormatError naming the bad field)."""
    L = len(specs)
    om = meta.get("operands")
    if not isinstance(om, dict):
        raise OperandFormatError("version-2 trace.json lacks the 'operands' object; the trace is corrupt")
    kind = om.get("bitmaps")
    if kind not in BITMAP_KINDS:
        raise OperandFormatError(f"trace.json operands.bitmaps must be one of {BITMAP_KINDS}, got {kind!r}")
    samples = om.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0 or (kind != "none" and samples == 0):
        raise OperandFormatError(f"trace.json operands.samples must be a positive integer, got {samples!r}")
    if kind == "synthetic" and not isinstance(om.get("seed"), int):
        raise OperandFormatError("trace.json operands: synthetic bitmaps need an integer 'seed'")
    arrays: dict[str, np.ndarray] = {}
    for key in ("operand_steps", *COUNT_KEYS, "bitmap_steps"):
        if key not in names:
            raise OperandFormatError(f"version-2 field {key!r} is missing from masks.npz; the trace is corrupt")
        a = npz[key]
        if a.dtype.kind not in "iu":
            raise OperandFormatError(f"masks.npz field {key!r} has dtype {a.dtype}, expected integers")
        arrays[key] = a
    T = arrays["operand_steps"].shape[0] if arrays["operand_steps"].ndim == 1 else -1
    if T < 0:
        raise OperandFormatError(f"masks.npz field 'operand_steps' has shape {arrays['operand_steps'].shape}, expected (T,)")
    for key in COUNT_KEYS:
        if arrays[key].shape != (T, L):
            raise OperandFormatError(f"masks.npz field {key!r} has shape {arrays[key].shape}, expected {(T, L)}")
    if arrays["bitmap_steps"].shape != (n_updates + 1,):
        raise OperandFormatError(f"masks.npz field 'bitmap_steps' has shape {arrays['bitmap_steps'].shape}, "
                                 f"expected {(n_updates + 1,)} (one per mask snapshot)")
    st = arrays["operand_steps"]
    if T and (np.any(np.diff(st) <= 0) or st[0] < 0 or st[-1] >= total_steps):
        raise OperandFormatError("masks.npz operand_steps must increase and lie inside the run")
    for op in OPERANDS:
        nnz, numel = arrays[f"{op}_nnz"], arrays[f"{op}_numel"]
        if np.any(nnz < 0) or np.any(nnz > numel):
            raise OperandFormatError(f"masks.npz {op}_nnz must lie in [0, {op}_numel]; the trace is corrupt")
    bs = arrays["bitmap_steps"]
    if np.any((bs < -1) | (bs >= total_steps)):
        raise OperandFormatError("masks.npz bitmap_steps must be -1 or a step inside the run")
    if kind == "real":
        for u in np.flatnonzero(bs >= 0):
            for op in OPERANDS:
                _check_packed(specs, npz, names, int(u), op, samples)
    return OperandData(specs, om, arrays, npz)


def _check_packed(specs: Sequence[LayerSpec], npz: Any, names: set[str], u: int, op: str, samples: int) -> None:
    bkey, pkey = f"{op}_bits_{u}", f"{op}_ptr_{u}"
    for key in (bkey, pkey):
        if key not in names:
            raise OperandFormatError(f"version-2 field {key!r} is missing from masks.npz (snapshot {u} has "
                                     "sampled bitmaps); the trace is corrupt")
    bits, ptr = npz[bkey], npz[pkey]
    if bits.dtype != np.uint8 or bits.ndim != 1:
        raise OperandFormatError(f"masks.npz field {bkey!r} must be a 1-d uint8 array, got {bits.dtype} {bits.shape}")
    if ptr.shape != (len(specs) + 1,) or ptr.dtype.kind not in "iu" or ptr[0] != 0 or np.any(np.diff(ptr) < 0) \
            or ptr[-1] != bits.size:
        raise OperandFormatError(f"masks.npz field {pkey!r} must hold {len(specs) + 1} increasing offsets "
                                 f"from 0 to {bits.size}; the trace is corrupt")
    for i, s in enumerate(specs):
        got = int(ptr[i + 1] - ptr[i])
        shapes = operand_shapes(s, samples)
        want = packed_bytes(shapes[OPERANDS.index(op)]) if shapes is not None else 0
        if got not in (0, want):
            raise OperandFormatError(f"layer {s.name}: sampled {op} bitmap of snapshot {u} has {got} bytes, "
                                     f"its shape {shapes[OPERANDS.index(op)] if shapes else None} needs {want}")


def synthetic_operand_arrays(specs: Sequence[LayerSpec], steps: int, n_updates: int, update_steps: np.ndarray,
                             batch: int, input_density: float | None, grad_density: float | None,
                             samples: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Version-2 fields of a synthetic trace: every step counted with the given densities in every conv
    and linear layer (nnz = round(density x numel); an operand given no density is not recorded), and
    synthetic bitmaps for every snapshot that has steps. Returns (masks.npz arrays, trace.json operands)."""
    input_density = check_density("--input-density", input_density)
    grad_density = check_density("--grad-density", grad_density)
    L = len(specs)
    n = max(1, min(int(samples), int(batch)))
    numel = {op: np.zeros(L, np.int64) for op in OPERANDS}
    for i, s in enumerate(specs):
        shapes = operand_shapes(s, batch)
        if shapes is None:
            continue
        for op, shape, d in zip(OPERANDS, shapes, (input_density, grad_density)):
            if d is not None:
                numel[op][i] = int(math.prod(shape))
    given = input_density is not None or grad_density is not None
    T = steps if given else 0
    out: dict[str, np.ndarray] = {"operand_steps": np.arange(T, dtype=np.int64)}
    for op, d in zip(OPERANDS, (input_density, grad_density)):
        nnz = np.rint((d or 0.0) * numel[op]).astype(np.int64)
        out[f"{op}_numel"] = np.broadcast_to(numel[op], (T, L)).copy()
        out[f"{op}_nnz"] = np.broadcast_to(nnz, (T, L)).copy()
    firsts = np.concatenate([[0], np.asarray(update_steps, np.int64) + 1])[: n_updates + 1]
    out["bitmap_steps"] = np.where((firsts < steps) & given, firsts, -1).astype(np.int64)
    meta = {"samples": n if given else 0, "every": 1 if given else 0,
            "bitmaps": "synthetic" if given else "none", "seed": int(seed)}
    return out, meta


def log_from_data(data: OperandData, start: int, n_snapshots: int) -> OperandLog:
    """An OperandLog holding what `data` (read back from a real trace) recorded at steps < start for
    snapshots < n_snapshots: the writer's state when a run resumes at `start`."""
    log = OperandLog(len(data.specs), samples=data.samples if data.bitmap_kind == "real" else 0,
                     every=int(data.meta.get("every", 0)))
    for t, step in enumerate(data.steps.tolist()):
        if step < start:
            log.add_counts(step, {k: data._counts[k][t] for k in COUNT_KEYS})
    if data.bitmap_kind == "real":
        for u in range(min(n_snapshots, data.bitmap_steps.size)):
            step = int(data.bitmap_steps[u])
            if 0 <= step < start:
                packed = {}
                for op in OPERANDS:
                    bits, ptr = data._npz[f"{op}_bits_{u}"], data._npz[f"{op}_ptr_{u}"]
                    packed[op] = [bits[ptr[i]:ptr[i + 1]] for i in range(len(data.specs))]
                log.add_bitmaps(u, step, packed)
    return log
