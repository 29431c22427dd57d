"""Operand sparsity recorded by the trainer (trace format v2) against an independent recomputation."""

import os

import numpy as np
import pytest
import torch
from torch import nn

import rigl_hw.train as train_mod
from rigl_hw.layers import trace_layer_specs
from rigl_hw.operand_stats import OperandRecorder
from rigl_hw.trace import read_trace
from rigl_hw.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

TINY = dict(dataset="digits", steps=24, delta_t=8, batch_size=16, lr=0.05, progress=False)


class _Independent:
    """Captures each watched layer's input (forward pre-hook) and dL/dY (full backward hook) as numpy."""

    def __init__(self, model, names):
        self.inputs, self.grads, self.handles = {}, {}, []
        for name in names:
            m = model.get_submodule(name)
            self.handles.append(m.register_forward_pre_hook(self._keep(self.inputs, name, 1)))
            self.handles.append(m.register_full_backward_hook(self._keep(self.grads, name, 2)))

    @staticmethod
    def _keep(store, name, arg):
        def hook(module, *args):          # (inputs) or (grad_input, grad_output): keep the first call's
            store.setdefault(name, args[arg - 1][0].detach().clone().numpy())
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


class ConvNet(nn.Module):
    """conv -> ReLU -> conv (stride 2) -> ReLU -> flatten -> linear: zeros in inputs and in dY."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.c2(torch.relu(self.c1(x)))), 1))


def test_recorder_counts_and_bitmaps_equal_independent_hooks():
    torch.manual_seed(0)
    model = ConvNet()
    x = torch.randn(7, 2, 6, 6)
    x[:, :, :2] = 0                                    # zeros in the first layer's input too
    specs = trace_layer_specs(model, x[:2])
    rec = OperandRecorder(model, specs, samples=3)
    ind = _Independent(model, [s.name for s in specs])
    rec.start(bitmaps=True)
    torch.relu(model(x)).sum().backward()              # ReLU on the logits: zeros in the last layer's dY
    got = rec.stop()
    ind.remove()
    for i, s in enumerate(specs):
        a, g = ind.inputs[s.name], ind.grads[s.name]
        assert got.counts["input_nnz"][i] == np.count_nonzero(a) and got.counts["input_numel"][i] == a.size
        assert got.counts["grad_nnz"][i] == np.count_nonzero(g) and got.counts["grad_numel"][i] == g.size
        assert 0 < np.count_nonzero(g) < g.size, s.name     # a real test: neither all zero nor all dense
        for op, ref in (("input", a), ("grad", g)):
            bits = np.unpackbits(got.packed[op][i], count=ref[:3].size, bitorder="big").reshape(ref[:3].shape)
            np.testing.assert_array_equal(bits.astype(bool), ref[:3] != 0)
    # hooks are gone: a later step records nothing and the model runs unhooked
    assert not any(m._forward_hooks for m in model.modules())


def test_trainer_records_densities_and_bitmaps_equal_recomputation(tmp_path, monkeypatch):
    seen = {}                                  # step -> (inputs, grads) from independent hooks
    real_step = train_mod.train_step

    def spying_step(model, loss_fn, x, y, optimizer, method, masking, step, *a, **k):
        ind = _Independent(model, masking.names)
        try:
            return real_step(model, loss_fn, x, y, optimizer, method, masking, step, *a, **k)
        finally:
            ind.remove()
            seen[step] = (ind.inputs, ind.grads)

    monkeypatch.setattr(train_mod, "train_step", spying_step)
    train(TrainConfig(model="small_cnn", out=str(tmp_path / "run"), operand_every=3, operand_samples=2, **TINY))
    tr = read_trace(tmp_path / "run" / "trace")
    op = tr.operands
    assert tr.format_version == 2 and op.has_densities and op.has_bitmaps
    # counted steps: every 3rd step plus the first step of each snapshot (updates at 8 and 16)
    assert tr.update_steps.tolist() == [8, 16]
    assert op.steps.tolist() == sorted(set(range(0, 24, 3)) | {9, 17})
    assert op.bitmap_steps.tolist() == [0, 9, 17]
    for t, step in enumerate(op.steps.tolist()):
        inputs, grads = seen[step]
        for i, name in enumerate(tr.layer_names):
            assert op.nnz("input")[t, i] == np.count_nonzero(inputs[name])
            assert op.numel("input")[t, i] == inputs[name].size
            assert op.nnz("grad")[t, i] == np.count_nonzero(grads[name])
            assert op.density("grad")[t, i] == pytest.approx(np.count_nonzero(grads[name]) / grads[name].size,
                                                             abs=0)
    assert np.all(op.input_density[:, 1] < 0.9)      # conv2 reads ReLU outputs: clearly sparse
    for u, step in enumerate(op.bitmap_steps.tolist()):
        inputs, grads = seen[step]
        for i, s in enumerate(tr.specs):
            a, g = op.bitmap(u, s.name, "input"), op.bitmap(u, i, "grad")
            assert a.shape == inputs[s.name][:2].shape and g.shape == grads[s.name][:2].shape
            np.testing.assert_array_equal(a, inputs[s.name][:2] != 0)
            np.testing.assert_array_equal(g, grads[s.name][:2] != 0)
    shapes = {n: (d["input"].shape, d["grad"].shape) for n, d in op.bitmaps(0).items()}
    assert shapes == {"conv1": ((2, 1, 8, 8), (2, 16, 8, 8)), "conv2": ((2, 16, 8, 8), (2, 32, 4, 4)),
                      "fc": ((2, 32), (2, 10))}
    np.testing.assert_allclose(op.mean_density("input", 9, 17),
                               op.nnz("input")[(op.steps >= 9) & (op.steps < 17)].sum(0)
                               / op.numel("input")[(op.steps >= 9) & (op.steps < 17)].sum(0))


def test_gru_layers_are_not_recorded_but_the_linear_head_is(tmp_path):
    train(TrainConfig(model="char_gru", width=0.125, seq_len=16, corpus_bytes=30_000, out=str(tmp_path / "g"),
                      **{**TINY, "steps": 10, "dataset": "bytes"}))
    op = read_trace(tmp_path / "g" / "trace").operands
    names = read_trace(tmp_path / "g" / "trace").layer_names
    for i, n in enumerate(names):
        if ".weight_" in n:                                # GRU matrices
            assert np.all(op.numel("input")[:, i] == 0) and np.all(np.isnan(op.input_density[:, i]))
            assert op.bitmap(0, n, "input") is None
        else:                                              # the linear head, applied at 16 positions
            assert np.all(op.numel("input")[:, i] > 0)
            assert op.bitmap(0, n, "input").shape[:2] == (2, 16)


def test_recording_off_writes_empty_operand_fields(tmp_path):
    train(TrainConfig(model="mlp", out=str(tmp_path / "off"), operand_every=0, **TINY))
    tr = read_trace(tmp_path / "off" / "trace")
    assert tr.format_version == 2 and not tr.operands.has_densities and not tr.operands.has_bitmaps
    assert tr.operands.steps.size == 0 and tr.operands.bitmap(0, 0, "input") is None


@pytest.mark.parametrize("bad", [dict(operand_every=-1), dict(operand_samples=0), dict(operand_every=1.5)])
def test_bad_operand_settings(tmp_path, bad):
    with pytest.raises(train_mod.TrainConfigError, match="operand"):
        TrainConfig(model="mlp", out=str(tmp_path / "x"), **{**TINY, **bad})


def test_resume_with_recording_is_bit_identical(tmp_path):
    from test_train import _assert_same_runs

    kw = dict(model="small_cnn", operand_every=2, operand_samples=3, **{**TINY, "steps": 40})
    train(TrainConfig(out=str(tmp_path / "full"), **kw))
    part = TrainConfig(out=str(tmp_path / "part"), **kw)
    r = train(part, stop_at=17)                 # updates at 8, 16: snapshot 2 opens at step 17, after resume
    assert r.interrupted and read_trace(tmp_path / "part" / "trace").operands.bitmap_steps.tolist() == [0, 9, -1]
    train(part, resume=True)
    _assert_same_runs(tmp_path / "full", tmp_path / "part")
    op = read_trace(tmp_path / "part" / "trace").operands
    assert op.bitmap_steps.tolist() == [0, 9, 17, 25] and op.steps[0] == 0 and os.path.exists(tmp_path / "part")


def test_resume_may_change_operand_interval_but_not_the_bitmap_size(tmp_path):
    kw = dict(model="mlp", **{**TINY, "steps": 40})
    train(TrainConfig(out=str(tmp_path / "r"), operand_every=2, operand_samples=3, **kw), stop_at=17)
    train(TrainConfig(out=str(tmp_path / "r"), operand_every=5, operand_samples=1, **kw), resume=True)
    op = read_trace(tmp_path / "r" / "trace").operands
    assert op.steps.tolist() == sorted({*range(0, 17, 2), *range(20, 40, 5), 9, 17, 25})   # 9, 17, 25: snapshots
    assert op.bitmap_steps.tolist() == [0, 9, 17, 25] and op.samples == 3
    assert op.bitmap(3, "fc1", "input").shape == (3, 64)


def test_train_cli_operand_options(tmp_path, capsys):
    from rigl_hw.cli import main

    base = ["train", "--model", "mlp", "--steps", "6", "--delta-t", "3", "--batch-size", "8", "--no-progress"]
    assert main(base + ["--operand-every", "-2", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rigl-hw: error: operand_every") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    assert main(base + ["--operand-every", "2", "--operand-samples", "5", "--out", str(tmp_path / "ok")]) == 0
    op = read_trace(tmp_path / "ok" / "trace").operands
    assert op.steps.tolist() == [0, 2, 4] and op.bitmap_steps.tolist() == [0, 4]   # one update, at step 3
    assert op.bitmap(1, "fc2", "grad").shape == (5, 64)
