"""Tests for the model zoo (rigl_hw.models)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rigl_hw.models import (
    MODELS,
    build_model,
    char_gru,
    example_input,
    make_divisible,
    mobilenet_v1,
    wide_resnet,
)

IMAGENET = ("resnet50", "mobilenet_v1", "mobilenet_v2")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_input(name: str, batch: int = 2) -> torch.Tensor:
    """Registered example input, but 64x64 for the ImageNet models to keep tests fast."""
    g = torch.Generator().manual_seed(0)
    if name in IMAGENET:
        return torch.randn(batch, 3, 64, 64, generator=g)
    return example_input(name, batch=batch, generator=g)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet50").eval()


# --------------------------------------------------------------------------- counts


def test_resnet50_param_count(resnet: nn.Module) -> None:
    assert n_params(resnet) == 25_557_032


def test_mobilenet_param_counts() -> None:
    assert n_params(build_model("mobilenet_v1")) == 4_231_976
    assert n_params(build_model("mobilenet_v2")) == 3_504_872


def wrn_param_count(depth: int, k: int, num_classes: int) -> int:
    """WRN count from the architecture: convs (no bias), BN (2/channel), 1x1 shortcuts, fc."""
    n = (depth - 4) // 6
    total = 3 * 16 * 9  # stem conv
    in_ch = 16
    for out_ch, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
        for i in range(n):
            c_in = in_ch if i == 0 else out_ch
            total += 2 * c_in + c_in * out_ch * 9  # bn1 + conv1
            total += 2 * out_ch + out_ch * out_ch * 9  # bn2 + conv2
            if i == 0 and (c_in != out_ch or stride != 1):
                total += c_in * out_ch  # 1x1 shortcut
        in_ch = out_ch
    total += 2 * in_ch  # final BN
    total += in_ch * num_classes + num_classes  # fc
    return total


def test_wrn_22_2_param_count() -> None:
    expected = wrn_param_count(22, 2, 10)
    assert expected == 1_079_642
    assert n_params(build_model("wide_resnet_22_2")) == expected
    assert n_params(wide_resnet(28, 10, num_classes=100)) == wrn_param_count(28, 10, 100)


def test_char_gru_param_count() -> None:
    emb, hid, r1, r2, vocab = 128, 512, 256, 128, 256
    expected = (
        vocab * emb  # embedding (tied with output projection)
        + 3 * hid * (emb + hid)  # GRU weight_ih_l0 + weight_hh_l0
        + 2 * 3 * hid  # GRU bias_ih_l0 + bias_hh_l0
        + hid * r1 + r1  # readout1
        + r1 * r2 + r2  # readout2
        + vocab  # output bias
    )
    assert n_params(build_model("char_gru")) == expected == 1_183_360


def test_small_model_param_counts() -> None:
    assert n_params(build_model("mlp")) == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert n_params(build_model("small_cnn")) == (9 * 16 + 16) + (16 * 32 * 9 + 32) + (32 * 10 + 10)


# --------------------------------------------------------------------------- structure


def test_resnet50_names_and_strides(resnet: nn.Module) -> None:
    modules = dict(resnet.named_modules())
    for name in ("conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2", "layer1.0.conv3",
                 "layer4.2.conv3", "layer1.0.downsample.0", "layer1.0.downsample.1", "fc"):
        assert name in modules, name
    assert isinstance(modules["layer1.0.downsample.0"], nn.Conv2d)
    assert isinstance(modules["layer1.0.downsample.1"], nn.BatchNorm2d)
    assert "layer1.1.downsample" not in modules
    assert "conv1.bias" not in dict(resnet.named_parameters())
    assert resnet.fc.bias is not None
    for layer in ("layer2", "layer3", "layer4"):
        assert modules[f"{layer}.0.conv1"].stride == (1, 1)
        assert modules[f"{layer}.0.conv2"].stride == (2, 2)
        assert modules[f"{layer}.0.downsample.0"].stride == (2, 2)
    assert modules["layer1.0.conv2"].stride == (1, 1)
    assert all(m.bias is None for m in resnet.modules() if isinstance(m, nn.Conv2d))


def test_resnet50_forward(resnet: nn.Module) -> None:
    with torch.no_grad():
        assert resnet(small_input("resnet50")).shape == (2, 1000)


def test_mobilenet_v1_depthwise_groups_and_width_198() -> None:
    model = mobilenet_v1(width=1.98).eval()
    dws = [m for n, m in model.named_modules() if n.endswith(".dw")]
    assert len(dws) == 13
    for m in dws:
        assert m.groups == m.in_channels == m.out_channels > 1
    assert model.conv1.out_channels == int(32 * 1.98)
    assert model.fc.in_features == int(1024 * 1.98)
    with torch.no_grad():
        assert model(small_input("mobilenet_v1")).shape == (2, 1000)


def test_mobilenet_v2_structure() -> None:
    model = build_model("mobilenet_v2")
    assert model.fc.in_features == 1280
    dws = [m for n, m in model.named_modules() if n.endswith("dw.conv")]
    assert len(dws) == 17 and all(m.groups == m.in_channels for m in dws)
    assert [make_divisible(v) for v in (32, 16, 24, 1280)] == [32, 16, 24, 1280]
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 is < 90%, bump to 16
    assert make_divisible(1280 * 1.98) % 8 == 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_forward_shapes(name: str) -> None:
    entry = MODELS[name]
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert entry.first_layer in dict(model.named_modules())
    x = small_input(name)
    assert str(x.dtype) == f"torch.{entry.input_dtype}"
    with torch.no_grad():
        y = model(x)
    if name == "char_gru":
        assert y.shape == (2, *entry.input_shape, 256)
    else:
        assert y.shape == (2, entry.num_classes)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["wide_resnet_22_2", "mlp", "small_cnn"])
def test_num_classes_override(name: str) -> None:
    model = build_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(small_input(name)).shape == (2, 7)


def test_example_input() -> None:
    for name, entry in MODELS.items():
        x = example_input(name, batch=3)
        assert x.shape == (3, *entry.input_shape)
        assert str(x.dtype) == f"torch.{entry.input_dtype}"
    x = example_input("char_gru", batch=4)
    assert x.min() >= 0 and x.max() < 256
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(example_input("mlp", generator=g1), example_input("mlp", generator=g2))


def test_char_gru_tied_embedding() -> None:
    torch.manual_seed(0)
    model = char_gru().eval()
    names = [n for n, _ in model.named_parameters()]
    assert names.count("embedding.weight") == 1
    assert not any("output" in n and "weight" in n for n in names)
    assert model.gru.weight_ih_l0.shape == (1536, 128)
    assert model.gru.weight_hh_l0.shape == (1536, 512)
    x = example_input("char_gru", generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
        h, _ = model.gru(model.embedding(x))
        h = model.readout2(torch.relu(model.readout1(h)))
        manual = h @ model.embedding.weight.T + model.output_bias
        assert torch.allclose(logits, manual, atol=1e-5)
        # Changing only the embedding rows that are never looked up still changes logits.
        unused = torch.ones(256, dtype=torch.bool)
        unused[x.unique()] = False
        assert unused.any()
        model.embedding.weight[unused] += 1.0
        assert not torch.allclose(model(x)[..., unused], logits[..., unused])
    # The gradient of the output projection lands on the embedding weight.
    model.zero_grad()
    model(x).sum().backward()
    assert model.embedding.weight.grad[unused].abs().sum() > 0


# --------------------------------------------------------------------------- widths / errors


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(["wide_resnet_22_2", "mlp", "small_cnn", "char_gru"]),
       width=st.floats(min_value=0.3, max_value=2.0))
def test_widths_build_and_run(name: str, width: float) -> None:
    model = build_model(name, width=width).eval()
    with torch.no_grad():
        y = model(small_input(name))
    assert y.shape[0] == 2 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "resnet50"])
@pytest.mark.parametrize("width", [0.3, 0.75])
def test_imagenet_small_widths(name: str, width: float) -> None:
    model = build_model(name, width=width).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_determinism() -> None:
    for name in ("mobilenet_v2", "wide_resnet_22_2", "char_gru", "small_cnn"):
        torch.manual_seed(123)
        a = build_model(name)
        torch.manual_seed(123)
        b = build_model(name)
        for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
            assert na == nb and torch.equal(pa, pb), (name, na)


def test_unknown_name_raises() -> None:
    with pytest.raises(ValueError) as info:
        build_model("resnet51")
    for name in MODELS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="mobilenet_v1"):
        example_input("nope")


@pytest.mark.parametrize("width", [0.0, -1.0, float("nan")])
def test_bad_width_raises(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", width=width)
