"""DDP on CPU (gloo), 2 processes: every rank computes the same masks; torchrun drives rigl_hw.train."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, results: str, method: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from rigl_hw.train import TrainConfig, train

    cfg = TrainConfig(model="mlp", dataset="digits", method=method, steps=48, delta_t=6, t_end=48, alpha=0.5,
                      batch_size=32, lr=0.05, progress=False, num_threads=1, out=out)
    r = train(cfg)
    np.savez(os.path.join(results, f"rank{rank}.npz"), **{f"mask/{k}": v for k, v in r.masks.items()},
             steps=np.array(r.steps_done))


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_two_ranks_compute_identical_masks(tmp_path, method):
    results = tmp_path / "results"
    results.mkdir()
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(results), method), nprocs=2, join=True)
    a, b = np.load(results / "rank0.npz"), np.load(results / "rank1.npz")
    assert int(a["steps"]) == int(b["steps"]) == 48
    keys = [k for k in a.files if k.startswith("mask/")]
    assert keys and sorted(keys) == sorted(k for k in b.files if k.startswith("mask/"))
    for k in keys:
        assert np.array_equal(a[k], b[k]), k
    # rank 0 alone wrote the run directory, and its trace saw real mask changes
    from rigl_hw.trace import read_trace

    tr = read_trace(out / "trace")
    assert tr.n_updates == 7 and tr.dropped.sum() > 0
    for k in keys:
        layer = k.split("/", 1)[1]
        assert np.array_equal(tr.mask_at(layer, 48 - 1), a[k])


def test_torchrun_cli(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "rigl_hw.train", "--model", "mlp", "--dataset", "digits",
           "--method", "rigl", "--sparsity", "0.9", "--steps", "24", "--delta-t", "6", "--batch-size", "32",
           "--num-threads", "1", "--no-progress", "--out", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 24 and (out / "trace" / "trace.json").exists()
    assert p.stderr.count("trained rigl mlp") == 1                            # only rank 0 reports
