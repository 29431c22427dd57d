"""Trace format v2 operand fields: writer/reader round trip, version-1 traces, synthetic densities, bad input."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from rigl_hw.cli import main
from rigl_hw.layers import LayerSpec
from rigl_hw.trace import LAYERS_CHECKSUM, TraceError, TraceWriter, array_checksum, pack_mask, read_trace
from rigl_hw.trace_operands import operand_shapes

SPECS = [LayerSpec("conv", "conv.weight", "conv", (4, 3, 3, 3), in_hw=(6, 6), out_hw=(3, 3), stride=(2, 2)),
         LayerSpec("fc", "fc.weight", "linear", (5, 36)),
         LayerSpec("seq", "seq.weight", "linear", (7, 5), in_hw=(4, 1), out_hw=(4, 1)),
         LayerSpec("gru.weight_ih_l0", "gru.weight_ih_l0", "gru", (9, 7), in_hw=(4, 1), out_hw=(4, 1))]
META = {"model": "x", "batch_size": 8, "total_steps": 30, "method": "rigl"}


def test_natural_shapes():
    assert operand_shapes(SPECS[0], 2) == ((2, 3, 6, 6), (2, 4, 3, 3))
    assert operand_shapes(SPECS[1], 2) == ((2, 36), (2, 5))
    assert operand_shapes(SPECS[2], 3) == ((3, 4, 5), (3, 4, 7))
    assert operand_shapes(SPECS[3], 2) is None


def _write(tmp_path, rng, samples=2):
    masks = {s.name: rng.random(s.weight_shape) < 0.5 for s in SPECS}
    w = TraceWriter(tmp_path / "t", SPECS, masks, META)
    w.set_operand_recording(samples, every=5)
    expect_counts, expect_bits = {}, {}
    for step in range(30):
        if w.wants_operand_bitmaps(step):
            bits = {op: [] for op in ("input", "grad")}
            for s in SPECS:
                shapes = operand_shapes(s, samples)
                for op, k in (("input", 0), ("grad", 1)):
                    b = rng.random(shapes[k]) < 0.3 if shapes else None
                    bits[op].append(pack_mask(b) if b is not None else np.zeros(0, np.uint8))
                    expect_bits[(step, s.name, op)] = b
            w.add_operand_bitmaps(step, bits)
        if step % 5 == 0 or (step, "conv", "input") in expect_bits:
            numel = [100, 50, 0, 0]
            counts = {"input_nnz": [int(rng.integers(0, n + 1)) for n in numel], "input_numel": numel,
                      "grad_nnz": [7, 3, 0, 0], "grad_numel": [9, 8, 0, 0]}
            w.add_operands(step, counts)
            expect_counts[step] = counts
        if step in (9, 19):
            w.add_update(step, masks)
    w.log_step(0, 1.0, 0.1, False)
    w.close()
    return expect_counts, expect_bits


def test_round_trip_counts_and_bitmaps(tmp_path):
    expect_counts, expect_bits = _write(tmp_path, np.random.default_rng(0))
    tr = read_trace(tmp_path / "t")
    op = tr.operands
    assert tr.format_version == 2 and tr.meta["operands"] == {"samples": 2, "every": 5, "bitmaps": "real"}
    assert op.steps.tolist() == sorted(expect_counts) == [0, 5, 10, 15, 20, 25]
    assert op.bitmap_steps.tolist() == [0, 10, 20]
    for t, step in enumerate(op.steps.tolist()):
        c = expect_counts[step]
        assert op.nnz("input")[t].tolist() == c["input_nnz"] and op.numel("grad")[t].tolist() == c["grad_numel"]
        np.testing.assert_array_equal(op.input_density[t, :2], np.array(c["input_nnz"][:2]) / [100, 50])
        assert np.isnan(op.input_density[t, 2:]).all()
    for u, step in enumerate([0, 10, 20]):
        for s in SPECS:
            for o in ("input", "grad"):
                want, got = expect_bits[(step, s.name, o)], op.bitmap(u, s.name, o)
                if want is None:
                    assert got is None
                else:
                    assert got.shape == want.shape and got.dtype == bool
                    np.testing.assert_array_equal(got, want)
    assert op.mean_density("grad", 0, 10)[0] == pytest.approx(14 / 18)      # steps 0 and 5: 7 + 7 of 9 + 9


def _rewrite(trace_dir, drop=(), replace=None, meta_edit=None):
    npz = np.load(trace_dir / "masks.npz", allow_pickle=False)
    arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace or {})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (trace_dir / "masks.npz").write_bytes(buf.getvalue())
    # the checksums describe the rewritten arrays, so the reader's field checks (not the checksums) must catch them
    doc = json.loads((trace_dir / "trace.json").read_text())
    if "checksums" in doc:
        keep = {k: v for k, v in doc["checksums"].items() if k == LAYERS_CHECKSUM}
        doc["checksums"] = {**keep, **{k: array_checksum(k, a) for k, a in arrays.items()}}
    if meta_edit:
        meta_edit(doc)
    (trace_dir / "trace.json").write_text(json.dumps(doc))


def test_version_1_trace_still_reads(tmp_path):
    _write(tmp_path, np.random.default_rng(1))
    v2 = read_trace(tmp_path / "t")
    masks_v2 = [v2.mask_at(s.name, 25) for s in SPECS]
    npz = np.load(tmp_path / "t" / "masks.npz")
    v1_keys = [k for k in npz.files if k.startswith(("init_", "changed_")) or k in ("update_steps", "dropped", "grown")]

    def to_v1(doc):
        doc["format_version"] = 1
        del doc["operands"]
        del doc["checksums"]     # v1 writers wrote none
    _rewrite(tmp_path / "t", drop=set(npz.files) - set(v1_keys), meta_edit=to_v1)   # exactly what v1 wrote
    v1 = read_trace(tmp_path / "t")
    assert v1.format_version == 1 and not v1.operands.has_densities and not v1.operands.has_bitmaps
    assert v1.operands.input_density.shape == (0, len(SPECS)) and v1.operands.bitmap(1, "conv", "grad") is None
    for s, m in zip(SPECS, masks_v2):
        np.testing.assert_array_equal(v1.mask_at(s.name, 25), m)


@pytest.mark.parametrize("how, needle", [
    (dict(drop={"grad_nnz"}), "'grad_nnz' is missing"),
    (dict(drop={"bitmap_steps"}), "'bitmap_steps' is missing"),
    (dict(drop={"input_bits_1"}), "'input_bits_1' is missing"),
    (dict(replace={"input_numel": np.zeros((6, 3), np.int64)}), "'input_numel' has shape (6, 3), expected (6, 4)"),
    (dict(replace={"bitmap_steps": np.array([0, 10], np.int64)}), "one per mask snapshot"),
    (dict(replace={"grad_nnz": np.full((6, 4), 10, np.int64)}), "grad_nnz must lie in"),
    (dict(replace={"input_bits_0": np.zeros(5, np.uint8), "input_ptr_0": np.array([0, 5, 5, 5, 5])}),
     "layer conv: sampled input bitmap of snapshot 0 has 5 bytes"),
    (dict(meta_edit=lambda d: d.pop("operands")), "lacks the 'operands' object"),
    (dict(meta_edit=lambda d: d.update(format_version=3)), "unsupported trace format version 3"),
])
def test_bad_version_2_fields_are_one_line_errors(tmp_path, capsys, how, needle):
    _write(tmp_path, np.random.default_rng(2))
    _rewrite(tmp_path / "t", **how)
    with pytest.raises(TraceError, match=None) as e:
        read_trace(tmp_path / "t")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert main(["simulate", str(tmp_path / "t"), "--hardware", "dense-32x32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rigl-hw: error:") and needle in err and len(err.strip().splitlines()) == 1


def test_synth_writes_operand_densities_and_bitmaps(tmp_path):
    out = tmp_path / "s"
    assert main(["trace", "synth", "--model", "small_cnn", "--distribution", "erk", "--sparsity", "0.8",
                 "--steps", "30", "--delta-t", "10", "--t-end", "25", "--batch", "4", "--input-density", "0.4",
                 "--grad-density", "0.25", "--operand-samples", "3", "--out", str(out)]) == 0
    tr = read_trace(out)
    op = tr.operands
    assert tr.format_version == 2 and op.bitmap_kind == "synthetic" and op.samples == 3
    assert op.steps.tolist() == list(range(30)) and op.bitmap_steps.tolist() == [0, 11, 21]
    for i, s in enumerate(tr.specs):
        shapes = operand_shapes(s, 4)
        for o, d, shape in (("input", 0.4, shapes[0]), ("grad", 0.25, shapes[1])):
            size = int(np.prod(shape))
            assert (op.numel(o)[:, i] == size).all() and (op.nnz(o)[:, i] == round(d * size)).all()
            b = op.bitmap(2, s.name, o)
            assert b.shape == (3, *shape[1:]) and b.sum() == round(round(d * size) / size * b.size)
            np.testing.assert_array_equal(b, read_trace(out).operands.bitmap(2, i, o))   # regenerated the same
        assert not np.array_equal(op.bitmap(1, i, "input"), op.bitmap(2, i, "input"))


def test_synth_without_densities_has_empty_operands(tmp_path):
    assert main(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.8", "--steps", "20",
                 "--delta-t", "10", "--t-end", "15", "--batch", "4", "--out", str(tmp_path / "e")]) == 0
    op = read_trace(tmp_path / "e").operands
    assert op.steps.size == 0 and op.bitmap_steps.tolist() == [-1, -1] and op.bitmap(0, 0, "input") is None


@pytest.mark.parametrize("flag, value", [("--input-density", "1.5"), ("--grad-density", "-0.1"),
                                         ("--input-density", "nan"), ("--operand-samples", "0")])
def test_synth_bad_density_is_one_line_error(tmp_path, capsys, flag, value):
    out = tmp_path / "bad"
    assert main(["trace", "synth", "--model", "mlp", "--distribution", "erk", "--sparsity", "0.8", "--steps", "20",
                 "--delta-t", "10", "--t-end", "15", "--batch", "4", flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rigl-hw: error:") and flag in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_trace_operands_does_not_import_torch():
    code = "import sys, rigl_hw.trace, rigl_hw.trace_operands, rigl_hw.trace_synth; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "False", p.stderr
