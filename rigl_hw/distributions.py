"""Per-layer sparsity distributions: Uniform, Erdős–Rényi (ER) and Erdős–Rényi–Kernel (ERK).

Numpy-only. Layers are given as an ordered mapping {name: weight shape}; shapes follow torch's
layout (conv: C_out x C_in/groups x k_h x k_w; linear and GRU matrices: out x in).

Budget (RigL paper, Sec. 3 (1)): over the layers that take part in the budget,
    Σ_l (1 − s_l) N_l = (1 − S) Σ_l N_l.
Layers in `excluded` are kept dense and are *outside* the budget (the paper's Uniform ResNet-50 keeps
its first conv like this). Layers in `overrides` get a fixed sparsity and stay *inside* the budget:
the other layers absorb the difference.

Integer nonzeros: the authors give every layer exactly floor(s_l N_l) zeros. Those floors can leave
the budget short by up to one zero per layer; `nonzeros_per_layer` hands the missing zeros, one each,
to the sparse layers with the largest fractional remainders, so the budget's zero count
floor(S Σ N_l) holds exactly. Pass `exact_budget=False` for the authors' plain floors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DISTRIBUTIONS = ("uniform", "er", "erk")
Shapes = Mapping[str, Sequence[int]]


class DistributionError(ValueError):
    """Impossible or malformed sparsity request."""


@dataclass(frozen=True)
class LayerAllocation:
    """Result of a distribution: per-layer sparsity and integer nonzeros, in the input order."""

    names: tuple[str, ...]
    n_params: tuple[int, ...]
    sparsity: tuple[float, ...]      # the real-valued s_l the distribution asks for
    nonzeros: tuple[int, ...]        # integer active weights per layer (what masks hold)
    in_budget: tuple[bool, ...]      # False for excluded (dense, outside the budget) layers

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.names, self.nonzeros))

    @property
    def realised_sparsity(self) -> tuple[float, ...]:
        """1 − nnz_l / N_l per layer, from the integer nonzeros."""
        return tuple(1.0 - z / n for z, n in zip(self.nonzeros, self.n_params))

    @property
    def total_params(self) -> int:
        return int(sum(self.n_params))

    @property
    def total_nonzeros(self) -> int:
        return int(sum(self.nonzeros))

    @property
    def overall_sparsity(self) -> float:
        """Sparsity over all listed layers, excluded ones included."""
        return 1.0 - self.total_nonzeros / self.total_params


def _check_sparsity(sparsity: float, what: str = "sparsity") -> float:
    s = float(sparsity)
    if not math.isfinite(s) or not 0.0 <= s < 1.0:
        raise DistributionError(f"{what} must be in [0, 1), got {sparsity!r}")
    return s


def _check_shapes(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    if not shapes:
        raise DistributionError("no layers to sparsify")
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        shp = tuple(int(v) for v in shape)
        if len(shp) < 2 or min(shp) <= 0:
            raise DistributionError(f"layer {name!r}: shape {tuple(shape)} must have >= 2 positive dims")
        out[name] = shp
    return out


def _check_names(shapes: Mapping[str, object], names: Sequence[str], what: str) -> None:
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise DistributionError(f"{what} names unknown layers {unknown}; known layers: {list(shapes)[:8]}...")


def erk_score(shape: Sequence[int], kernel: bool = True, power: float = 1.0) -> float:
    """Unnormalised density of a layer: Σ dims / Π dims, raised to `power`.

    ERK (kernel=True) uses every weight dimension: (n_out + n_in + k_h + k_w)/(n_out n_in k_h k_w);
    ER (kernel=False) uses only the output and input channels: (n_out + n_in)/(n_out n_in).
    power = 1 is ERK/ER, power = 0 makes every score 1 (Uniform).
    """
    dims = [int(d) for d in (shape if kernel else shape[:2])]
    return (sum(dims) / math.prod(dims)) ** power


def uniform_sparsities(shapes: Shapes, sparsity: float, excluded: Sequence[str] = (),
                       overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """s_l = S for every layer in the budget; excluded layers dense; overrides fixed.

    With overrides the non-overridden layers share one sparsity solved from the budget.
    """
    return _scaled_sparsities(shapes, sparsity, excluded, overrides, kernel=True, power=0.0)


def er_sparsities(shapes: Shapes, sparsity: float, excluded: Sequence[str] = (),
                  overrides: Mapping[str, float] | None = None, power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi: density ∝ ((n_in + n_out)/(n_in n_out))^power, with the iterative dense fix."""
    return _scaled_sparsities(shapes, sparsity, excluded, overrides, kernel=False, power=power)


def erk_sparsities(shapes: Shapes, sparsity: float, excluded: Sequence[str] = (),
                   overrides: Mapping[str, float] | None = None, power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi–Kernel: density ∝ (Σ dims / Π dims)^power, with the iterative dense fix."""
    return _scaled_sparsities(shapes, sparsity, excluded, overrides, kernel=True, power=power)


def _scaled_sparsities(shapes: Shapes, sparsity: float, excluded: Sequence[str],
                       overrides: Mapping[str, float] | None, kernel: bool, power: float) -> dict[str, float]:
    """Solve density_l = eps * score_l under the budget; make the top-score layers dense while eps*score > 1.

    Budget over the layers in it (excluded ones are outside):
        eps * Σ_{free} score_l N_l = (1 − S) Σ_{budget} N_l − Σ_{dense} N_l − Σ_{override} (1 − s_o) N_o
    """
    shp = _check_shapes(shapes)
    S = _check_sparsity(sparsity)
    overrides = dict(overrides or {})
    _check_names(shp, list(excluded), "excluded")
    _check_names(shp, list(overrides), "overrides")
    for name, s in overrides.items():
        _check_sparsity(s, f"override sparsity of {name!r}")
    if not math.isfinite(power) or power < 0:
        raise DistributionError(f"power must be a finite number >= 0, got {power!r}")

    excl = set(excluded)
    budget = [n for n in shp if n not in excl]
    if not budget:
        raise DistributionError("every layer is excluded: nothing left to sparsify")
    n_of = {n: math.prod(s) for n, s in shp.items()}
    score = {n: erk_score(shp[n], kernel, power) for n in budget if n not in overrides}
    ones_total = (1.0 - S) * sum(n_of[n] for n in budget)
    ones_fixed = sum((1.0 - overrides[n]) * n_of[n] for n in budget if n in overrides)

    dense: set[str] = set()
    while True:
        free = [n for n in score if n not in dense]
        rhs = ones_total - ones_fixed - sum(n_of[n] for n in dense)
        if not free:
            if rhs < -1e-9 * ones_total:
                raise DistributionError(f"sparsity {S} cannot be met: fixed layers already exceed the budget")
            break
        divisor = sum(score[n] * n_of[n] for n in free)
        if rhs <= 0:
            raise DistributionError(
                f"sparsity {S} cannot be met with these overrides/dense layers (no nonzeros left for the rest)"
            )
        eps = rhs / divisor
        top = max(score[n] for n in free)
        if eps * top <= 1.0 + 1e-12:
            break
        # the authors' dense fix: the largest-score layers become dense, then re-solve
        dense.update(n for n in free if score[n] == top)

    result: dict[str, float] = {}
    for n in shp:
        if n in excl or n in dense:
            result[n] = 0.0
        elif n in overrides:
            result[n] = float(overrides[n])
        else:
            result[n] = float(min(1.0, max(0.0, 1.0 - eps * score[n])))
    return result


def get_sparsities(shapes: Shapes, sparsity: float, distribution: str, excluded: Sequence[str] = (),
                   overrides: Mapping[str, float] | None = None, power: float = 1.0) -> dict[str, float]:
    """Dispatch to uniform / er / erk (validated)."""
    if distribution == "uniform":
        return uniform_sparsities(shapes, sparsity, excluded, overrides)
    if distribution == "er":
        return er_sparsities(shapes, sparsity, excluded, overrides, power)
    if distribution == "erk":
        return erk_sparsities(shapes, sparsity, excluded, overrides, power)
    raise DistributionError(f"unknown distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")


def nonzeros_per_layer(shapes: Shapes, sparsities: Mapping[str, float], sparsity: float,
                       excluded: Sequence[str] = (), exact_budget: bool = True) -> dict[str, int]:
    """Integer active weights per layer: N_l − floor(s_l N_l), then (exact_budget) the budget's missing
    zeros go one each to the sparse layers with the largest fractional parts of s_l N_l."""
    shp = _check_shapes(shapes)
    S = _check_sparsity(sparsity)
    excl = set(excluded)
    n_of = {n: math.prod(s) for n, s in shp.items()}
    zeros = {n: int(math.floor(sparsities[n] * n_of[n] + 1e-9)) for n in shp}
    if exact_budget:
        budget = [n for n in shp if n not in excl]
        target = int(math.floor(S * sum(n_of[n] for n in budget) + 1e-9))
        missing = target - sum(zeros[n] for n in budget)
        candidates = [n for n in budget if 0.0 < sparsities[n] and zeros[n] < n_of[n] - 1]
        # largest remainder first; ties by layer order (stable sort) for determinism
        candidates.sort(key=lambda n: -(sparsities[n] * n_of[n] - zeros[n]))
        for n in candidates[: max(0, missing)]:
            zeros[n] += 1
    return {n: n_of[n] - zeros[n] for n in shp}


def allocate(shapes: Shapes, sparsity: float, distribution: str, excluded: Sequence[str] = (),
             overrides: Mapping[str, float] | None = None, power: float = 1.0,
             exact_budget: bool = True) -> LayerAllocation:
    """Sparsities and integer nonzeros per layer for one distribution."""
    sp = get_sparsities(shapes, sparsity, distribution, excluded, overrides, power)
    nnz = nonzeros_per_layer(shapes, sp, sparsity, excluded, exact_budget)
    names = tuple(shapes)
    excl = set(excluded)
    return LayerAllocation(
        names=names,
        n_params=tuple(int(math.prod(shapes[n])) for n in names),
        sparsity=tuple(sp[n] for n in names),
        nonzeros=tuple(nnz[n] for n in names),
        in_budget=tuple(n not in excl for n in names),
    )


def random_masks(allocation: LayerAllocation, shapes: Shapes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random bool masks with exactly allocation.nonzeros[l] ones per layer (paper: random init masks)."""
    masks = {}
    for name, n, nnz in zip(allocation.names, allocation.n_params, allocation.nonzeros):
        flat = np.zeros(n, dtype=bool)
        flat[rng.choice(n, size=nnz, replace=False)] = True
        masks[name] = flat.reshape(tuple(shapes[name]))
    return masks
