"""The "Bird" patterns of PrimeAttention.jl: globals, a window and sequence offsets, causal.

Rule, with d = i - j: ``j <= i`` and (``j < global_tokens`` or ``0 <= d <= window`` or
``d`` in the sequence with ``d <= cap``). Keys are a set: a key allowed by several rules
counts once (the original kernel counted overlaps twice). ``cap=None`` means no cap;
the original capped at its ``seq_len_max = 4096``. The globals are columns only: under
causality global rows would add nothing (a row i < G already sees every j <= i < G).

Example:
    >>> from maskc.patterns.library import prime_bird
    >>> prime_bird().dense(12)[0, 11].nonzero()[0].tolist()   # j < 2, 8 <= j <= 11, 11 - j prime
    [0, 1, 4, 6, 8, 9, 10, 11]
"""

from __future__ import annotations

from maskc.limits import check_int
from maskc.patterns.constructors import causal, cols, offsets, window
from maskc.patterns.registry import library_pattern
from maskc.patterns.structure import Named


def _bird(name: str, seq: str, window_: int, global_tokens_: int, cap: int | None) -> Named:
    w = check_int(window_, f"{name}: window", 0)
    g = check_int(global_tokens_, f"{name}: global_tokens", 0)
    c = None if cap is None else check_int(cap, f"{name}: cap", 0)
    offs = offsets(seq) if c is None else offsets(seq) & window(c)
    local = window(w) | offs
    body = causal() & (local | cols(g) if g else local)
    return Named(name, {"window": w, "global_tokens": g, "cap": c}, body)


@library_pattern("bird")
def prime_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """PrimeSelfAttention's mask: causal union of global columns, a window and prime offsets.

    Keys per row: ~ pi(i) + window + 1 + global_tokens ≈ i / ln i (total ≈ N² / (2 ln N),
    not O(N log N)).

    Example:
        >>> prime_bird(window=1, global_tokens=1).dense(8)[0, 7].nonzero()[0].tolist()
        [0, 2, 4, 5, 6, 7]
    """
    return _bird("prime_bird", "primes", window, global_tokens, cap)


@library_pattern("bird")
def square_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """SquareSelfAttention's mask: global columns, a window and square offsets n², n >= 1.

    Keys per row: ~ floor(sqrt(i)) + window + 1 + global_tokens ≈ sqrt(i).

    Example:
        >>> square_bird(window=0, global_tokens=0).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 5, 8, 9]
    """
    return _bird("square_bird", "squares", window, global_tokens, cap)


@library_pattern("bird")
def mian_chowla_bird(window: int = 3, global_tokens: int = 2, cap: int | None = None) -> Named:
    """MianChowlaSelfAttention's mask: global columns, a window and Mian-Chowla offsets.

    The Mian-Chowla sequence 1, 2, 4, 8, 13, 21, 31, 45, 66, ... is the greedy Sidon set
    (all pairwise differences distinct).

    Keys per row: ~ #{terms <= i} + window + 1 + global_tokens ≈ i^0.39 (measured:
    27 terms <= 1,000, 66 <= 10,000, 161 <= 100,000).

    Example:
        >>> mian_chowla_bird(window=0, global_tokens=0).dense(14)[0, 13].nonzero()[0].tolist()
        [0, 5, 9, 11, 12, 13]
    """
    return _bird("mian_chowla_bird", "mian_chowla", window, global_tokens, cap)
