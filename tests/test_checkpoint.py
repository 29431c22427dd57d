"""Checkpoint files: plain-type payloads, atomic writes, RNG round trip, one-line validation errors."""

import os
import random

import numpy as np
import pytest
import torch

from rigl_hw.checkpoint import (FORMAT, VERSION, CheckpointError, capture_rng, load_checkpoint, restore_rng,
                                save_checkpoint, to_plain)


def _payload(**over):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    p = {"model": {"name": "mlp", "width": 1.0, "num_classes": 10}, "model_state": model.state_dict(), "step": 7,
         "optimizer": opt.state_dict(), "method": {"method": "rigl", "generator": torch.Generator().get_state()},
         "schedule": {"lr": 0.1}, "rng": capture_rng({"pos": 3}), "config": {"sparsity": 0.9, "seed": 0}}
    p.update(over)
    return p


def test_round_trip_weights_only_and_atomic(tmp_path):
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", _payload())
    assert sorted(os.listdir(path.parent)) == ["checkpoint.pt"]               # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask                      # not mkstemp's 0600
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert obj["format"] == FORMAT and obj["version"] == VERSION and obj["step"] == 7
    assert load_checkpoint(tmp_path / "run")["step"] == 7                    # a run dir works too


def test_to_plain_converts_numpy_and_refuses_objects():
    out = to_plain({"a": np.arange(3), "b": np.float32(1.5), "c": (1, 2), "d": torch.Size([2, 3])})
    assert isinstance(out["a"], torch.Tensor) and out["b"] == 1.5 and out["c"] == [1, 2] and out["d"] == [2, 3]
    with pytest.raises(CheckpointError, match=r"checkpoint\['x'\] holds a object"):
        to_plain({"x": object()})
    with pytest.raises(CheckpointError, match="lacks"):
        save_checkpoint("/tmp/never.pt", {"step": 1})


def test_rng_capture_restore_round_trip():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()                    # leave a cached gaussian in numpy's state
    state = capture_rng()
    want = (torch.rand(3), np.random.rand(3), random.random(), np.random.normal())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng(to_plain(state))
    got = (torch.rand(3), np.random.rand(3), random.random(), np.random.normal())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2:] == got[2:]


def test_validation_errors_are_one_line(tmp_path):
    good = save_checkpoint(tmp_path / "ok.pt", _payload())
    cases = []
    with pytest.raises(CheckpointError, match="has no checkpoint.pt") as e:
        load_checkpoint(tmp_path)
    cases.append(e)
    with pytest.raises(CheckpointError, match="not found") as e:
        load_checkpoint(tmp_path / "missing.pt")
    cases.append(e)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt") as e:
        load_checkpoint(tmp_path / "garbage.pt")
    cases.append(e)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt") as e:
        load_checkpoint(tmp_path / "trunc.pt")
    cases.append(e)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format 'something-else'") as e:
        load_checkpoint(tmp_path / "other.pt")
    cases.append(e)
    torch.save({"format": FORMAT, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="version 99") as e:
        load_checkpoint(tmp_path / "v99.pt")
    cases.append(e)
    torch.save({"format": FORMAT, "version": VERSION, "step": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="incomplete") as e:
        load_checkpoint(tmp_path / "partial.pt")
    cases.append(e)
    with pytest.raises(CheckpointError, match="model width=1.0") as e:
        load_checkpoint(good, model={"name": "mlp", "width": 0.5})
    cases.append(e)
    with pytest.raises(CheckpointError, match="sparsity: 0.9 -> 0.8") as e:
        load_checkpoint(good, config={"sparsity": 0.8, "seed": 0})
    cases.append(e)
    assert load_checkpoint(good, config={"sparsity": 0.8, "seed": 0}, ignore=("sparsity",))["step"] == 7
    for e in cases:
        assert "\n" not in str(e.value) and isinstance(e.value, ValueError)
