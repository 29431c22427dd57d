"""FLOP accounting: dense ResNet-50, the paper's table cells, and a brute-force counter."""

import itertools

import numpy as np
import pytest

from rigl_hw.distributions import allocate, random_masks
from rigl_hw.flops import (FlopsError, inference_flops, layer_flops, pruning_sparsity, rigl_step_flops,
                           training_flops)
from rigl_hw.flops_report import flops_report, small_dense_width
from rigl_hw.zoo import model_specs


def test_resnet50_dense_inference_flops():
    specs = model_specs("resnet50")
    assert len(specs) == 54                                   # 53 convs + fc
    f = inference_flops(specs).sum()
    assert abs(f - 8.2e9) / 8.2e9 < 0.01
    # multiply-accumulates: the well-known 4.09 GMACs of ResNet-50 (convs + fc)
    assert sum(s.dense_macs for s in specs) == pytest.approx(4.09e9, rel=0.01)


def _cell(dist, sparsity, method, multiplier=1.0):
    r = flops_report("resnet50", dist, sparsity, method=method, delta_t=100, multiplier=multiplier)
    return r["train_flops"]["ratio"], r["inference_flops"]["ratio"]


# Published ResNet-50 cells (train, test) normalised to dense, RigL paper Table 2 (ICML version). The 80%
# rows are quoted in ../shared/paper/NOTES.md; the 90% ERK rows are from the same table. Uniform 90%
# (published 0.10x) is not reproducible with a dense first layer (we get 0.127x): see README.
PAPER_CELLS = [
    ("uniform", 0.8, "rigl", 1, 0.23, 0.23),
    ("uniform", 0.8, "rigl", 5, 1.14, 0.23),
    ("erk", 0.8, "rigl", 1, 0.42, 0.42),
    ("erk", 0.8, "rigl", 5, 2.09, 0.42),
    ("erk", 0.8, "snfs", 1, 0.61, 0.42),
    ("uniform", 0.8, "static", 1, 0.23, 0.23),
    ("uniform", 0.8, "set", 1, 0.23, 0.23),
    ("erk", 0.8, "static", 1, 0.42, 0.42),
    ("erk", 0.9, "rigl", 1, 0.24, 0.24),
    ("erk", 0.9, "rigl", 5, 1.23, 0.24),
    ("erk", 0.9, "snfs", 1, 0.50, 0.24),
]


@pytest.mark.parametrize("dist, s, method, m, train, test", PAPER_CELLS)
def test_paper_table_cells(dist, s, method, m, train, test):
    got_train, got_test = _cell(dist, s, method, m)
    assert got_train == pytest.approx(train, abs=0.02)
    assert got_test == pytest.approx(test, abs=0.02)


def test_dense_run_is_3_2e18():
    r = flops_report("resnet50", "uniform", 0.8, method="dense")
    assert r["train_flops"]["dense"] == pytest.approx(3.2e18, rel=0.01)
    assert r["train_flops"]["ratio"] == pytest.approx(1.0)


def test_rigl_formula_and_multiplier():
    assert rigl_step_flops(1.0, 1.0, 100) == pytest.approx(3.0 * 100 / 101 + 3.0 / 101)
    a = training_flops("rigl", 2.0, 10.0, delta_t=10, steps=1000, batch=2)
    b = training_flops("rigl", 2.0, 10.0, delta_t=10, steps=1000, batch=2, multiplier=5)
    assert b.ratio == pytest.approx(5 * a.ratio)
    assert a.per_sample_step == pytest.approx((3 * 2 * 10 + 2 * 2 + 10) / 11)
    # with T_end the updates stop: the last (steps - t_end)/steps of the run cost 3 f_S
    c = training_flops("rigl", 2.0, 10.0, delta_t=10, steps=1000, batch=2, t_end=500)
    assert c.per_sample_step == pytest.approx(0.5 * a.per_sample_step + 0.5 * 6.0)


def test_pruning_schedule_and_cost():
    assert pruning_sparsity(0, 0.8, 10, 25, 1) == 0.0
    assert pruning_sparsity(25, 0.8, 10, 25, 1) == pytest.approx(0.8)
    assert pruning_sparsity(17, 0.8, 10, 20, 5) == pytest.approx(0.8 * (1 - 0.5 ** 3))  # last event at 15
    # cost with f(s) = f_D (1 - s): equals the brute-force average over steps
    steps, f_d = 320, 100.0
    tf = training_flops("pruning", 0.0, f_d, steps=steps, batch=1, f_at_sparsity=lambda s: f_d * (1 - s),
                        final_sparsity=0.8, pruning_begin=100, pruning_end=250, pruning_frequency=10)
    brute = np.mean([3 * f_d * (1 - pruning_sparsity(t, 0.8, 100, 250, 10)) for t in range(steps)])
    assert tf.per_sample_step == pytest.approx(brute)
    # the paper's ResNet-50 80% uniform pruning cell: 0.56x train
    r = flops_report("resnet50", "uniform", 0.8, method="pruning")
    assert r["train_flops"]["ratio"] == pytest.approx(0.56, abs=0.02)


@pytest.mark.parametrize("sparsity, one_x, five_x", [(0.9, 0.12, 0.60)])
def test_small_dense_reproduces_the_papers_90_percent_cells(sparsity, one_x, five_x):
    # RigL paper Table 2 (ResNet-50): Small-Dense training FLOPs 0.12x (1x) and 0.60x (5x) at 90%
    r1 = flops_report("resnet50", "erk", sparsity, method="small_dense")["train_flops"]
    r5 = flops_report("resnet50", "erk", sparsity, method="small_dense", multiplier=5)["train_flops"]
    assert round(r1["ratio"], 2) == one_x and abs(r5["ratio"] - five_x) < 0.01
    assert r1["small_dense_width"] == pytest.approx(0.337, abs=0.002)
    # the rule: dense weights at that width fit nonzeros + a 1-bit mask per weight, a wider model does not
    from rigl_hw.flops_report import small_dense_budget
    from rigl_hw.zoo import model_allocation
    _, erk = model_allocation("resnet50", "erk", sparsity)
    budget = erk.total_nonzeros + -(-erk.total_params // 32)
    assert small_dense_budget(erk.total_nonzeros, erk.total_params) == budget
    w = r1["small_dense_width"]
    assert sum(s.n_params for s in model_specs("resnet50", w)) <= budget
    assert sum(s.n_params for s in model_specs("resnet50", w + 0.002)) > budget


def test_small_dense_80_percent_differs_from_the_paper_as_documented():
    # the published 80% cells (0.20x / 1.01x) are not what the authors' rule gives (docs/training.md)
    r1 = flops_report("resnet50", "erk", 0.8, method="small_dense")["train_flops"]
    assert r1["ratio"] == pytest.approx(0.217, abs=0.002) and r1["small_dense_width"] == pytest.approx(0.459, abs=0.002)


def test_small_dense_width_matches_params():
    target = 0.2 * sum(s.n_params for s in model_specs("wide_resnet_22_2"))
    w = small_dense_width("wide_resnet_22_2", int(target))
    got = sum(s.n_params for s in model_specs("wide_resnet_22_2", round(w, 4)))
    assert got <= target
    assert got > 0.9 * target            # and close to it: the width is not grossly under-solved


def _brute_force_macs(spec, mask):
    """Count multiply-adds by walking every output element of a conv/linear and every weight it uses."""
    if spec.kind == "linear":
        return int(mask.sum()) * spec.out_positions
    c_out, c_in_g, kh, kw = mask.shape
    oh, ow = spec.out_hw
    count = 0
    for o, y, x in itertools.product(range(c_out), range(oh), range(ow)):
        for c in range(c_in_g):
            for i in range(kh):
                for j in range(kw):
                    count += bool(mask[o, c, i, j])   # one multiply + one add per surviving weight
    return count


@pytest.mark.parametrize("model", ["small_cnn", "mlp"])
def test_flops_match_brute_force_count(model):
    specs = model_specs(model)
    shapes = {s.name: s.weight_shape for s in specs}
    al = allocate(shapes, 0.7, "erk")
    masks = random_masks(al, shapes, np.random.default_rng(3))
    analytic = inference_flops(specs, al.as_dict())
    for s, f in zip(specs, analytic):
        macs = _brute_force_macs(s, masks[s.name])
        assert f == 2 * macs + s.out_elements


def test_brute_force_with_torch_conv_on_grouped_layer():
    """Independent check through torch: conv of an all-ones input (no padding) with the 0/1 mask as
    weight sums, per output element, the surviving weights it uses."""
    import torch
    from rigl_hw.layers import trace_layer_specs

    conv = torch.nn.Conv2d(8, 8, 3, stride=2, padding=0, groups=4, bias=False)
    specs = trace_layer_specs(torch.nn.Sequential(conv), torch.zeros(1, 8, 9, 9))
    rng = np.random.default_rng(0)
    mask = rng.random(conv.weight.shape) < 0.4
    out = torch.nn.functional.conv2d(torch.ones(1, 8, 9, 9), torch.tensor(mask, dtype=torch.float32),
                                     stride=2, groups=4)
    assert layer_flops(specs[0], int(mask.sum())) == 2 * int(out.sum()) + specs[0].out_elements


def test_errors():
    with pytest.raises(FlopsError, match="delta-t"):
        flops_report("resnet50", "erk", 0.8, method="rigl")
    with pytest.raises(FlopsError, match="width"):
        flops_report("mlp", "erk", 0.8, width=0)
    with pytest.raises(FlopsError, match="unknown method"):
        flops_report("mlp", "erk", 0.8, method="magic")
