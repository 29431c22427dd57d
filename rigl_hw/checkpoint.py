"""Training checkpoints: one torch.save'd dict of plain types, written atomically, validated on load.

Contract (read by `export.checkpoint` and by `--resume`; loadable with torch.load(weights_only=True)):

    {"format": "rigl-hw-checkpoint", "version": 1,
     "model": {"name": str, "width": float, "num_classes": int},
     "model_state": model.state_dict()        (mask buffers included: "<param>_mask", bool),
     "step": int                              (steps completed = the next step to run),
     "optimizer": optimizer.state_dict(), "method": method.state_dict(), "schedule": {...},
     "rng": {"torch": ByteTensor, "numpy": {...}, "python": {...}, "data": data stream state},
     "config": the run's TrainConfig as a dict of plain values,
     "checksum": SHA-256 (hex) of everything else, see `content_checksum`}

`load_checkpoint` verifies the checksum (files written before it existed still load), refuses a model
name the zoo does not know and weights that are not finite (a diverged run cannot be resumed).

Only tensors, numbers, str, bool, None, lists and dicts go in: `to_plain` converts numpy values and
tuples, and refuses anything else before writing, naming the offending key. The file is written to a
temporary name in the same directory and renamed, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .atomic import atomic_path

FORMAT = "rigl-hw-checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"
REQUIRED_KEYS = ("model", "model_state", "step", "optimizer", "method", "schedule", "rng", "config")


CHECKSUM_KEY = "checksum"


class CheckpointError(ValueError):
    """Missing, corrupt, unsupported or mismatched checkpoint. The message is one line, with the fix."""

    user_error = True


def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """A copy of obj made only of tensors, int/float/str/bool/None, lists and str/int-keyed dicts."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, torch.Size):
        return list(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where} has a key {k!r} of type {type(k).__name__}; keys must be str or int")
            out[k] = to_plain(v, f"{where}[{k!r}]")
        return out
    raise CheckpointError(f"{where} holds a {type(obj).__name__}, which weights_only loading refuses; "
                          "store tensors, numbers, strings, lists or dicts")


def _feed(h: "hashlib._Hash", obj: Any, where: str) -> None:
    """Hash `obj` (plain types, as `to_plain` makes them) in a canonical order: dict keys sorted."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{where}|T|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        h.update(f"{where}|D|{len(obj)}|".encode())
        for k in sorted(obj, key=lambda k: (str(type(k)), str(k))):
            _feed(h, obj[k], f"{where}/{k!r}")
    elif isinstance(obj, list):
        h.update(f"{where}|L|{len(obj)}|".encode())
        for i, v in enumerate(obj):
            _feed(h, v, f"{where}[{i}]")
    else:
        h.update(f"{where}|V|{type(obj).__name__}|{obj!r}|".encode())


def content_checksum(doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint dict without its `checksum` entry (tensor bytes, values, keys)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in doc.items() if k != CHECKSUM_KEY}, "")
    return h.hexdigest()


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of floating-point tensors in `state` holding NaN or infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def verify_checksum(path: Path, obj: Mapping[str, Any]) -> None:
    """Raise CheckpointError if `obj` carries a checksum that its content does not match."""
    stored = obj.get(CHECKSUM_KEY)
    if stored is not None and stored != content_checksum(obj):
        raise CheckpointError(f"checkpoint {path} does not match its checksum (the file is corrupt: a flipped bit "
                              "or a bad copy); resume from another checkpoint or restart the run")


# ------------------------------------------------------------------------------------------ RNG states
def capture_rng(data_state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """torch / numpy / python global RNG states (and the data stream's) as plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
        "data": to_plain(dict(data_state)) if data_state is not None else None,
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


# ------------------------------------------------------------------------------------------ save/load
def checkpoint_path(path_or_run_dir: str | os.PathLike) -> Path:
    """A run directory means its checkpoint.pt; a file path is used as is."""
    p = Path(path_or_run_dir)
    return p / FILENAME if p.is_dir() else p


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write {format, version, **payload} atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint payload lacks {missing}; this is a bug in the caller")
    doc = to_plain({"format": FORMAT, "version": VERSION, **payload})
    doc[CHECKSUM_KEY] = content_checksum(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.BytesIO()           # serialise in memory: a full disk is then a plain OSError of the write below
    torch.save(doc, buf)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(path_or_run_dir: str | os.PathLike, *, model: Mapping[str, Any] | None = None,
                    config: Mapping[str, Any] | None = None, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load and validate a checkpoint (a file, or a run directory holding checkpoint.pt).

    `model` ({name, width, num_classes}) and `config` (plain dict), when given, must match what the
    checkpoint stores (config keys in `ignore` may differ). Every failure is a one-line CheckpointError.
    """
    path = checkpoint_path(path_or_run_dir)
    if not path.exists():
        if path.name == FILENAME:
            where = f"run directory {path.parent} has no {FILENAME}"
        elif path.suffix:
            where = f"checkpoint {path} not found"
        else:
            where = f"run directory {path} does not exist"
        raise CheckpointError(f"{where}; pass a run directory or checkpoint written by `rigl-hw train`")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a rigl-hw checkpoint ({detail}); "
                              "delete it and restart the run, or resume from another run directory") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} has format {got!r}, expected {FORMAT!r}; "
                              "resume only from files written by `rigl-hw train`")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} is version {obj.get('version')!r}; this rigl-hw reads version "
                              f"{VERSION}: restart the run with this version")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it is incomplete: restart the run")
    verify_checksum(path, obj)
    from .models import MODELS
    from .user_model import is_user_model

    name = obj["model"].get("name") if isinstance(obj["model"], dict) else None
    if name not in MODELS and not (isinstance(name, str) and is_user_model(name)):
        raise CheckpointError(f"checkpoint {path} is for model {name!r}, which this rigl-hw does not know "
                              f"(models: {', '.join(sorted(MODELS))}, or package.module:factory); resume only checkpoints written by `rigl-hw train`")
    if not isinstance(obj["model_state"], dict):
        raise CheckpointError(f"checkpoint {path}: model_state is not a dict; it is corrupt: restart the run")
    bad = non_finite_tensors(obj["model_state"])
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights (NaN/inf in {bad[0]}"
                              f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): the run diverged; resume from "
                              "an earlier checkpoint or restart with a lower --lr")
    if model is not None:
        stored = obj["model"]
        for key in ("name", "width", "num_classes"):
            if key in model and stored.get(key) != model[key]:
                raise CheckpointError(f"checkpoint {path} is for model {key}={stored.get(key)!r}, this run has "
                                      f"{model[key]!r}; use the matching --model/--width or another run directory")
    if config is not None:
        diff = config_differences(obj["config"], config, ignore)
        if diff:
            raise CheckpointError(f"checkpoint {path} was written with different settings ({'; '.join(diff[:4])}); "
                                  "resume with the run's own settings or start a new run directory")
    return obj


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: stored -> current' for every differing key outside `ignore`."""
    out = []
    for k in sorted(set(stored) | set(current)):
        if k in ignore:
            continue
        a, b = stored.get(k, "<absent>"), current.get(k, "<absent>")
        if a != b:
            out.append(f"{k}: {a!r} -> {b!r}")
    return out
