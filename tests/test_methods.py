"""Sparse-training methods: invariants over many steps, hand-worked RigL, schedule counts, bad input."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rigl_hw.layers import trace_layer_specs
from rigl_hw.methods import (METHODS, MethodConfig, MethodError, PruningMethod, RigLMethod, SETMethod,
                             SmallDenseMethod, make_method)
from rigl_hw.models import build_model, example_input
from torch_helpers import TinyGRU
from rigl_hw.schedules import ScheduleError, UpdateSchedule
from rigl_hw.zoo import model_specs

SCHED = UpdateSchedule(delta_t=5, t_end=35, alpha=0.3, decay="cosine")
STEPS = 40
DROP_GROW = ("set", "rigl", "snfs")
FIXED_NNZ = ("static", "snip", "set", "rigl", "snfs")

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=5e-4, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def build(kind: str, seed: int = 0):
    """(model, specs, batch(step) -> (x, y), loss(out, y))."""
    torch.manual_seed(seed)
    if kind == "tiny_gru":
        model = TinyGRU()
        specs = trace_layer_specs(model, torch.zeros(2, 6, dtype=torch.int64))

        def batch(t):
            g = torch.Generator().manual_seed(1000 + t)
            return torch.randint(0, 16, (4, 6), generator=g), torch.randint(0, 16, (4, 6), generator=g)

        return model, specs, batch, lambda out, y: F.cross_entropy(out.reshape(-1, 16), y.reshape(-1))
    model = build_model(kind)
    specs = trace_layer_specs(model, example_input(kind))

    def batch(t):
        g = torch.Generator().manual_seed(1000 + t)
        return example_input(kind, 16, g), torch.randint(0, 10, (16,), generator=g)

    return model, specs, batch, F.cross_entropy


def config(name: str, **kw) -> MethodConfig:
    base = dict(sparsity=0.8, schedule=SCHED, pruning_begin=0, pruning_end=30, pruning_frequency=5)
    return MethodConfig(name, **{**base, **kw})


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: intra-op threads only add contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def weight_shaped_state(optimizer, weight):
    return {k: v for k, v in optimizer.state.get(weight, {}).items()
            if isinstance(v, torch.Tensor) and v.shape == weight.shape}


def train(name: str, kind: str = "mlp", opt: str = "sgd", steps: int = STEPS, seed: int = 0, check: bool = True,
          on_update=None, before_update=None, **cfg):
    """A tiny training loop in the trainer's order, checking the masking invariants at every step."""
    model, specs, batch, loss_of = build(kind, seed)
    method = make_method(config(name, **cfg), kind, specs)
    x0, y0 = batch(0)
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(seed), lambda: loss_of(model(x0), y0))
    optimizer = OPTIMIZERS[opt](model.parameters())
    if masking is None:
        assert name in ("dense", "small_dense")
        return method, None, model, optimizer
    assigned = method.nonzeros()
    frozen = [n for n in masking.names if n not in method.sparse_layers()]
    if name in FIXED_NNZ:
        assert masking.nonzeros() == assigned
    for t in range(steps):
        x, y = batch(t)
        optimizer.zero_grad()
        loss_of(model(x), y).backward()
        if method.is_update_step(t):
            if before_update is not None:
                before_update(t, method, masking, optimizer)
            old = {n: masking.mask(n).clone() for n in masking.names}
            old_w = {n: masking.weight(n).detach().clone() for n in masking.names}
            changes = method.update(t, masking, optimizer)
            if check:
                check_update(name, masking, optimizer, old, changes)
            if on_update is not None:
                on_update(t, method, masking, old, old_w, changes)
        if method.masks_gradients:
            masking.mask_grads_()
        optimizer.step()
        if check and method.masks_gradients:
            # sparse gradient + zeroed state: not even weight decay moves an inactive weight
            for n in masking.names:
                assert torch.all(masking.weight(n)[~masking.mask(n)] == 0), (name, opt, t, n)
        masking.apply_masks_()
        if check:
            for n in masking.names:
                assert torch.all(masking.weight(n)[~masking.mask(n)] == 0), (name, opt, t, n)
            nnz = masking.nonzeros()
            if name in FIXED_NNZ:
                assert nnz == assigned, (name, t)
            for n in frozen:
                assert nnz[n] == masking.mask(n).numel(), (name, t, n)
    return method, masking, model, optimizer


def check_update(name, masking, optimizer, old, changes):
    """Right after update(): counts, grown weights zero, optimizer state zero where the mask changed."""
    for n in masking.names:
        new = masking.mask(n)
        dropped, grown = old[n] & ~new, new & ~old[n]
        d, g = int(dropped.sum()), int(grown.sum())
        assert changes.get(n, (0, 0)) == (d, g)
        w = masking.weight(n)
        assert torch.all(w[grown] == 0) and torch.all(w[~new] == 0)
        for key, state in weight_shaped_state(optimizer, w).items():
            assert torch.all(state[dropped | grown] == 0), (name, n, key)
        if name in DROP_GROW:
            assert d == g
        if name == "pruning":
            assert g == 0 and not torch.any(new & ~old[n])   # never regrows


# --- invariants over many steps -------------------------------------------------------------------
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", METHODS)
def test_invariants_mlp(name, opt):
    method, masking, _, _ = train(name, "mlp", opt)
    if masking is not None and name in DROP_GROW + ("pruning",):
        assert any(method.is_update_step(t) for t in range(STEPS))


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
@pytest.mark.parametrize("kind", ["small_cnn", "tiny_gru"])
@pytest.mark.parametrize("name", ["snip", "set", "rigl", "snfs", "pruning"])
def test_invariants_cnn_and_gru(name, kind, opt):
    train(name, kind, opt)


def test_masks_actually_change_and_pruning_reaches_target():
    seen = {}

    def record(t, method, masking, old, old_w, changes):
        seen.setdefault(method.name, []).append(sum(d for d, _ in changes.values()))

    for name in DROP_GROW:
        train(name, "mlp", "sgd", on_update=record)
        assert sum(seen[name]) > 0, name
    method, masking, _, _ = train("pruning", "mlp", "sgd")
    assert masking.nonzeros() == method.nonzeros()        # the distribution's counts at S


def test_pruning_schedule_follows_cubic_targets():
    def check(t, method, masking, old, old_w, changes):
        targets = method.target_nonzeros(t)
        assert {n: min(targets[n], int(old[n].sum())) for n in targets} == masking.nonzeros()

    method, _, _, _ = train("pruning", "mlp", "sgd", on_update=check)
    assert isinstance(method, PruningMethod)
    assert [t for t in range(STEPS) if method.is_update_step(t)] == [5, 10, 15, 20, 25, 30]
    assert method.target_sparsity(30) == pytest.approx(0.8) and method.target_sparsity(4) == 0.0


def test_excluded_layers_never_change():
    method, masking, model, _ = train("rigl", "small_cnn", "sgd", distribution="uniform")
    assert method.excluded == ("conv1",)
    assert bool(masking.mask("conv1").all()) and bool(torch.all(model.conv1.weight != 0))
    method, masking, _, _ = train("set", "mlp", "sgd", excluded=("fc3",))
    assert bool(masking.mask("fc3").all())


def test_rigl_sees_dense_gradient_at_update_steps():
    hits = []

    def look(t, method, masking, optimizer):
        assert method.needs_dense_grad(t)
        hits.append(any(bool(torch.any(masking.weight(n).grad[~masking.mask(n)] != 0)) for n in masking.names))

    train("rigl", "mlp", "sgd", before_update=look)
    assert hits and all(hits)


# --- hand-worked RigL -------------------------------------------------------------------------------
def tiny_rigl(weights, grads, mask, **cfg):
    """One Linear(4 -> 2) layer; uniform 50 % -> 4 active of 8; constant α = 0.5 -> k = 2 at step 10."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    specs = trace_layer_specs(model, torch.zeros(1, 4))
    sched = UpdateSchedule(delta_t=10, t_end=100, alpha=0.5, decay="constant")
    method = make_method(MethodConfig("rigl", distribution="uniform", sparsity=0.5, schedule=sched, **cfg),
                         "tiny", specs)
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(0), None)
    masking.set_mask_("0", torch.tensor(mask, dtype=torch.bool).reshape(2, 4), None)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(weights).reshape(2, 4))
    model[0].weight.grad = torch.tensor(grads).reshape(2, 4)
    changes = method.update(10, masking, None)
    return changes, masking.mask("0").reshape(-1), model[0].weight.detach().reshape(-1)


@pytest.mark.parametrize("chunk", [None, 3])
def test_rigl_hand_example(chunk):
    mask = [1, 0, 1, 0, 0, 1, 0, 1]                            # active: 0, 2, 5, 7
    weights = [0.9, 0.0, -0.1, 0.0, 0.0, 0.5, 0.0, 0.05]
    grads = [5.0, 0.7, 0.2, -0.7, 0.1, -9.0, 0.7, 0.4]
    changes, new, w = tiny_rigl(weights, grads, mask, grow_chunk_elements=chunk)
    # drop the two smallest |θ| among actives: 7 (0.05) and 2 (0.1).
    # grow among inactive-after-drop {1, 2, 3, 4, 6, 7} by |g|: 0.7 at 1, 3, 6 (tie: 1 and 3 win);
    # 0 and 5 have larger |g| but are active.
    assert torch.nonzero(new).squeeze(1).tolist() == [0, 1, 3, 5]
    assert changes == {"0": (2, 2)}
    assert w.tolist() == pytest.approx([0.9, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0])


def test_rigl_can_regrow_a_just_dropped_connection():
    mask = [1, 0, 1, 0, 0, 1, 0, 1]
    weights = [0.9, 0.0, -0.1, 0.0, 0.0, 0.5, 0.0, 0.05]
    grads = [5.0, 0.7, 0.2, -0.7, 0.1, -9.0, 0.7, 2.0]      # 7 is dropped, then has the largest |g|
    changes, new, w = tiny_rigl(weights, grads, mask)
    assert torch.nonzero(new).squeeze(1).tolist() == [0, 1, 5, 7]
    assert changes == {"0": (1, 1)}                            # net change: 2 dropped out, 2 in
    assert w[7].item() == pytest.approx(0.05)                   # kept, as in the authors' default


def test_rigl_drop_ties_lower_index_first():
    mask = [1, 0, 1, 0, 0, 1, 0, 1]
    weights = [0.3, 0.0, -0.3, 0.0, 0.0, 0.3, 0.0, 0.9]
    grads = [0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0]
    changes, new, _ = tiny_rigl(weights, grads, mask)
    assert torch.nonzero(new).squeeze(1).tolist() == [3, 4, 5, 7]   # 0 and 2 dropped, 3 and 4 grown


def reference_drop(weight, mask, k):
    """The k active positions with the smallest |θ|, lower index first in ties (numpy lexsort)."""
    a = np.abs(weight.numpy().reshape(-1))
    active = np.flatnonzero(mask.numpy().reshape(-1))
    order = np.lexsort((active, a[active]))
    return set(active[order[:k]].tolist())


def test_changed_connections_follow_cosine_schedule():
    seen = []

    def check(t, method, masking, old, old_w, changes):
        f = 0.3 / 2 * (1 + math.cos(math.pi * t / SCHED.t_end))
        for n in method.sparse_layers():
            nnz = int(old[n].sum())
            k = math.floor(f * nnz)
            drop = reference_drop(old_w[n], old[n], k)
            new = masking.mask(n).reshape(-1)
            regrown = sum(bool(new[i]) for i in drop)
            scheduled, dropped, grown = method.last_update[n]
            assert scheduled == k
            assert dropped == grown == k - regrown
            assert int((old[n].reshape(-1) & ~new).sum()) == dropped
            seen.append((t, n, k))

    train("rigl", "mlp", "sgd", on_update=check)
    assert sorted({t for t, _, _ in seen}) == [5, 10, 15, 20, 25, 30]
    assert all(k > 0 for _, _, k in seen)


def test_chunked_rigl_equals_exact_rigl_over_a_run():
    _, exact, model_a, _ = train("rigl", "mlp", "adam")
    _, chunked, model_b, _ = train("rigl", "mlp", "adam", grow_chunk_elements=100)
    for n in exact.names:
        assert torch.equal(exact.mask(n), chunked.mask(n))
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


# --- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["rigl", "set", "snfs", "pruning"])
def test_non_finite_gradient_leaves_that_layer_unchanged(name, bad):
    seen = {}

    def corrupt(t, method, masking, optimizer):
        if t == 5:
            masking.weight("fc2").grad[3, 7] = bad

    def check(t, method, masking, old, old_w, changes):
        if t == 5:
            seen["fc2"] = torch.equal(masking.mask("fc2"), old["fc2"])
            seen["changed"] = sorted(changes)

    with pytest.warns(RuntimeWarning, match=r"layer 'fc2' at step 5"):
        method, masking, _, _ = train(name, "mlp", "sgd", steps=6, before_update=corrupt, on_update=check)
    assert seen["fc2"] and "fc2" not in seen["changed"]
    assert "fc1" in seen["changed"]
    if name != "pruning":
        assert masking.nonzeros() == method.nonzeros()


def test_snfs_non_finite_momentum_leaves_layer_unchanged():
    def corrupt(t, method, masking, optimizer):
        if t == 5:
            optimizer.state[masking.weight("fc1")]["momentum_buffer"][0, 0] = float("nan")

    with pytest.warns(RuntimeWarning, match=r"layer 'fc1' at step 5"):
        method, masking, _, _ = train("snfs", "mlp", "sgd", steps=6, before_update=corrupt, check=False)
    assert masking.nonzeros() == method.nonzeros()


# --- state -------------------------------------------------------------------------------------------
def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_set_rng_state_round_trip_gives_the_same_next_update():
    snap = {}

    def snapshot(t, method, masking, optimizer):
        if t == 10:
            model = masking.model
            snap.update(model=_roundtrip(model.state_dict()), opt=_roundtrip(optimizer.state_dict()),
                        method=_roundtrip(method.state_dict()),
                        grads=[p.grad.clone() for p in model.parameters()])

    def after(t, method, masking, old, old_w, changes):
        if t == 10:
            snap["masks"] = masking.masks_numpy()

    train("set", "mlp", "sgd", steps=11, before_update=snapshot, on_update=after)

    def replay(load_method_state: bool):
        model, specs, _, _ = build("mlp", seed=7)
        method = make_method(config("set"), "mlp", specs)
        masking = method.init_masks(model, specs, torch.Generator().manual_seed(7), None)
        model.load_state_dict(snap["model"])
        opt = OPTIMIZERS["sgd"](model.parameters())
        opt.load_state_dict(snap["opt"])
        if load_method_state:
            method.load_state_dict(snap["method"])
        for p, g in zip(model.parameters(), snap["grads"]):
            p.grad = g.clone()
        method.update(10, masking, opt)
        return masking.masks_numpy()

    restored = replay(True)
    assert all(np.array_equal(restored[n], snap["masks"][n]) for n in restored)
    fresh = replay(False)                      # the generator advanced at step 5: state matters
    assert not all(np.array_equal(fresh[n], snap["masks"][n]) for n in fresh)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_loads_with_weights_only(name):
    model, specs, _, _ = build("mlp")
    method = make_method(config(name), "mlp", specs)
    state = _roundtrip(method.state_dict())
    other = make_method(config(name, seed=3), "mlp", specs)
    other.load_state_dict(state)
    assert torch.equal(other.generator.get_state(), method.generator.get_state())
    with pytest.raises(MethodError, match="method state"):
        make_method(config("static" if name != "static" else "rigl"), "mlp", specs).load_state_dict(state)


# --- individual methods and config ---------------------------------------------------------------------
def test_snip_keeps_top_sensitivity_per_layer():
    model, specs, batch, loss_of = build("mlp")
    reference = copy.deepcopy(model)
    x, y = batch(0)
    loss_of(reference(x), y).backward()
    method = make_method(config("snip"), "mlp", specs)
    masking = method.init_masks(model, specs, None, lambda: loss_of(model(x), y))
    for s in specs:
        mod = getattr(reference, s.name)
        score = (mod.weight.detach() * mod.weight.grad).abs().reshape(-1)
        nnz = method.nonzeros()[s.name]
        kept = masking.mask(s.name).reshape(-1)
        assert int(kept.sum()) == nnz
        assert score[kept].min() >= score[~kept].max()
        assert all(p.grad is None for p in model.parameters())
    with pytest.raises(MethodError, match="batch_loss_fn"):
        method.init_masks(build("mlp")[0], specs, None, None)


def test_needs_dense_grad_and_update_steps():
    _, specs, _, _ = build("mlp")
    m = {n: make_method(config(n), "mlp", specs) for n in METHODS}
    assert [t for t in range(12) if m["rigl"].needs_dense_grad(t)] == [5, 10]
    assert all(m["snfs"].needs_dense_grad(t) for t in range(12)) and not m["snfs"].masks_gradients
    for n in ("dense", "small_dense", "static", "snip", "set", "pruning"):
        assert not any(m[n].needs_dense_grad(t) for t in range(12)) and m[n].masks_gradients
    for n in ("dense", "small_dense", "static", "snip"):
        assert not any(m[n].is_update_step(t) for t in range(100))
    assert [t for t in range(40) if m["set"].is_update_step(t)] == [5, 10, 15, 20, 25, 30]
    assert isinstance(m["rigl"], RigLMethod) and isinstance(m["set"], SETMethod)


def test_update_outside_update_steps_does_nothing():
    method, masking, _, opt = train("rigl", "mlp", "sgd", steps=3)
    before = masking.masks_numpy()
    assert method.update(3, masking, opt) == {}
    assert all(np.array_equal(before[n], masking.masks_numpy()[n]) for n in before)


def test_small_dense_width_matches_parameter_budget():
    _, specs, _, _ = build("mlp")
    method = make_method(config("small_dense", sparsity=0.9), "mlp", specs)
    assert isinstance(method, SmallDenseMethod) and method.init_masks(None, specs, None, None) is None
    target = method.target_params()
    width = method.width()
    assert 0 < width < 1
    assert sum(s.n_params for s in model_specs("mlp", round(width, 4))) <= target


@pytest.mark.parametrize("kw, err, msg", [
    ({"name": "lottery"}, MethodError, "unknown method"),
    ({"distribution": "gaussian"}, MethodError, "distribution"),
    ({"sparsity": 1.0}, MethodError, "sparsity"),
    ({"grow_chunk_elements": 0}, MethodError, "grow_chunk_elements"),
    ({"pruning_begin": 30, "pruning_end": 30}, MethodError, "pruning"),
    ({"schedule": UpdateSchedule(delta_t=0)}, ScheduleError, "delta_t"),
    ({"schedule": UpdateSchedule(alpha=1.5)}, ScheduleError, "alpha"),
])
def test_bad_config(kw, err, msg):
    with pytest.raises(err, match=msg):
        MethodConfig(**{"name": "rigl", **kw})


def test_specs_mismatch_is_refused():
    _, specs, _, _ = build("mlp")
    cnn = build_model("small_cnn")
    method = make_method(config("static"), "mlp", specs)
    with pytest.raises(MethodError, match="specs"):
        method.init_masks(cnn, trace_layer_specs(cnn, example_input("small_cnn")), None, None)


@pytest.mark.parametrize("name", ["static", "set", "rigl"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_trainer_step_keeps_optimizer_state_zero_outside_the_mask(name, opt):
    """The trainer's own `train_step` (not the loop above): for methods that train on sparse gradients,
    every weight-shaped optimizer state is zero at every inactive position after every step, update
    steps included (RigL's dense gradient must not reach the optimizer at masked positions)."""
    from rigl_hw.train import train_step

    model, specs, batch, loss_of = build("mlp")
    method = make_method(config(name), "mlp", specs)
    x0, y0 = batch(0)
    masking = method.init_masks(model, specs, torch.Generator().manual_seed(0), lambda: loss_of(model(x0), y0))
    optimizer = OPTIMIZERS[opt](model.parameters())
    updates = 0
    for t in range(STEPS):
        x, y = batch(t)
        _, is_update, skipped = train_step(model, loss_of, x, y, optimizer, method, masking, t)
        assert not skipped
        updates += is_update
        for n in masking.names:
            w, inactive = masking.weight(n), ~masking.mask(n)
            assert torch.all(w[inactive] == 0), (t, n)
            for key, state in weight_shaped_state(optimizer, w).items():
                assert torch.all(state[inactive] == 0), (name, opt, t, n, key)
    assert updates == (6 if name != "static" else 0)     # t = 5, 10, ..., 30 (< T_end = 35)
