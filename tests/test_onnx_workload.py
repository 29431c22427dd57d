"""ONNX files as workloads: an ONNX exported by rigl-hw and one built with onnx.helper give the layer
specs and FLOPs of the PyTorch model they came from; `simulate FILE.onnx --inference` runs on both."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from rigl_hw.cli import main
from rigl_hw.flops import inference_flops
from rigl_hw.flops_report import flops_report
from rigl_hw.layers import trace_layer_specs
from rigl_hw.onnx_workload import OnnxWorkloadError, onnx_workload


class NetA(nn.Module):
    """Grouped, strided, dilated conv on 4x9x9 -> flatten -> fc (Gemm) -> (N, 4, 4) -> proj (MatMul, 4 positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2)
        self.fc = nn.Linear(8 * 4 * 4, 16)
        self.proj = nn.Linear(4, 6, bias=False)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        return self.proj(self.fc(h).reshape(-1, 4, 4))


def _masked_net(seed: int = 0) -> tuple[NetA, dict[str, np.ndarray]]:
    torch.manual_seed(seed)
    net = NetA().eval()
    g = torch.Generator().manual_seed(seed)
    masks = {}
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight"):
                m = torch.rand(p.shape, generator=g) > 0.7          # ~30% density
                p.copy_(torch.where(p == 0, torch.full_like(p, 1e-3), p) * m)
                masks[name] = m.numpy()
    return net, masks


def _hand_built(net: NetA, path, sparse_fc: bool = True) -> None:
    """NetA written node by node with onnx.helper (fc.weight as a sparse initializer)."""
    w = {n: p.detach().numpy() for n, p in net.named_parameters()}
    inits = [numpy_helper.from_array(w["conv.weight"], "conv.weight"),
             numpy_helper.from_array(w["conv.bias"], "conv.bias"),
             numpy_helper.from_array(w["fc.bias"], "fc.bias"),
             numpy_helper.from_array(np.ascontiguousarray(w["proj.weight"].T), "proj.weight"),   # (K, N) for MatMul
             numpy_helper.from_array(np.array([0, 4, 4], dtype=np.int64), "shape_n44")]
    sparse = []
    fcw = w["fc.weight"]
    if sparse_fc:
        idx = np.flatnonzero(fcw).astype(np.int64)
        sparse.append(helper.make_sparse_tensor(numpy_helper.from_array(fcw.reshape(-1)[idx], "fc.weight"),
                                                numpy_helper.from_array(idx, "fc.weight_idx"), list(fcw.shape)))
    else:
        inits.append(numpy_helper.from_array(fcw, "fc.weight"))
    nodes = [helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], group=2, strides=[2, 2],
                              pads=[1, 1, 1, 1], dilations=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["g"], transB=1),
             helper.make_node("Reshape", ["g", "shape_n44"], ["g3"]),
             helper.make_node("MatMul", ["g3", "proj.weight"], ["y"])]
    graph = helper.make_graph(nodes, "neta", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6])], inits,
                              sparse_initializer=sparse)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from export.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("onnxw")
    net, masks = _masked_net()
    specs = trace_layer_specs(net, torch.zeros(1, 4, 9, 9))
    exported = d / "exported.onnx"
    export_onnx(net, exported, example_input=torch.randn(2, 4, 9, 9), format="sparse", sparse_min_elements=16,
                verify=True)
    hand = d / "hand.onnx"
    _hand_built(net, hand)
    return {"specs": specs, "masks": masks, "exported": exported, "hand": hand, "dir": d}


def test_torch_specs_are_what_we_think(files):
    conv, fc, proj = files["specs"]
    assert (conv.in_hw, conv.out_hw, conv.groups, conv.stride, conv.padding) == ((9, 9), (4, 4), 2, (2, 2), (1, 1))
    assert fc.weight_shape == (16, 128) and fc.out_positions == 1
    assert proj.weight_shape == (6, 4) and proj.out_positions == 4 and not proj.has_bias


@pytest.mark.parametrize("which", ["exported", "hand"])
def test_same_specs_masks_and_flops_as_pytorch(files, which):
    w = onnx_workload(files[which])
    assert list(w.specs) == files["specs"]
    for s in w.specs:
        assert np.array_equal(w.masks[s.name], files["masks"][s.param_name]), s.name
    nnz = {s.name: int(files["masks"][s.param_name].sum()) for s in files["specs"]}
    want = inference_flops(files["specs"], nnz)
    rep = flops_report(str(files[which]), None, None)     # the file's own zeros
    assert [r["inference_flops"] for r in rep["layers"]] == want.tolist()
    assert rep["inference_flops"]["dense"] == float(inference_flops(files["specs"]).sum())
    # hand-worked: conv 2·nnz·16 + 8·16, fc 2·nnz + 16, proj 2·nnz·4 + 24
    assert want.tolist() == [2 * nnz["conv"] * 16 + 128, 2 * nnz["fc"] + 16, 2 * nnz["proj"] * 4 + 24]


@pytest.mark.parametrize("which", ["exported", "hand"])
def test_simulate_inference_on_onnx(files, which, capsys):
    assert main(["simulate", str(files[which]), "--hardware", "dense-32x32", "--inference", "--batch", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch"] == 4 and [r["name"] for r in out["layers"]] == ["conv", "fc", "proj"]
    # a dense array does every MAC: B x sum(N_l x P_l)
    assert sum(r["dense_macs"] for r in out["layers"]) == 4 * sum(s.dense_macs for s in files["specs"])
    assert out["per_sample"]["cycles"] == pytest.approx(out["per_batch"]["cycles"] / 4)
    total = sum(int(m.sum()) for m in files["masks"].values())
    assert out["nonzeros"] == total


def test_exported_and_hand_built_cost_the_same(files, capsys):
    res = []
    for which in ("exported", "hand"):
        assert main(["simulate", str(files[which]), "--hardware", "skip-bitmask-32x32", "--batch", "3", "--json"]) == 0
        res.append(json.loads(capsys.readouterr().out))
    assert res[0]["per_batch"] == res[1]["per_batch"]


class _GRUNet(nn.Module):
    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        self.gru = gru

    def forward(self, x):
        return self.gru(x)[0]


def test_gru_and_lstm_nodes(tmp_path):
    torch.manual_seed(0)
    gru = nn.GRU(5, 7)
    want = trace_layer_specs(_GRUNet(gru), torch.zeros(6, 1, 5))    # T=6, batch 1 (not batch_first)
    p = {n: t.detach().numpy() for n, t in gru.named_parameters()}
    H = 7
    lstm_w = np.zeros((1, 4 * H, 7), dtype=np.float32)
    lstm_w[0, :3] = 1.0                                                    # 21 nonzeros
    inits = [numpy_helper.from_array(p["weight_ih_l0"][None], "gru.weight_ih_l0"),
             numpy_helper.from_array(p["weight_hh_l0"][None], "gru.weight_hh_l0"),
             numpy_helper.from_array(np.concatenate([p["bias_ih_l0"], p["bias_hh_l0"]])[None], "gru.b"),
             numpy_helper.from_array(lstm_w, "lstm.W"),
             numpy_helper.from_array(np.ones((1, 4 * H, H), dtype=np.float32), "lstm.R")]
    nodes = [helper.make_node("GRU", ["x", "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.b"], ["y", "h"], hidden_size=H),
             helper.make_node("Reshape", ["y", "s"], ["y3"]),          # (T, 1, N, H) -> (T, N, H) at N = 1
             helper.make_node("LSTM", ["y3", "lstm.W", "lstm.R"], ["z"], hidden_size=H)]
    inits.append(numpy_helper.from_array(np.array([6, 1, H], dtype=np.int64), "s"))
    graph = helper.make_graph(nodes, "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, "N", 5])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "rnn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    w = onnx_workload(path)
    assert list(w.specs[:2]) == want
    lw, lr = w.specs[2:]
    assert (lw.kind, lw.weight_shape, lw.out_positions, lr.weight_shape) == ("gru", (28, 7), 6, (28, 7))
    assert w.nonzeros()["lstm.W"] == 21 and w.nonzeros()["lstm.R"] == 28 * 7


def _one_node_model(path, op: str, weight_shape, **attrs) -> None:
    w = numpy_helper.from_array(np.ones(weight_shape, dtype=np.float32), "W")
    node = helper.make_node(op, ["x", "W"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("case, needle", [
    ("missing", "not found"),
    ("garbage", "is not an ONNX model"),
    ("convtranspose", "op ConvTranspose"),
    ("maskmul", "op Mul"),
])
def test_bad_onnx_one_line(tmp_path, capsys, case, needle):
    path = tmp_path / f"{case}.onnx"
    if case == "garbage":
        path.write_bytes(b"definitely not protobuf \x00\xff" * 10)
    elif case == "convtranspose":
        _one_node_model(path, "ConvTranspose", (4, 2, 3, 3))
    elif case == "maskmul":
        _one_node_model(path, "Mul", (1, 4, 5, 5))
    for argv in (["simulate", str(path), "--hardware", "dense-32x32", "--inference"],
                 ["flops", "--model", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and err.startswith("rigl-hw: error:"), err
    with pytest.raises((OnnxWorkloadError, FileNotFoundError)):
        onnx_workload(path)


def test_trace_synth_from_onnx(files, tmp_path):
    assert main(["trace", "synth", "--model", str(files["hand"]), "--distribution", "erk", "--sparsity", "0.5",
                 "--steps", "20", "--delta-t", "5", "--t-end", "15", "--batch", "2", "--out", str(tmp_path / "t")]) == 0
    from rigl_hw.trace import read_trace

    tr = read_trace(tmp_path / "t")
    assert tr.specs == files["specs"]


def test_onnx_workload_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, rigl_hw.onnx_workload, simulator.inference; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("model", ["small_cnn", "char_gru"])
def test_exported_zoo_checkpoint_matches_zoo_specs(tmp_path, model):
    from export.checkpoint import make_checkpoint
    from export.onnx_export import export_onnx
    from rigl_hw.zoo import model_specs

    ck = make_checkpoint(tmp_path / "ck.pt", model, 0.8, seed=1)
    export_onnx(ck, tmp_path / "m.onnx")
    w = onnx_workload(tmp_path / "m.onnx")      # char_gru: the sequence length comes from the file's metadata
    assert list(w.specs) == model_specs(model)  # GRU weights reach the node through Slice/Concat; tied output skipped
    state = torch.load(ck, weights_only=True)["model_state"]
    for s in w.specs:
        assert np.array_equal(w.masks[s.name], state[s.param_name + "_mask"].numpy())


def test_conv_auto_pad_same(tmp_path):
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    want = trace_layer_specs(conv, torch.zeros(1, 4, 9, 9))[0]     # out 5x5, pad 1
    w = numpy_helper.from_array(conv.weight.detach().numpy(), "weight")
    node = helper.make_node("Conv", ["x", "weight"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "s.onnx"))
    got = onnx_workload(tmp_path / "s.onnx").specs[0]
    assert (got.out_hw, got.padding, got.stride) == (want.out_hw, want.padding, want.stride) == ((5, 5), (1, 1), (2, 2))
