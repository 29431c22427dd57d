"""Sweeps of independent study points on Dask distributed, with a result cache.

A point is a JSON-able dict (model, distribution, sparsity, method, hardware, ...). Its result is
cached under `cache_dir/<sha256 of the point and the cache salt>.json`, written atomically as soon as
the point finishes, so a rerun only computes new or changed points and an interrupted sweep keeps
every finished point. A point that raises is reported (point, one-line error) without losing the
others. By default the sweep runs on a LocalCluster (processes, one thread each); pass a scheduler
address to use an existing cluster. When every point is cached no cluster is started at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rigl_hw.atomic import atomic_write_text

CACHE_SALT = "rigl-hw-sweep-v2-mapped"   # v2: the engine prices rows with searched mappings


class SweepError(RuntimeError):
    """The sweep could not run at all (e.g. unreachable scheduler)."""

    user_error = True


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]                      # {**point, **result} for every successful point, in input order
    computed: int = 0                               # points computed in this run
    cached: int = 0                                 # points read from the cache
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def point_key(point: dict[str, Any], salt: str = CACHE_SALT) -> str:
    """Stable hash of a point's full configuration."""
    text = json.dumps({"salt": salt, "point": point}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj))


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())["result"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def _client(scheduler: str | None, n_workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s"), None
        except (OSError, TimeoutError) as e:
            raise SweepError(f"cannot reach Dask scheduler {scheduler!r} ({type(e).__name__}); "
                             "check the address or omit --scheduler to use a local cluster")
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    return Client(cluster), cluster


def run_sweep(fn: Callable[[dict[str, Any]], dict[str, Any]], points: Sequence[dict[str, Any]], cache_dir: str | Path,
              scheduler: str | None = None, n_workers: int = 2, progress: bool = True,
              salt: str = CACHE_SALT) -> SweepResult:
    """Run `fn(point) -> result dict` for every point not in the cache; return all rows.

    `fn` must be importable by name (a module-level function) so Dask workers can unpickle it.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    keys = [point_key(p, salt + ":" + getattr(fn, "__module__", "") + "." + getattr(fn, "__qualname__", "")) for p in points]
    results: dict[int, dict[str, Any]] = {}
    for i, k in enumerate(keys):
        r = _read_cached(cache / f"{k}.json")
        if r is not None:
            results[i] = r
    out = SweepResult(rows=[], cached=len(results))
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
