"""Masking: buffers in the state_dict, exact nonzeros, weights zero outside, set_mask_ and optimizer state."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rigl_hw.layers import trace_layer_specs
from rigl_hw.masking import Masking
from rigl_hw.models import build_model, example_input
from torch_helpers import TinyGRU


def mlp_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("mlp")
    return model, trace_layer_specs(model, example_input("mlp"))


def gru_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyGRU()
    return model, trace_layer_specs(model, torch.zeros(2, 5, dtype=torch.int64))


def test_buffers_are_persistent_bool_with_param_name_keys():
    model, specs = gru_setup()
    masking = Masking(model, specs, {"gru.weight_ih_l0": 30, "fc": 50})
    sd = model.state_dict()
    for s in specs:
        key = s.param_name + "_mask"
        assert key in sd and sd[key].dtype == torch.bool and tuple(sd[key].shape) == s.weight_shape
        assert sd[key] is masking.mask(s.name) or torch.equal(sd[key], masking.mask(s.name))
    assert {"gru.weight_ih_l0_mask", "gru.weight_hh_l0_mask", "fc.weight_mask"} <= set(sd)
    model(torch.zeros(2, 5, dtype=torch.int64)).sum().backward()   # the GRU still runs with the buffers
    cnn = build_model("small_cnn")
    Masking(cnn, trace_layer_specs(cnn, example_input("small_cnn")))
    assert {"conv1.weight_mask", "conv2.weight_mask", "fc.weight_mask"} <= set(cnn.state_dict())


def test_exact_nonzeros_and_zero_weights_outside():
    model, specs = mlp_setup()
    nnz = {"fc1": 700, "fc3": 1}
    masking = Masking(model, specs, nnz, torch.Generator().manual_seed(1))
    counts = masking.nonzeros()
    assert counts["fc1"] == 700 and counts["fc3"] == 1
    assert counts["fc2"] == model.fc2.weight.numel()          # absent: all-True
    for n in masking.names:
        w, m = masking.weight(n), masking.mask(n)
        assert torch.all(w[~m] == 0)
        assert torch.all(w[m] != 0)                           # random init is nonzero where active
    assert masking.names == [s.name for s in specs]
    assert Masking(*mlp_setup()).nonzeros() == {s.name: s.n_params for s in specs}


def test_random_masks_are_deterministic_per_generator():
    a = Masking(*mlp_setup(), {"fc1": 100}, torch.Generator().manual_seed(5)).masks_numpy()
    b = Masking(*mlp_setup(), {"fc1": 100}, torch.Generator().manual_seed(5)).masks_numpy()
    c = Masking(*mlp_setup(), {"fc1": 100}, torch.Generator().manual_seed(6)).masks_numpy()
    assert np.array_equal(a["fc1"], b["fc1"]) and not np.array_equal(a["fc1"], c["fc1"])
    assert a["fc1"].dtype == bool and a["fc1"].shape == (128, 64)


def test_masks_numpy_is_a_copy():
    model, specs = mlp_setup()
    masking = Masking(model, specs, {"fc1": 10})
    arr = masking.masks_numpy()["fc1"]
    arr[:] = True
    assert masking.nonzeros()["fc1"] == 10


def test_state_dict_round_trip_restores_masks():
    model, specs = mlp_setup()
    masking = Masking(model, specs, {"fc1": 100, "fc2": 200}, torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    model2, _ = mlp_setup(seed=1)
    masking2 = Masking(model2, specs, {"fc1": 100, "fc2": 200}, torch.Generator().manual_seed(9))
    model2.load_state_dict(torch.load(buf, weights_only=True))
    for n in masking.names:
        assert torch.equal(masking.mask(n), masking2.mask(n))
        assert torch.equal(masking.weight(n), masking2.weight(n))


def test_apply_masks_and_mask_grads():
    model, specs = mlp_setup()
    masking = Masking(model, specs, {"fc1": 100})
    with torch.no_grad():
        model.fc1.weight.add_(1.0)
    model(example_input("mlp", 4)).sum().backward()
    assert torch.any(model.fc1.weight.grad[~masking.mask("fc1")] != 0)   # dense gradient: no hook
    masking.mask_grads_()
    masking.apply_masks_()
    m = masking.mask("fc1")
    assert torch.all(model.fc1.weight[~m] == 0) and torch.all(model.fc1.weight.grad[~m] == 0)


def _step_once(model, opt):
    opt.zero_grad()
    model(example_input("mlp", 8, torch.Generator().manual_seed(0))).pow(2).mean().backward()
    opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3, amsgrad=True),
    lambda p: torch.optim.AdamW(p, lr=1e-2),
    lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
    lambda p: torch.optim.Adagrad(p, lr=1e-2),
])
def test_set_mask_zeroes_weights_and_every_weight_shaped_state(make_opt):
    model, specs = mlp_setup()
    masking = Masking(model, specs)           # all-True: every state entry becomes nonzero
    opt = make_opt(model.parameters())
    for _ in range(2):
        _step_once(model, opt)
    w = model.fc2.weight
    old = masking.mask("fc2").clone()
    state_before = {k: v.clone() for k, v in opt.state[w].items() if isinstance(v, torch.Tensor)}
    weight_before = w.detach().clone()
    new = old.clone().reshape(-1)
    new[:100] = False                          # drop 100
    masking.set_mask_("fc2", new.reshape(old.shape), None)
    buffer = masking.mask("fc2")
    new2 = buffer.clone().reshape(-1)
    new2[:40] = True                           # grow 40 of them back (they are weight 0 now)
    new2[200:230] = False                      # and drop 30 more
    dropped, grown = masking.set_mask_("fc2", new2.reshape(old.shape), opt)
    assert (dropped, grown) == (30, 40)
    assert masking.mask("fc2") is buffer        # the same buffer, changed in place
    flat_w = w.detach().reshape(-1)
    assert torch.all(flat_w[:100] == 0) and torch.all(flat_w[200:230] == 0)
    keep = torch.ones(w.numel(), dtype=torch.bool)
    keep[:100] = False
    keep[200:230] = False
    assert torch.equal(flat_w[keep], weight_before.reshape(-1)[keep])
    shaped = [k for k, v in opt.state[w].items() if isinstance(v, torch.Tensor) and v.shape == w.shape]
    assert shaped, "the optimizer keeps weight-shaped state"
    for key in shaped:
        v = opt.state[w][key].reshape(-1)
        assert torch.all(v[:40] == 0) and torch.all(v[200:230] == 0), key   # grown and dropped
        assert torch.equal(v[230:], state_before[key].reshape(-1)[230:]), key   # untouched elsewhere
    for key, v in opt.state[w].items():         # scalar state (Adam's step) untouched
        if isinstance(v, torch.Tensor) and v.shape != w.shape:
            assert torch.equal(v, state_before[key])


class OddOptimizer(torch.optim.Optimizer):
    """SGD that stores its buffers under unusual names (to show set_mask_ needs no names)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                st.setdefault("velocity_of_doom", torch.zeros_like(p)).mul_(0.9).add_(p.grad)
                st.setdefault("trace", torch.zeros_like(p)).add_(p.grad.abs())
                st["count"] = st.get("count", 0) + 1
                p.add_(st["velocity_of_doom"], alpha=-group["lr"])


def test_set_mask_zeroes_state_of_any_optimizer():
    model, specs = mlp_setup()
    masking = Masking(model, specs)
    opt = OddOptimizer(model.parameters())
    _step_once(model, opt)
    before = {k: opt.state[model.fc1.weight][k].clone() for k in ("velocity_of_doom", "trace")}
    assert all(bool(torch.any(v[0, :5] != 0)) for v in before.values())
    new = masking.mask("fc1").clone()
    new[0, :5] = False
    masking.set_mask_("fc1", new, opt)
    for key in ("velocity_of_doom", "trace"):
        assert torch.all(opt.state[model.fc1.weight][key][0, :5] == 0)
        assert torch.equal(opt.state[model.fc1.weight][key][1:], before[key][1:])
    assert opt.state[model.fc1.weight]["count"] == 1


def test_bad_inputs():
    model, specs = mlp_setup()
    masking = Masking(model, specs, {"fc1": 3})
    with pytest.raises(TypeError, match="bool"):
        masking.set_mask_("fc1", torch.ones(128, 64), None)
    with pytest.raises(ValueError, match="entries"):
        masking.set_mask_("fc1", torch.ones(5, dtype=torch.bool), None)
    with pytest.raises(ValueError, match="not in the specs"):
        Masking(model, specs, {"nope": 3})
    with pytest.raises(ValueError, match="outside"):
        Masking(model, specs, {"fc1": 10**6})
    other = build_model("mlp", width=0.5)
    with pytest.raises(ValueError, match="shape"):
        Masking(other, specs)


def test_grown_weights_start_at_exactly_zero_even_if_storage_held_values():
    model, specs = mlp_setup()
    masking = Masking(model, specs, {"fc3": 100}, torch.Generator().manual_seed(0))
    old = masking.mask("fc3").clone()
    with torch.no_grad():                      # e.g. dense values written behind the mask's back
        model.fc3.weight.fill_(0.5)
    new = old.clone()
    grow_at = torch.nonzero(~old.reshape(-1))[:7].squeeze(1)
    new.reshape(-1)[grow_at] = True
    assert masking.set_mask_("fc3", new, None) == (0, 7)
    w = model.fc3.weight.detach().reshape(-1)
    assert torch.all(w[grow_at] == 0)
    assert torch.all(w[old.reshape(-1)] == 0.5)        # kept connections keep their values
    assert torch.all(w[~new.reshape(-1)] == 0)
