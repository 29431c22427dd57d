"""Hardware spec of a simulated sparse accelerator: frozen dataclasses loaded from TOML, validated strictly.

Every field carries its unit in its name or docstring. A bad spec raises `HardwareSpecError` (a
`ValueError`) with a one-line message that names the field path, e.g.
``pe_array.rows: must be a positive integer, got 0``. Presets live in `simulator/presets/*.toml`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PRESET_DIR = Path(__file__).resolve().parent / "presets"

DATAFLOWS = ("ws", "os", "is")
NUMBER_FORMATS = ("fp32", "bf16", "int8")
SPARSITY_MODES = ("none", "gate", "skip")
SPARSE_OPERANDS = ("weights", "activations", "gradients")
TENSORS = ("weights", "inputs", "outputs")  # the three operands of a loop nest (see simulator/nest.py)
WEIGHT_FORMATS = ("dense", "bitmask", "csr", "csc", "coo", "rle", "nm")
TENSOR_FORMATS = ("dense", "bitmask", "csr", "coo", "rle", "uop_rle")  # [[sparse.format]] kinds
SPARSE_ACTIONS = ("skip", "gate")                                       # [[sparse.action]] kinds
COMPUTE = "compute"                     # the level name of a compute action in [[sparse.action]]
VALUE_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
MAP_DIMS = ("N", "G", "M", "C", "P", "Q", "R", "S")  # loop dimensions of simulator/nest.py


class HardwareSpecError(ValueError):
    """A hardware spec that cannot be used; the message names the offending field path."""


# --- field checks (each returns the cleaned value or raises HardwareSpecError) ------------------
def _pos_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise HardwareSpecError(f"{path}: must be a positive integer, got {v!r}")
    return int(v)


def _nonneg_int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise HardwareSpecError(f"{path}: must be a non-negative integer, got {v!r}")
    return int(v)


def _pos_float(path: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise HardwareSpecError(f"{path}: must be a positive number, got {v!r}")
    return float(v)


def _nonneg_float(path: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise HardwareSpecError(f"{path}: must be a non-negative number, got {v!r}")
    return float(v)


def _string(path: str, v: Any) -> str:
    if not isinstance(v, str):
        raise HardwareSpecError(f"{path}: must be a string, got {type(v).__name__} {v!r}")
    return v


def _boolean(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise HardwareSpecError(f"{path}: must be true or false, got {v!r}")
    return v


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(path: str, v: Any) -> str:
        _string(path, v)
        if v not in options:
            raise HardwareSpecError(f"{path}: {v!r} is not one of {list(options)}")
        return v
    return check


def _name_list(options: tuple[str, ...], what: str) -> Callable[[str, Any], tuple[str, ...]]:
    """Check of a list of distinct names drawn from `options` (e.g. sparse operands, tensors)."""
    def check(path: str, v: Any) -> tuple[str, ...]:
        if not isinstance(v, list):
            raise HardwareSpecError(f"{path}: must be a list of {what} names {list(options)}, got {v!r}")
        out = tuple(_choice(options)(f"{path}[{i}]", x) for i, x in enumerate(v))
        if len(set(out)) != len(out):
            raise HardwareSpecError(f"{path}: duplicate {what} in {list(out)}")
        return out
    return check


_operands = _name_list(SPARSE_OPERANDS, "operand")


def _nm(path: str, v: Any) -> tuple[int, int]:
    if not isinstance(v, list) or len(v) != 2:
        raise HardwareSpecError(f"{path}: must be a list [N, M], got {v!r}")
    n, m = _pos_int(f"{path}[0]", v[0]), _pos_int(f"{path}[1]", v[1])
    if n >= m:
        raise HardwareSpecError(f"{path}: N must be smaller than M, got [{n}, {m}]")
    return (n, m)


_tensor_list = _name_list(TENSORS, "tensor")


def _partition(path: str, v: Any) -> dict[str, int]:
    if not isinstance(v, dict) or not v:
        raise HardwareSpecError(f"{path}: must be a table {{tensor = bytes}} over {list(TENSORS)}, got {v!r}")
    return {_choice(TENSORS)(f"{path}.{k}", k): _pos_int(f"{path}.{k}", x) for k, x in v.items()}


def _build(cls: type, table: Any, path: str) -> Any:
    """Build dataclass `cls` from a TOML table using each field's `check` metadata."""
    if not isinstance(table, dict):
        raise HardwareSpecError(f"{path}: must be a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if "check" in f.metadata}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise HardwareSpecError(
            f"{path + '.' if path else ''}{unknown[0]}: unknown key; allowed keys: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        fpath = f"{path}.{name}" if path else name
        if name in table:
            kwargs[name] = f.metadata["check"](fpath, table[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise HardwareSpecError(f"{fpath}: missing required key")
    return cls(**kwargs)


def _f(check: Callable[[str, Any], Any], default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"check": check})


# --- the spec -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PEArray:
    """A rows x cols grid of processing elements.

    macs_per_pe: multiply-accumulates one PE performs per cycle along the reduction (a dot-product
    unit of that width); the reduction tile held by a column is rows x macs_per_pe elements.
    fill_drain: whether each fold pays the systolic fill/drain latency (SCALE-Sim's R + C - 2 style
    terms and the final -1); false gives an idealised array used for cross-checks.
    operand_registers: (mapping-driven model) each MAC keeps its last two operands and its accumulator
    in registers, so a MAC step that leaves an operand unchanged does not access the storage level
    above it (a systolic PE). false: every MAC reads its innermost storage (Timeloop v0.3's model).
    """

    rows: int = _f(_pos_int)
    cols: int = _f(_pos_int)
    clock_hz: float = _f(_pos_float)
    macs_per_pe: int = _f(_pos_int, 1)
    fill_drain: bool = _f(_boolean, True)
    operand_registers: bool = _f(_boolean, False)


@dataclass(frozen=True)
class SparsitySupport:
    """What the array does with zero operands.

    mode: "none" (multiplies zeros), "gate" (zero MACs are clock-gated: same cycles, gated energy),
    "skip" (zero MACs take no PE slot: cycles from the real mask, see docs/simulator.md).
    operands: which zeros are exploited: "weights" (the mask), "activations" (needs activation masks;
    modelled for a 1x1 array only), "gradients" (accepted, not yet modelled beyond weights).
    nm: [N, M] structured support: only masks with at most N nonzeros in every M consecutive reduction
    elements run at N/M of the reduction work; other masks run dense.
    """

    mode: str = _f(_choice(SPARSITY_MODES), "none")
    operands: tuple[str, ...] = _f(_operands, ("weights",))
    nm: tuple[int, int] | None = _f(_nm, None)


@dataclass(frozen=True)
class WeightFormat:
    """Compressed storage of sparse weights; metadata widths in bits per entry."""

    kind: str = _f(_choice(WEIGHT_FORMATS), "dense")
    index_bits: int = _f(_nonneg_int, 16)
    pointer_bits: int = _f(_nonneg_int, 32)
    run_bits: int = _f(_nonneg_int, 4)


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy, innermost first (PE-local, global buffer, ..., DRAM last).

    size_bytes: capacity (per PE for the innermost level); read/write bandwidth in bytes per cycle
    for the whole level; energy either per access of `access_bytes` bytes (pJ) or per bit (pJ, DRAM).
    When neither energy is given for an on-chip level it is estimated from size_bytes with the SRAM
    interpolation in `simulator.energy`.
    """

    name: str = _f(_string)
    size_bytes: int = _f(_pos_int)
    read_bw_bytes_per_cycle: float = _f(_pos_float)
    write_bw_bytes_per_cycle: float = _f(_pos_float)
    access_bytes: int = _f(_pos_int, 8)
    energy_pj_per_access: float | None = _f(_nonneg_float, None)
    energy_pj_per_bit: float | None = _f(_nonneg_float, None)
    # --- structure (mapping-driven model, simulator/nest.py + access.py) ---
    instances: int | None = _f(_pos_int, None)        # copies of this level; None: rows*cols innermost, else 1
    mesh_x: int | None = _f(_pos_int, None)           # instances along the array's X axis (Y = instances/mesh_x)
    word_bits: int | None = _f(_pos_int, None)        # bits per stored word; None: the number format's bits
    tensors: tuple[str, ...] = _f(_tensor_list, TENSORS)   # tensors kept here; the others bypass ([]: all bypass)
    partition_bytes: dict[str, int] | None = _f(_partition, None)  # per-tensor capacity split (bytes per instance)
    double_buffer: bool = _f(_boolean, False)         # halves the usable capacity, hides refills
    # --- energy per action, pJ per word of word_bits (None: resolved by simulator.energy defaults) ---
    read_pj: float | None = _f(_nonneg_float, None)
    write_pj: float | None = _f(_nonneg_float, None)
    update_pj: float | None = _f(_nonneg_float, None)  # read-modify-write of a partial sum
    metadata_read_pj: float | None = _f(_nonneg_float, None)   # per metadata word read
    metadata_write_pj: float | None = _f(_nonneg_float, None)  # per metadata word written
    metadata_word_bits: int | None = _f(_pos_int, None)
    leakage_pj_per_cycle: float = _f(_nonneg_float, 0.0)       # whole level (all instances)
    ert_name: str | None = _f(_string, None)          # this level's component name in an Accelergy ERT.yaml


@dataclass(frozen=True)
class MacUnit:
    """Energy of the multiply-accumulate unit, pJ per MAC at the spec's number format (None: the
    energy table's default for that precision); gated: a clock-gated (ineffectual) MAC;
    accumulator_bits: width of a stored partial sum (None: 32 for fp32/bf16, 32 for int8)."""

    energy_pj: float | None = _f(_nonneg_float, None)
    gated_energy_pj: float | None = _f(_nonneg_float, None)
    accumulator_bits: int | None = _f(_pos_int, None)
    ert_name: str | None = _f(_string, None)


@dataclass(frozen=True)
class EnergySource:
    """Where per-action energies come from beyond the spec's own numbers: an Accelergy ERT.yaml
    (path relative to the TOML file) whose components the levels name with `ert_name`.

    ert_representative: how one energy per read/write is taken from an action's argument variants:
    "timeloop" (default: the largest read/write variant, for every access, as Timeloop's vector access
    energy) or "per_action" (the largest variant of each action separately). ert_idle_as_leakage:
    count the ERT's idle energy x instances as leakage per cycle (Timeloop pre-v4 does not)."""

    ert: str | None = _f(_string, None)
    ert_representative: str = _f(_choice(("timeloop", "per_action")), "timeloop")
    ert_idle_as_leakage: bool = _f(_boolean, False)


@dataclass(frozen=True)
class TopKUnit:
    """Streaming top-k unit for mask updates: compares elements_per_cycle values per cycle and keeps
    up to chunk_elements candidates on chip (larger selections spill and need more passes)."""

    elements_per_cycle: int = _f(_pos_int, 16)
    chunk_elements: int = _f(_pos_int, 65536)


@dataclass(frozen=True)
class SparseAction:
    """Skipping or gating (Sparseloop's action optimisations) of one tensor's accesses at one storage
    level, or of the MACs (level = "compute", no target): an access (a MAC) happens only where every
    tensor of `condition_on` is nonzero; "skip" saves its time and energy, "gate" only its energy.
    Tensors are roles (weights / inputs / outputs, simulator/nest.py: in backward passes "weights" is
    the pass's first operand, e.g. dY in backward_weight). Example: skip weights conditioned on inputs
    at the buffer = {level = "buffer", kind = "skip", target = "weights", condition_on = ["inputs"]}."""

    level: str = _f(_string)
    kind: str = _f(_choice(SPARSE_ACTIONS))
    condition_on: tuple[str, ...] = _f(_tensor_list)
    target: str | None = _f(_choice(TENSORS), None)


@dataclass(frozen=True)
class TensorFormat:
    """Compressed storage of one tensor (role) at one level: only nonzero values are stored and moved,
    plus metadata in bits per entry. kind: "bitmask" (1 bit per element), "csr" (index_bits per nonzero +
    pointer_bits per fiber), "coo" (2 x index_bits per nonzero), "rle" (run_bits per nonzero), "uop_rle"
    (Sparseloop's UOP + RLE ranks: one metadata entry per nonzero and one pointer entry per fiber, each
    entry ceil(bits / metadata_word_bits) metadata words), "dense". fiber: the tensor's dimensions one
    pointer covers (default: weights C, R, S; inputs C; outputs M)."""

    level: str = _f(_string)
    tensor: str = _f(_choice(TENSORS))
    kind: str = _f(_choice(TENSOR_FORMATS))
    index_bits: int = _f(_nonneg_int, 16)
    pointer_bits: int = _f(_nonneg_int, 32)
    run_bits: int = _f(_nonneg_int, 4)
    fiber: tuple[str, ...] | None = _f(lambda p, v: _dim_list(p, v), None)


@dataclass(frozen=True)
class SparseFeatures:
    """The general sparse-optimisation form ([[sparse.action]], [[sparse.format]]); the [sparsity] /
    [weight_format] shorthand maps onto it (simulator/sparse_features.py)."""

    action: tuple[SparseAction, ...] = _f(lambda p, v: _table_list(SparseAction, p, v), ())
    format: tuple[TensorFormat, ...] = _f(lambda p, v: _table_list(TensorFormat, p, v), ())


def _table_list(cls: type, path: str, v: Any) -> tuple:
    if not isinstance(v, list):
        raise HardwareSpecError(f"{path}: must be an array of tables [[{path}]]")
    return tuple(_build(cls, t, f"{path}[{i}]") for i, t in enumerate(v))


def _dim_list(path: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise HardwareSpecError(f"{path}: must be a list of dimensions {list(MAP_DIMS)}, got {v!r}")
    out = tuple(_choice(MAP_DIMS)(f"{path}[{i}]", x) for i, x in enumerate(v))
    if len(set(out)) != len(out):
        raise HardwareSpecError(f"{path}: duplicate dimension in {list(out)}")
    return out


def _order(path: str, v: Any) -> str:
    _string(path, v)
    bad = [c for c in v if c not in MAP_DIMS]
    if bad or len(set(v)) != len(v):
        raise HardwareSpecError(f"{path}: must be distinct letters of {''.join(MAP_DIMS)}, got {v!r}")
    return v


@dataclass(frozen=True)
class MapSpaceLevel:
    """Mapping constraints of one memory level (simulator/mapper.py; Timeloop's arch constraints).

    temporal: dimensions that may have a temporal loop (bound > 1) at this level (None: any).
    spatial_x / spatial_y: dimensions that may be unrolled along X / Y from this level to the
    instances inside it (None: any; [] : none). full: dimensions whose whole remaining extent must be
    taken at this level (temporal, or spatial when listed in spatial_x/y; Timeloop's factor 0).
    order: fixed temporal loop order at this level, outer -> inner (letters; dims not listed go
    innermost), e.g. "QC". keep: the tensors kept here in every mapping (Timeloop's bypass/keep
    constraint); None lets the mapper choose which of the level's `tensors` to keep."""

    name: str = _f(_string)
    temporal: tuple[str, ...] | None = _f(_dim_list, None)
    spatial_x: tuple[str, ...] | None = _f(_dim_list, None)
    spatial_y: tuple[str, ...] | None = _f(_dim_list, None)
    full: tuple[str, ...] = _f(_dim_list, ())
    order: str | None = _f(_order, None)
    keep: tuple[str, ...] | None = _f(_tensor_list, None)  # tensors the mapper must keep here (None: any subset of `tensors`)


@dataclass(frozen=True)
class MapSpace:
    """The legal mapping space: per-level constraints ([[mapspace.level]]); levels not listed are
    unconstrained. Absent from a spec: every factorisation, order and spatial unrolling that fits."""

    level: tuple[MapSpaceLevel, ...] = _f(lambda p, v: _mapspace_levels(p, v), ())

    def get(self, name: str) -> MapSpaceLevel | None:
        for lv in self.level:
            if lv.name == name:
                return lv
        return None


def _mapspace_levels(path: str, v: Any) -> tuple[MapSpaceLevel, ...]:
    if not isinstance(v, list):
        raise HardwareSpecError(f"{path}: must be an array of tables [[mapspace.level]]")
    out = tuple(_build(MapSpaceLevel, t, f"{path}[{i}]") for i, t in enumerate(v))
    names = [x.name for x in out]
    if len(set(names)) != len(names):
        raise HardwareSpecError(f"{path}: duplicate level names {names}")
    return out


@dataclass(frozen=True)
class HardwareSpec:
    """A whole accelerator. memory is ordered innermost first; the last level is DRAM."""

    name: str = _f(_string)
    pe_array: PEArray = _f(lambda p, v: _build(PEArray, v, p))
    memory: tuple[MemoryLevel, ...] = _f(lambda p, v: _memory(p, v))
    description: str = _f(_string, "")
    dataflow: str = _f(_choice(DATAFLOWS), "ws")
    number_format: str = _f(_choice(NUMBER_FORMATS), "bf16")
    energy_table: str = _f(_string, "horowitz45")
    sparsity: SparsitySupport = _f(lambda p, v: _build(SparsitySupport, v, p), SparsitySupport())
    weight_format: WeightFormat = _f(lambda p, v: _build(WeightFormat, v, p), WeightFormat())
    topk: TopKUnit = _f(lambda p, v: _build(TopKUnit, v, p), TopKUnit())
    mac: MacUnit = _f(lambda p, v: _build(MacUnit, v, p), MacUnit())
    energy: EnergySource = _f(lambda p, v: _build(EnergySource, v, p), EnergySource())
    mapspace: MapSpace = _f(lambda p, v: _build(MapSpace, v, p), MapSpace())
    sparse: SparseFeatures = _f(lambda p, v: _build(SparseFeatures, v, p), SparseFeatures())
    source_path: str | None = dataclasses.field(default=None, compare=False)  # the TOML it came from (not a key)

    @property
    def value_bytes(self) -> int:
        """Bytes per stored value of the number format."""
        return VALUE_BYTES[self.number_format]

    @property
    def dram(self) -> MemoryLevel:
        return self.memory[-1]

    @property
    def glb(self) -> MemoryLevel | None:
        """The global buffer: the level just inside DRAM (None with a single level)."""
        return self.memory[-2] if len(self.memory) >= 2 else None

    def instances(self, level_index: int) -> int:
        """Copies of memory level `level_index` (innermost = 0): its `instances`, else rows x cols for the
        innermost level of a multi-level hierarchy (PE-local storage) and 1 for the others."""
        lv = self.memory[level_index]
        if lv.instances is not None:
            return lv.instances
        return self.pe_array.rows * self.pe_array.cols if level_index == 0 and len(self.memory) >= 3 else 1

    def word_bits(self, level_index: int) -> int:
        """Bits per word at memory level `level_index` (its `word_bits`, else the number format's)."""
        lv = self.memory[level_index]
        return lv.word_bits if lv.word_bits is not None else 8 * self.value_bytes

    @property
    def skips(self) -> bool:
        """Whether the MACs skip zeros (the [sparsity] shorthand or a [[sparse.action]] on compute)."""
        return self.sparsity.mode == "skip" or any(a.level == COMPUTE and a.kind == "skip" for a in self.sparse.action)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _memory(path: str, v: Any) -> tuple[MemoryLevel, ...]:
    if not isinstance(v, list) or not v:
        raise HardwareSpecError(f"{path}: must be a non-empty array of tables [[memory]]")
    levels = tuple(_build(MemoryLevel, t, f"{path}[{i}]") for i, t in enumerate(v))
    names = [m.name for m in levels]
    if len(set(names)) != len(names):
        raise HardwareSpecError(f"{path}: duplicate level names {names}")
    for i, lv in enumerate(levels):
        if lv.mesh_x is not None and lv.instances is not None and lv.instances % lv.mesh_x:
            raise HardwareSpecError(f"{path}[{i}].mesh_x: {lv.mesh_x} does not divide instances = {lv.instances}")
        if lv.partition_bytes is not None:
            extra = sorted(set(lv.partition_bytes) - set(lv.tensors))
            if extra:
                raise HardwareSpecError(f"{path}[{i}].partition_bytes: {extra[0]!r} is not kept here (tensors = {list(lv.tensors)})")
            if sum(lv.partition_bytes.values()) > lv.size_bytes:
                raise HardwareSpecError(f"{path}[{i}].partition_bytes: partitions add up to "
                                        f"{sum(lv.partition_bytes.values())} B, more than size_bytes = {lv.size_bytes}")
    last = levels[-1]
    if last.energy_pj_per_access is None and last.energy_pj_per_bit is None:
        raise HardwareSpecError(
            f"{path}[{len(levels) - 1}].energy_pj_per_bit: the last level (DRAM) needs "
            "energy_pj_per_bit or energy_pj_per_access")
    return levels


# Upper bounds of sizes (a spec beyond them is refused, naming the limit): far above any real chip,
# low enough that the simulator's int64 arithmetic and array sizes cannot overflow or exhaust memory.
LIMITS = {
    "pe_array.rows": 65536, "pe_array.cols": 65536, "pe_array.macs_per_pe": 65536,
    "pe_array.rows*cols*macs_per_pe": 2**32,        # MACs per cycle
    "pe_array.clock_hz": 1e11,                       # 100 GHz
    "memory.size_bytes": 2**50,                      # 1 PiB per level (per instance)
    "memory.bw_bytes_per_cycle": 1e18,              # (test specs use 1e15 as "no roofline")
    "memory.access_bytes": 2**20, "memory.instances": 2**32,
    "bits": 1024,                                    # index/pointer/run/word/metadata/accumulator widths
    "topk.elements_per_cycle": 2**32, "topk.chunk_elements": 2**40,
    "energy_pj": 1e15,                               # any per-action energy
}


def check_limits(spec: HardwareSpec) -> None:
    """Refuse absurd sizes with the field path and the limit (raises HardwareSpecError)."""
    def check(path: str, value: Any, key: str) -> None:
        if value is not None and value > LIMITS[key]:
            raise HardwareSpecError(f"{path}: {value:g} exceeds the limit {LIMITS[key]:g}; "
                                    "use a realistic size")
    a = spec.pe_array
    for f in ("rows", "cols", "macs_per_pe"):
        check(f"pe_array.{f}", getattr(a, f), f"pe_array.{f}")
    check("pe_array (rows x cols x macs_per_pe)", a.rows * a.cols * a.macs_per_pe, "pe_array.rows*cols*macs_per_pe")
    check("pe_array.clock_hz", a.clock_hz, "pe_array.clock_hz")
    for i, lv in enumerate(spec.memory):
        p = f"memory[{i}]"
        check(f"{p}.size_bytes", lv.size_bytes, "memory.size_bytes")
        check(f"{p}.read_bw_bytes_per_cycle", lv.read_bw_bytes_per_cycle, "memory.bw_bytes_per_cycle")
        check(f"{p}.write_bw_bytes_per_cycle", lv.write_bw_bytes_per_cycle, "memory.bw_bytes_per_cycle")
        check(f"{p}.access_bytes", lv.access_bytes, "memory.access_bytes")
        check(f"{p}.instances", lv.instances, "memory.instances")
        for f in ("word_bits", "metadata_word_bits"):
            check(f"{p}.{f}", getattr(lv, f), "bits")
        for f in ("energy_pj_per_access", "energy_pj_per_bit", "read_pj", "write_pj", "update_pj",
                  "metadata_read_pj", "metadata_write_pj", "leakage_pj_per_cycle"):
            check(f"{p}.{f}", getattr(lv, f), "energy_pj")
    for f in ("index_bits", "pointer_bits", "run_bits"):
        check(f"weight_format.{f}", getattr(spec.weight_format, f), "bits")
        for i, tf in enumerate(spec.sparse.format):
            check(f"sparse.format[{i}].{f}", getattr(tf, f), "bits")
    check("topk.elements_per_cycle", spec.topk.elements_per_cycle, "topk.elements_per_cycle")
    check("topk.chunk_elements", spec.topk.chunk_elements, "topk.chunk_elements")
    check("mac.accumulator_bits", spec.mac.accumulator_bits, "bits")
    check("mac.energy_pj", spec.mac.energy_pj, "energy_pj")
    check("mac.gated_energy_pj", spec.mac.gated_energy_pj, "energy_pj")


def spec_from_dict(data: dict[str, Any]) -> HardwareSpec:
    """Validate a parsed TOML document and build a HardwareSpec (raises HardwareSpecError)."""
    from simulator.energy import ENERGY_TABLES

    spec = _build(HardwareSpec, data, "")
    check_limits(spec)
    if spec.energy_table not in ENERGY_TABLES:
        raise HardwareSpecError(
            f"energy_table: {spec.energy_table!r} is not one of {sorted(ENERGY_TABLES)}")
    sp = spec.sparsity
    if "activations" in sp.operands and sp.mode == "skip" and (spec.pe_array.rows, spec.pe_array.cols) != (1, 1):
        raise HardwareSpecError(
            "sparsity.operands: skipping 'activations' is modelled for a 1x1 array (single PE) only")
    if sp.nm is not None and sp.mode != "skip":
        raise HardwareSpecError("sparsity.nm: N:M support needs sparsity.mode = 'skip'")
    levels = [m.name for m in spec.memory]
    for i, ml in enumerate(spec.mapspace.level):
        if ml.name not in levels:
            raise HardwareSpecError(f"mapspace.level[{i}].name: {ml.name!r} is not a memory level {levels}")
        if ml.keep is not None:
            lv = spec.memory[levels.index(ml.name)]
            extra = sorted(set(ml.keep) - set(lv.tensors))
            if extra:
                raise HardwareSpecError(f"mapspace.level[{i}].keep: {extra[0]!r} is not in {ml.name}.tensors {list(lv.tensors)}")
    if spec.weight_format.kind == "nm" and sp.nm is None:
        raise HardwareSpecError("weight_format.kind: 'nm' needs sparsity.nm = [N, M]")
    _check_sparse(spec, levels)
    return spec


def _check_sparse(spec: HardwareSpec, levels: list[str]) -> None:
    """[[sparse.action]] / [[sparse.format]] name real levels and kept tensors, once each."""
    seen: set = set()
    for i, a in enumerate(spec.sparse.action):
        p = f"sparse.action[{i}]"
        if a.level == COMPUTE:
            if a.target is not None:
                raise HardwareSpecError(f"{p}.target: a compute action has no target tensor (remove it)")
            if spec.sparsity.mode != "none":
                raise HardwareSpecError(f"{p}: the compute action is also given by sparsity.mode = "
                                        f"{spec.sparsity.mode!r}; set sparsity.mode = 'none' or drop this action")
        else:
            if a.level not in levels:
                raise HardwareSpecError(f"{p}.level: {a.level!r} is not a memory level {levels} or 'compute'")
            if a.target is None:
                raise HardwareSpecError(f"{p}.target: a storage action needs target = weights | inputs | outputs")
            lv = spec.memory[levels.index(a.level)]
            if a.target not in lv.tensors:
                raise HardwareSpecError(f"{p}.target: {a.target!r} is not kept at {a.level} (tensors = {list(lv.tensors)})")
        if not a.condition_on:
            raise HardwareSpecError(f"{p}.condition_on: must name at least one tensor")
        key = (a.level, a.target)
        if key in seen:
            raise HardwareSpecError(f"{p}: a second action for {a.target or 'the MACs'} at {a.level}; give one")
        seen.add(key)
    seen = set()
    for i, f in enumerate(spec.sparse.format):
        p = f"sparse.format[{i}]"
        if f.level not in levels:
            raise HardwareSpecError(f"{p}.level: {f.level!r} is not a memory level {levels}")
        lv = spec.memory[levels.index(f.level)]
        if f.tensor not in lv.tensors:
            raise HardwareSpecError(f"{p}.tensor: {f.tensor!r} is not kept at {f.level} (tensors = {list(lv.tensors)})")
        if f.tensor == "outputs":
            raise HardwareSpecError(f"{p}.tensor: the written tensor (outputs) is stored dense; compress an operand")
        if spec.weight_format.kind != "dense" and f.tensor == "weights":
            raise HardwareSpecError(f"{p}: weights are already compressed by weight_format.kind = "
                                    f"{spec.weight_format.kind!r}; use one of the two")
        if (f.level, f.tensor) in seen:
            raise HardwareSpecError(f"{p}: a second format for {f.tensor} at {f.level}; give one")
        seen.add((f.level, f.tensor))


def list_presets() -> list[str]:
    """Names of the presets shipped in simulator/presets/."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_hardware(name_or_path: str | Path) -> HardwareSpec:
    """Load a preset by name ("dense-32x32") or a TOML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.exists()):
        if text not in list_presets():
            raise HardwareSpecError(f"hardware {text!r}: no such preset (presets: {list_presets()}) or file")
        path = PRESET_DIR / f"{text}.toml"
    data = read_toml(path, HardwareSpecError, "hardware file")
    return dataclasses.replace(spec_from_dict(data), source_path=str(path))


def read_toml(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, malformed, non-UTF-8 or too deeply nested one raises `error` with
    one line naming `what` and the file."""
    if not path.is_file():
        raise error(f"{what} {str(path)!r}: not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {str(path)!r}: malformed TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {str(path)!r}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    "save it as UTF-8") from None
    except RecursionError:
        raise error(f"{what} {str(path)!r}: nested too deeply to parse") from None
