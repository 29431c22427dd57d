"""Static sparse training: random masks with the distribution's exact nonzeros, never changed."""

from __future__ import annotations

from .base import SparseMethod

__all__ = ["StaticMethod"]


class StaticMethod(SparseMethod):
    """The base behaviour unchanged: random init masks, no update steps, sparse gradients."""

    name = "static"
