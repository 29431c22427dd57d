"""Cycle model: dense == SCALE-Sim v3 closed form; skip mode == brute-force per-PE counting."""

import numpy as np
import pytest

from sim_helpers import cdiv, conv, linear, naive_cycles, pack, random_mask, resnet50_specs
from simulator.dataflow import (Geometry, MaskCounts, dense_folds, effectual_pairs, expected_tile_var,
                                nm_conforms, product_of_densities, real_tile_var, sparse_folds)
from simulator.workload import lower_layer

# (M output pixels, N filters, K reduction) of a few layers, small enough for the naive loops
SHAPES = [(49, 8, 27), (16, 40, 9), (100, 3, 70), (7, 33, 33), (64, 64, 64)]
ARRAYS = [(4, 4), (8, 4), (3, 5), (1, 1)]


def closed_form(df, m, n, k, R, C):
    """SCALE-Sim v3 analytic compute cycles (REFERENCES.md), written out independently."""
    if df == "os":
        return cdiv(m, R) * cdiv(n, C) * (R + C + k - 2) - 1
    if df == "ws":
        return cdiv(k, R) * cdiv(n, C) * (2 * R + C + m - 2) - 1
    return cdiv(k, R) * cdiv(m, C) * (2 * R + C + n - 2) - 1


@pytest.mark.parametrize("df", ["ws", "os", "is"])
@pytest.mark.parametrize("R,C", ARRAYS)
def test_dense_equals_scalesim_closed_form_and_fold_loop(df, R, C):
    for m, n, k in SHAPES:
        got = dense_folds(df, m, n, k, Geometry(R, C)).cycles
        assert got == closed_form(df, m, n, k, R, C)
        if m * n * k <= 30000 and R * C > 1:
            assert got == naive_cycles(df, "weight", None, m, n, k, R, C)


def test_resnet50_batch1_matches_recorded_scalesim_totals():
    # SCALE-Sim v3 runs recorded in REFERENCES.md (ResNet-50, 54 layers, batch 1)
    specs = resnet50_specs()
    expect = {(32, "os"): 5_198_850, (32, "ws"): 6_349_206, (128, "os"): 645_320, (128, "ws"): 916_490}
    for (R, df), want in expect.items():
        got = sum(dense_folds(df, s.out_positions, s.out_channels, s.fan_in, Geometry(R, R)).cycles for s in specs)
        assert got == want


def _logical(mask, groups, sparse):
    ng = mask.shape[0] // groups
    blocks = [mask[g * ng:(g + 1) * ng] for g in range(groups)]
    return [b.T if sparse == "weight_t" else b for b in blocks]


MASKS = {
    "random": lambda rng, n, k: rng.random((n, k)) < 0.2,
    "rows_imbalanced": lambda rng, n, k: rng.random((n, k)) < np.linspace(0.02, 0.9, n)[:, None],
    "one_dense_col": lambda rng, n, k: np.eye(n, k, dtype=bool) | (np.arange(k) == 3)[None, :],
    "empty_rows": lambda rng, n, k: (rng.random((n, k)) < 0.3) & (np.arange(n) % 3 == 0)[:, None],
}


@pytest.mark.parametrize("df", ["ws", "os", "is"])
@pytest.mark.parametrize("kind", sorted(MASKS))
@pytest.mark.parametrize("R,C,P", [(4, 4, 1), (3, 5, 1), (4, 2, 2)])
def test_skip_mode_equals_bruteforce_per_pe(df, kind, R, C, P):
    rng = np.random.default_rng(hash((df, kind, R, C)) % 2**32)
    geom = Geometry(R, C, P)
    groups = 2
    spec = conv("c", 2 * 5, 2 * 7, 3, 6, groups=groups)  # weight (14, 5, 3, 3): per group 7 x 45
    mask = np.concatenate([MASKS[kind](rng, 7, spec.fan_in) for _ in range(groups)])
    counts = MaskCounts(pack(mask), spec.out_channels, spec.fan_in, groups)
    for gm in lower_layer(spec, 2, dense_weight_grad=False):
        var = real_tile_var(df, gm.sparse, counts, geom)
        got = sparse_folds(df, gm.sparse, gm.m, gm.n, gm.k, geom, var).cycles
        sparse = "output" if gm.sparse == "output" else "weight"
        want = naive_cycles(df, sparse, _logical(mask, groups, gm.sparse), gm.m, gm.n, gm.k, R, C, P)
        assert got == want, (gm.pass_name, got, want)


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_dense_mask_in_skip_mode_equals_dense_mode(df):
    geom = Geometry(8, 8)
    for spec in (conv("a", 16, 24, 3, 10, 2), conv("b", 32, 32, 3, 8, groups=4), linear("fc", 70, 10, 3)):
        mask = np.ones((spec.out_channels, spec.fan_in), dtype=bool)
        counts = MaskCounts(pack(mask), spec.out_channels, spec.fan_in, spec.groups)
        for gm in lower_layer(spec, 4, dense_weight_grad=False):
            var = real_tile_var(df, gm.sparse, counts, geom)
            skip = sparse_folds(df, gm.sparse, gm.m, gm.n, gm.k, geom, var).cycles
            assert skip == dense_folds(df, gm.m, gm.n, gm.k, geom, gm.groups).cycles, gm.pass_name


def test_counts_kernel_matches_numpy():
    rng = np.random.default_rng(1)
    mask = rng.random((12, 37)) < 0.3  # 444 bits: not byte-aligned rows
    c = MaskCounts(pack(mask), 12, 37, groups=3)
    rt, ct = c.tiles(5, 3)
    want_rt = np.stack([mask[:, j:j + 5].sum(1) for j in range(0, 37, 5)], axis=1)
    assert np.array_equal(rt, want_rt)
    want_ct = np.stack([mask[r:r + 3].sum(0) if r % 4 < 3 else mask[r:r + 1].sum(0)
                        for r in (0, 3, 4, 7, 8, 11)])
    assert np.array_equal(ct, want_ct)
    assert c.nnz == mask.sum()
    assert np.array_equal(c.row_totals().ravel(), mask.sum(1))
    assert np.array_equal(c.col_totals(), mask.reshape(3, 4, 37).sum(1))


def test_bad_packed_mask_is_rejected():
    with pytest.raises(ValueError, match="bytes"):
        MaskCounts(np.zeros(3, np.uint8), 5, 5)


def test_statistical_mode_close_to_random_masks():
    rng = np.random.default_rng(2)
    spec = conv("c", 64, 128, 3, 8)
    geom = Geometry(16, 16)
    d = 0.1
    for df in ("ws", "os", "is"):
        for gm in lower_layer(spec, 4, dense_weight_grad=False):
            real = []
            for _ in range(3):
                counts = MaskCounts(pack(rng.random((128, spec.fan_in)) < d), 128, spec.fan_in)
                real.append(sparse_folds(df, gm.sparse, gm.m, gm.n, gm.k, geom,
                                         real_tile_var(df, gm.sparse, counts, geom)).cycles)
            exp = sparse_folds(df, gm.sparse, gm.m, gm.n, gm.k, geom,
                               expected_tile_var(df, gm.sparse, gm, d, geom)).cycles
            assert abs(exp - np.mean(real)) / np.mean(real) < 0.05, (df, gm.pass_name, exp, real)


def test_statistical_mode_on_dense_density_is_dense():
    spec = conv("c", 8, 16, 3, 6)
    geom = Geometry(4, 4)
    for df in ("ws", "os", "is"):
        for gm in lower_layer(spec, 2, dense_weight_grad=False):
            exp = sparse_folds(df, gm.sparse, gm.m, gm.n, gm.k, geom, expected_tile_var(df, gm.sparse, gm, 1.0, geom))
            assert exp.cycles == dense_folds(df, gm.m, gm.n, gm.k, geom).cycles


def test_nm_conformance():
    n, k = 8, 16
    nm_mask = np.zeros((n, k), bool)
    nm_mask[:, 0::4] = True
    nm_mask[:, 2::4] = True  # exactly 2 of every 4 along rows
    c = MaskCounts(pack(nm_mask), n, k)
    assert nm_conforms(c, (2, 4), "weight")
    assert not nm_conforms(c, (2, 4), "weight_t")  # columns are dense
    bad = nm_mask.copy()
    bad[0, 1] = True
    assert not nm_conforms(MaskCounts(pack(bad), n, k), (2, 4), "weight")


def _brute_pairs(spec, wmask, act):
    """Effectual pairs by explicit im2col loops."""
    B, Cin, H, W = act.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = spec.kernel_hw, spec.stride, spec.padding, spec.out_hw
    g = spec.groups
    cg, ng = Cin // g, spec.out_channels // g
    w4 = wmask.reshape(spec.out_channels, cg, kh, kw)
    total = 0
    for b in range(B):
        for o in range(spec.out_channels):
            grp = o // ng
            for y in range(oh):
                for x in range(ow):
                    for c in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = y * sh + i - ph, x * sw + j - pw
                                if 0 <= yy < H and 0 <= xx < W and w4[o, c, i, j] and act[b, grp * cg + c, yy, xx]:
                                    total += 1
    return total


@pytest.mark.parametrize("spec", [conv("a", 4, 6, 3, 7, 2), conv("b", 6, 6, 3, 5, groups=3), conv("c", 5, 4, 1, 4)])
def test_dual_skip_equals_effectual_pairs(spec):
    rng = np.random.default_rng(3)
    wmask = random_mask(spec, 0.4, rng)
    act = rng.random((2, spec.in_channels) + spec.in_hw) < 0.5
    counts = MaskCounts(pack(wmask), spec.out_channels, spec.fan_in, spec.groups)
    assert effectual_pairs(spec, counts, act) == _brute_pairs(spec, wmask, act)


def test_product_of_densities_is_off_by_several_percent_on_structured_masks():
    # structured: channel densities of weights and activations correlate (as after ReLU on dead
    # channels), and zero padding lowers border activation hits
    spec = conv("c", 16, 32, 3, 12)
    rng = np.random.default_rng(4)
    ch_density = np.linspace(0.05, 0.95, 16)
    wmask = rng.random((32, 16, 3, 3)) < ch_density[None, :, None, None]
    act = rng.random((4, 16, 12, 12)) < ch_density[None, :, None, None]
    counts = MaskCounts(pack(wmask.reshape(32, -1)), 32, spec.fan_in)
    exact = effectual_pairs(spec, counts, act)
    approx = product_of_densities(4 * spec.dense_macs, wmask.mean(), act.mean())
    rel = abs(approx - exact) / exact
    assert 0.02 < rel < 0.5, rel
    # unstructured random masks: the shortcut is close
    wr = rng.random((32, spec.fan_in)) < 0.5
    ar = rng.random((4, 16, 12, 12)) < 0.5
    exact_r = effectual_pairs(spec, MaskCounts(pack(wr), 32, spec.fan_in), ar)
    interior = (spec.out_positions * 9 - 4 * 12 * 3 + 4) / (spec.out_positions * 9)  # padding taps
    approx_r = product_of_densities(4 * spec.dense_macs, wr.mean(), ar.mean()) * interior
    assert abs(approx_r - exact_r) / exact_r < 0.02


@pytest.mark.parametrize("n_rows,n_cols,col_tile,row_tile", [(600, 16, 8, 600), (64, 72, 24, 5), (40, 64, 64, 7), (30, 16, 4, 4), (9, 24, 2, 3), (5, 8, 1, 2)])
def test_aligned_swar_kernel_matches_numpy(n_rows, n_cols, col_tile, row_tile):
    rng = np.random.default_rng(n_rows)
    mask = rng.random((n_rows, n_cols)) < 0.6  # > 255 rows per tile in the first case: lane flushes
    c = MaskCounts(pack(mask), n_rows, n_cols)
    rt, ct = c.tiles(col_tile, row_tile)
    assert np.array_equal(rt, mask.reshape(n_rows, -1, col_tile).sum(2))
    want = np.stack([mask[r:r + row_tile].sum(0) for r in range(0, n_rows, row_tile)])
    assert np.array_equal(ct, want)
