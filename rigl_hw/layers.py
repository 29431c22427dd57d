"""LayerSpec: the shape record of one sparsifiable weight (conv, linear, GRU matrix).

Numpy-only at import: the simulator and the studies use these records without torch. A table of
specs is built from a torch model by one shape-tracing forward pass (`trace_layer_specs`, which
imports torch lazily) or read back from JSON (`specs_from_json`).

Units: FLOPs are per sample (one image, or one whole sequence for recurrent models).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

LAYER_KINDS = ("conv", "linear", "gru")


@dataclass(frozen=True)
class LayerSpec:
    """Shape of one sparsifiable weight and of the activations around it.

    name:         torch module path of the layer ("layer1.0.conv1"); for GRU matrices the
                  parameter path without ".weight" suffix ("gru.weight_ih_l0").
    param_name:   full torch parameter name ("layer1.0.conv1.weight", "gru.weight_ih_l0").
    kind:         "conv" (weight C_out x C_in/groups x kh x kw), "linear" (out x in), or "gru"
                  (a GRU input or hidden matrix, 3H x in, applied once per time step).
    in_hw/out_hw: spatial size of the input / output (conv); (positions, 1) for linear and GRU,
                  where positions is the number of vectors per sample (1, or the sequence length).
    """

    name: str
    param_name: str
    kind: str
    weight_shape: tuple[int, ...]
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    has_bias: bool = False

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer {self.name!r}: kind {self.kind!r} is not one of {LAYER_KINDS}")
        want = 4 if self.kind == "conv" else 2
        if len(self.weight_shape) != want or min(self.weight_shape) <= 0:
            raise ValueError(
                f"layer {self.name!r}: weight shape {self.weight_shape} is not a positive {want}-d shape "
                f"for a {self.kind} layer"
            )
        for label, pair in (("in_hw", self.in_hw), ("out_hw", self.out_hw), ("stride", self.stride)):
            if len(pair) != 2 or min(pair) <= 0:
                raise ValueError(f"layer {self.name!r}: {label} {pair} must be two positive ints")
        if self.groups <= 0:
            raise ValueError(f"layer {self.name!r}: groups must be positive, got {self.groups}")

    # --- shapes ---------------------------------------------------------------------------
    @property
    def out_channels(self) -> int:
        """Output channels (conv) or output features (linear, GRU: 3 x hidden)."""
        return int(self.weight_shape[0])

    @property
    def in_channels(self) -> int:
        """Input channels including all groups (conv) or input features."""
        return int(self.weight_shape[1]) * self.groups

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return (int(self.weight_shape[2]), int(self.weight_shape[3])) if self.kind == "conv" else (1, 1)

    @property
    def fan_in(self) -> int:
        """K: multiply-adds per output element when dense (k_h * k_w * C_in / groups)."""
        return int(math.prod(self.weight_shape[1:]))

    @property
    def n_params(self) -> int:
        """N_l: number of weights of the layer."""
        return int(math.prod(self.weight_shape))

    @property
    def out_positions(self) -> int:
        """Output positions per sample (H_out * W_out, or the sequence length)."""
        return int(self.out_hw[0] * self.out_hw[1])

    @property
    def in_positions(self) -> int:
        return int(self.in_hw[0] * self.in_hw[1])

    @property
    def out_elements(self) -> int:
        """E: output elements per sample."""
        return self.out_channels * self.out_positions

    @property
    def dense_macs(self) -> int:
        """Multiply-accumulates per sample of the dense layer (= N_l x output positions)."""
        return self.n_params * self.out_positions

    @property
    def dense_flops(self) -> int:
        """Dense inference FLOPs per sample: 2 K E + E (RigL Appendix H convention)."""
        return 2 * self.dense_macs + self.out_elements

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weight_shape"] = list(self.weight_shape)
        for k in ("in_hw", "out_hw", "stride", "padding"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerSpec":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"layer spec has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        for k in ("weight_shape", "in_hw", "out_hw", "stride", "padding"):
            if k in kw:
                kw[k] = tuple(int(v) for v in kw[k])
        return cls(**kw)


def specs_to_json(specs: Sequence[LayerSpec]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in specs]


def specs_from_json(rows: Iterable[dict[str, Any]]) -> list[LayerSpec]:
    specs = [LayerSpec.from_dict(r) for r in rows]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("layer spec table has duplicate layer names")
    return specs


def total_params(specs: Sequence[LayerSpec]) -> int:
    return sum(s.n_params for s in specs)


def trace_layer_specs(model: Any, example_input: Any) -> list[LayerSpec]:
    """Run one forward pass of a torch model with hooks and record a LayerSpec per sparsifiable weight.

    Sparsifiable: every nn.Conv2d and nn.Linear weight, and the weight_ih/weight_hh matrices of
    nn.GRU layers. Embeddings, biases and norms are not. `example_input` holds a batch (its first
    dimension is the batch). Order is the order of first use in the forward pass.
    """
    import torch
    from torch import nn

    records: dict[str, LayerSpec] = {}
    order: list[str] = []
    handles = []

    def add(spec: LayerSpec) -> None:
        if spec.name not in records:
            order.append(spec.name)
        records[spec.name] = spec

    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def conv_hook(m, inp, out, mod_name=mod_name):
                x = inp[0]
                add(LayerSpec(
                    name=mod_name, param_name=f"{mod_name}.weight", kind="conv",
                    weight_shape=tuple(m.weight.shape), in_hw=(int(x.shape[-2]), int(x.shape[-1])),
                    out_hw=(int(out.shape[-2]), int(out.shape[-1])), groups=int(m.groups),
                    stride=tuple(int(v) for v in m.stride),
                    padding=tuple(int(v) for v in m.padding) if not isinstance(m.padding, str) else (0, 0),
                    has_bias=m.bias is not None,
                ))
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            def linear_hook(m, inp, out, mod_name=mod_name):
                x = inp[0]
                positions = int(x.numel() // x.shape[-1] // x.shape[0]) if x.dim() > 1 else 1
                add(LayerSpec(
                    name=mod_name, param_name=f"{mod_name}.weight", kind="linear",
                    weight_shape=tuple(m.weight.shape), in_hw=(positions, 1), out_hw=(positions, 1),
                    has_bias=m.bias is not None,
                ))
            handles.append(module.register_forward_hook(linear_hook))
        elif isinstance(module, nn.GRU):
            def gru_hook(m, inp, out, mod_name=mod_name):
                x = inp[0]
                steps = int(x.shape[1] if m.batch_first else x.shape[0]) if x.dim() == 3 else 1
                for pname, p in m.named_parameters(recurse=False):
                    if pname.startswith("weight_"):
                        add(LayerSpec(
                            name=f"{mod_name}.{pname}", param_name=f"{mod_name}.{pname}", kind="gru",
                            weight_shape=tuple(p.shape), in_hw=(steps, 1), out_hw=(steps, 1),
                            has_bias=m.bias,
                        ))
            handles.append(module.register_forward_hook(gru_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [records[n] for n in order]
