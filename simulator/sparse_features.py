"""Sparse-optimisation features of a hardware spec, resolved for one layer pass (Sparseloop's taxonomy).

A spec states them in the general form (hardware.py `SparseAction`, `TensorFormat`):
* compute: skip or gate the MACs where a tensor of `condition_on` is zero;
* per storage level and tensor: skip or gate its accesses conditioned on other tensors (or itself);
* per storage level and tensor: a compressed format (bitmask, csr, coo, rle, uop_rle) with metadata.
The old shorthand (`[sparsity] mode/operands`, `[weight_format]`) maps onto it exactly: a compute
action conditioned on the index spaces of `operands` (weights -> W, activations -> I, gradients -> O,
whatever role they play in the pass), the weight format on every level for the W-space operand, and
without operand registers an implicit skip of the innermost keeper's MAC-side accesses under the
compute condition (a skipped MAC reads no operand and writes no partial sum).

Tensors are roles in the spec; probabilities are over index spaces (`Joint`): statistical mode is the
product of the densities (independent uniform zeros), real mode the exact fraction of iterations of
the nest whose tensors are all nonzero (`joint_fractions`, from masks).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from simulator.hardware import COMPUTE, TensorFormat
from simulator.nest import ROLES, Problem

SPACE_NAME = {"W": "weights", "I": "inputs", "O": "outputs"}   # densities are keyed by index space
NAME_SPACE = {v: k for k, v in SPACE_NAME.items()}
OPERAND_SPACE = {"weights": "W", "activations": "I", "gradients": "O"}   # hw.sparsity.operands
DEFAULT_FIBER = {"W": ("C", "R", "S"), "I": ("C",), "O": ("M",)}


class Joint:
    """P(all tensors of a set of index spaces are nonzero at one iteration of the nest).

    densities: {"weights"|"inputs"|"outputs": d} by index space; exact: {frozenset of spaces: fraction}
    measured from masks (real mode), used where present, else the product of densities."""

    def __init__(self, densities: dict | None = None, exact: dict | None = None):
        self.d = {NAME_SPACE[k]: float(v) for k, v in (densities or {}).items()}
        self.exact = dict(exact or {})

    def density(self, space: str) -> float:
        hit = self.exact.get(frozenset((space,)))
        return float(hit) if hit is not None else self.d.get(space, 1.0)

    def prob(self, spaces) -> float:
        s = frozenset(spaces)
        if not s:
            return 1.0
        hit = self.exact.get(s)
        if hit is not None:
            return float(hit)
        return math.prod(self.density(x) for x in s)

    def key(self) -> tuple:
        return (tuple(sorted(self.d.items())), tuple(sorted((tuple(sorted(k)), v) for k, v in self.exact.items())))


@dataclass(frozen=True)
class Resolved:
    """The features of `hw` for one pass, in index spaces (see module doc)."""

    compute_kind: str                       # none | skip | gate
    compute_on: frozenset                   # spaces whose zeros the MACs skip / gate
    actions: dict = field(default_factory=dict)   # (level name, role) -> (kind, frozenset of spaces)
    formats: dict = field(default_factory=dict)   # (level name, role) -> TensorFormat
    implicit_mac: bool = False              # shorthand: skipped MACs access no storage (no operand registers)
    shorthand_format: bool = False          # formats come from [weight_format] (bit-packed metadata)

    @property
    def exploited(self) -> frozenset:
        """Index spaces whose zeros any feature exploits."""
        out = set(self.compute_on)
        for _, sp in self.actions.values():
            out |= sp
        return frozenset(out)

    def compute_fractions(self, joint: Joint) -> tuple[float, float, float]:
        """(effectual fraction of MACs, compute-cycle fraction, gated fraction)."""
        eff = joint.prob(self.compute_on)
        if self.compute_kind == "skip":
            return eff, eff, 0.0
        if self.compute_kind == "gate":
            return eff, 1.0, 1.0 - eff
        return 1.0, 1.0, 0.0

    def fmt(self, level: str, role: str, joint: Joint, problem: Problem) -> TensorFormat | None:
        """The compressed format of `role` at `level` when it is sparse there, else None."""
        f = self.formats.get((level, role))
        if f is None or f.kind == "dense" or joint.density(problem.space_of(role)) >= 1.0:
            return None
        return f

    def action(self, level: str, role: str) -> tuple[str, frozenset] | None:
        return self.actions.get((level, role))


_CACHE: dict = {}


def resolve(hw, problem: Problem) -> Resolved:
    """The spec's features for `problem`'s pass (memoised per spec object and pass)."""
    key = (id(hw), problem.pass_name)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is hw:
        return hit[1]
    if len(_CACHE) > 256:
        _CACHE.clear()
    res = _resolve(hw, problem)
    _CACHE[key] = (hw, res)
    return res


def _resolve(hw, problem: Problem) -> Resolved:
    sp = hw.sparsity
    space = problem.space_of
    actions, formats = {}, {}
    kind, on, implicit, short = "none", frozenset(), False, False
    if sp.mode != "none":
        kind = sp.mode
        on = frozenset(OPERAND_SPACE[o] for o in sp.operands)
        implicit = sp.mode == "skip" and not hw.pe_array.operand_registers
    wf = hw.weight_format
    if wf.kind != "dense":
        role = next((r for r in ROLES if r != "outputs" and space(r) == "W"), None)
        if role is not None:
            short = True
            for lv in hw.memory:
                formats[(lv.name, role)] = TensorFormat(level=lv.name, tensor=role, kind=wf.kind,
                                                        index_bits=wf.index_bits, pointer_bits=wf.pointer_bits,
                                                        run_bits=wf.run_bits)
    for a in hw.sparse.action:
        spaces = frozenset(space(r) for r in a.condition_on)
        if a.level == COMPUTE:
            kind, on = a.kind, spaces
        else:
            actions[(a.level, a.target)] = (a.kind, spaces)
    for f in hw.sparse.format:
        formats[(f.level, f.tensor)] = f
    return Resolved(kind, on, actions, formats, implicit, short)


def effective_sparsity(hw):
    """The spec's compute sparsity as a `[sparsity]` shorthand (mode, operands, nm) for the models that
    read only the shorthand (the fixed fold model, the lockstep imbalance): a general compute action
    conditioned on roles maps to the operands those roles are in the forward pass."""
    from simulator.hardware import SparsitySupport

    for a in hw.sparse.action:
        if a.level == COMPUTE:
            names = {"weights": "weights", "inputs": "activations", "outputs": "gradients"}
            return SparsitySupport(mode=a.kind, operands=tuple(names[r] for r in a.condition_on), nm=hw.sparsity.nm)
    return hw.sparsity


def fiber_length(fmt: TensorFormat, problem: Problem, role: str, ext: dict) -> int:
    """Elements of one fiber of `role`'s tile `ext` (the dims one pointer covers)."""
    dims = fmt.fiber if fmt.fiber is not None else DEFAULT_FIBER[problem.space_of(role)]
    return max(1, math.prod(ext[d] for d in dims))


def metadata_bits_per_element(fmt: TensorFormat, density: float, fiber: int, word_bits: int,
                              nm: tuple[int, int] | None = None) -> float:
    """Metadata bits per dense element of a compressed tile at `density`.

    bitmask 1 bit, csr d*index_bits + pointer_bits/fiber, coo 2*d*index_bits, rle d*run_bits, N:M
    d*ceil(log2 M) bits (all bit-packed); uop_rle: d run entries + 1/fiber pointer entries, each entry
    ceil(bits / word_bits) metadata words of `word_bits` (one metadata access per entry, as Sparseloop
    counts its ranks)."""
    k = fmt.kind
    if k == "dense" or density >= 1.0:
        return 0.0
    if k == "uop_rle":
        return (density * math.ceil(fmt.run_bits / word_bits)
                + math.ceil(fmt.pointer_bits / word_bits) / fiber) * word_bits
    if k == "bitmask":
        return 1.0
    if k in ("csr", "csc"):
        return density * fmt.index_bits + fmt.pointer_bits / fiber
    if k == "coo":
        return density * 2 * fmt.index_bits
    if k == "rle":
        return density * fmt.run_bits
    if k == "nm":
        return density * math.ceil(math.log2(nm[1])) if nm else 0.0
    return 0.0


# --- real mode: exact joint nonzero fractions from masks ------------------------------------------
def nest_masks(problem: Problem, weights=None, inputs=None, grads=None) -> dict:
    """Masks in natural shapes -> index-space masks of the nest (bool).

    weights (G*M, C, R, S) -> W [G, M, C, R, S]; inputs (N', G*C, H, W) -> I [N', G, C, H', W'] padded
    symmetrically to the nest's H' = (P-1)*stride + (R-1)*dilation + 1 (PyTorch's rule P =
    floor((H + 2 pad - R_eff) / stride) + 1); output gradients (N', G*M, P, Q) -> O [N', G, M, P, Q].
    N' may be a sample of the batch (sampled bitmaps); inputs and gradients must then agree on it.
    Raises ValueError (one line) on a shape that does not match the layer."""
    p, out = problem, {}
    G, M, C, P, Q, R, S = p.G, p.M, p.C, p.P, p.Q, p.R, p.S
    if weights is not None:
        w = np.asarray(weights) != 0
        want = (G * M, C, R, S)
        if w.shape != want and not (w.ndim == 2 and (R, S) == (1, 1) and w.shape == (G * M, C)):
            raise ValueError(f"weight mask shape {w.shape} does not match the layer's weight shape {want}")
        out["W"] = w.reshape(G, M, C, R, S)
    if inputs is not None:
        a = np.asarray(inputs) != 0
        if a.ndim == 2 and (R, S, P, Q) == (1, 1, 1, 1):
            a = a[:, :, None, None]
        if a.ndim != 4 or a.shape[1] != G * C:
            raise ValueError(f"input mask shape {a.shape} must be (N, {G * C}, H, W)")
        planes = []
        for ax, (n_in, n_out, k, st, dl) in enumerate(((a.shape[2], P, R, p.stride[0], p.dilation[0]),
                                                       (a.shape[3], Q, S, p.stride[1], p.dilation[1]))):
            k_eff = (k - 1) * dl + 1
            full = (n_out - 1) * st + k_eff
            pad = max(0, -(-(full - n_in) // 2))
            if pad > k_eff - 1 or (n_in + 2 * pad - k_eff) // st + 1 != n_out:
                raise ValueError(f"input mask shape {a.shape}: {'HW'[ax]} = {n_in} does not give "
                                 f"{'PQ'[ax]} = {n_out} with kernel {k}, stride {st}")
            planes.append((pad, full))
        (ph, fh), (pw, fw) = planes
        x = np.zeros((a.shape[0], G * C, max(fh, a.shape[2] + ph), max(fw, a.shape[3] + pw)), dtype=bool)
        x[:, :, ph:ph + a.shape[2], pw:pw + a.shape[3]] = a
        out["I"] = x[:, :, :fh, :fw].reshape(a.shape[0], G, C, fh, fw)
    if grads is not None:
        g = np.asarray(grads) != 0
        if g.ndim == 2 and (P, Q) == (1, 1):
            g = g[:, :, None, None]
        if g.ndim != 4 or g.shape[1:] != (G * M, P, Q):
            raise ValueError(f"output-gradient mask shape {g.shape} must be (N, {G * M}, {P}, {Q})")
        out["O"] = g.reshape(g.shape[0], G, M, P, Q)
    if "I" in out and "O" in out and out["I"].shape[0] != out["O"].shape[0]:
        raise ValueError(f"input and output-gradient masks sample {out['I'].shape[0]} and "
                         f"{out['O'].shape[0]} batch elements; give the same samples")
    return out


def joint_count(problem: Problem, masks: dict, spaces) -> tuple[int, int]:
    """(iterations of the nest where every mask of `spaces` is nonzero, iterations) over the masks'
    batch sample: sum over g, r, s of sum_{m,c} W[g,m,c,r,s] * (O[:, g, m] . I_rs[:, g, c]) where
    I_rs[n, c, p, q] = I[n, c, p*stride + r*dil, q*stride + s*dil]; an absent tensor counts as ones."""
    p = problem
    spaces = frozenset(spaces)
    nb = next((masks[s].shape[0] for s in ("I", "O") if s in masks and s in spaces), p.N)
    total = 0
    (sh, sw), (dh, dw) = p.stride, p.dilation
    for g in range(p.G):
        o = masks["O"][:, g].transpose(1, 0, 2, 3).reshape(p.M, -1).astype(np.float64) if "O" in spaces else None
        for r in range(p.R):
            for s in range(p.S):
                if "I" in spaces:
                    x = masks["I"][:, g, :, r * dh: r * dh + sh * (p.P - 1) + 1: sh,
                                   s * dw: s * dw + sw * (p.Q - 1) + 1: sw]
                    x = x.transpose(0, 2, 3, 1).reshape(-1, p.C).astype(np.float64)   # (N P Q, C)
                    pair = (o @ x) if o is not None else np.broadcast_to(x.sum(axis=0), (p.M, p.C))
                elif o is not None:
                    pair = np.broadcast_to(o.sum(axis=1)[:, None], (p.M, p.C))
                else:
                    pair = np.full((p.M, p.C), float(nb * p.P * p.Q))
                if "W" in spaces:
                    total += int(round(float((pair * masks["W"][g, :, :, r, s]).sum())))
                else:
                    total += int(round(float(pair.sum())))
    iters = nb * p.G * p.M * p.C * p.P * p.Q * p.R * p.S
    return total, iters


def joint_fractions(problem: Problem, masks: dict) -> dict:
    """{frozenset of spaces: exact joint nonzero fraction} for every non-empty subset of the masks given."""
    have = [s for s in ("W", "I", "O") if s in masks]
    out = {}
    for k in range(1, len(have) + 1):
        for sub in itertools.combinations(have, k):
            n, it = joint_count(problem, masks, sub)
            out[frozenset(sub)] = n / it if it else 0.0
    return out


def joint_count_naive(problem: Problem, masks: dict, spaces) -> int:
    """Reference of `joint_count`: every iteration of the nest, one by one (tiny problems only)."""
    p = problem
    nb = next((masks[s].shape[0] for s in ("I", "O") if s in masks and s in spaces), p.N)
    total = 0
    for n, g, m, c, pp, q, r, s in itertools.product(range(nb), range(p.G), range(p.M), range(p.C), range(p.P),
                                                      range(p.Q), range(p.R), range(p.S)):
        ok = True
        if "W" in spaces:
            ok &= bool(masks["W"][g, m, c, r, s])
        if "O" in spaces:
            ok &= bool(masks["O"][n, g, m, pp, q])
        if "I" in spaces:
            ok &= bool(masks["I"][n, g, c, pp * p.stride[0] + r * p.dilation[0], q * p.stride[1] + s * p.dilation[1]])
        total += ok
    return total


def describe(hw) -> list[str]:
    """Human-readable lines of the spec's sparse features (for `rigl-hw hardware show`)."""
    lines = []
    sp, wf = hw.sparsity, hw.weight_format
    if sp.mode != "none":
        ops = ", ".join(sp.operands)
        lines.append(f"compute: {sp.mode} MACs conditioned on zero {ops} (shorthand [sparsity])"
                     + ("; skipped MACs access no storage" if sp.mode == "skip" and not hw.pe_array.operand_registers else ""))
    if wf.kind != "dense":
        lines.append(f"every level: weights (W-space operand) stored {wf.kind} (shorthand [weight_format])")
    for a in hw.sparse.action:
        what = "MACs" if a.level == COMPUTE else f"{a.target} at {a.level}"
        lines.append(f"{a.kind} {what} conditioned on {', '.join(a.condition_on)}")
    for f in hw.sparse.format:
        bits = {"bitmask": "1 bit/element", "csr": f"{f.index_bits}-bit index, {f.pointer_bits}-bit pointer",
                "coo": f"2 x {f.index_bits}-bit index", "rle": f"{f.run_bits}-bit run",
                "uop_rle": f"{f.run_bits}-bit run entries, {f.pointer_bits}-bit fiber pointers",
                "dense": "uncompressed"}[f.kind]
        fib = f", fiber {''.join(f.fiber)}" if f.fiber else ""
        lines.append(f"{f.tensor} at {f.level}: {f.kind} ({bits}{fib})")
    return lines or ["none (dense)"]
