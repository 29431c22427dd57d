"""PyTorch pruning interop (torch.nn.utils.prune, torch.ao.pruning / parametrize) and input
preprocessing in checkpoints and ONNX metadata, with the onnxruntime script of docs/export.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from export.errors import ExportError
from export.onnx_export import export_onnx
from rigl_hw.prune_interop import (PruneInteropError, apply_parametrize_masks, apply_rigl_masks, apply_torch_prune,
                                   bake_torch_pruning, masks_from_rigl, masks_from_torch)

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 40), nn.ReLU(),
                         nn.Linear(40, 10)).eval()


def _torch_pruned() -> nn.Module:
    m = _net()
    for i in (0, 3, 5):
        prune.l1_unstructured(m[i], "weight", amount=0.7)
    return m


def _ao_pruned() -> nn.Module:
    from torch.ao.pruning import WeightNormSparsifier

    m = _net()
    sp = WeightNormSparsifier(sparsity_level=0.75, sparse_block_shape=(1, 4), zeros_per_block=4)
    sp.prepare(m, [{"tensor_fqn": "3.weight"}, {"tensor_fqn": "5.weight"}])
    sp.step()
    return m


X = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _graph_has_no_masks(path: Path) -> None:
    g = onnx.load(str(path)).graph
    assert "Mul" not in {n.op_type for n in g.node}
    assert not [i.name for i in g.initializer if "mask" in i.name or "orig" in i.name]
    assert not [n for n in g.node if n.op_type == "Constant"
                and any(a.t.dims and len(a.t.dims) >= 2 for a in n.attribute)]


@pytest.mark.parametrize("kind", ["prune", "ao"])
def test_export_bakes_pytorch_masks(tmp_path, kind):
    model = _torch_pruned() if kind == "prune" else _ao_pruned()
    want_masks = masks_from_torch(model)
    with torch.no_grad():
        want_out = model(X)
    rep = export_onnx(model, tmp_path / "m.onnx", example_input=X, verify=True)
    _graph_has_no_masks(tmp_path / "m.onnx")
    # sparsity of the file = the masks' (every masked weight that survived is nonzero)
    by_param = {layer.param: layer for layer in rep.layers}
    for name, mask in want_masks.items():
        assert by_param[name].nnz == int(mask.sum()) and by_param[name].mask_nnz == int(mask.sum())
    # same bytes as exporting the baked model by hand
    baked, masks = bake_torch_pruning(model)
    ref = export_onnx(baked, tmp_path / "baked.onnx", example_input=X, masks=masks)
    assert rep.file_bytes == ref.file_bytes == (tmp_path / "m.onnx").stat().st_size
    assert (tmp_path / "m.onnx").read_bytes() == (tmp_path / "baked.onnx").read_bytes()
    # the caller's model still carries its pruning and computes the same
    assert masks_from_torch(model).keys() == want_masks.keys()
    with torch.no_grad():
        assert torch.equal(model(X), want_out)
        assert torch.allclose(baked(X), want_out, atol=1e-6)
    assert not any(isinstance(h, prune.BasePruningMethod) for mod in baked.modules()
                   for h in mod._forward_pre_hooks.values())
    assert not any(parametrize.is_parametrized(mod) for mod in baked.modules())


def test_without_baking_the_exporter_would_write_mask_muls(tmp_path):
    """What the bake prevents: torch.onnx of a parametrized model holds Mul nodes over mask constants."""
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_ao_pruned(), (X,), buf, dynamo=False, do_constant_folding=False)
    assert "Mul" in {n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}


def test_masks_round_trip_between_conventions():
    masks = masks_from_torch(_torch_pruned())
    assert set(masks) == {"0.weight", "3.weight", "5.weight"}
    assert [int(m.sum()) for m in masks.values()] == [int(round(0.3 * n)) for n in (72, 20480, 400)]
    a = apply_torch_prune(_net(), masks)
    b = apply_parametrize_masks(_net(), masks)
    c = apply_rigl_masks(_net(), masks)
    for got in (masks_from_torch(a), masks_from_torch(b), masks_from_rigl(c)):
        assert set(got) == set(masks) and all(np.array_equal(got[k], masks[k]) for k in masks)
    with torch.no_grad():   # the three conventions compute the same function
        ya, yb, yc = a(X), b(X), c(X)
    assert torch.allclose(ya, yb) and torch.allclose(ya, yc)
    assert int((c[3].weight == 0).sum()) >= int((~masks["3.weight"]).sum())


def test_refuses_non_mask_parametrization_and_scaled_masks(tmp_path):
    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    m = _net()
    parametrize.register_parametrization(m[3], "weight", Double())
    with pytest.raises(ExportError, match="3.weight: parametrization Double is not a mask"):
        export_onnx(m, tmp_path / "x.onnx", example_input=X)
    m2 = _net()
    prune.custom_from_mask(m2[5], "weight", torch.ones(10, 40))
    with torch.no_grad():
        m2[5].weight_mask.mul_(0.5)
    with pytest.raises(PruneInteropError, match="values other than 0 and 1"):
        bake_torch_pruning(m2)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(PruneInteropError, match="has shape"):
        apply_torch_prune(_net(), {"5.weight": np.ones((3, 3), dtype=bool)})


# --------------------------------------------------------------------------------- preprocessing
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from rigl_hw.train import train
    from rigl_hw.train_config import TrainConfig

    out = tmp_path_factory.mktemp("prep") / "run"
    res = train(TrainConfig(model="mlp", dataset="digits", method="rigl", sparsity=0.8, steps=150, delta_t=25,
                            batch_size=64, out=str(out), progress=False, device="cpu"))
    return out, res


def _doc_script() -> str:
    text = (DOCS / "export.md").read_text()
    m = re.search(r"<!-- onnxruntime-digits-script -->\s*```python\n(.*?)```", text, re.S)
    assert m, "docs/export.md lost its onnxruntime script"
    return m.group(1)


def test_preprocessing_in_checkpoint_and_onnx(digits_run, tmp_path):
    from export.onnx_passes import get_metadata
    from rigl_hw.data import load_dataset

    run, _ = digits_run
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    prep = ck["preprocessing"]
    data = load_dataset("digits", "mlp")
    from sklearn.datasets import load_digits

    raw = load_digits().data.astype(np.float32)
    tr = np.setdiff1d(np.arange(len(raw)), np.sort(np.random.default_rng(0).permutation(len(raw))[:359]))
    assert np.array_equal(np.asarray(prep["mean"], dtype=np.float32), raw[tr].mean(0))   # training split only
    x = (raw - np.asarray(prep["mean"], dtype=np.float32)) / np.asarray(prep["std"], dtype=np.float32)
    assert np.array_equal(x[tr], data.x_train.numpy())
    export_onnx(run, tmp_path / "m.onnx")
    meta = get_metadata(onnx.load(str(tmp_path / "m.onnx")))
    assert meta["preprocessing"] == prep and meta["preprocessing"]["layout"] == "NF"


def test_old_checkpoint_without_preprocessing_still_exports(tmp_path):
    from export.checkpoint import make_checkpoint
    from export.onnx_passes import get_metadata

    ck = make_checkpoint(tmp_path / "old.pt", "mlp", 0.5)
    assert "preprocessing" not in torch.load(ck, weights_only=True)
    export_onnx(ck, tmp_path / "old.onnx")
    assert "preprocessing" not in get_metadata(onnx.load(str(tmp_path / "old.onnx")))


def test_docs_onnxruntime_script_reproduces_pytorch_accuracy(digits_run, tmp_path):
    import pandas as pd

    run, res = digits_run
    export_onnx(run, tmp_path / "digits.onnx", format="sparse")
    script = tmp_path / "score.py"
    script.write_text(_doc_script())
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "digits.onnx")], capture_output=True,
                         text=True, check=True).stdout
    acc = float(re.search(r"accuracy ([0-9.]+)", out).group(1))
    final = pd.read_csv(run / "metrics.csv")["eval_accuracy"].dropna().iloc[-1]
    assert final == pytest.approx(res.eval["eval_accuracy"])
    assert acc == pytest.approx(final, abs=5e-5)       # same 359 images, same predictions
    assert acc > 0.8
