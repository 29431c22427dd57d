"""Sweeps of independent study points on Dask distributed, with a result cache.

A point is a JSON-able dict (model, distribution, sparsity, method, hardware, ...). Its result is
cached under `cache_dir/<key>.json`, written atomically as soon as the point finishes. The key
(`point_key`) hashes the point together with the *content* of every input it names (a hardware preset
or TOML file: its bytes; a trace directory: its trace.json, which holds the checksum of every mask
array), the package version and a hash of the source files of rigl_hw, simulator and studies, so
editing a hardware file or the code never returns stale numbers. The sweep says what it reused
(`SweepResult.describe()`), so a rerun only computes new or changed points and an interrupted sweep keeps
every finished point. A point that raises is reported (point, one-line error) without losing the
others. By default the sweep runs on a LocalCluster (processes, one thread each); pass a scheduler
address to use an existing cluster. When every point is cached no cluster is started at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rigl_hw.atomic import atomic_write_text

CACHE_SALT = "rigl-hw-sweep-v2-mapped"   # v2: the engine prices rows with searched mappings
MAX_WORKERS = 256
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
_ROOT = Path(__file__).resolve().parent.parent
_SOURCE_PACKAGES = ("rigl_hw", "simulator", "studies")


class SweepError(RuntimeError):
    """The sweep could not run at all (e.g. unreachable scheduler)."""

    user_error = True


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]                      # {**point, **result} for every successful point, in input order
    computed: int = 0                               # points computed in this run
    cached: int = 0                                 # points read from the cache
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    code: str = ""                                  # package version and source hash the keys used

    def describe(self) -> str:
        """One line: what was computed and what reused, and under which code version."""
        return (f"sweep: computed {self.computed}, reused {self.cached} cached point(s) keyed on input content "
                f"and {self.code}" + (f", {len(self.failed)} failed" if self.failed else ""))


def check_workers(n: int) -> int:
    """A local worker count in [1, MAX_WORKERS] (raises SweepError before anything starts)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKERS:
        raise SweepError(f"--workers must be an integer in [1, {MAX_WORKERS}], got {n!r}")
    return n


def check_scheduler(address: str | None) -> str | None:
    """A Dask scheduler address `scheme://host:port` or `host:port` (raises SweepError otherwise)."""
    if address is None:
        return None
    text = address.strip()
    m = re.fullmatch(r"(?:([a-z]+)://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?", text)
    ok = bool(m) and (m.group(1) in (None, *_SCHEMES)) and (m.group(3) is not None or m.group(1) == "inproc")
    if ok and m.group(3) is not None and not 0 < int(m.group(3)) < 65536:
        ok = False
    if not ok:
        raise SweepError(f"--scheduler {address!r} is not a Dask scheduler address; use tcp://HOST:PORT "
                         "(e.g. tcp://127.0.0.1:8786) or omit --scheduler for a local cluster")
    return text


_SOURCE_HASH: str | None = None


def source_hash() -> str:
    """SHA-256 (16 hex digits) of every .py file of rigl_hw, simulator and studies and the hardware presets."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        h = hashlib.sha256()
        files = sorted(p for pkg in _SOURCE_PACKAGES for p in (_ROOT / pkg).rglob("*")
                       if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts)
        for p in files:
            h.update(str(p.relative_to(_ROOT)).encode() + b"\0")
            h.update(p.read_bytes())
        _SOURCE_HASH = h.hexdigest()[:16]
    return _SOURCE_HASH


def code_version() -> str:
    from rigl_hw import __version__

    return f"rigl-hw {__version__}, source {source_hash()}"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def input_digests(point: dict[str, Any]) -> dict[str, str]:
    """Content hashes of the inputs a point names: hardware presets and TOML files (their bytes),
    trace directories (their trace.json, which holds every mask array's checksum), other files."""
    from simulator.hardware import PRESET_DIR

    out: dict[str, str] = {}
    for k, v in sorted(point.items()):
        if not isinstance(v, str) or not v or len(v) > 4096:
            continue
        p = Path(v)
        try:
            if (PRESET_DIR / f"{v}.toml").is_file() and not p.exists():
                out[k] = _file_digest(PRESET_DIR / f"{v}.toml")
            elif p.is_dir() and (p / "trace.json").is_file():
                out[k] = _file_digest(p / "trace.json")
            elif p.is_file():
                out[k] = _file_digest(p)
        except OSError:
            continue
    return out


def point_key(point: dict[str, Any], salt: str = CACHE_SALT) -> str:
    """Stable hash of a point's full configuration, the content of the inputs it names and the code."""
    text = json.dumps({"salt": salt, "point": point, "inputs": input_digests(point), "code": code_version()},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj))


def _read_cached(path: Path) -> dict[str, Any] | None:
    """A cached result, or None when absent or unreadable (a corrupt entry is recomputed)."""
    try:
        r = json.loads(path.read_bytes().decode("utf-8"))["result"]
        return r if isinstance(r, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _client(scheduler: str | None, n_workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        check_scheduler(scheduler)
        try:
            return Client(scheduler, timeout="5s"), None
        except Exception as e:  # noqa: BLE001 - distributed raises OSError, TimeoutError, ValueError, ...
            raise SweepError(f"cannot reach Dask scheduler {scheduler!r} ({type(e).__name__}); "
                             "check the address or omit --scheduler to use a local cluster") from None
    check_workers(n_workers)
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    return Client(cluster), cluster


def run_sweep(fn: Callable[[dict[str, Any]], dict[str, Any]], points: Sequence[dict[str, Any]], cache_dir: str | Path,
              scheduler: str | None = None, n_workers: int = 2, progress: bool = True,
              salt: str = CACHE_SALT) -> SweepResult:
    """Run `fn(point) -> result dict` for every point not in the cache; return all rows.

    `fn` must be importable by name (a module-level function) so Dask workers can unpickle it.
    """
    check_workers(n_workers)
    check_scheduler(scheduler)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    from rigl_hw.atomic import remove_stale_temps

    remove_stale_temps(cache)
    keys = [point_key(p, salt + ":" + getattr(fn, "__module__", "") + "." + getattr(fn, "__qualname__", "")) for p in points]
    results: dict[int, dict[str, Any]] = {}
    for i, k in enumerate(keys):
        r = _read_cached(cache / f"{k}.json")
        if r is not None:
            results[i] = r
    out = SweepResult(rows=[], cached=len(results), code=code_version())
    todo = [i for i in range(len(points)) if i not in results]
    if todo:
        from dask.distributed import as_completed
        from tqdm import tqdm

        client, cluster = _client(scheduler, n_workers)
        try:
            futures = {client.submit(fn, dict(points[i]), key=f"point-{keys[i]}", pure=False): i for i in todo}
            bar = tqdm(total=len(todo), desc="sweep", unit="pt", disable=not progress)
            for fut in as_completed(futures):
                i = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    out.failed.append((dict(points[i]), f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
                else:
                    res = fut.result()
                    _write_json_atomic(cache / f"{keys[i]}.json", {"point": points[i], "result": res})
                    results[i] = res
                    out.computed += 1
                bar.update(1)
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    out.rows = [{**points[i], **results[i]} for i in range(len(points)) if i in results]
    if progress or out.cached:
        print(out.describe(), file=sys.stderr)
    return out


def flops_point(point: dict[str, Any]) -> dict[str, Any]:
    """A study point of the FLOP model: params and inference/training FLOP ratios of one configuration."""
    from rigl_hw.flops_report import flops_report

    r = flops_report(point["model"], point["distribution"], point["sparsity"], width=point.get("width", 1.0),
                     method=point.get("method"), delta_t=point.get("delta_t"), multiplier=point.get("multiplier", 1.0))
    row = {"params": r["params"]["sparse"], "inference_flops": r["inference_flops"]["sparse"],
           "inference_ratio": r["inference_flops"]["ratio"]}
    if "train_flops" in r:
        row["train_ratio"] = r["train_flops"]["ratio"]
    return row
