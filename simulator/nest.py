"""A layer pass as a loop nest, and a mapping of that nest onto a memory hierarchy, both as data.

Problem (Timeloop's CNN-layer convention, `problem-shape: cnn-layer`): dimensions N (batch), M (output
channels per group), C (input channels per group), P, Q (output rows / columns), R, S (filter rows /
columns) and G (groups). The three tensors project the iteration space as

    Weights[G, M, C, R, S]      Outputs[N, G, M, P, Q]
    Inputs [N, G, C, H, W]  with  H = P * stride_p + R * dilation_p,  W = Q * stride_q + S * dilation_q

so filter dim R pairs with output dim P and S with Q (Timeloop writes the input axis of (R, P) as
"W = Wstride*P + Wdilation*R"; the name of the axis does not matter, the pairing does). A GEMM
Out[n, m] = sum_c A[n, c] B[c, m] is M = out features, C = reduction, N = rows, P = Q = R = S = 1.

All three training passes use the SAME iteration space (the forward's 7-D nest, + G) and differ only in
which tensor is written (read-modify-written with partial sums):
  forward          reads Weights, Inputs;  writes Outputs            (Y  = conv(X, W))
  backward_data    reads Weights, dY (indexed like Outputs);  writes dX (indexed like Inputs)
  backward_weight  reads X (Inputs), dY (Outputs);  writes dW (indexed like Weights)
so MACs are exact for any stride, sliding-window reuse is counted the same way in every pass, and no
im2col is needed. Tensors are named by ROLE in hardware specs and mappings: "outputs" is the written
(partial-sum) tensor, "weights" and "inputs" the two operands (see `ROLE_SPACE`).

A Mapping gives, per storage level from the outermost (DRAM) in, as Timeloop prints it: temporal loops
(dim, bound) outer -> inner, then spatial loops (dim, bound, axis X|Y) that fan out to the next inner
level's instances (spatial loops of the innermost level fan out to the MACs of a PE), and the tensor
roles kept at that level (the others bypass it). A level's tile is the product of the loops at that
level and inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

DIMS = ("N", "G", "M", "C", "P", "Q", "R", "S")
SPACES = ("W", "I", "O")            # index spaces: weights-like, inputs-like, outputs-like
SPACE_DIMS = {"W": ("G", "M", "C", "R", "S"), "O": ("N", "G", "M", "P", "Q"),
              "I": ("N", "G", "C", "P", "Q", "R", "S")}  # I: (P,R) -> H axis, (Q,S) -> W axis
PASSES = ("forward", "backward_data", "backward_weight")
ROLES = ("weights", "inputs", "outputs")
# role -> index space, per pass. "outputs" is always the written tensor.
ROLE_SPACE = {
    "forward": {"weights": "W", "inputs": "I", "outputs": "O"},
    "backward_data": {"weights": "W", "inputs": "O", "outputs": "I"},     # reads W, dY; writes dX
    "backward_weight": {"weights": "O", "inputs": "I", "outputs": "W"},   # reads dY, X; writes dW
}


class MappingError(ValueError):
    """A mapping that cannot run on the hardware or does not cover the problem (one-line message);
    `rigl-hw` shows it as `rigl-hw: error: ...` and exits 2."""

    user_error = True


@dataclass(frozen=True)
class Problem:
    """One layer pass: loop bounds (N, G, M, C, P, Q, R, S), strides and dilations of the (P, R) and
    (Q, S) axes, the pass (which tensor is written) and `repeats` (the nest runs that many times in
    sequence, e.g. a GRU hidden matrix once per time step; every count is multiplied by it)."""

    N: int = 1
    G: int = 1
    M: int = 1
    C: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pass_name: str = "forward"
    repeats: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        for d in DIMS:
            v = getattr(self, d)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise MappingError(f"problem {self.name or ''}: dimension {d} must be a positive integer, got {v!r}")
        for label, pair in (("stride", self.stride), ("dilation", self.dilation)):
            if len(pair) != 2 or min(pair) <= 0:
                raise MappingError(f"problem: {label} must be two positive integers, got {pair!r}")
        if self.pass_name not in PASSES:
            raise MappingError(f"problem: pass {self.pass_name!r} is not one of {list(PASSES)}")
        if self.repeats <= 0:
            raise MappingError(f"problem: repeats must be positive, got {self.repeats}")

    def dim(self, d: str) -> int:
        return getattr(self, d)

    @property
    def dims(self) -> dict[str, int]:
        return {d: getattr(self, d) for d in DIMS}

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole pass (all repeats)."""
        return math.prod(self.dims.values()) * self.repeats

    @property
    def H(self) -> int:
        return (self.P - 1) * self.stride[0] + (self.R - 1) * self.dilation[0] + 1

    @property
    def W(self) -> int:
        return (self.Q - 1) * self.stride[1] + (self.S - 1) * self.dilation[1] + 1

    def space_of(self, role: str) -> str:
        return ROLE_SPACE[self.pass_name][role]

    def shape_key(self) -> tuple:
        """Everything the cost of a mapping depends on (the name does not)."""
        return (tuple(self.dims.values()), self.stride, self.dilation, self.pass_name, self.repeats)

    @classmethod
    def gemm(cls, M: int, N: int, K: int, pass_name: str = "forward", name: str = "") -> "Problem":
        """Out[N, M] = A[N, K] @ B[K, M] as a nest: M = out, C = K (reduction), N = rows."""
        return cls(N=N, M=M, C=K, pass_name=pass_name, name=name)

    @classmethod
    def from_layer(cls, spec: Any, batch: int, pass_name: str = "forward") -> "Problem":
        """The nest of one pass of a `rigl_hw.layers.LayerSpec` at `batch` samples.

        conv: G = groups, M = C_out / G, C = C_in / G, (P, Q) = output (H, W), (R, S) = kernel (kh, kw),
        the input extent is the padded input ((P-1)*stride + R). linear: a GEMM with N = batch x
        positions. GRU: the input matrix (weight_ih) is a GEMM over all batch x T positions at once; the
        hidden matrix (weight_hh) has a dependency between time steps, so it is one GEMM of N = batch
        rows repeated T times in sequence (`repeats = T`: nothing stays on chip between steps that
        the mapping does not keep within one step)."""
        if batch <= 0:
            raise MappingError(f"batch must be positive, got {batch}")
        if spec.kind == "conv":
            g = spec.groups
            kh, kw = spec.kernel_hw
            return cls(N=batch, G=g, M=spec.out_channels // g, C=spec.in_channels // g,
                       P=spec.out_hw[0], Q=spec.out_hw[1], R=kh, S=kw, stride=tuple(spec.stride),
                       pass_name=pass_name, name=spec.name)
        out_f, in_f = spec.weight_shape
        steps = spec.out_positions
        if spec.kind == "gru" and "weight_hh" in spec.name:
            return cls(N=batch, M=out_f, C=in_f, pass_name=pass_name, repeats=steps, name=spec.name)
        return cls(N=batch * steps, M=out_f, C=in_f, pass_name=pass_name, name=spec.name)


@dataclass(frozen=True)
class LevelMapping:
    """Loops of one storage level: temporal (dim, bound) outer -> inner, then spatial (dim, bound, axis)
    fanning out to the next inner level's instances; `keep`: tensor roles stored here (None: the
    hardware level's `tensors`)."""

    name: str
    temporal: tuple[tuple[str, int], ...] = ()
    spatial: tuple[tuple[str, int, str], ...] = ()
    keep: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Mapping:
    """Per storage level, outermost (DRAM) first."""

    levels: tuple[LevelMapping, ...]

    def loops(self) -> list[tuple[int, str, int, bool]]:
        """All loops outer -> inner as (level index, dim, bound, spatial)."""
        out = []
        for i, lv in enumerate(self.levels):
            out += [(i, d, b, False) for d, b in lv.temporal]
            out += [(i, d, b, True) for d, b, _ in lv.spatial]
        return out

    def factor_product(self, d: str) -> int:
        return math.prod(b for _, dd, b, _ in self.loops() if dd == d)

    def format_nest(self, kept: list[tuple[str, ...]] | None = None,
                    tiles: list[dict[str, int]] | None = None) -> str:
        """Timeloop-style loop nest: each level's name, [kept tensors: tile words], then its loops."""
        lines, depth = [], 0
        for i, lv in enumerate(self.levels):
            keep = kept[i] if kept is not None else (lv.keep or ())
            parts = " ".join(f"{t}:{tiles[i][t]}" if tiles is not None else t for t in keep)
            head = f"{lv.name} [ {parts} ] " if parts else f"{lv.name} [ ] "
            lines += ["", head, "-" * (len(head) - 1)]
            for d, b in lv.temporal:
                lines.append("|" + "  " * depth + f" for {d} in [0:{b})")
                depth += 1
            for d, b, ax in lv.spatial:
                lines.append("|" + "  " * depth + f" for {d} in [0:{b}) (Spatial-{ax})")
                depth += 1
        return "\n".join(lines).lstrip("\n") + "\n"

    # --- TOML -------------------------------------------------------------------------------
    def to_toml(self) -> str:
        out = ["# rigl-hw mapping: levels outermost (DRAM) first; loops outer -> inner", ""]
        for lv in self.levels:
            out.append("[[level]]")
            out.append(f'name = "{lv.name}"')
            out.append("temporal = [" + ", ".join(f'["{d}", {b}]' for d, b in lv.temporal) + "]")
            out.append("spatial = [" + ", ".join(f'["{d}", {b}, "{a}"]' for d, b, a in lv.spatial) + "]")
            if lv.keep is not None:
                out.append("keep = [" + ", ".join(f'"{t}"' for t in lv.keep) + "]")
            out.append("")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"levels": [{"name": lv.name, "temporal": [list(x) for x in lv.temporal],
                            "spatial": [list(x) for x in lv.spatial],
                            **({"keep": list(lv.keep)} if lv.keep is not None else {})}
                           for lv in self.levels]}


def mapping_from_dict(data: dict[str, Any], where: str = "mapping") -> Mapping:
    """Build a Mapping from a parsed TOML/JSON document ({"level": [...]} or {"levels": [...]})."""
    rows = data.get("level", data.get("levels"))
    extra = sorted(set(data) - {"level", "levels"})
    if extra:
        raise MappingError(f"{where}: unknown key {extra[0]!r}; expected [[level]] tables")
    if not isinstance(rows, list) or not rows:
        raise MappingError(f"{where}: needs a non-empty array of [[level]] tables")
    levels = []
    for i, row in enumerate(rows):
        p = f"{where}: level[{i}]"
        if not isinstance(row, dict) or "name" not in row:
            raise MappingError(f"{p}: must be a table with a name")
        bad = sorted(set(row) - {"name", "temporal", "spatial", "keep"})
        if bad:
            raise MappingError(f"{p}: unknown key {bad[0]!r} (allowed: name, temporal, spatial, keep)")
        temporal = tuple(_loop(f"{p}.temporal[{j}]", x, 2) for j, x in enumerate(row.get("temporal", [])))
        spatial = tuple(_loop(f"{p}.spatial[{j}]", x, 3) for j, x in enumerate(row.get("spatial", [])))
        keep = row.get("keep")
        if keep is not None:
            if not isinstance(keep, list) or any(k not in ROLES for k in keep):
                raise MappingError(f"{p}.keep: must be a list of {list(ROLES)}, got {keep!r}")
            keep = tuple(keep)
        levels.append(LevelMapping(str(row["name"]), temporal, spatial, keep))
    return Mapping(tuple(levels))


def _loop(path: str, x: Any, n: int) -> tuple:
    if not isinstance(x, list) or len(x) != n:
        raise MappingError(f"{path}: must be [dim, bound{', axis' if n == 3 else ''}], got {x!r}")
    d, b = x[0], x[1]
    if d not in DIMS:
        raise MappingError(f"{path}: unknown dimension {d!r} (dimensions: {' '.join(DIMS)})")
    if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
        raise MappingError(f"{path}: bound must be a positive integer, got {b!r}")
    if n == 3:
        if x[2] not in ("X", "Y"):
            raise MappingError(f"{path}: axis must be 'X' or 'Y', got {x[2]!r}")
        return (d, b, x[2])
    return (d, b)


def load_mapping(path: str | Path) -> Mapping:
    from simulator.hardware import read_toml

    p = Path(path)
    return mapping_from_dict(read_toml(p, MappingError, "mapping file"), where=f"mapping file {p.name}")


def with_keep(mapping: Mapping, keeps: Iterable[tuple[str, ...]]) -> Mapping:
    return Mapping(tuple(replace(lv, keep=tuple(k)) for lv, k in zip(mapping.levels, keeps)))
