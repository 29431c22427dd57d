"""The CUDA training path, run wherever a GPU is present (skipped otherwise): a short RigL run on
cuda and on the CPU from the same seed, fp32 and bf16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(tmp_path, name, **kw):
    from rigl_hw.train import train
    from rigl_hw.train_config import TrainConfig

    return train(TrainConfig(model="small_cnn", dataset="digits", method="rigl", sparsity=0.8, steps=60,
                             delta_t=10, batch_size=32, out=str(tmp_path / name), progress=False, **kw))


@pytest.mark.parametrize("bf16", [False, True])
def test_cuda_run_matches_cpu_where_arithmetic_allows(tmp_path, bf16):
    from rigl_hw.trace import read_trace

    gpu = _run(tmp_path, f"gpu{bf16}", device="cuda", bf16=bf16)
    cpu = _run(tmp_path, f"cpu{bf16}", device="cpu", bf16=bf16)
    assert np.isfinite(gpu.last_loss) and gpu.eval["eval_accuracy"] > 0.15
    assert gpu.nonzeros == cpu.nonzeros                                   # counts never depend on the device
    tg, tc = read_trace(gpu.trace_dir), read_trace(cpu.trace_dir)
    for a, b in zip(next(tg.iter_snapshots())[2], next(tc.iter_snapshots())[2]):
        assert np.array_equal(a, b)                                       # initial masks: bit-identical
    moved = sum(int((gpu.masks[k] != cpu.masks[k]).sum()) for k in gpu.masks) // 2
    total = sum(gpu.nonzeros.values())
    print(f"bf16={bf16}: {moved} of {total} connections differ between cuda and cpu after 60 steps")
    again = _run(tmp_path, f"gpu2{bf16}", device="cuda", bf16=bf16)
    assert all(np.array_equal(again.masks[k], gpu.masks[k]) for k in gpu.masks)   # same device: same masks
