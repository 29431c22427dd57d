"""The README's demo (`rigl-hw demo`), shortened: every stage's figure in report.md equals a direct
call of the module that computes it (metrics.csv, simulate_trace, the exported files)."""

import csv

import onnx
import pytest

from rigl_hw import demo
from rigl_hw.cli import main
from rigl_hw.flops_report import flops_report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The shortened demo with as_json=True (`rigl-hw demo --json`): (output dir, the stdout it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert demo.run_demo(str(out), steps=64, as_json=True) == 0
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def demo_out(demo_run):
    return demo_run[0]


def test_demo_json_is_one_object_with_the_report_figures(demo_run):
    import json

    out, stdout = demo_run
    assert len(stdout.strip().splitlines()) == 1
    s = json.loads(stdout)
    report = (out / "report.md").read_text()
    assert s["report"] == str(out / "report.md") and s["verified"] is True
    assert [r["method"] for r in s["runs"]] == list(demo.DEMO_METHODS)
    for r in s["runs"]:
        assert r["accuracy"] == _last_eval_accuracy(out / "runs" / r["method"])
        assert f"| {demo.LABEL[r['method']]} | {r['accuracy']:.4f} | {r['nonzeros']:,} |" in report
    for r in s["simulation"]:
        assert f"| {r['hardware']} | {demo.LABEL[r['method']]} | {r['steps']} | {r['mask_updates']} | " \
               f"{r['cycles']:.4g} |" in report
    assert f"{s['export']['dense_bytes']:,} bytes" in report


def _last_eval_accuracy(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_accuracy"]]
    return float(rows[-1]["eval_accuracy"])


def test_report_reads_from_every_stage(demo_out):
    from simulator.trace_run import simulate_trace

    report = (demo_out / "report.md").read_text()
    r = flops_report("resnet50", "erk", 0.8, method="rigl", delta_t=100)
    assert f"| resnet50 | 0.8 | erk | {r['params']['sparse']:,} |" in report
    assert f"{r['train_flops']['ratio']:.3f}" in report
    for method in demo.DEMO_METHODS:
        run_dir = demo_out / "runs" / method
        assert f"| {demo.LABEL[method]} | {_last_eval_accuracy(run_dir):.4f} |" in report
    rigl = simulate_trace(demo_out / "runs" / "rigl" / "trace", "skip-bitmask-32x32").summary()
    dense = simulate_trace(demo_out / "runs" / "dense" / "trace", "skip-bitmask-32x32").summary()
    assert rigl["mask_updates"] > 0 and f"{rigl['totals']['cycles']:.4g}" in report
    ratio = rigl["totals"]["time_s"] / dense["totals"]["time_s"]
    assert ratio < 0.95                      # 90% sparse on a skipping array is faster than dense
    assert f"| skip-bitmask-32x32 | RigL | 64 | {rigl['mask_updates']} | {rigl['totals']['cycles']:.4g} |" in report
    assert f"{ratio:.3f}" in report


def test_exports_are_verified_and_sparse_is_smaller(demo_out):
    dense_file, sparse_file = demo_out / "rigl_dense.onnx", demo_out / "rigl_sparse.onnx"
    sparse_model = onnx.load(str(sparse_file))
    onnx.checker.check_model(sparse_model)
    from onnx import numpy_helper

    from export.onnx_export import SPARSE_MAX_DENSITY, SPARSE_MIN_ELEMENTS

    dense_weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(dense_file)).graph.initializer}
    expected = {n for n, w in dense_weights.items()
                if w.size >= SPARSE_MIN_ELEMENTS and (w != 0).mean() <= SPARSE_MAX_DENSITY}
    assert expected and {t.values.name for t in sparse_model.graph.sparse_initializer} == expected
    assert sparse_file.stat().st_size < 0.5 * dense_file.stat().st_size
    report = (demo_out / "report.md").read_text()
    assert f"{dense_file.stat().st_size:,} bytes" in report and "PASS" in report


def test_cli_demo_bad_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rigl-hw: error:") and len(err.strip().splitlines()) == 1


def test_report_embeds_its_plots(demo_out):
    report = (demo_out / "report.md").read_text()
    for name in ("training.png", "rigl_run.png"):
        assert f"]({name})" in report
        assert (demo_out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
