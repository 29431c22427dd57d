"""Top-k / bottom-k selection with deterministic ties, and the paper's memory-bounded chunked top-k.

Rank order is a total order: a larger score ranks higher (for bottom-k, a smaller one), and between
equal scores the lower flat index wins. Every function returns the selected flat indices (int64) in
that rank order, so exact and chunked selection can be compared element for element.

`chunked_topk_indices` is the memory-bounded variant of RigL (Sec. 3 (4)): the scores are streamed
in chunks of M entries (a tensor is read through views; an iterable of tensors, e.g. a generator
computing |gradient| piece by piece, is consumed lazily so the full score tensor never has to
exist), and a running set of at most k (score, index) pairs is merged with each chunk. Extra memory
is O(M + k) whatever the total length. Because chunks arrive in increasing index order, an entry
equal to the running set's worst score loses the tie and is skipped before the merge.

NaN scores have no rank and raise ValueError (callers check finiteness first); ±inf are ordinary.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch

__all__ = ["topk_indices", "bottomk_indices", "chunked_topk_indices"]


def _check_k(k: int) -> int:
    if int(k) != k or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return int(k)


def _check_no_nan(values: torch.Tensor) -> None:
    if values.is_floating_point() and bool(torch.isnan(values).any()):
        raise ValueError("scores contain NaN; top-k needs comparable scores")


def _keep_mask(values: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Bool mask over 1-d `values` keeping the k best by rank; among equal scores, earlier entries win."""
    n = values.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=values.device)
    if k == 0:
        return torch.zeros(n, dtype=torch.bool, device=values.device)
    kth = torch.topk(values, k, largest=largest, sorted=False).values
    threshold = kth.min() if largest else kth.max()
    keep = values > threshold if largest else values < threshold
    need = k - int(keep.sum())
    ties = torch.nonzero(values == threshold).squeeze(1)[:need]   # ascending entry order
    keep[ties] = True
    return keep


def _rank_order(values: torch.Tensor, positions: torch.Tensor, largest: bool) -> torch.Tensor:
    """Positions (ascending on entry) re-ordered by rank; the stable sort keeps lower indices first in ties."""
    order = torch.sort(values, descending=largest, stable=True).indices
    return positions[order]


def _select(scores: torch.Tensor, k: int, candidates: torch.Tensor | None, largest: bool) -> torch.Tensor:
    k = _check_k(k)
    flat = scores.reshape(-1)
    if candidates is not None:
        if candidates.numel() != flat.numel():
            raise ValueError(f"candidates has {candidates.numel()} entries, scores have {flat.numel()}")
        if candidates.dtype != torch.bool:
            raise TypeError(f"candidates must be a bool tensor, got {candidates.dtype}")
        positions = torch.nonzero(candidates.reshape(-1)).squeeze(1)
        values = flat[positions]
    else:
        positions, values = None, flat
    if k > values.numel():
        raise ValueError(f"k = {k} exceeds the {values.numel()} candidate entries")
    _check_no_nan(values)
    kept = torch.nonzero(_keep_mask(values, k, largest)).squeeze(1)
    chosen = kept if positions is None else positions[kept]
    return _rank_order(values[kept], chosen, largest)


def topk_indices(scores: torch.Tensor, k: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Flat indices of the k largest scores among `candidates` (bool, same numel; None: all entries).

    Ties: the lower flat index wins. Returned in rank order (score descending, then index ascending).
    """
    return _select(scores, k, candidates, largest=True)


def bottomk_indices(scores: torch.Tensor, k: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Flat indices of the k smallest scores among `candidates` (e.g. drop by |θ| among active).

    Ties: the lower flat index wins. Returned in rank order (score ascending, then index ascending).
    """
    return _select(scores, k, candidates, largest=False)


def _chunks(scores: torch.Tensor | Iterable[torch.Tensor], chunk_elements: int) -> Iterator[torch.Tensor]:
    """1-d pieces of at most chunk_elements entries, in flat order (views when the source allows)."""
    sources = (scores,) if isinstance(scores, torch.Tensor) else scores
    for src in sources:
        flat = src.reshape(-1)
        for start in range(0, flat.numel(), chunk_elements):
            yield flat[start:start + chunk_elements]


def chunked_topk_indices(scores_iter_or_tensor: torch.Tensor | Iterable[torch.Tensor], k: int,
                         chunk_elements: int, candidates: torch.Tensor | None = None,
                         largest: bool = True) -> torch.Tensor:
    """Memory-bounded top-k (bottom-k with largest=False): stream the flat scores in chunks of M entries.

    scores_iter_or_tensor: a tensor, or an iterable of tensors whose concatenated flat entries are
    the scores (consumed once, lazily). candidates: optional bool tensor over all entries (a mask
    that exists anyway). Equals `topk_indices` / `bottomk_indices` exactly, ties included.
    Extra memory: O(chunk_elements + k).
    """
    k = _check_k(k)
    m = int(chunk_elements)
    if m != chunk_elements or m <= 0:
        raise ValueError(f"chunk_elements must be a positive integer, got {chunk_elements!r}")
    cand_flat = None if candidates is None else candidates.reshape(-1)
    if cand_flat is not None and cand_flat.dtype != torch.bool:
        raise TypeError(f"candidates must be a bool tensor, got {cand_flat.dtype}")
    run_values: torch.Tensor | None = None
    run_positions: torch.Tensor | None = None
    offset = 0
    for chunk in _chunks(scores_iter_or_tensor, m):
        n = chunk.numel()
        if cand_flat is not None and offset + n > cand_flat.numel():
            raise ValueError(f"scores are longer than candidates ({cand_flat.numel()} entries)")
        _check_no_nan(chunk)
        select = None if cand_flat is None else cand_flat[offset:offset + n]
        if run_values is not None and run_values.numel() == k and k > 0:
            # only entries strictly better than the running worst can enter (they come later: ties lose)
            worst = run_values.min() if largest else run_values.max()
            better = chunk > worst if largest else chunk < worst
            select = better if select is None else better & select
        if select is None:
            local, values = None, chunk
        else:
            local = torch.nonzero(select).squeeze(1)
            values = chunk[local]
        # the chunk's own best k first (O(M) bools), so the merge below handles at most 2k entries
        best = torch.nonzero(_keep_mask(values, k, largest)).squeeze(1)
        positions = (best if local is None else local[best]) + offset
        values = values[best]
        if run_values is None or run_positions is None:
            merged_v, merged_p = values, positions
        else:
            merged_v, merged_p = torch.cat((run_values, values)), torch.cat((run_positions, positions))
        keep = _keep_mask(merged_v, k, largest)   # entries are in ascending position order
        run_values, run_positions = merged_v[keep], merged_p[keep]
        offset += n
    if cand_flat is not None and offset != cand_flat.numel():
        raise ValueError(f"scores have {offset} entries, candidates {cand_flat.numel()}")
    if run_values is None or run_positions is None:
        if k > 0:
            raise ValueError(f"k = {k} exceeds the 0 candidate entries")
        return torch.zeros(0, dtype=torch.int64)
    if run_values.numel() < k:
        raise ValueError(f"k = {k} exceeds the {run_values.numel()} candidate entries")
    return _rank_order(run_values, run_positions, largest)
