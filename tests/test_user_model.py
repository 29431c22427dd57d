"""A user-defined nn.Module (defined here, not in the zoo) through flops, train (RigL), trace synth,
simulate and export via `--model test_user_model:make_net`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from rigl_hw.cli import main

REF = "test_user_model:make_net"   # pytest puts tests/ on sys.path


class UserNet(nn.Module):
    """conv 3x3 (1 -> 8, pad 1) on 1x8x8, max-pool 2, linear 128 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(x.flatten(1))


def make_net() -> nn.Module:
    return UserNet()


def not_a_module():
    return 42


# Hand-worked FLOPs (RigL Appendix H, 2 K E + E per layer): conv K = 9, E = 8 ch x 64 positions;
# head K = 128, E = 10.
CONV_DENSE = 2 * 9 * 8 * 64 + 8 * 64
HEAD_DENSE = 2 * 128 * 10 + 10


def test_flops_of_user_model(capsys):
    assert main(["flops", "--model", REF, "--input-shape", "1,8,8", "--distribution", "erk",
                 "--sparsity", "0.8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rep["layers"]] == ["conv", "head"]
    assert rep["inference_flops"]["dense"] == CONV_DENSE + HEAD_DENSE
    assert rep["params"]["dense"] == 72 + 1280
    # the ERK budget: 20% of the weights survive (rounding within a weight per layer)
    assert abs(rep["params"]["sparse"] - 0.2 * 1352) <= 2
    sparse = sum(2 * (1 - r["sparsity"]) * r["params"] * p + e for r, p, e in
                 zip(rep["layers"], (64, 1), (512, 10)))
    assert rep["inference_flops"]["sparse"] == pytest.approx(sparse, abs=1e-6)


@pytest.mark.parametrize("argv, needle", [
    (["--model", REF], "needs --input-shape"),
    (["--model", "test_user_model:nope", "--input-shape", "1,8,8"], "has no attribute 'nope'"),
    (["--model", "no_such_module_xyz:f", "--input-shape", "1,8,8"], "cannot import module"),
    (["--model", "test_user_model:not_a_module", "--input-shape", "1,8,8"], "not an nn.Module"),
    (["--model", REF, "--input-shape", "3,8,8"], "forward pass on input shape"),
    (["--model", REF, "--input-shape", "a,b"], "not a list of integers"),
])
def test_bad_user_model_one_line(capsys, argv, needle):
    assert main(["flops", *argv, "--distribution", "erk", "--sparsity", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("rigl-hw: error:")


def test_uniform_keeps_first_conv_dense(capsys):
    assert main(["flops", "--model", REF, "--input-shape", "1,8,8", "--distribution", "uniform",
                 "--sparsity", "0.8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert rows[0]["sparsity"] == 0.0 and rows[1]["sparsity"] == pytest.approx(0.8, abs=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("user") / "run"
    assert main(["train", "--model", REF, "--input-shape", "1,8,8", "--dataset", "digits", "--method", "rigl",
                 "--sparsity", "0.8", "--steps", "60", "--delta-t", "10", "--batch-size", "32",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    return out


def test_train_rigl_checkpoint_records_model(trained):
    ck = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert ck["model"]["name"] == REF and ck["model"]["input_shape"] == [1, 8, 8]
    prep = ck["preprocessing"]
    assert np.asarray(prep["mean"]).shape == (1, 8, 8) and prep["layout"] == "NCHW"
    from rigl_hw.trace import read_trace

    tr = read_trace(trained / "trace")
    assert tr.n_updates > 0 and tr.meta["model"] == REF
    assert [s.name for s in tr.specs] == ["conv", "head"]
    masks = {k: v for k, v in ck["model_state"].items() if k.endswith("_mask")}
    assert set(masks) == {"conv.weight_mask", "head.weight_mask"}
    assert abs(sum(int(m.sum()) for m in masks.values()) - 0.2 * 1352) <= 2   # RigL keeps the budget


def test_resume_of_user_model_is_refused_when_shape_differs(trained, capsys):
    assert main(["train", "--resume", str(trained), "--input-shape", "64"]) == 2
    assert "input_shape" in capsys.readouterr().err


def test_simulate_and_export_user_model(trained, tmp_path, capsys):
    assert main(["simulate", str(trained / "trace"), "--hardware", "skip-bitmask-32x32", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["model"] == REF and run["totals"]["cycles"] > 0
    onnx_path = tmp_path / "user.onnx"
    assert main(["export", str(trained), "--out", str(onnx_path), "--verify", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    from rigl_hw.onnx_workload import onnx_workload
    from rigl_hw.user_model import user_model_specs

    w = onnx_workload(onnx_path)
    assert list(w.specs) == user_model_specs(REF, (1, 8, 8))
    ck = torch.load(trained / "checkpoint.pt", weights_only=True)
    for s in w.specs:
        assert np.array_equal(w.masks[s.name], ck["model_state"][s.param_name + "_mask"].numpy())
    assert sum(layer["nnz"] for layer in rep["layers"]) == sum(w.nonzeros().values())
    # the exported model's inference cost equals the trace's final masks' inference cost
    assert main(["simulate", str(onnx_path), "--hardware", "skip-bitmask-32x32", "--inference", "--batch", "8",
                 "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(trained / "trace"), "--hardware", "skip-bitmask-32x32", "--inference",
                 "--batch", "8", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["per_batch"] == b["per_batch"] and a["nonzeros"] == b["nonzeros"]


def test_trace_synth_of_user_model(tmp_path, capsys):
    out = tmp_path / "tr"
    assert main(["trace", "synth", "--model", REF, "--input-shape", "1,8,8", "--distribution", "erk",
                 "--sparsity", "0.9", "--steps", "40", "--delta-t", "10", "--t-end", "30", "--batch", "4",
                 "--out", str(out)]) == 0
    from rigl_hw.trace import read_trace

    tr = read_trace(out)
    assert tr.meta["input_shape"] == [1, 8, 8] and list(tr.update_steps) == [10, 20]   # 0 < t < T_end, t % ΔT == 0
    assert abs(int(tr.initial_nonzeros().sum()) - 0.1 * 1352) <= 2
