"""Dask sweeps: results equal direct calls, a cached rerun computes nothing, failures are isolated."""


import pytest

from rigl_hw.flops_report import flops_report
from studies.sweep import SweepError, flops_point, point_key, run_sweep

POINTS = [{"model": "mlp", "distribution": d, "sparsity": s, "method": "rigl", "delta_t": 10}
          for d in ("uniform", "erk") for s in (0.5, 0.9)]


def test_sweep_on_local_cluster_then_cached(tmp_path):
    bad = {"model": "mlp", "distribution": "erk", "sparsity": 1.5}
    res = run_sweep(flops_point, POINTS + [bad], tmp_path / "cache", n_workers=2, progress=False)
    assert res.computed == 4 and res.cached == 0
    assert len(res.failed) == 1 and "sparsity must be in [0, 1)" in res.failed[0][1]
    for row in res.rows:
        direct = flops_report(row["model"], row["distribution"], row["sparsity"], method="rigl", delta_t=10)
        assert row["inference_ratio"] == direct["inference_flops"]["ratio"]
        assert row["train_ratio"] == direct["train_flops"]["ratio"]
    again = run_sweep(flops_point, POINTS, tmp_path / "cache", n_workers=2, progress=False)
    assert again.computed == 0 and again.cached == 4 and again.rows == res.rows
    # a changed point is recomputed, the others are not
    changed = POINTS[:3] + [{**POINTS[3], "sparsity": 0.8}]
    third = run_sweep(flops_point, changed, tmp_path / "cache", n_workers=1, progress=False)
    assert third.computed == 1 and third.cached == 3


def test_point_key_is_order_independent():
    assert point_key({"a": 1, "b": 2}) == point_key({"b": 2, "a": 1})
    assert point_key({"a": 1}) != point_key({"a": 2})


def test_unreachable_scheduler(tmp_path):
    with pytest.raises(SweepError, match="cannot reach Dask scheduler"):
        run_sweep(flops_point, POINTS[:1], tmp_path, scheduler="tcp://127.0.0.1:9", progress=False)


def test_interrupted_sweep_keeps_finished_points(tmp_path, monkeypatch):
    """Ctrl-C while the third result arrives: the two finished points stay cached, a rerun computes the rest."""
    import studies.sweep as sweep

    real_write, calls = sweep._write_json_atomic, []

    def write_then_interrupt(path, obj):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, obj)

    monkeypatch.setattr(sweep, "_write_json_atomic", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(flops_point, POINTS, tmp_path / "cache", n_workers=1, progress=False)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    monkeypatch.setattr(sweep, "_write_json_atomic", real_write)
    again = run_sweep(flops_point, POINTS, tmp_path / "cache", n_workers=1, progress=False)
    assert again.cached == 2 and again.computed == 2 and len(again.rows) == 4
