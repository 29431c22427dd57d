"""Trainer: exact resume, trace round trip, run-directory contract, bad input, NaN handling, methods."""

import csv
import filecmp
import os
import signal

import numpy as np
import pytest
import torch

import rigl_hw.train as train_mod
from rigl_hw.checkpoint import CheckpointError
from rigl_hw.trace import read_trace
from rigl_hw.train import TrainConfig, TrainConfigError, train

TINY = dict(model="mlp", dataset="digits", steps=40, delta_t=8, batch_size=16, lr=0.05, progress=False,
            corpus_bytes=30_000, seq_len=16)


def cfg(tmp_path, name="run", **kw):
    return TrainConfig(out=str(tmp_path / name), **{**TINY, **kw})


def _load(run):
    return torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=True)


def _assert_same_runs(a, b):
    A, B = _load(a), _load(b)
    assert A["step"] == B["step"]
    assert A["model_state"].keys() == B["model_state"].keys()
    for k in A["model_state"]:
        assert torch.equal(A["model_state"][k], B["model_state"][k]), k       # params and masks, bit for bit
    oa, ob = A["optimizer"]["state"], B["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k, v in oa[i].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob[i][k])), (i, k)
    assert torch.equal(A["method"]["generator"], B["method"]["generator"])
    assert torch.equal(A["rng"]["data"]["generator"], B["rng"]["data"]["generator"])
    for f in ("metrics.csv", "trace/steps.csv", "trace/trace.json"):
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f
    na, nb = np.load(os.path.join(a, "trace/masks.npz")), np.load(os.path.join(b, "trace/masks.npz"))
    assert sorted(na.files) == sorted(nb.files)
    for k in na.files:
        assert np.array_equal(na[k], nb[k]), k


@pytest.mark.parametrize("kw,how", [
    (dict(method="rigl", optimizer="sgd"), "stop_at"),
    (dict(model="small_cnn", method="set", optimizer="adamw", lr=1e-3), "sigint"),
    (dict(model="char_gru", dataset="bytes", width=0.125, method="snfs", optimizer="adam", lr=2e-3,
          grad_clip=1.0, checkpoint_every=10, eval_every=10), "crash"),
])
def test_resume_is_bit_identical(tmp_path, kw, how):
    full = train(cfg(tmp_path, "full", **kw))
    assert full.steps_done == 40 and not full.interrupted
    part_cfg = cfg(tmp_path, "part", **kw)
    if how == "stop_at":
        r = train(part_cfg, stop_at=17)
        assert r.interrupted and r.steps_done == 17 and _load(tmp_path / "part")["step"] == 17
    elif how == "sigint":   # Ctrl-C: the step in flight finishes, then a checkpoint is written
        r = train(part_cfg, on_step=lambda s: os.kill(os.getpid(), signal.SIGINT) if s == 13 else None)
        assert r.interrupted and r.steps_done == 13 and _load(tmp_path / "part")["step"] == 13
    else:                   # hard crash at step 17: the last periodic checkpoint (step 10) is the way back
        def crash(s):
            if s == 17:
                raise RuntimeError("boom")
        with pytest.raises(RuntimeError, match="boom"):
            train(part_cfg, on_step=crash)
        assert _load(tmp_path / "part")["step"] == 10
    with pytest.raises(TrainConfigError, match="already holds a checkpoint"):
        train(part_cfg)
    resumed = train(part_cfg, resume=True)
    assert resumed.steps_done == 40 and resumed.eval == full.eval
    _assert_same_runs(tmp_path / "full", tmp_path / "part")


def test_trace_round_trip_matches_masks_seen_in_training(tmp_path, monkeypatch):
    seen = {}
    real_step = train_mod.train_step

    def recording_step(model, loss_fn, x, y, optimizer, method, masking, step, *a, **k):
        if step == 0:
            seen[0] = masking.masks_numpy()
        out = real_step(model, loss_fn, x, y, optimizer, method, masking, step, *a, **k)
        if out[1]:
            seen[step] = masking.masks_numpy()
        return out

    monkeypatch.setattr(train_mod, "train_step", recording_step)
    r = train(cfg(tmp_path, method="rigl", alpha=0.5, decay="constant", t_end=40))
    tr = read_trace(tmp_path / "run" / "trace")
    updates = sorted(s for s in seen if s > 0)
    assert list(tr.update_steps) == updates == [8, 16, 24, 32]
    assert tr.masks_kind == "real" and tr.meta["method"] == "rigl" and tr.meta["hparams"]["delta_t"] == 8
    nnz0 = {n: int(m.sum()) for n, m in seen[0].items()}
    prev = 0
    for t in updates:
        for layer in tr.layer_names:
            assert np.array_equal(tr.mask_at(layer, t), seen[prev][layer])      # step t trains with the old mask
            assert np.array_equal(tr.mask_at(layer, t + 1), seen[t][layer])     # the new one from t + 1
            assert int(seen[t][layer].sum()) == nnz0[layer]                      # nnz constant
        prev = t
    assert tr.dropped.sum() > 0 and np.array_equal(tr.dropped, tr.grown)
    assert r.nonzeros == nnz0
    with open(tmp_path / "run" / "trace" / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(x["step"]) for x in rows] == list(range(40))
    assert [int(x["step"]) for x in rows if x["is_update"] == "1"] == updates


def test_run_dir_files_and_checkpoint_contract(tmp_path):
    r = train(cfg(tmp_path, method="static", eval_every=15, checkpoint_every=20))
    run = tmp_path / "run"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and list(rows[0]) == list(train_mod.METRIC_FIELDS)
    evals = [int(x["step"]) + 1 for x in rows if x["eval_accuracy"]]
    assert evals == [15, 30, 40]
    assert float(rows[-1]["eval_accuracy"]) == pytest.approx(r.eval["eval_accuracy"])
    ck = _load(run)
    for key in ("format", "version", "model", "model_state", "step", "optimizer", "method", "schedule", "rng",
                "config"):
        assert key in ck
    assert ck["format"] == "rigl-hw-checkpoint" and ck["version"] == 1 and ck["step"] == 40
    assert ck["model"] == {"name": "mlp", "width": 1.0, "num_classes": 10}
    mask = ck["model_state"]["fc1.weight_mask"]
    assert mask.dtype == torch.bool and int(mask.sum()) == r.nonzeros["fc1"]
    assert torch.all(ck["model_state"]["fc1.weight"][~mask] == 0)
    assert TrainConfig.from_dict(ck["config"]) == cfg(tmp_path, method="static", eval_every=15, checkpoint_every=20)
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]
    try:
        from export.checkpoint import load_checkpoint as export_load
    except ImportError:
        return
    loaded = export_load(run / "checkpoint.pt")                              # the exporter reads our file
    assert loaded is not None


@pytest.mark.parametrize("kw,match", [
    (dict(delta_t=0), "delta_t"), (dict(delta_t=-3), "delta_t"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.5), "alpha"),
    (dict(t_end=41), "t_end"), (dict(sparsity=1.0), "sparsity"), (dict(sparsity=-0.1), "sparsity"),
    (dict(optimizer="rmsprop"), "optimizer"), (dict(method="magic"), "method"), (dict(multiplier=0.0), "multiplier"),
])
def test_impossible_settings_are_one_line_errors(tmp_path, kw, match):
    with pytest.raises(TrainConfigError, match=match) as e:
        cfg(tmp_path, **kw)
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)


def test_resume_refuses_mismatched_or_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="run directory .* does not exist"):
        train(cfg(tmp_path), resume=True)
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="has no checkpoint.pt"):
        train(cfg(tmp_path), resume=True)
    train(cfg(tmp_path, steps=10))
    with pytest.raises(CheckpointError, match="sparsity: 0.9 -> 0.8"):
        train(cfg(tmp_path, steps=10, sparsity=0.8), resume=True)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(cfg(tmp_path, steps=10), resume=True)


def test_multiplier_scales_steps_t_end_and_lr_anchors(tmp_path):
    c = cfg(tmp_path, steps=20, t_end=10, multiplier=2.0, lr_schedule="step")
    assert c.total_steps == 40 and c.update_schedule().t_end == 20 and c.update_schedule().delta_t == 8
    lr = c.lr_at()
    assert lr(19) == pytest.approx(0.05) and lr(20) == pytest.approx(0.005) and lr(30) == pytest.approx(0.0005)
    r = train(c)
    tr = read_trace(tmp_path / "run" / "trace")
    assert r.steps_done == 40 and list(tr.update_steps) == [8, 16] and tr.meta["hparams"]["t_end"] == 20


def test_non_finite_loss_skips_the_step_and_keeps_masks(tmp_path, monkeypatch):
    real = train_mod.loss_of
    calls = {"n": 0}

    def flaky(data, logits, y):
        loss = real(data, logits, y)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] in (4, 9) else loss    # steps 3 (normal) and 8 (update)

    monkeypatch.setattr(train_mod, "loss_of", flaky)
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        r = train(cfg(tmp_path, method="rigl", steps=20, t_end=20))
    assert r.skipped_steps == 2
    tr = read_trace(tmp_path / "run" / "trace")
    assert list(tr.update_steps) == [8, 16]
    assert not tr.dropped[0].any() and not tr.grown[0].any()                  # NaN update: masks unchanged
    ck = _load(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in ck["model_state"].values() if v.is_floating_point())
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [int(x["step"]) for x in csv.DictReader(f) if x["skipped"] == "1"] == [3, 8]


@pytest.mark.parametrize("method", ["dense", "small_dense", "snip", "pruning"])
def test_other_methods_train_end_to_end(tmp_path, method):
    r = train(cfg(tmp_path, method=method, steps=24, t_end=24))
    ck = _load(tmp_path / "run")
    tr = read_trace(tmp_path / "run" / "trace")
    total = sum(s.n_params for s in tr.specs)
    if method == "small_dense":
        assert ck["model"]["width"] < 1.0 and not r.masks
        assert total <= 0.15 * (64 * 128 + 128 * 64 + 64 * 10)                 # about the sparse budget
    elif method == "dense":
        assert not r.masks and int(tr.initial_nonzeros().sum()) == total
    elif method == "snip":
        assert sum(r.nonzeros.values()) < 0.15 * total and tr.n_updates == 0
    else:
        assert tr.n_updates > 0 and sum(r.nonzeros.values()) < int(tr.initial_nonzeros().sum())
    assert r.eval["eval_accuracy"] > 0.0
