"""Training traces: the versioned contract between the trainer and the simulator (numpy-only).

A trace is a directory:
  trace.json   format_version, model, LayerSpec table, batch size, total steps, method and its
               hyper-parameters, seed, and `masks`: "real" (recorded in training) or "synthetic".
  masks.npz    (np.load with allow_pickle=False)
               init_<i>        uint8   bit-packed initial mask of layer i (np.packbits of the weight
                                       flattened in C order, bitorder "big")
               update_steps    int64 (U,)     steps at which masks were updated
               dropped, grown  int64 (U, L)   connections removed / added per update and layer
               real traces only, per update u:
               changed_idx_<u> int64          flat indices whose mask bit flipped (XOR), layers concatenated
               changed_ptr_<u> int64 (L+1,)   offsets of each layer's indices in changed_idx_<u>
  steps.csv    step, loss, lr, is_update  (one row per logged step)
Format version 2 adds operand sparsity (input activations and output gradients of every conv and linear
layer): per counted step the nonzero counts, and per mask snapshot sampled bit-packed bitmaps; the fields
are described in rigl_hw.trace_operands and exposed as `Trace.operands` (numpy arrays). Version-1 traces
still read (their `operands` is empty). The writer always writes version 2.

trace.json also holds `checksums`: per masks.npz array, and for the layer table, the SHA-256 (first 32
hex digits) of (name, dtype, shape, bytes) — see `array_checksum`; the reader verifies them, and also
checks every field's shape and consistency (`check_trace_arrays`). Traces written before checksums
existed still read, with every check that needs no checksum.
Synthetic traces store no changed indices: their positions are random and are regenerated on read,
deterministically from `synthetic_seed` (see `_ReplayState.synthetic_update`), with exactly the stored counts.

Mask timing: the mask updated at step t is computed after step t's backward pass and is used from
step t + 1 on; `mask_at(layer, step)` returns the mask step `step` trains with.
Files are written under temporary names and renamed; trace.json is written last, so a directory with
a trace.json is a complete trace. `write_trace_dir` builds a whole new trace directory under a temp
name and renames it into place (rigl_hw.atomic.atomic_dir).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .atomic import atomic_dir, atomic_write_bytes
from .layers import LayerSpec, specs_from_json, specs_to_json

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MASK_KINDS = ("real", "synthetic")
MAX_TRACE_STEPS = 10**9          # total_steps above this is refused (no run is that long)
LAYERS_CHECKSUM = "__layers__"   # key of the layer table's checksum in trace.json's `checksums`


class TraceError(ValueError):
    """Missing, corrupt, mismatched or unsupported trace."""


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """Bit-pack a bool mask (C order, big bit order): ceil(N/8) bytes."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="big")


def array_checksum(name: str, a: np.ndarray) -> str:
    """SHA-256 (32 hex digits) of an array's name, dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{name}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


def layers_checksum(layers_json: Any) -> str:
    """SHA-256 (32 hex digits) of the layer table as canonical JSON."""
    return hashlib.sha256(json.dumps(layers_json, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def unpack_mask(packed: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.unpackbits(packed, count=n, bitorder="big").astype(bool).reshape(tuple(shape))


class TraceWriter:
    """Records real masks during training; `close()` writes the trace directory atomically per file."""

    def __init__(self, out_dir: str | os.PathLike, specs: Sequence[LayerSpec], initial_masks: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.specs = list(specs)
        self.meta = dict(meta)
        missing = [s.name for s in self.specs if s.name not in initial_masks]
        if missing:
            raise TraceError(f"initial masks missing for layers {missing}")
        self._prev = {s.name: np.asarray(initial_masks[s.name], dtype=bool).reshape(-1).copy() for s in self.specs}
        for s in self.specs:
            if self._prev[s.name].size != s.n_params:
                raise TraceError(f"layer {s.name}: mask has {self._prev[s.name].size} entries, weight has {s.n_params}")
        self._init = {s.name: pack_mask(self._prev[s.name]) for s in self.specs}
        self._steps: list[int] = []
        self._dropped: list[list[int]] = []
        self._grown: list[list[int]] = []
        self._changed: list[tuple[np.ndarray, np.ndarray]] = []
        self._log: list[tuple[int, float, float, int]] = []
        from .trace_operands import OperandLog

        self.operands = OperandLog(len(self.specs))

    def add_update(self, step: int, masks: Mapping[str, np.ndarray]) -> None:
        """Record the masks after the update at `step` (every layer; unchanged layers may be omitted)."""
        if self._steps and step <= self._steps[-1]:
            raise TraceError(f"update steps must increase: {step} after {self._steps[-1]}")
        idx, ptr, dropped, grown = [], [0], [], []
        for s in self.specs:
            prev = self._prev[s.name]
            new = np.asarray(masks[s.name], dtype=bool).reshape(-1) if s.name in masks else prev
            flipped = np.flatnonzero(prev != new)
            idx.append(flipped.astype(np.int64))
            ptr.append(ptr[-1] + flipped.size)
            dropped.append(int(np.count_nonzero(prev[flipped])))
            grown.append(int(flipped.size - dropped[-1]))
            self._prev[s.name] = new.copy()
        self._steps.append(int(step))
        self._dropped.append(dropped)
        self._grown.append(grown)
        self._changed.append((np.concatenate(idx) if idx else np.zeros(0, np.int64), np.asarray(ptr, np.int64)))

    def log_step(self, step: int, loss: float, lr: float, is_update: bool) -> None:
        self._log.append((int(step), float(loss), float(lr), int(bool(is_update))))

    # --- operand sparsity (format version 2; fields in rigl_hw.trace_operands) -------------------
    def set_operand_recording(self, samples: int, every: int) -> None:
        """Declare that operands are recorded: bitmaps of `samples` samples, counts every `every` steps."""
        if samples <= 0 or every <= 0:
            raise TraceError(f"operand recording needs samples > 0 and every > 0, got {samples}, {every}")
        self.operands.samples, self.operands.every = int(samples), int(every)

    def add_operands(self, step: int, counts: Mapping[str, Sequence[int]]) -> None:
        """Record the operand counts of `step`: input_nnz, input_numel, grad_nnz, grad_numel per layer."""
        self.operands.add_counts(step, counts)

    def operand_snapshot_start(self) -> tuple[int, int]:
        """(index, first step) of the mask snapshot in progress: the masks after the last update."""
        return len(self._steps), (self._steps[-1] + 1 if self._steps else 0)

    def wants_operand_bitmaps(self, step: int) -> bool:
        """Whether `step` is the first step of a mask snapshot that has no sampled bitmaps yet."""
        u, first = self.operand_snapshot_start()
        return self.operands.enabled and step == first and u not in self.operands.bitmaps

    def add_operand_bitmaps(self, step: int, packed: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Sampled bitmaps of `step` for the snapshot in progress: {"input": [packed per layer], "grad": [...]}
        (an empty array for a layer not recorded)."""
        for op, parts in packed.items():
            if len(parts) != len(self.specs):
                raise TraceError(f"{op} bitmaps given for {len(parts)} layers, the trace has {len(self.specs)}")
        self.operands.add_bitmaps(self.operand_snapshot_start()[0], step, packed)

    def close(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {f"init_{i}": self._init[s.name] for i, s in enumerate(self.specs)}
        L = len(self.specs)
        arrays["update_steps"] = np.asarray(self._steps, dtype=np.int64)
        arrays["dropped"] = np.asarray(self._dropped, dtype=np.int64).reshape(-1, L)
        arrays["grown"] = np.asarray(self._grown, dtype=np.int64).reshape(-1, L)
        for u, (idx, ptr) in enumerate(self._changed):
            arrays[f"changed_idx_{u}"] = idx
            arrays[f"changed_ptr_{u}"] = ptr
        arrays.update(self.operands.arrays(len(self._steps)))
        write_trace_files(self.out_dir, self.specs, {**self.meta, "masks": "real", "operands": self.operands.meta()},
                          arrays, self._log)
        return self.out_dir


def write_trace_files(out_dir: Path, specs: Sequence[LayerSpec], meta: Mapping[str, Any],
                      arrays: Mapping[str, np.ndarray], log: Sequence[tuple[int, float, float, int]]) -> None:
    """Write masks.npz, steps.csv, then trace.json (last), each via temp file + rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out_dir / "masks.npz", buf.getvalue())
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["step", "loss", "lr", "is_update"])
    w.writerows(log)
    atomic_write_bytes(out_dir / "steps.csv", text.getvalue().encode())
    layers = specs_to_json(specs)
    sums = {name: array_checksum(name, np.asarray(a)) for name, a in arrays.items()}
    sums[LAYERS_CHECKSUM] = layers_checksum(layers)
    doc = {"format_version": FORMAT_VERSION, **meta, "layers": layers, "checksums": sums}
    atomic_write_bytes(out_dir / "trace.json", json.dumps(doc, indent=1).encode())


def write_trace_dir(out_dir: str | os.PathLike, specs: Sequence[LayerSpec], meta: Mapping[str, Any],
                    arrays: Mapping[str, np.ndarray], log: Sequence[tuple[int, float, float, int]]) -> Path:
    """A new trace directory, built under a temp name next to `out_dir` and renamed into place, so
    `out_dir` is a complete trace or untouched (an older trace there is replaced whole)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TraceError(f"--out {out} exists and is not a directory; choose a directory path for the trace")
    if out.is_dir() and any(out.iterdir()) and not (out / "trace.json").is_file():
        raise TraceError(f"--out {out} is a non-empty directory that is not a trace; choose a new or empty "
                         "directory (an existing trace there would be replaced)")
    with atomic_dir(out) as tmp:
        write_trace_files(tmp, specs, meta, arrays, log)
    return out


@dataclass
class Trace:
    """A trace read back from disk. Masks are handled bit-packed; see module docstring for timing."""

    path: Path
    meta: dict[str, Any]
    specs: list[LayerSpec]
    update_steps: np.ndarray
    dropped: np.ndarray
    grown: np.ndarray
    _npz: Any = field(repr=False)
    _init: list[np.ndarray] = field(repr=False)
    operands: Any = field(default=None, repr=False)   # trace_operands.OperandData (empty for version 1)

    @property
    def format_version(self) -> int:
        return int(self.meta["format_version"])

    @property
    def layer_names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def masks_kind(self) -> str:
        return self.meta["masks"]

    @property
    def batch_size(self) -> int:
        return int(self.meta["batch_size"])

    @property
    def total_steps(self) -> int:
        return int(self.meta["total_steps"])

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "rigl"))

    @property
    def n_updates(self) -> int:
        return int(self.update_steps.size)

    def initial_nonzeros(self) -> np.ndarray:
        return np.array([int(np.unpackbits(p, count=s.n_params).sum()) for p, s in zip(self._init, self.specs)])

    def iter_snapshots(self) -> Iterator[tuple[int, int, list[np.ndarray]]]:
        """Yield (first_step, last_step_exclusive, packed masks per layer) for every interval of constant
        masks: snapshot 0 runs steps [0, t_1], snapshot u runs (t_u, t_{u+1}], the last one to the end."""
        state = self._replay_state()
        bounds = [0, *[int(t) + 1 for t in self.update_steps], self.total_steps]
        for u in range(self.n_updates + 1):
            if u > 0:
                self._apply_update(u - 1, state)
            yield bounds[u], bounds[u + 1], [np.packbits(m, bitorder="big") for m in state.flat]

    def packed_masks_at(self, step: int) -> list[np.ndarray]:
        """Packed masks (one per layer, spec order) that step `step` trains with."""
        u_needed = int(np.searchsorted(self.update_steps, step, side="left"))  # updates strictly before step
        state = self._replay_state()
        for u in range(u_needed):
            self._apply_update(u, state)
        return [np.packbits(m, bitorder="big") for m in state.flat]

    def mask_at(self, layer: str, step: int) -> np.ndarray:
        """Bool mask (weight shape) of `layer` used by step `step`."""
        i = self.layer_names.index(layer) if layer in self.layer_names else None
        if i is None:
            raise TraceError(f"trace has no layer {layer!r}; layers: {self.layer_names[:6]}...")
        return unpack_mask(self.packed_masks_at(step)[i], self.specs[i].weight_shape)

    def _replay_state(self) -> "_ReplayState":
        flat = [np.unpackbits(p, count=s.n_params).astype(bool) for p, s in zip(self._init, self.specs)]
        return _ReplayState(flat, synthetic=self.masks_kind == "synthetic")

    def _apply_update(self, u: int, state: "_ReplayState") -> None:
        if self.masks_kind == "real":
            idx = self._npz[f"changed_idx_{u}"]
            ptr = self._npz[f"changed_ptr_{u}"]
            for i, m in enumerate(state.flat):
                sel = idx[ptr[i]:ptr[i + 1]]
                m[sel] = ~m[sel]
        else:
            state.synthetic_update(self.dropped[u], self.grown[u], int(self.meta["synthetic_seed"]), u)


class _ReplayState:
    """Masks being replayed; for synthetic traces also each layer's list of active positions, so a
    random drop/grow costs O(k) (rigl_hw.replay_kernel), not O(N)."""

    def __init__(self, flat: list[np.ndarray], synthetic: bool) -> None:
        self.flat = flat
        if synthetic:
            self.active = [np.flatnonzero(m).astype(np.int64) for m in flat]

    def synthetic_update(self, dropped: np.ndarray, grown: np.ndarray, seed: int, u: int) -> None:
        """Random drop/grow in place: per layer, `dropped` random active positions turn off, then as many
        random inactive positions turn on (the seed of layer i at update u is derived from (seed, u, i))."""
        from .replay_kernel import drop_grow

        seeds = np.random.default_rng([seed, u]).integers(0, 2**31 - 1, size=len(self.flat))
        for i, m in enumerate(self.flat):
            k_drop, k_grow = int(dropped[i]), int(grown[i])
            if k_drop != k_grow:
                raise TraceError(f"synthetic update {u}: layer {i} drops {k_drop} but grows {k_grow}; "
                                 "synthetic traces keep nnz constant")
            if k_drop == 0:
                continue
            if k_drop > self.active[i].size or k_grow > m.size - self.active[i].size + k_drop:
                raise TraceError(f"synthetic update {u}: layer {i} cannot move {k_drop} of {self.active[i].size} weights")
            drop_grow(m, self.active[i], k_drop, int(seeds[i]))


def _fail(path: Path, problem: str) -> TraceError:
    return TraceError(f"{path}: {problem}; the trace is corrupt: re-create it with `rigl-hw train` or "
                      "`rigl-hw trace synth`")


def check_trace_arrays(p: Path, meta: Mapping[str, Any], specs: Sequence[LayerSpec],
                       arrays: Mapping[str, np.ndarray]) -> None:
    """Shape, dtype and consistency checks of every masks.npz field (raises TraceError): packed mask
    sizes and padding bits, update steps inside the run, counts within the layer sizes, and for real
    traces change pointers that are monotone and end at the index count, indices in range, sorted and
    unique per layer, and as many flips per layer as dropped + grown."""
    npz = p / "masks.npz"
    L = len(specs)
    for i, s in enumerate(specs):
        packed = arrays[f"init_{i}"]
        need = (s.n_params + 7) // 8
        if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != need:
            raise TraceError(f"layer {s.name}: stored mask has {packed.size} bytes but weight shape {s.weight_shape} "
                             f"needs {need}: masks and layer shapes do not match")
        pad = need * 8 - s.n_params
        if pad and int(packed[-1]) & ((1 << pad) - 1):
            raise _fail(npz, f"init_{i} (layer {s.name}) has bits set past the weight's {s.n_params} entries")
    steps, dropped, grown = arrays["update_steps"], arrays["dropped"], arrays["grown"]
    for name, a in (("update_steps", steps), ("dropped", dropped), ("grown", grown)):
        if a.dtype.kind not in "iu":
            raise _fail(npz, f"{name} has dtype {a.dtype}, expected integers")
    if steps.ndim != 1:
        raise _fail(npz, f"update_steps has shape {steps.shape}, expected one dimension")
    U = steps.size
    if dropped.shape != (U, L) or grown.shape != (U, L):
        raise TraceError(f"dropped/grown counts have shape {dropped.shape}, expected {(U, L)}: trace is inconsistent")
    if U and (np.any(np.diff(steps) <= 0) or steps[0] < 0 or steps[-1] >= int(meta["total_steps"])):
        raise TraceError("update steps must increase and lie inside the run")
    n = np.asarray([s.n_params for s in specs], dtype=np.int64)
    if U and (dropped.min() < 0 or grown.min() < 0 or np.any(dropped > n) or np.any(grown > n)):
        raise _fail(npz, "dropped/grown counts are negative or exceed the layer sizes")
    if meta["masks"] != "real":
        return
    for u in range(U):
        idx, ptr = arrays[f"changed_idx_{u}"], arrays[f"changed_ptr_{u}"]
        if idx.dtype.kind not in "iu" or ptr.dtype.kind not in "iu" or idx.ndim != 1 or ptr.shape != (L + 1,):
            raise _fail(npz, f"update {u}: changed_idx/changed_ptr have dtype {idx.dtype}/{ptr.dtype} and shape "
                             f"{idx.shape}/{ptr.shape}, expected integers of shape (n,)/({L + 1},)")
        if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != idx.size:
            raise _fail(npz, f"update {u}: changed_ptr is not a monotone offset table from 0 to {idx.size}")
        flips = np.diff(ptr)
        if np.any(flips != dropped[u] + grown[u]):
            bad = int(np.flatnonzero(flips != dropped[u] + grown[u])[0])
            raise _fail(npz, f"update {u}: layer {specs[bad].name} flips {int(flips[bad])} positions but records "
                             f"{int(dropped[u][bad] + grown[u][bad])} dropped + grown")
        for i, s in enumerate(specs):
            sel = idx[ptr[i]:ptr[i + 1]]
            if sel.size and (sel[0] < 0 or sel[-1] >= s.n_params or np.any(np.diff(sel) <= 0)):
                raise _fail(npz, f"update {u}: changed indices of layer {s.name} are out of range [0, {s.n_params}) "
                                 "or not sorted and unique")


def _load_arrays(p: Path) -> dict[str, np.ndarray]:
    """Every array of masks.npz, loaded (so decompression and CRC errors surface here)."""
    f = p / "masks.npz"
    try:
        with np.load(f, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise TraceError(f"{p} has no masks.npz; the trace is incomplete") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise TraceError(f"{f} is corrupt or truncated ({msg}); re-create the trace") from None


def read_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace directory; raise TraceError with a one-line reason."""
    p = Path(path)
    meta_file = p / "trace.json"
    if not p.is_dir():
        raise TraceError(f"trace directory {p} does not exist; make one with `rigl-hw train` or `rigl-hw trace synth`")
    if not meta_file.is_file():
        raise TraceError(f"{p} has no trace.json: not a trace directory (or an unfinished one)")
    try:
        meta = json.loads(meta_file.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise TraceError(f"{meta_file} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); the trace is corrupt")
    if not isinstance(meta, dict):
        raise TraceError(f"{meta_file} holds a JSON {type(meta).__name__}, not an object; the trace is corrupt")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise TraceError(f"unsupported trace format version {version!r} in {meta_file}; this rigl-hw reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    for key in ("layers", "batch_size", "total_steps", "masks"):
        if key not in meta:
            raise TraceError(f"{meta_file} lacks the field {key!r}; the trace is corrupt")
    if meta["masks"] not in MASK_KINDS:
        raise TraceError(f"{meta_file}: masks must be one of {MASK_KINDS}, got {meta['masks']!r}")
    for key, limit in (("batch_size", 10**9), ("total_steps", MAX_TRACE_STEPS)):
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= limit:
            raise TraceError(f"{meta_file}: {key} must be an integer in [1, {limit}], got {v!r}; the trace is corrupt")
    sums = meta.pop("checksums", None)
    if sums is not None and not isinstance(sums, dict):
        raise TraceError(f"{meta_file}: checksums must be an object; the trace is corrupt")
    if sums is not None and LAYERS_CHECKSUM in sums and layers_checksum(meta["layers"]) != sums[LAYERS_CHECKSUM]:
        raise TraceError(f"{meta_file}: the layer table and its checksum do not match (edited or corrupt); "
                         "re-create the trace")
    try:
        specs = specs_from_json(meta.pop("layers"))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise TraceError(f"{meta_file}: bad layer table ({e})")
    if not specs:
        raise TraceError(f"{meta_file}: the layer table is empty; the trace is corrupt")
    arrays = _load_arrays(p)
    U = arrays["update_steps"].size if "update_steps" in arrays else 0
    want = [f"init_{i}" for i in range(len(specs))] + ["update_steps", "dropped", "grown"]
    absent = [n for n in want if n not in arrays]
    if absent:
        raise TraceError(f"{p / 'masks.npz'} is corrupt or incomplete (it lacks {', '.join(absent[:4])})")
    if meta["masks"] == "real":
        missing = [u for u in range(U) if f"changed_idx_{u}" not in arrays or f"changed_ptr_{u}" not in arrays]
        if missing:
            raise TraceError(f"real trace lacks the changed indices of updates {missing[:5]}: it is corrupt")
    elif "synthetic_seed" not in meta:
        raise TraceError("synthetic trace lacks synthetic_seed")
    if sums is not None:
        for name, a in arrays.items():
            if name in sums and array_checksum(name, a) != sums[name]:
                raise _fail(p / "masks.npz", f"array {name} does not match its checksum in trace.json")
        lost = [n for n in sums if n != LAYERS_CHECKSUM and n not in arrays]
        if lost:
            raise _fail(p / "masks.npz", f"arrays {lost[:4]} listed in trace.json's checksums are missing")
    check_trace_arrays(p, meta, specs, arrays)
    steps, dropped, grown = arrays["update_steps"], arrays["dropped"], arrays["grown"]
    init = [arrays[f"init_{i}"] for i in range(len(specs))]
    return Trace(p, meta, specs, steps, dropped, grown, arrays, init,
                 _read_operands(p, specs, meta, arrays, set(arrays), U))


def _read_operands(p: Path, specs: Sequence[LayerSpec], meta: Mapping[str, Any], npz: Any, names: set[str], U: int):
    """The trace's operand sparsity (empty for version 1); a bad version-2 field is a one-line TraceError."""
    from .trace_operands import OperandData, OperandFormatError, read_operands

    if meta["format_version"] < 2:
        return OperandData.empty(specs, U)
    try:
        return read_operands(specs, meta, npz, names, U, int(meta["total_steps"]))
    except OperandFormatError as e:
        raise TraceError(f"{p}: {e}") from None
    except (ValueError, OSError) as e:
        raise TraceError(f"{p / 'masks.npz'} is corrupt or incomplete ({e})") from None
