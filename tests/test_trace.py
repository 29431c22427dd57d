"""Trace format: writer -> reader round trip, synthetic traces, and corrupt/mismatched traces."""

import json

import numpy as np
import pytest

from rigl_hw.layers import LayerSpec
from rigl_hw.schedules import UpdateSchedule, changed_per_update
from rigl_hw.trace import TraceError, TraceWriter, read_trace
from rigl_hw.trace_synth import write_synthetic_trace

SPECS = [LayerSpec("fc1", "fc1.weight", "linear", (6, 5)), LayerSpec("conv", "conv.weight", "conv", (2, 3, 3, 3),
                                                                      in_hw=(4, 4), out_hw=(4, 4))]


def _random_walk(rng, masks, k):
    new = {}
    for n, m in masks.items():
        m = m.copy().reshape(-1)
        on, off = np.flatnonzero(m), np.flatnonzero(~m)
        m[rng.choice(on, k, replace=False)] = False
        m[rng.choice(off, k, replace=False)] = True
        new[n] = m.reshape(masks[n].shape)
    return new


def test_real_trace_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = {s.name: rng.random(s.weight_shape) < 0.5 for s in SPECS}
    w = TraceWriter(tmp_path / "t", SPECS, masks, {"model": "x", "batch_size": 4, "total_steps": 50, "method": "rigl"})
    history = {0: masks}
    for step in (10, 20, 30):
        masks = _random_walk(rng, masks, 2)
        w.add_update(step, masks)
        history[step] = masks
    for t in range(50):
        w.log_step(t, 1.0 / (t + 1), 0.1, t in history and t > 0)
    w.close()
    tr = read_trace(tmp_path / "t")
    assert tr.masks_kind == "real" and tr.update_steps.tolist() == [10, 20, 30]
    assert tr.dropped.tolist() == [[2, 2]] * 3 and tr.grown.tolist() == [[2, 2]] * 3
    for step, expected in history.items():
        # the mask updated at step t is used from step t + 1
        for s in SPECS:
            np.testing.assert_array_equal(tr.mask_at(s.name, step + 1), expected[s.name])
    np.testing.assert_array_equal(tr.mask_at("fc1", 10), history[0]["fc1"])
    snaps = list(tr.iter_snapshots())
    assert [(a, b) for a, b, _ in snaps] == [(0, 11), (11, 21), (21, 31), (31, 50)]
    lines = (tmp_path / "t" / "steps.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,is_update" and len(lines) == 51


def test_synthetic_trace_counts_follow_schedule(tmp_path):
    out = write_synthetic_trace(tmp_path / "s", "mlp", "erk", 0.9, steps=200, delta_t=20, alpha=0.3, t_end=150,
                                batch=8, seed=1)
    tr = read_trace(out)
    assert tr.masks_kind == "synthetic" and tr.update_steps.tolist() == list(range(20, 150, 20))
    nnz0 = tr.initial_nonzeros()
    expected = changed_per_update(UpdateSchedule(20, 150, 0.3), nnz0, 200)
    n_params = np.array([s.n_params for s in tr.specs])
    expected = np.minimum(expected, n_params - nnz0)
    np.testing.assert_array_equal(tr.dropped, expected)
    prev = [np.unpackbits(p).astype(bool) for p in tr.packed_masks_at(0)]
    for u, (a, b, packed) in enumerate(tr.iter_snapshots()):
        cur = [np.unpackbits(p).astype(bool) for p in packed]
        assert [int(c.sum()) for c in cur] == nnz0.tolist()       # exact nnz per layer at every snapshot
        if u > 0:
            flips = [int((c != p).sum()) for c, p in zip(cur, prev)]
            assert all(f <= 2 * k for f, k in zip(flips, expected[u - 1]))
        prev = cur
    # deterministic: a second read regenerates the same positions
    again = read_trace(out).packed_masks_at(199)
    assert all(np.array_equal(a, b) for a, b in zip(again, tr.packed_masks_at(199)))


def test_bad_traces(tmp_path):
    with pytest.raises(TraceError, match="does not exist"):
        read_trace(tmp_path / "nope")
    out = write_synthetic_trace(tmp_path / "s", "mlp", "erk", 0.9, steps=100, delta_t=20, alpha=0.3, t_end=80, batch=8)
    doc = json.loads((out / "trace.json").read_text())
    doc["format_version"] = 99
    (out / "trace.json").write_text(json.dumps(doc))
    with pytest.raises(TraceError, match="unsupported trace format version 99"):
        read_trace(out)
    doc["format_version"] = 1
    doc["layers"][0]["weight_shape"] = [999, 64]
    (out / "trace.json").write_text(json.dumps(doc))
    with pytest.raises(TraceError, match="layer table and its checksum do not match"):
        read_trace(out)
    doc.pop("checksums")                           # a trace written before checksums: the size check remains
    (out / "trace.json").write_text(json.dumps(doc))
    with pytest.raises(TraceError, match="do not match"):
        read_trace(out)
    (out / "trace.json").write_text("{not json")
    with pytest.raises(TraceError, match="not valid JSON"):
        read_trace(out)


def test_trace_synth_cli_errors(tmp_path):
    from rigl_hw.cli import main
    args = ["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.9", "--steps", "100",
            "--delta-t", "10", "--batch", "8", "--out", str(tmp_path / "x")]
    assert main(args + ["--t-end", "500"]) == 2
    assert main(args + ["--t-end", "50", "--alpha", "0"]) == 2
    assert not (tmp_path / "x" / "trace.json").exists()
    assert main(args + ["--t-end", "50"]) == 0
    assert read_trace(tmp_path / "x").n_updates == 4
