"""Benchmark: onnxruntime on a dense model vs DeepSparse on the dense and on a 90%-sparse export.

    .venv/bin/python studies/bench/export_runtimes.py --model resnet50 --sparsity 0.9 --batches 1 64

Builds two checkpoints of the same zoo model with `export.checkpoint.make_checkpoint` (sparsity 0 and
`--sparsity`, random masks on every conv/linear weight), exports both in the `dense` format (exact
zeros, which is what DeepSparse reads sparsity from; opset 17), verifies them in onnxruntime, then
times, one configuration after the other on ONE core each:

- onnxruntime (CPU EP, intra_op_num_threads=1, sequential), dense and sparse model;
- DeepSparse 1.8.0 (`compile_model(..., num_cores=1)`), dense and sparse model.

Time = median wall time of one batch over the repeats, after warm-up. DeepSparse lives in its own
venv (it pins onnx<1.15 and numpy 1.26) and runs in a subprocess of this same file
(`--deepsparse-worker`, which imports only numpy and deepsparse). Without the venv those rows are
skipped with a message. Make the venv with:

    python3.11 -m venv .deepsparse && .deepsparse/bin/pip install deepsparse==1.8.0

DeepSparse collapses when another process holds a core, so run this on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DS_PYTHON = REPO / ".deepsparse" / "bin" / "python"


def _time(fn: Callable[[], object], warmup: int, repeats: int, max_seconds: float) -> dict:
    """Median / min seconds per call; stops early after max_seconds (at least 3 timed calls)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def _random_input(batch: int, shape: list[int], dtype: str):
    import numpy as np

    rng = np.random.default_rng(0)
    if dtype.startswith("int"):
        return rng.integers(0, 256, size=(batch, *shape)).astype(dtype)
    return rng.standard_normal((batch, *shape)).astype(dtype)


def deepsparse_worker(argv: list[str]) -> int:
    """Runs inside the DeepSparse venv: compile, time, print one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--onnx", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--shape", type=int, nargs="+", required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--num-cores", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=30.0)
    a = p.parse_args(argv)
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")
    import deepsparse
    from deepsparse import compile_model

    t0 = time.perf_counter()
    engine = compile_model(a.onnx, batch_size=a.batch, num_cores=a.num_cores)
    compile_s = time.perf_counter() - t0
    x = _random_input(a.batch, a.shape, a.dtype)
    result = _time(lambda: engine([x]), a.warmup, a.repeats, a.max_seconds)
    result.update(compile_s=compile_s, num_cores=a.num_cores, version=deepsparse.__version__)
    print(json.dumps(result))
    return 0


def _ort(path: Path, batch: int, shape: list[int], dtype: str, warmup: int, repeats: int, max_s: float) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: _random_input(batch, shape, dtype)}
    result = _time(lambda: sess.run(None, feed), warmup, repeats, max_s)
    result.update(num_cores=1, version=ort.__version__)
    return result


def _deepsparse(python: Path, path: Path, batch: int, shape: list[int], dtype: str, warmup: int,
                repeats: int, max_s: float, timeout_s: float) -> dict:
    cmd = [str(python), str(Path(__file__).resolve()), "--deepsparse-worker", "--onnx", str(path),
           "--batch", str(batch), "--shape", *map(str, shape), "--dtype", dtype, "--num-cores", "1",
           "--warmup", str(warmup), "--repeats", str(repeats), "--max-seconds", str(max_s)]
    env = {**os.environ, "NM_DISABLE_ANALYTICS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def _export_pair(model: str, sparsity: float, shape: list[int] | None, folder: Path) -> dict[str, dict]:
    sys.path.insert(0, str(REPO))
    from export.checkpoint import make_checkpoint
    from export.onnx_export import export_onnx

    out = {}
    for label, s in (("dense", 0.0), ("sparse", sparsity)):
        ckpt = make_checkpoint(folder / f"{model}_{label}.pt", model, sparsity=s, seed=0)
        # tolerances 10x the exporter's defaults: a dense random ResNet-50 at 224 has logits up to ~13
        # and PyTorch fp32 itself is ~8e-5 away from an fp64 evaluation, so 1e-4 is at the noise floor
        rep = export_onnx(ckpt, folder / f"{model}_{label}.onnx", format="dense", opset=17, verify=True,
                          input_shape=tuple(shape) if shape else None, verify_batch_sizes=(1, 2),
                          abs_tol=1e-3, rel_tol=1e-4)
        nnz = sum(l.nnz for l in rep.layers)
        total = sum(l.numel for l in rep.layers)
        out[label] = {"path": rep.path, "sparsity": s, "weight_density": nnz / total, "file_bytes": rep.file_bytes,
                      "sparse_format_bytes": rep.sparse_bytes, "input_shape": list(rep.input_shape),
                      "input_dtype": rep.input_dtype, "max_abs_err": rep.verification.max_abs_err,
                      "rel_err": rep.verification.rel_err}
    return out


def run(model: str, sparsity: float, batches: list[int], warmup: int, repeats: int, max_seconds: float,
        ds_python: Path, shape: list[int] | None, workdir: Path, log: Callable[[str], None]) -> dict:
    exports = _export_pair(model, sparsity, shape, workdir)
    shape, dtype = exports["dense"]["input_shape"], exports["dense"]["input_dtype"]
    have_ds = ds_python.exists()
    if not have_ds:
        log(f"DeepSparse skipped: no venv python at {ds_python} "
            "(make it: python3.11 -m venv .deepsparse && .deepsparse/bin/pip install deepsparse==1.8.0)")
    rows = []
    for b in batches:
        for runtime in ("onnxruntime", "deepsparse"):
            for label in ("dense", "sparse"):
                path = Path(exports[label]["path"])
                if runtime == "onnxruntime":
                    r = _ort(path, b, shape, dtype, warmup, repeats, max_seconds)
                elif have_ds:
                    r = _deepsparse(ds_python, path, b, shape, dtype, warmup, repeats, max_seconds,
                                    timeout_s=600 + max_seconds * 2)
                else:
                    r = {"error": "skipped (no .deepsparse venv)"}
                row = {"batch": b, "runtime": runtime, "model": label, **r}
                rows.append(row)
                log(f"batch {b:3d} {runtime:11s} {label:6s} " + (
                    f"{r['median_s'] * 1e3:9.2f} ms (median of {r['repeats']})" if "median_s" in r else r["error"]))
    speedups = {}
    for b in batches:
        t = {(r["runtime"], r["model"]): r.get("median_s") for r in rows if r["batch"] == b}
        ort_dense = t[("onnxruntime", "dense")]
        for key, label in ((("deepsparse", "sparse"), "deepsparse_sparse_vs_ort_dense"),
                           (("deepsparse", "dense"), "deepsparse_dense_vs_ort_dense"),
                           (("onnxruntime", "sparse"), "ort_sparse_vs_ort_dense")):
            if t.get(key):
                speedups[f"batch{b}_{label}"] = ort_dense / t[key]
    return {"model": model, "sparsity": sparsity, "input_shape": shape, "batches": batches,
            "cpu_count": os.cpu_count(), "cores_available": len(os.sched_getaffinity(0)),
            "cores_used_per_runtime": 1, "exports": exports, "rows": rows, "speedups": speedups}


def to_markdown(res: dict) -> str:
    lines = [f"# Runtimes: {res['model']} {res['input_shape']}, dense vs {res['sparsity']:.0%} sparse",
             "", f"One core per runtime (machine: {res['cpu_count']} cores, {res['cores_available']} available). "
             "Median ms per batch.", "",
             "| batch | onnxruntime dense | onnxruntime sparse | DeepSparse dense | DeepSparse sparse | "
             "DS sparse vs ORT dense |", "|---:|---:|---:|---:|---:|---:|"]
    for b in res["batches"]:
        t = {(r["runtime"], r["model"]): r for r in res["rows"] if r["batch"] == b}
        cells = [f"{t[k]['median_s'] * 1e3:.2f}" if "median_s" in t[k] else "n/a"
                 for k in (("onnxruntime", "dense"), ("onnxruntime", "sparse"), ("deepsparse", "dense"),
                           ("deepsparse", "sparse"))]
        s = res["speedups"].get(f"batch{b}_deepsparse_sparse_vs_ort_dense")
        lines.append(f"| {b} | " + " | ".join(cells) + f" | {f'{s:.2f}x' if s else 'n/a'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--deepsparse-worker"]:
        return deepsparse_worker(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--input-shape", type=int, nargs="+", default=None, help="per-sample shape (zoo default)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=20.0, help="time budget per configuration")
    p.add_argument("--deepsparse-python", type=Path, default=DEFAULT_DS_PYTHON)
    p.add_argument("--workdir", type=Path, default=None, help="keep checkpoints and .onnx files here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if a.json else (lambda m: print(m, flush=True))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        res = run(a.model, a.sparsity, a.batches, a.warmup, a.repeats, a.max_seconds, a.deepsparse_python,
                  a.input_shape, workdir, log)
    print(json.dumps(res) if a.json else to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
