"""Helpers for the simulator tests and benchmark: ResNet-50 layer table without torch, ERK densities,
random packed masks, and slow obvious per-PE fold counters (independent of simulator.kernels)."""

from __future__ import annotations

import math

import numpy as np

from rigl_hw.layers import LayerSpec


def conv(name, cin, cout, k, hw_in, stride=1, pad=None, groups=1) -> LayerSpec:
    pad = k // 2 if pad is None else pad
    ho = (hw_in + 2 * pad - k) // stride + 1
    return LayerSpec(name, f"{name}.weight", "conv", (cout, cin // groups, k, k), (hw_in, hw_in), (ho, ho),
                     groups, (stride, stride), (pad, pad))


def linear(name, fin, fout, positions=1) -> LayerSpec:
    return LayerSpec(name, f"{name}.weight", "linear", (fout, fin), (positions, 1), (positions, 1))


def resnet50_specs(image: int = 224) -> list[LayerSpec]:
    """The 54 conv/fc weights of ResNet-50 v1.5 (stride on the 3x3 conv), torchvision names."""
    specs = [conv("conv1", 3, 64, 7, image, 2, 3)]
    hw = specs[0].out_hw[0]
    hw = (hw + 2 - 3) // 2 + 1  # max-pool 3x3 s2 p1
    cin = 64
    for li, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            p = f"layer{li}.{b}"
            specs.append(conv(f"{p}.conv1", cin, planes, 1, hw))
            specs.append(conv(f"{p}.conv2", planes, planes, 3, hw, s))
            hw2 = specs[-1].out_hw[0]
            specs.append(conv(f"{p}.conv3", planes, planes * 4, 1, hw2))
            if b == 0:
                specs.append(conv(f"{p}.downsample.0", cin, planes * 4, 1, hw, s))
            cin, hw = planes * 4, hw2
    specs.append(linear("fc", 2048, 1000))
    return specs


def erk_densities(specs, sparsity: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities: d_l = eps * sum(shape)/prod(shape), capped at 1, with
    sum d_l N_l = (1 - sparsity) sum N_l (RigL, Evci et al. 2020)."""
    dense: set[str] = set()
    while True:
        budget = (1 - sparsity) * sum(s.n_params for s in specs) - sum(s.n_params for s in specs if s.name in dense)
        raw = {s.name: sum(s.weight_shape) / math.prod(s.weight_shape) for s in specs if s.name not in dense}
        eps = budget / sum(raw[s.name] * s.n_params for s in specs if s.name in raw)
        over = [n for n, r in raw.items() if eps * r > 1]
        if not over:
            return {s.name: (1.0 if s.name in dense else eps * raw[s.name]) for s in specs}
        dense.update(over)


def random_mask(spec: LayerSpec, density: float, rng) -> np.ndarray:
    """Bool mask of shape (C_out, fan_in) with exactly round(density * N) ones."""
    n = spec.n_params
    flat = np.zeros(n, dtype=bool)
    flat[rng.choice(n, size=int(round(density * n)), replace=False)] = True
    return flat.reshape(spec.out_channels, spec.fan_in)


def pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="big")


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def naive_cycles(dataflow: str, sparse: str, mats, m: int, n: int, k: int, R: int, C: int, P: int = 1,
                 fill_drain: bool = True) -> int:
    """Fold-by-fold, PE-by-PE cycle count in plain Python loops.

    mats: one logical bool matrix per group, or None for dense: for sparse "weight" (N x K: row = output
    column n, its nonzeros along the reduction), for "output" (M x N: which outputs are computed).
    """
    groups = mats if mats is not None else [None]
    fill = 0 if not fill_drain else (R + C - 2 if dataflow == "os" else 2 * R + C - 2)
    total, folds = 0, 0

    def nz(mat, i, j):
        return True if mat is None else bool(mat[i][j])

    for mat in groups:
        if sparse == "weight" or mat is None:
            if dataflow == "os":
                for mt in range(cdiv(m, R)):
                    for nt in range(cdiv(n, C)):
                        work = 0
                        for r in range(R):
                            for c in range(C):
                                if mt * R + r < m and nt * C + c < n:
                                    cnt = sum(1 for kk in range(k) if nz(mat, nt * C + c, kk))
                                    work = max(work, cdiv(cnt, P))
                        if work:
                            total, folds = total + fill + work, folds + 1
            elif dataflow == "ws":
                for nt in range(cdiv(n, C)):
                    queues = [[kk for kk in range(k) if nz(mat, col, kk)]
                              for col in range(nt * C, min(n, nt * C + C))]
                    j = 0
                    while any(len(q) > j * R * P for q in queues):  # PE column c holds slots j*R*P...
                        total, folds, j = total + fill + m, folds + 1, j + 1
            else:
                for kt in range(cdiv(k, R * P)):
                    ks = range(kt * R * P, min(k, kt * R * P + R * P))
                    live = sum(1 for row in range(n) if any(nz(mat, row, kk) for kk in ks))
                    for _ in range(cdiv(m, C)):
                        if live:
                            total, folds = total + fill + live, folds + 1
        else:  # sparse output, mat is M x N
            if dataflow == "os":
                for mt in range(cdiv(m, R)):
                    rows = range(mt * R, min(m, mt * R + R))
                    per_row = [sum(1 for j in range(n) if mat[i][j]) for i in rows]
                    for _ in range(max(cdiv(c, C) for c in per_row)):
                        total, folds = total + fill + cdiv(k, P), folds + 1
            elif dataflow == "ws":
                for nt in range(cdiv(n, C)):
                    cols = range(nt * C, min(n, nt * C + C))
                    live = sum(1 for i in range(m) if any(mat[i][j] for j in cols))
                    for _ in range(cdiv(k, R * P)):
                        if live:
                            total, folds = total + fill + live, folds + 1
            else:
                for mt in range(cdiv(m, C)):
                    rows = range(mt * C, min(m, mt * C + C))
                    live = sum(1 for j in range(n) if any(mat[i][j] for i in rows))
                    for _ in range(cdiv(k, R * P)):
                        if live:
                            total, folds = total + fill + live, folds + 1
    return total - 1 if (fill_drain and folds) else total


_IDEAL = """
name = "{name}"
dataflow = "os"
[pe_array]
rows = {rows}
cols = {cols}
clock_hz = 1e9
fill_drain = false
[sparsity]
mode = "skip"
[weight_format]
kind = "bitmask"
[[memory]]
name = "glb"
size_bytes = 1099511627776
read_bw_bytes_per_cycle = 1e15
write_bw_bytes_per_cycle = 1e15
[[memory]]
name = "dram"
size_bytes = 1099511627776
read_bw_bytes_per_cycle = 1e15
write_bw_bytes_per_cycle = 1e15
energy_pj_per_bit = 1.0
[topk]
elements_per_cycle = 1000000000
chunk_elements = 1000000000
"""


def ideal_spec_toml(rows: int, cols: int, name: str | None = None) -> str:
    """A skipping os array with no fill/drain and unbounded memory and top-k: cycles are pure compute."""
    return _IDEAL.format(rows=rows, cols=cols, name=name or f"ideal-{rows}x{cols}")


def prime_factors(n: int) -> list[int]:
    """Prime factors of n with multiplicity, ascending (tile-factor enumeration in mapper tests)."""
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out
