"""`rigl-hw train --device auto|cpu|cuda` and `--bf16`: device selection (CUDA mocked), the one-line
error without CUDA, and bf16 autocast training on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rigl_hw.cli import main
from rigl_hw.device import ddp_backend, resolve_device, torch_device
from rigl_hw.train_config import TrainConfig, TrainConfigError


def test_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"
    assert resolve_device("cpu") == "cpu"
    assert ddp_backend("cuda") == "nccl" and ddp_backend("cpu") == "gloo"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torch_device("cuda") == torch.device("cuda", 1)


def test_auto_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(TrainConfigError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(TrainConfigError, match="unknown device"):
        TrainConfig(device="tpu")


def test_cli_cuda_without_cuda_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--steps", "3", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rigl-hw: error: --device cuda") and len(err.splitlines()) == 1
    assert not out.exists()                               # nothing written


def test_cli_rejects_unknown_device(capsys):
    assert main(["train", "--device", "gpu", "--out", "x"]) == 2   # main() returns argparse's exit code
    assert "invalid choice" in capsys.readouterr().err


def _run(tmp_path, name, **kw):
    from rigl_hw.train import train

    cfg = TrainConfig(model="mlp", dataset="digits", method="rigl", sparsity=0.8, steps=40, delta_t=10,
                      batch_size=32, out=str(tmp_path / name), progress=False, device="cpu", **kw)
    return train(cfg)


def test_bf16_autocast_trains_and_keeps_the_initial_masks(tmp_path):
    from rigl_hw.trace import read_trace

    a = _run(tmp_path, "fp32")
    b = _run(tmp_path, "bf16", bf16=True)
    assert np.isfinite(b.last_loss) and b.eval["eval_accuracy"] > 0.3
    ta, tb = read_trace(a.trace_dir), read_trace(b.trace_dir)
    # initial masks are drawn on the CPU from the seed: identical whatever the device or precision
    for pa, pb in zip(next(ta.iter_snapshots())[2], next(tb.iter_snapshots())[2]):
        assert np.array_equal(pa, pb)
    assert a.nonzeros == b.nonzeros                       # RigL keeps each layer's count exactly
    assert ta.meta.get("model") == "mlp"


def test_same_seed_same_masks_on_cpu(tmp_path):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b")
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)


def test_device_may_change_on_resume(tmp_path):
    from rigl_hw.train import train

    cfg = TrainConfig(model="mlp", steps=20, delta_t=5, batch_size=16, out=str(tmp_path / "r"), progress=False,
                      device="cpu")
    assert train(cfg, stop_at=10).interrupted
    done = train(TrainConfig(**{**cfg.to_dict(), "device": "auto"}), resume=True)
    assert done.steps_done == 20


def test_bf16_may_not_change_on_resume(tmp_path):
    from rigl_hw.checkpoint import CheckpointError
    from rigl_hw.train import train

    cfg = TrainConfig(model="mlp", steps=20, delta_t=5, batch_size=16, out=str(tmp_path / "r"), progress=False,
                      device="cpu")
    assert train(cfg, stop_at=10).interrupted
    with pytest.raises(CheckpointError, match="bf16=False"):
        train(TrainConfig(**{**cfg.to_dict(), "bf16": True}), resume=True)


def test_resume_of_a_checkpoint_from_before_device_settings(tmp_path):
    from rigl_hw.train import train

    cfg = TrainConfig(model="mlp", steps=20, delta_t=5, batch_size=16, out=str(tmp_path / "r"), progress=False)
    assert train(cfg, stop_at=10).interrupted
    path = tmp_path / "r" / "checkpoint.pt"
    ck = torch.load(path, weights_only=True)
    for k in ("input_shape", "device", "bf16"):
        del ck["config"][k]
    ck.pop("preprocessing")
    ck.pop("checksum")            # checkpoints from before device settings had no checksum either
    torch.save(ck, path)
    assert train(cfg, resume=True).steps_done == 20
