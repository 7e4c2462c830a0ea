"""Hypothesis strategies for testing code that uses maskc (and maskc itself).

``import maskc`` does not need hypothesis; this module imports it when a strategy is
first built, with a clear error if it is missing (``pip install hypothesis``).

* :func:`patterns`: random DSL expression trees over every leaf and combinator, with
  small parameters;
* :func:`lengths`: sequence lengths (ragged with respect to the usual blocks);
* :func:`layouts`: layouts compiled from random patterns, or built from random dense
  masks, with several heads and blocks 16 / 32 / 64;
* :func:`qkv`: random ``(q, k, v)`` float arrays [B, H, L, D], numpy or torch, never
  all zeros.

Example:
    >>> from hypothesis import given, settings
    >>> import maskc as mc
    >>> from maskc.testing import patterns, lengths
    >>> @settings(max_examples=5, deadline=None)
    ... @given(patterns(max_depth=2), lengths(max_len=40))
    ... def test_text_round_trip(p, n):
    ...     assert mc.parse(p.text()) == p
    >>> test_text_round_trip()
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import maskc.patterns.core as c
from maskc.compiler import compile as _compile
from maskc.ir.layout import Layout

#: Every leaf :func:`patterns` can draw.
LEAVES: tuple[str, ...] = (
    "full", "causal", "window", "ring_local", "stride", "offsets", "sums", "global_tokens",
    "rows", "cols", "segments", "block_level",
)
#: Sequence names offsets / sums draw from.
SEQUENCES: tuple[str, ...] = ("primes", "squares", "mian_chowla", "powers_of_two", "mersenne", "fibonacci",
                              "twin_primes", "prime_powers")


def _st():
    try:
        import hypothesis.strategies as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "maskc.testing needs hypothesis: pip install hypothesis (or maskc[dev])"
        ) from e
    return st


_PRED_CACHE: dict[str, Any] = {}


def _predicates() -> list:
    """A few numba predicates (compiled once, on first use)."""
    if not _PRED_CACHE:
        def mc_test_same_parity(i, j):
            return (i - j) % 2 == 0

        def mc_test_sum_mod3(i, j):
            return (i + j) % 3 == 0

        def mc_test_key_below_half(i, j):
            return 2 * j <= i

        for f in (mc_test_same_parity, mc_test_sum_mod3, mc_test_key_below_half):
            _PRED_CACHE[f.__name__] = c.predicate(f)
    return list(_PRED_CACHE.values())


def _leaf(name: str, st, allow_predicates: bool):
    small = st.integers(0, 6)
    idx_list = st.lists(st.integers(0, 40), min_size=1, max_size=5)
    seq = st.one_of(st.sampled_from(SEQUENCES), idx_list)
    if name == "full":
        return st.just(c.full())
    if name == "causal":
        return st.just(c.causal())
    if name == "window":
        return st.tuples(st.integers(-2, 8), st.integers(-2, 8)).filter(lambda t: t[0] + t[1] >= 0).map(
            lambda t: c.window(*t))
    if name == "ring_local":
        return small.map(c.ring_local)
    if name == "stride":
        return st.integers(1, 9).flatmap(lambda p: st.integers(0, p - 1).map(lambda ph: c.stride(p, ph)))
    if name == "offsets":
        signed = st.lists(st.integers(-20, 40), min_size=1, max_size=6)
        return st.one_of(st.tuples(seq, st.booleans()), st.tuples(signed, st.just(False))).map(
            lambda t: c.offsets(*t))
    if name == "sums":
        return seq.map(c.sums)
    if name == "global_tokens":
        return st.one_of(st.integers(1, 3), st.lists(st.integers(0, 30), min_size=1, max_size=3)).map(
            c.global_tokens)
    if name == "rows":
        return st.tuples(st.one_of(st.integers(1, 8), idx_list, st.sampled_from(SEQUENCES)), st.integers(0, 2)).map(
            lambda t: c.rows(*t))
    if name == "cols":
        return st.tuples(st.one_of(st.integers(1, 8), idx_list, st.sampled_from(SEQUENCES)), st.integers(0, 2)).map(
            lambda t: c.cols(*t))
    if name == "segments":
        return st.one_of(st.just(c.segments("prime_gaps")),
                         st.lists(st.integers(1, 20), min_size=1, max_size=4).map(c.segments))
    if name == "predicate":
        return st.sampled_from(_predicates()) if allow_predicates else st.nothing()
    raise ValueError(f"unknown leaf {name!r}; known: {', '.join(LEAVES)}")


def patterns(max_depth: int = 3, leaves: Sequence[str] | None = None, allow_predicates: bool = False,
             heads: int | None = None):
    """Strategy for random patterns: expression trees of leaves and ``| & ~ -`` (and
    ``block_level``) up to ``max_depth`` levels of combinators.

    Args:
        max_depth: deepest nesting of combinators (0 = leaves only).
        leaves: leaf names to draw from (default :data:`LEAVES`); ``"predicate"``
            is added when ``allow_predicates``.
        allow_predicates: also draw numba predicate leaves (compiles them once).
        heads: when given, wrap ``heads`` independent trees in ``heads([...])``.

    Example:
        >>> from maskc.testing import patterns
        >>> p = patterns(max_depth=1, leaves=["causal", "window"]).example()
        >>> p.text()  # doctest: +SKIP
        'causal() & window(3)'
    """
    st = _st()
    names = list(leaves if leaves is not None else LEAVES)
    if allow_predicates and "predicate" not in names:
        names.append("predicate")
    bad = [n for n in names if n not in LEAVES and n != "predicate"]
    if bad:
        raise ValueError(f"unknown leaves {bad}; known: {', '.join(LEAVES)}, predicate")
    plain = [n for n in names if n != "block_level"]
    if not plain:
        raise ValueError("patterns() needs at least one leaf other than block_level")
    base = st.one_of(*[_leaf(n, st, allow_predicates) for n in plain])

    def extend(children):
        ops = [
            st.tuples(children, children).map(lambda t: t[0] | t[1]),
            st.tuples(children, children).map(lambda t: t[0] & t[1]),
            st.tuples(children, children).map(lambda t: t[0] - t[1]),
            children.map(lambda a: ~a),
        ]
        if "block_level" in names:
            ops.append(st.tuples(children, st.integers(1, 8)).map(lambda t: t[0].at_block_level(t[1])))
        return st.one_of(*ops)

    tree = base
    for _ in range(max(int(max_depth), 0)):
        tree = st.one_of(base, extend(tree))
    if heads:
        return st.lists(tree, min_size=heads, max_size=heads).map(c.heads)
    return tree


def lengths(min_len: int = 1, max_len: int = 300):
    """Strategy for sequence lengths in ``[min_len, max_len]``, biased to ragged sizes
    (not multiples of 16) and to the edges.

    Example:
        >>> from maskc.testing import lengths
        >>> 1 <= lengths(max_len=50).example() <= 50
        True
    """
    st = _st()
    if min_len < 1 or max_len < min_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    return st.one_of(
        st.integers(min_len, max_len),
        st.sampled_from(sorted({min_len, max_len, max(min_len, min(max_len, 17)), max(min_len, min(max_len, 63))})),
    )


def layouts(patterns_=None, *, q_len=None, kv_len=None, heads=(1, 3), blocks=(16, 32, 64), square: bool = False,
            dense_masks: bool = True, density: tuple[float, float] = (0.0, 1.0)):
    """Strategy for :class:`~maskc.Layout` objects.

    Each example is compiled from a random pattern (``patterns_``, default
    ``patterns(max_depth=2)``), or (when ``dense_masks``) built with
    :meth:`Layout.from_dense` from a random boolean mask.

    Args:
        q_len, kv_len: strategies (or ints) for the lengths; default :func:`lengths`
            up to 200; kv_len defaults to a separate draw unless ``square``.
        heads: (min, max) stored heads.
        blocks: block sizes to draw (square or rectangular pairs of them).
        density: range of the probability of True in random dense masks.

    Example:
        >>> from maskc.testing import layouts
        >>> lay = layouts(q_len=40, square=True).example()
        >>> lay.q_len == lay.kv_len == 40
        True
    """
    st = _st()

    pats = patterns_ if patterns_ is not None else patterns(max_depth=2)
    ql = _as_strategy(q_len, lengths(max_len=200))
    kl = _as_strategy(kv_len, lengths(max_len=200))
    blk = st.one_of(st.sampled_from(list(blocks)), st.tuples(st.sampled_from(list(blocks)), st.sampled_from(list(blocks))))

    @st.composite
    def build(draw):
        q = draw(ql)
        k = q if square or (kv_len is None and draw(st.booleans())) else draw(kl)
        H = draw(st.integers(heads[0], heads[1]))
        b = draw(blk)
        if dense_masks and draw(st.booleans()):
            seed = draw(st.integers(0, 2**32 - 1))
            p = draw(st.floats(density[0], density[1]))
            rng = np.random.default_rng(seed)
            mask = rng.random((H, q, k)) < p
            return Layout.from_dense(mask, b, pattern_text="")
        ps = [draw(pats) for _ in range(H)]
        pat = ps[0] if H == 1 else c.heads(ps)
        return _compile(pat, q, k, block=b)

    return build()


def _as_strategy(v, default):
    st = _st()
    if v is None:
        return default
    if isinstance(v, int):
        return st.just(v)
    return v


def qkv(batch=(1, 2), heads=(1, 3), q_len=None, kv_len=None, head_dim=(4, 8, 16), kv_heads: int | None = None,
        library: str = "numpy", dtype: str = "float32", scale: float = 1.0):
    """Strategy for ``(q, k, v)``: random normal arrays, q [B, H, Lq, D], k / v [B, Hkv, Lk, D].

    Values come from a seeded normal generator (times ``scale``), so they are never
    all zeros. ``library`` is ``"numpy"`` or ``"torch"`` (CPU tensors); ``dtype`` a
    name such as ``"float32"``, ``"float64"``, ``"bfloat16"`` (torch only).
    ``q_len`` / ``kv_len`` are ints or strategies (default :func:`lengths` up to 64;
    kv_len equals q_len unless given). ``kv_heads`` gives GQA (query head counts are drawn as its multiples).

    Example:
        >>> from maskc.testing import qkv
        >>> q, k, v = qkv(batch=1, heads=2, q_len=5, head_dim=4).example()
        >>> q.shape, bool(abs(q).sum() > 0)
        ((1, 2, 5, 4), True)
    """
    st = _st()
    if library not in ("numpy", "torch"):
        raise ValueError(f"library must be 'numpy' or 'torch', got {library!r}")
    bs = _int_choice(batch, st)
    hs = _int_choice(heads, st)
    if kv_heads is not None:
        if kv_heads < 1:
            raise ValueError(f"kv_heads must be >= 1, got {kv_heads}")
        if isinstance(heads, int) or (isinstance(heads, tuple) and len(heads) == 2):
            lo, hi = (heads, heads) if isinstance(heads, int) else heads
            g_lo, g_hi = -(-lo // kv_heads), hi // kv_heads
            if g_lo > g_hi or g_hi < 1:
                raise ValueError(f"heads={heads!r} holds no multiple of kv_heads={kv_heads} (query heads must be "
                                 f"a multiple of kv heads)")
            hs = st.integers(max(g_lo, 1), g_hi).map(lambda g: g * kv_heads)  # drawn directly, never filtered
        else:
            hs = hs.filter(lambda h: h % kv_heads == 0)  # a user strategy: keep its multiples
    ds = st.sampled_from(list(head_dim)) if isinstance(head_dim, (tuple, list)) else _as_strategy(head_dim, None)
    ql = _as_strategy(q_len, lengths(max_len=64))

    @st.composite
    def build(draw):
        B, H, D = draw(bs), draw(hs), draw(ds)
        Lq = draw(ql)
        Lk = Lq if kv_len is None else draw(_as_strategy(kv_len, None))
        Hk = H if kv_heads is None else kv_heads
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        arrs = [rng.standard_normal(s) * scale for s in ((B, H, Lq, D), (B, Hk, Lk, D), (B, Hk, Lk, D))]
        for a in arrs:
            if not np.any(a):  # pragma: no cover - a normal draw is never all zeros
                a.flat[0] = 1.0
        if library == "numpy":
            return tuple(a.astype(dtype) for a in arrs)
        import torch

        return tuple(torch.from_numpy(a).to(getattr(torch, dtype)) for a in arrs)

    return build()


def _int_choice(v, st):
    if isinstance(v, int):
        return st.just(v)
    if isinstance(v, tuple) and len(v) == 2:
        return st.integers(v[0], v[1])
    return v
