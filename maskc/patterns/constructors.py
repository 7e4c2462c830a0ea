"""The DSL's constructors: one function per leaf or structural node, registered for the text form.

Example:
    >>> import maskc as mc
    >>> (mc.causal() & (mc.window(3) | mc.global_tokens(2))).text()
    'causal() & (window(3) | global_tokens(2))'
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from maskc.patterns.base import Pattern
from maskc.patterns.cells import RandomKeys
from maskc.patterns.indexset import to_numpy
from maskc.patterns.leaves import Causal, Cols, Full, GlobalTokens, Offsets, RingLocal, Rows, Stride, Sums, Window
from maskc.patterns.predicate import predicate as _predicate
from maskc.patterns.predicate import registered_predicate
from maskc.patterns.registry import constructor, register_constructor
from maskc.patterns.segments import Segments, lengths_from_ids
from maskc.patterns.structure import Batched, BlockLevel, Heads

_FULL, _CAUSAL = Full(), Causal()


@constructor
def full() -> Pattern:
    """Dense attention: every (i, j).

    Example:
        >>> import maskc as mc
        >>> int(mc.full().dense(3).sum())
        9
    """
    return _FULL


@constructor
def causal() -> Pattern:
    """Causal attention: j <= i.

    Example:
        >>> import maskc as mc
        >>> int(mc.causal().dense(4).sum())
        10
    """
    return _CAUSAL


@constructor
def window(left: int, right: int = 0) -> Pattern:
    """Relative band: -right <= i - j <= left (``window(w)`` is causal-side only).

    Example:
        >>> import maskc as mc
        >>> mc.window(1, 1).dense(3)[0].astype(int).tolist()
        [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    return Window(left, right)


@constructor
def ring_local(radius: int) -> Pattern:
    """Ring neighbourhood: circular distance of i and j (mod kv_len) <= radius.

    Example:
        >>> import maskc as mc
        >>> mc.ring_local(1).dense(4)[0, 0].astype(int).tolist()
        [1, 1, 0, 1]
    """
    return RingLocal(radius)


@constructor
def stride(period: int, phase: int = 0) -> Pattern:
    """Periodic: (i - j) mod period == phase, in both directions.

    Example:
        >>> import maskc as mc
        >>> mc.stride(2).dense(4)[0, 3].astype(int).tolist()
        [0, 1, 0, 1]
    """
    return Stride(period, phase)


@constructor
def offsets(seq: Any, symmetric: bool = False) -> Pattern:
    """Offsets from a set S: i - j in S (|i - j| in S when ``symmetric``).

    ``seq``: an int n (``range(n)``), a range, a list of ints and ranges, or a named
    sequence: 'primes', 'squares', 'mian_chowla', 'powers_of_two', 'mersenne',
    'fibonacci', 'twin_primes', 'prime_powers' (and any registered with
    ``register_sequence``).

    Example:
        >>> import maskc as mc
        >>> mc.offsets("primes").dense(8)[0, 7].nonzero()[0].tolist()
        [0, 2, 4, 5]
    """
    return Offsets(seq, symmetric)


@constructor
def sums(seq: Any) -> Pattern:
    """Hankel rule: i + j in S (an int, range, list or named sequence).

    Example:
        >>> import maskc as mc
        >>> mc.sums([3]).dense(4)[0].nonzero()[0].tolist()
        [0, 1, 2, 3]
    """
    return Sums(seq)


@constructor
def global_tokens(n_or_indices: Any) -> Pattern:
    """Global tokens: those rows attend every key and every query attends those columns.

    Example:
        >>> import maskc as mc
        >>> int(mc.global_tokens(1).dense(4).sum())
        7
    """
    return GlobalTokens(n_or_indices)


@constructor
def rows(indices: Any, shift: int = 0, period: int | None = None) -> Pattern:
    """Queries in a set: ``i + shift`` in S (``rows(n)``: the first n); with ``period``,
    ``(i + shift) mod period`` in S.

    Example:
        >>> import maskc as mc
        >>> int(mc.rows([0, 2]).dense(3).sum())
        6
    """
    return Rows(indices, shift, period)


@constructor
def cols(indices: Any, shift: int = 0, period: int | None = None) -> Pattern:
    """Keys in a set: ``j + shift`` in S (``cols(n)``: the first n); with ``period``,
    ``(j + shift) mod period`` in S.

    Example:
        >>> import maskc as mc
        >>> mc.cols("primes", shift=1).dense(6)[0, 0].nonzero()[0].tolist()
        [1, 2, 4]
    """
    return Cols(indices, shift, period)


@constructor
def segments(spec: Any = None, *, ids: Any = None) -> Pattern:
    """Segment (document) masking: allowed iff i and j lie in the same segment.

    ``spec``: segment lengths (a list or range; positions past their sum form one last
    segment) or ``'prime_gaps'``. ``ids``: segment ids instead, 1-D ``[N]`` or per batch
    element ``[B, N]`` (numpy, torch or lists), every id one contiguous run; ``[B, N]``
    gives a ``batched([...])`` pattern.

    Example:
        >>> import maskc as mc
        >>> mc.segments([2, 2]).dense(4)[0].astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
        >>> mc.segments(ids=[[0, 0, 1], [0, 1, 1]]).text()
        'batched([segments([2, 1]), segments([1, 2])])'
    """
    if (spec is None) == (ids is None):
        raise TypeError("segments takes segment lengths (or 'prime_gaps') or ids=..., exactly one of them")
    if spec is not None:
        return Segments(spec)
    a = to_numpy(ids)
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.ndim == 2:
        return Batched(Segments(lengths_from_ids(row, f"ids[{b}]")) for b, row in enumerate(a))
    return Segments(lengths_from_ids(a, "ids"))


@constructor
def heads(patterns: Iterable[Pattern]) -> Pattern:
    """One pattern per head.

    Example:
        >>> import maskc as mc
        >>> mc.heads([mc.causal(), mc.full()]).dense(2).sum(axis=(1, 2)).tolist()
        [3, 4]
    """
    return Heads(patterns)


@constructor
def batched(patterns: Iterable[Pattern]) -> Pattern:
    """One pattern per batch element (the batch analogue of :func:`heads`).

    Compiles to a layout with ``batch = len(patterns)``; ``for_batch(b)`` is element b.

    Example:
        >>> import maskc as mc
        >>> p = mc.causal() & mc.batched([mc.segments([1, 2]), mc.segments([3])])
        >>> p.n_batch, p.dense(3)[:, 0].sum(axis=(1, 2)).tolist()
        (2, [4, 6])
    """
    return Batched(patterns)


@constructor
def block_level(inner: Pattern, block: int) -> Pattern:
    """``inner.at_block_level(block)``: the rule applied to (i // block, j // block).

    Example:
        >>> import maskc as mc
        >>> mc.block_level(mc.window(0), 2).dense(4)[0].astype(int).tolist()[1]
        [1, 1, 0, 0]
    """
    return BlockLevel(inner, block)


@constructor
def random_keys(count: int, seed: int = 0, first: int = 0, recent: int = 0, symmetric: bool = False) -> Pattern:
    """Seeded random keys: query i draws ``count`` distinct keys from ``first <= j < i - recent``
    (all of them when there are fewer); ``symmetric`` adds the transposed pairs.

    Deterministic in ``(seed, i)``, independent of the lengths; generated as data (one
    numba kernel for every seed). Usually lifted to blocks, as in ``bigbird``.

    Example:
        >>> import maskc as mc
        >>> mc.random_keys(1, seed=5).dense(4)[0].sum(axis=1).tolist()
        [0, 1, 1, 1]
    """
    return RandomKeys(count, seed, first, recent, symmetric)


def _predicate_by_name(name: str, args: str = "") -> Pattern:
    return registered_predicate(name, args)


register_constructor("predicate", _predicate_by_name)
predicate = _predicate
