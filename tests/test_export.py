"""Tests for the ONNX exporter (export/): parity in onnxruntime, sparsity round trip, sizes, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from export import ExportError
from export.checkpoint import load_checkpoint, make_checkpoint
from export.cli import add_export_arguments, run_export
from export.onnx_export import export_onnx
from export.onnx_passes import get_metadata
from rigl_hw.models import example_input

# (model, per-sample input shape used for export and checks; None = the zoo's)
MODELS = [
    ("resnet50", (3, 64, 64)),
    ("mobilenet_v1", (3, 64, 64)),
    ("mobilenet_v2", (3, 64, 64)),
    ("wide_resnet_22_2", None),
    ("char_gru", None),
    ("mlp", None),
    ("small_cnn", None),
]


def _onnx_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix == ".onnx" or p.name.endswith(".tmp"))


def _naive_weights(path: Path) -> dict[str, np.ndarray]:
    """Initializers of a file, sparse ones densified by hand (independent of export.onnx_passes)."""
    proto = onnx.load(str(path))
    out = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for s in proto.graph.sparse_initializer:
        dense = np.zeros(int(np.prod(s.dims)), dtype=np.float32)
        dense[numpy_helper.to_array(s.indices)] = numpy_helper.to_array(s.values)
        out[s.values.name] = dense.reshape(tuple(s.dims))
    return out


@pytest.fixture(scope="module", params=MODELS, ids=[m for m, _ in MODELS])
def exported(request, tmp_path_factory):
    """Both formats of one 90%-sparse zoo model, verified at export."""
    name, shape = request.param
    folder = tmp_path_factory.mktemp(name)
    ckpt = make_checkpoint(folder / "ckpt.pt", name, sparsity=0.9, seed=3)
    loaded = load_checkpoint(ckpt)
    reports = {fmt: export_onnx(loaded, folder / f"{fmt}.onnx", format=fmt, verify=True, input_shape=shape)
               for fmt in ("dense", "sparse")}
    return name, shape, ckpt, loaded, reports


def test_verified_in_both_formats(exported):
    name, _, _, _, reports = exported
    for fmt, rep in reports.items():
        v = rep.verification
        assert v is not None and v.ok, (name, fmt, v)
        assert v.checker_ok and v.sparsity_match
        assert v.max_abs_err <= 1e-4 and v.rel_err <= 1e-5
        assert v.batch_sizes == (2, 3)
        assert Path(rep.path).stat().st_size == rep.file_bytes
        onnx.checker.check_model(rep.path)


def test_sparse_file_smaller_than_dense(exported):
    _, _, _, _, reports = exported
    dense, sparse = (Path(reports[f].path).stat().st_size for f in ("dense", "sparse"))
    assert sparse < dense
    assert reports["dense"].sparse_bytes == sparse and reports["sparse"].dense_bytes == dense


def test_round_trip_sparsity_equals_masks(exported):
    name, _, _, loaded, reports = exported
    for rep in reports.values():
        weights = _naive_weights(Path(rep.path))
        name_map = get_metadata(onnx.load(rep.path))["name_map"]
        inverse = {param: onnx_name for onnx_name, param in name_map.items()}
        for param, mask in loaded.masks.items():
            arr = weights[inverse[param]]
            np.testing.assert_array_equal(arr != 0, mask, err_msg=f"{name} {rep.format} {param}")
        by_param = {l.param: l for l in rep.layers}
        for param, mask in loaded.masks.items():
            assert by_param[param].nnz == by_param[param].mask_nnz == int(mask.sum())


def test_dynamic_batch_in_onnxruntime(exported):
    name, shape, _, loaded, reports = exported
    gen = torch.Generator().manual_seed(7)
    x = example_input(name, 5, generator=gen)
    if shape is not None:
        x = torch.randn((5, *shape), generator=gen)
    with torch.no_grad():
        ref = loaded.model(x).numpy()
    sess = ort.InferenceSession(reports["sparse"].path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    assert out.shape == ref.shape
    assert np.max(np.abs(out - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_file_structure(exported):
    """Masks are baked (no mask tensors, no Mul on weights); sparse tensors use int64 linear indices."""
    name, _, _, loaded, reports = exported
    dense = onnx.load(reports["dense"].path)
    sparse = onnx.load(reports["sparse"].path)
    assert not dense.graph.sparse_initializer
    names = [t.name for t in dense.graph.initializer] + [s.values.name for s in sparse.graph.sparse_initializer]
    assert not any(n.endswith("_mask") for n in names)
    assert len(sparse.graph.sparse_initializer) >= 1
    for s in sparse.graph.sparse_initializer:
        assert s.indices.data_type == onnx.TensorProto.INT64 and len(s.indices.dims) == 1
    meta = get_metadata(sparse)
    assert meta["format"] == "sparse" and get_metadata(dense)["format"] == "dense"
    assert meta["batchnorm_folded"] == any(l.folded_bn for l in reports["sparse"].layers)
    assert set(meta["masked_params"]) == set(loaded.masks)
    batch = sparse.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"
    if name in ("resnet50", "mobilenet_v1", "mobilenet_v2"):
        assert meta["batchnorm_folded"] is True
        assert not any(n.op_type == "BatchNormalization" for n in sparse.graph.node)
        assert any(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
                   for n in sparse.graph.node) == name.startswith("mobilenet")


def test_resnet50_sparse_size_ratio(tmp_path):
    """A 90%-sparse ResNet-50 at full 224 input: sparse file <= 0.35x the dense file."""
    ckpt = make_checkpoint(tmp_path / "r50.pt", "resnet50", sparsity=0.9, seed=0)
    loaded = load_checkpoint(ckpt)
    dense = export_onnx(loaded, tmp_path / "dense.onnx", format="dense")
    sparse = export_onnx(loaded, tmp_path / "sparse.onnx", format="sparse")
    d, s = (tmp_path / "dense.onnx").stat().st_size, (tmp_path / "sparse.onnx").stat().st_size
    print(f"resnet50 90%: dense {d} B, sparse {s} B, ratio {s / d:.3f}")
    assert s / d <= 0.35
    assert sparse.ratio_to_dense == pytest.approx(s / d) and dense.file_bytes == d


def test_keep_batchnorm_keeps_pytorch_values(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt", "mobilenet_v2", sparsity=0.8, seed=1, width=0.25)
    rep = export_onnx(ckpt, tmp_path / "m.onnx", format="sparse", keep_batchnorm=True, verify=True,
                      input_shape=(3, 32, 32))
    assert rep.verification.ok and not rep.batchnorm_folded
    proto = onnx.load(rep.path)
    assert any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert get_metadata(proto)["batchnorm_folded"] is False
    loaded = load_checkpoint(ckpt)
    weights = _naive_weights(Path(rep.path))
    for pname, p in loaded.model.named_parameters():
        np.testing.assert_array_equal(weights[pname], p.detach().numpy())


@pytest.mark.parametrize("exported", [("char_gru", None)], indirect=True, ids=["char_gru"])
def test_char_gru_any_sequence_length(exported):
    _, _, _, loaded, reports = exported
    x = torch.randint(0, 256, (1, 11))
    with torch.no_grad():
        ref = loaded.model(x).numpy()
    out = ort.InferenceSession(reports["dense"].path, providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_module_with_mask_buffers(tmp_path):
    """An nn.Module carrying trainer-style mask buffers: masks are taken off and baked."""
    from rigl_hw.models import build_model

    model = build_model("mlp")
    mask = torch.rand(model.fc1.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.7
    model.fc1.register_buffer("weight_mask", mask)
    rep = export_onnx(model, tmp_path / "mlp.onnx", format="sparse", verify=True,
                      example_input=example_input("mlp", 2))
    assert rep.verification.ok
    by_param = {l.param: l for l in rep.layers}
    assert by_param["fc1.weight"].nnz == int(mask.sum()) and by_param["fc1.weight"].stored_as == "dense"
    assert hasattr(model.fc1, "weight_mask")  # the caller's module is not modified
    assert not any("mask" in t.name for t in onnx.load(rep.path).graph.initializer)


def test_make_and_load_checkpoint(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt", "small_cnn", sparsity=0.75, seed=2)
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert obj["format"] == "rigl-hw-checkpoint" and obj["version"] == 1
    assert "conv1.weight_mask" in obj["model_state"] and obj["model_state"]["conv1.weight_mask"].dtype == torch.bool
    loaded = load_checkpoint(ckpt)
    assert set(loaded.masks) == {"conv1.weight", "conv2.weight", "fc.weight"}
    for pname, mask in loaded.masks.items():
        assert mask.size - mask.sum() == round(0.75 * mask.size)
        w = dict(loaded.model.named_parameters())[pname].detach().numpy()
        assert not np.any(w[~mask])
    assert not any(n.endswith("_mask") for n in loaded.model.state_dict())
    assert not loaded.model.training
    assert not list(tmp_path.glob("*.tmp"))


def test_run_directory_accepted(tmp_path):
    make_checkpoint(tmp_path / "checkpoint.pt", "mlp", sparsity=0.5)
    assert load_checkpoint(tmp_path).meta["checkpoint"] == str(tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").rename(tmp_path / "other.pt")
    with pytest.raises(ExportError, match="is a directory .*other.pt"):
        load_checkpoint(tmp_path)


def test_verification_failure_leaves_no_file(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt", "mlp", sparsity=0.5, seed=0)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="verification failed: parity"):
        export_onnx(ckpt, out, verify=True, abs_tol=-1.0)
    assert _onnx_files(tmp_path) == []


# --- CLI and bad input ---------------------------------------------------------------------------

def _cli(capsys, *argv) -> tuple[int, str, str]:
    from export.cli import main as export_main     # the CLI's one error path (rigl_hw.cli.run_guarded)

    code = export_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_json_and_verify(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "c.pt", "small_cnn", sparsity=0.9, seed=0)
    code, out, err = _cli(capsys, ckpt, "--format", "sparse", "--out", tmp_path / "m.onnx", "--verify", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["format"] == "sparse" and report["verification"]["ok"] is True
    assert report["file_bytes"] == (tmp_path / "m.onnx").stat().st_size
    code, out, _ = _cli(capsys, ckpt, "--out", tmp_path / "d.onnx")
    assert code == 0 and "sparse/dense" in out


def _bad_checkpoint(kind: str, folder: Path) -> Path:
    path = folder / "ckpt.pt"
    if kind == "missing":
        return folder / "nope.pt"
    if kind == "corrupt":
        path.write_bytes(b"this is not a torch file\x00\x01")
    elif kind == "truncated":
        make_checkpoint(path, "mlp", 0.5)
        path.write_bytes(path.read_bytes()[:500])
    elif kind == "no_masks":
        make_checkpoint(path, "mlp", 0.5, with_masks=False)
    elif kind in ("unknown_model", "wrong_format", "state_mismatch"):
        make_checkpoint(path, "mlp", 0.5)
        obj = torch.load(path, weights_only=True)
        if kind == "unknown_model":
            obj["model"]["name"] = "resnet9000"
        elif kind == "wrong_format":
            obj["format"] = "something-else"
        else:
            obj["model"]["width"] = 2.0
        torch.save(obj, path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "not found"),
    ("corrupt", "not a readable torch checkpoint"),
    ("truncated", "not a readable torch checkpoint"),
    ("no_masks", "has no masks"),
    ("unknown_model", "unknown model name 'resnet9000'"),
    ("wrong_format", "expected 'rigl-hw-checkpoint'"),
    ("state_mismatch", "does not match the model"),
])
def test_cli_bad_checkpoint(tmp_path, capsys, kind, message):
    ckpt = _bad_checkpoint(kind, tmp_path)
    code, out, err = _cli(capsys, ckpt, "--format", "sparse", "--out", tmp_path / "m.onnx", "--verify")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rigl-hw: error:") and message in err, err
    assert _onnx_files(tmp_path) == []


@pytest.mark.parametrize("where", ["missing_dir", "is_dir"])
def test_cli_unwritable_output(tmp_path, capsys, where):
    ckpt = make_checkpoint(tmp_path / "c.pt", "mlp", sparsity=0.5)
    out = tmp_path / "no" / "such" / "m.onnx" if where == "missing_dir" else tmp_path
    code, _, err = _cli(capsys, ckpt, "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert ("cannot write" in err) if where == "missing_dir" else ("is a directory" in err), err
    assert _onnx_files(tmp_path) == []


def test_failed_export_keeps_previous_file(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    ckpt = make_checkpoint(tmp_path / "c.pt", "mlp", sparsity=0.5)
    with pytest.raises(ExportError):
        export_onnx(ckpt, out, verify=True, rel_tol=-1.0)
    assert out.read_bytes() == b"previous" and not list(tmp_path.glob("*.tmp"))


def test_bad_options(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt", "mlp", sparsity=0.5)
    with pytest.raises(ExportError, match="unknown format"):
        export_onnx(ckpt, tmp_path / "m.onnx", format="csr")
    with pytest.raises(ExportError, match="opset"):
        export_onnx(ckpt, tmp_path / "m.onnx", opset=99)
    assert _onnx_files(tmp_path) == []
