"""Top-k / bottom-k: deterministic ties, chunked == exact, and the chunked variant's measured memory."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from rigl_hw.topk import bottomk_indices, chunked_topk_indices, topk_indices


def reference(values, k, candidates=None, largest=True):
    """Brute force: sort (score, index) pairs; larger (smaller) score first, then lower index."""
    items = [(v, i) for i, v in enumerate(values) if candidates is None or candidates[i]]
    items.sort(key=lambda p: ((-p[0] if largest else p[0]), p[1]))
    return [i for _, i in items[:k]]


# --- hand-worked cases ---------------------------------------------------------------------------
def test_ties_lower_index_wins():
    s = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.0])
    assert topk_indices(s, 2).tolist() == [1, 2]
    assert topk_indices(s, 3).tolist() == [1, 2, 4]
    assert topk_indices(s, 4).tolist() == [1, 2, 4, 3]
    assert bottomk_indices(s, 2).tolist() == [5, 0]
    ones = torch.ones(7)
    assert topk_indices(ones, 3).tolist() == [0, 1, 2]
    assert bottomk_indices(ones, 3).tolist() == [0, 1, 2]


def test_candidates_restrict_selection():
    s = torch.tensor([[9.0, 1.0, 5.0], [5.0, 7.0, 0.5]])
    cand = torch.tensor([[False, True, True], [True, False, True]])
    assert topk_indices(s, 2, cand).tolist() == [2, 3]          # 9 and 7 are not candidates; 5 = 5: index 2 first
    assert bottomk_indices(s, 2, cand).tolist() == [5, 1]
    assert chunked_topk_indices(s, 2, 2, cand).tolist() == [2, 3]
    assert chunked_topk_indices(s, 2, 4, cand, largest=False).tolist() == [5, 1]


def test_signed_zero_and_infinities_rank_as_numbers():
    s = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 0.0])
    assert topk_indices(s, 4).tolist() == [2, 0, 1, 4]
    assert bottomk_indices(s, 2).tolist() == [3, 0]
    assert chunked_topk_indices(s, 4, 2).tolist() == [2, 0, 1, 4]


def test_k_zero_and_bad_inputs():
    s = torch.arange(5.0)
    assert topk_indices(s, 0).numel() == 0
    assert chunked_topk_indices(s, 0, 2).numel() == 0
    with pytest.raises(ValueError, match="exceeds"):
        topk_indices(s, 3, s > 2.5)
    with pytest.raises(ValueError, match="exceeds"):
        chunked_topk_indices(s, 3, 2, s > 2.5)
    with pytest.raises(ValueError, match="NaN"):
        topk_indices(torch.tensor([1.0, float("nan")]), 1)
    with pytest.raises(ValueError, match="NaN"):
        chunked_topk_indices(torch.tensor([1.0, float("nan")]), 1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        topk_indices(s, -1)
    with pytest.raises(ValueError, match="chunk_elements"):
        chunked_topk_indices(s, 1, 0)
    with pytest.raises(ValueError, match="candidates"):
        chunked_topk_indices(s, 1, 2, torch.ones(4, dtype=torch.bool))


# --- properties ----------------------------------------------------------------------------------
@st.composite
def selection_case(draw, tie_free: bool):
    if tie_free:
        values = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=200,
                               unique=True))
    else:
        values = draw(st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=200))
    use_cand = draw(st.booleans())
    cand = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))) if use_cand else None
    n_cand = len(values) if cand is None else sum(cand)
    k = draw(st.integers(0, n_cand))
    chunk = draw(st.integers(1, len(values) + 3))
    split = draw(st.lists(st.integers(0, len(values)), max_size=4))
    return values, cand, k, chunk, sorted(split)


def _check_case(values, cand, k, chunk, split):
    s = torch.tensor(values, dtype=torch.float32)
    c = None if cand is None else torch.tensor(cand, dtype=torch.bool)
    vals32 = s.tolist()
    for largest, exact_fn in ((True, topk_indices), (False, bottomk_indices)):
        want = reference(vals32, k, cand, largest)
        assert exact_fn(s, k, c).tolist() == want
        assert chunked_topk_indices(s, k, chunk, c, largest=largest).tolist() == want
        # the same scores fed as a lazy stream of uneven pieces
        bounds = [0, *split, len(values)]
        pieces = (s[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        assert chunked_topk_indices(pieces, k, chunk, c, largest=largest).tolist() == want


@settings(max_examples=150, deadline=None)
@given(selection_case(tie_free=True))
def test_chunked_equals_exact_tie_free(case):
    _check_case(*case)


@settings(max_examples=150, deadline=None)
@given(selection_case(tie_free=False))
def test_chunked_equals_exact_with_ties(case):
    _check_case(*case)


def test_chunked_equals_exact_large_with_ties():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 50, (10_000,), generator=g).float().reshape(100, 100)
    cand = torch.rand(100, 100, generator=g) < 0.7
    for k in (1, 37, 500, int(cand.sum())):
        assert torch.equal(chunked_topk_indices(s, k, 333, cand), topk_indices(s, k, cand))
        assert torch.equal(chunked_topk_indices(s, k, 97, cand, largest=False), bottomk_indices(s, k, cand))


# --- memory ----------------------------------------------------------------------------------------
class LiveStorageTracker(TorchDispatchMode):
    """Measures tensor memory allocated by torch ops while active.

    Every op output whose storage is new (not shared with an input: views and in-place results are
    skipped) is tracked with a storage weak reference until it is freed. `peak_bytes` is the
    largest total of live tracked storages seen after any op; `largest_numel` the largest single
    new tensor. Memory that existed before (the caller's score tensor) is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak_bytes = 0
        self.largest_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.live = {p: v for p, v in self.live.items() if not v[0].expired()}
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if storage.nbytes() and ptr not in inputs and ptr not in self.live:
                self.live[ptr] = (StorageWeakRef(storage), storage.nbytes())
                self.largest_numel = max(self.largest_numel, t.numel())
        self.peak_bytes = max(self.peak_bytes, sum(n for _, n in self.live.values()))
        return out


def _stream(n_chunks: int, m: int, seed: int):
    """float32 scores generated chunk by chunk: the full tensor never exists."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_chunks):
        yield torch.rand(m, generator=g)


# Per (M + k) entries the chunked top-k holds a score (4 B), an int64 index (8 B) and a few bool
# masks, for the chunk and for the running set and its merge: a small constant, whatever N is.
BYTES_PER_ENTRY = 48


@pytest.mark.parametrize("m, k, with_candidates", [(4096, 64, False), (4096, 64, True), (1024, 200, True),
                                                   (1000, 1000, False)])
def test_chunked_peak_memory_is_O_M_plus_k(m, k, with_candidates):
    n_chunks = 64
    cand = (torch.rand(n_chunks * m, generator=torch.Generator().manual_seed(3)) < 0.6
            if with_candidates else None)
    with LiveStorageTracker() as tracker:
        idx = chunked_topk_indices(_stream(n_chunks, m, 1), k, m, cand)
    full = torch.cat(list(_stream(n_chunks, m, 1)))   # only to check the answer, outside the measurement
    assert torch.equal(idx, topk_indices(full, k, cand))
    assert tracker.peak_bytes <= BYTES_PER_ENTRY * (m + k), (tracker.peak_bytes, m + k)
    assert tracker.largest_numel <= m + k
    # sanity: the same tracker sees O(N) memory when the exact top-k scans the full tensor
    with LiveStorageTracker() as exact_tracker:
        topk_indices(full, k, cand)
    assert exact_tracker.peak_bytes >= full.numel()


def test_chunked_peak_memory_does_not_grow_with_length():
    m, k = 1024, 200
    peaks = []
    for n_chunks in (8, 64, 512):
        with LiveStorageTracker() as tracker:
            chunked_topk_indices(_stream(n_chunks, m, 2), k, m)
        peaks.append(tracker.peak_bytes)
    assert max(peaks) <= BYTES_PER_ENTRY * (m + k)
    assert max(peaks) <= 1.25 * min(peaks)   # 64x more scores, the same memory
