"""Sparse-training methods behind one interface (`SparseMethod`), built by `make_method`.

    dense, small_dense   no masks (small_dense: the trainer narrows the model, see dense.py)
    static               random masks, fixed
    snip                 one-shot masks from |θ·∂L/∂θ| at init, fixed
    set                  drop by |θ|, grow at random           every ΔT until T_end
    rigl                 drop by |θ|, grow by |dense gradient|  every ΔT until T_end
    snfs                 drop by |θ|, grow by |momentum|       dense gradients every step
    pruning              gradual magnitude pruning dense -> S (Zhu & Gupta cubic schedule)
"""

from __future__ import annotations

from typing import Sequence

from ..layers import LayerSpec
from .base import METHODS, MethodConfig, MethodError, SparseMethod
from .dense import DenseMethod, SmallDenseMethod
from .drop_grow import DropGrowMethod
from .pruning import PruningMethod
from .rigl import RigLMethod
from .set_ import SETMethod
from .snfs import SNFSMethod
from .snip import SNIPMethod
from .static import StaticMethod

__all__ = ["METHODS", "MethodConfig", "MethodError", "SparseMethod", "DropGrowMethod", "make_method",
           "DenseMethod", "SmallDenseMethod", "StaticMethod", "SNIPMethod", "SETMethod", "RigLMethod",
           "SNFSMethod", "PruningMethod"]

_CLASSES: dict[str, type[SparseMethod]] = {
    cls.name: cls for cls in (DenseMethod, SmallDenseMethod, StaticMethod, SNIPMethod, SETMethod, RigLMethod,
                              SNFSMethod, PruningMethod)
}
assert tuple(sorted(_CLASSES)) == tuple(sorted(METHODS))


def make_method(config: MethodConfig, model_name: str, specs: Sequence[LayerSpec]) -> SparseMethod:
    """The method object for `config` on a model's layer specs (its allocation is computed here)."""
    if config.name not in _CLASSES:
        raise MethodError(f"unknown method {config.name!r}; choose one of {', '.join(METHODS)}")
    return _CLASSES[config.name](config, model_name, specs)
