"""Which rank owns which query block: balancing computed blocks, keeping sequences contiguous.

A rank owns token *blocks* (``block`` consecutive positions, for queries and keys alike).
Every strategy cuts the ``n`` blocks into ``c`` contiguous chunks of near-equal size
(sizes differ by at most one block) and gives each rank the same number of chunks, so the
ranks hold near-equal numbers of tokens. They differ in how chunks are dealt:

* ``"contiguous"``: ``P`` chunks, chunk ``r`` to rank ``r`` (neighbour-only traffic for
  local patterns; unbalanced for causal masks, where later rows read more keys).
* ``"zigzag"``: ``2P`` chunks, rank ``r`` gets chunks ``r`` and ``2P - 1 - r`` (an early
  and a late chunk: exactly balanced for a causal mask).
* ``"lpt"``: ``m * P`` chunks dealt by the longest-processing-time rule with a
  cardinality limit: heaviest chunk first, each to the least loaded rank that has fewer
  than ``m`` chunks.

``"auto"`` (:func:`choose_owner`) tries them all (contiguous, zigzag, then lpt with
m = 2, 4, ..., 64) and keeps the one with the lowest busiest-rank cost, ``computed blocks +
comm_weight * received key/value blocks``: finer chunks balance compute better but cut the
sequence in more places, so more key blocks live on another rank. The work per block row
is its number of computed blocks summed over the layout's stored slices.

Example:
    >>> import numpy as np
    >>> from maskc.distributed.assign import owner_of_blocks
    >>> owner_of_blocks("zigzag", np.arange(1, 9), 2).tolist()
    [0, 0, 1, 1, 1, 1, 0, 0]
    >>> owner_of_blocks("contiguous", np.arange(1, 9), 2).tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
"""

from __future__ import annotations

import heapq
from typing import Callable

import numpy as np

STRATEGIES = ("auto", "contiguous", "zigzag", "lpt")


def chunk_starts(n: int, c: int) -> np.ndarray:
    """Start block of each of ``c`` near-equal contiguous chunks of ``n`` blocks, plus ``n``.

    Example:
        >>> chunk_starts(10, 4).tolist()
        [0, 2, 5, 7, 10]
    """
    return (np.arange(c + 1, dtype=np.int64) * n) // c


def _lpt(chunk_weight: np.ndarray, world_size: int, per_rank: int) -> np.ndarray:
    """Rank of every chunk: heaviest first, to the least loaded rank with room left."""
    order = np.argsort(-chunk_weight, kind="stable")
    heap = [(0, r) for r in range(world_size)]
    taken = np.zeros(world_size, dtype=np.int64)
    out = np.empty(len(chunk_weight), dtype=np.int32)
    for c in order.tolist():
        load, r = heapq.heappop(heap)
        out[c] = r
        taken[r] += 1
        if taken[r] < per_rank:
            heapq.heappush(heap, (load + int(chunk_weight[c]), r))
    return out


def owner_of_blocks(strategy: str, weight: np.ndarray, world_size: int, chunks_per_rank: int = 2) -> np.ndarray:
    """Owning rank (int32) of every block under one strategy (see the module docstring).

    ``weight[t]`` is the work of block row ``t``. Raises ValueError for an unknown strategy
    or when there are fewer blocks than chunks.
    """
    n = len(weight)
    if strategy == "contiguous":
        c, deal = world_size, np.arange(world_size, dtype=np.int32)
    elif strategy == "zigzag":
        c = 2 * world_size
        half = np.arange(world_size, dtype=np.int32)
        deal = np.concatenate([half, half[::-1]])
    elif strategy == "lpt":
        c, deal = chunks_per_rank * world_size, None
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if c > n:
        raise ValueError(
            f"strategy {strategy!r} cuts the sequence into {c} chunks but it has only {n} blocks; "
            "use fewer ranks, fewer chunks per rank, or a smaller block"
        )
    starts = chunk_starts(n, c)
    if deal is None:
        cw = np.add.reduceat(np.asarray(weight, dtype=np.int64), starts[:-1]) if n else np.zeros(0, np.int64)
        deal = _lpt(cw, world_size, chunks_per_rank)
    return np.repeat(deal, np.diff(starts)).astype(np.int32)


def imbalance(owner: np.ndarray, weight: np.ndarray, world_size: int) -> float:
    """max / mean of the per-rank work (1.0 when there is no work).

    Example:
        >>> imbalance(np.array([0, 0, 1, 1]), np.array([1, 2, 3, 4]), 2)
        1.4
    """
    loads = np.bincount(owner, weights=weight, minlength=world_size)
    mean = loads.mean()
    return float(loads.max() / mean) if mean > 0 else 1.0


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` by an in-place sort of ``a`` (numpy's hash-based unique is ~10x slower on millions of keys)."""
    a.sort()
    keep = np.ones(len(a), bool)
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


#: Largest marker array (booleans) :func:`unique_codes` allocates instead of sorting.
MARKER_LIMIT: int = 1 << 27


def unique_codes(codes: np.ndarray, size: int) -> np.ndarray:
    """Sorted distinct values of ``codes`` (all in ``[0, size)``): a marker array when small, else a sort."""
    if size <= min(MARKER_LIMIT, 16 * len(codes) + (1 << 16)):
        mark = np.zeros(size, bool)
        mark[codes] = True
        return np.flatnonzero(mark)
    return sorted_unique(np.array(codes, np.int64))


class ChunkReads:
    """The distinct (chunk, group, key block) reads of a fine chunking, computed once.

    Every candidate of :func:`candidates` cuts the sequence into ``c`` chunks with ``c``
    dividing the finest count, so its chunks are unions of fine chunks and its owner is
    constant on each: the received blocks of any candidate follow from these reads alone,
    without going back to every block of the layout.

    Example:
        >>> import numpy as np
        >>> reads = ChunkReads(np.array([2, 3, 3]), np.array([1, 0, 1]), np.zeros(3, np.int64), 4, 1, 4)
        >>> reads.received(np.array([0, 0, 1, 1]), 2).tolist()
        [0, 2]
    """

    def __init__(self, qb: np.ndarray, kb: np.ndarray, grp: np.ndarray, n: int, groups: int, chunks: int):
        self.n, self.groups, self.starts = n, groups, chunk_starts(n, chunks)
        fine = np.repeat(np.arange(chunks, dtype=np.int64), np.diff(self.starts))[qb]
        u = unique_codes((fine * groups + grp) * n + kb, chunks * groups * n)
        self.chunk, rest = np.divmod(u, groups * n)
        self.group, self.kb = np.divmod(rest, n)

    def received(self, owner: np.ndarray, world_size: int) -> np.ndarray:
        """Distinct (group, key block) units every rank receives under ``owner``: int64 [P]."""
        G, n = self.groups, self.n
        dst = owner[self.starts[:-1]][self.chunk].astype(np.int64)
        cross = dst != owner[self.kb]
        u = unique_codes((dst[cross] * G + self.group[cross]) * n + self.kb[cross], world_size * G * n)
        return np.bincount(u // (G * n), minlength=world_size).astype(np.int64)


#: Finest chunking "auto" tries (chunks per rank); finer only adds chunk boundaries.
MAX_CHUNKS_PER_RANK: int = 64


def candidates(n: int, world_size: int) -> list[tuple[str, int]]:
    """``(strategy, chunks_per_rank)`` pairs that fit ``n`` blocks, from coarse to fine."""
    out = [("contiguous", 1)]
    if 2 * world_size <= n:
        out.append(("zigzag", 2))
    m = 2
    while m * world_size <= n and m <= MAX_CHUNKS_PER_RANK:
        out.append(("lpt", m))
        m *= 2
    return out


CostFn = Callable[[np.ndarray, int], np.ndarray]


def choose_owner(weight: np.ndarray, world_size: int, strategy: str = "auto", chunks_per_rank: int | None = None,
                 received: CostFn | None = None, comm_weight: float = 1.0) -> tuple[np.ndarray, str, int, list]:
    """``(owner, strategy, chunks_per_rank, scores)`` for the requested or the automatic strategy.

    ``"auto"`` scores every candidate by ``max over ranks of (computed blocks + comm_weight *
    received key blocks)`` (``received(owner, P)`` gives the per-rank received blocks; without
    it only computed blocks count) and keeps the lowest, the coarser on ties. ``scores``
    lists ``(strategy, chunks_per_rank, score, imbalance)`` for every candidate tried.

    Example:
        >>> import numpy as np
        >>> owner, name, m, _ = choose_owner(np.arange(1, 17), 4)   # causal-like: later rows weigh more
        >>> name, m, imbalance(owner, np.arange(1, 17), 4)
        ('zigzag', 2, 1.0)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "auto":
        m = {"contiguous": 1, "zigzag": 2}.get(strategy, chunks_per_rank or max(1, min(2, len(weight) // world_size)))
        return owner_of_blocks(strategy, weight, world_size, m), strategy, m, []
    best, scores = None, []
    for name, m in candidates(len(weight), world_size):
        owner = owner_of_blocks(name, weight, world_size, m)
        cost = np.bincount(owner, weights=weight, minlength=world_size)
        if received is not None:
            cost = cost + comm_weight * received(owner, world_size)
        score = float(cost.max())
        scores.append((name, m, score, imbalance(owner, weight, world_size)))
        if best is None or score < best[0]:
            best = (score, owner, name, m)
    return best[1], best[2], best[3], scores
