"""πAttention's components: the ring-local band and the π-step jumps (d = i - j, π the period).

Example:
    >>> from maskc.patterns.library import pi_attention_union
    >>> pi_attention_union(r=1, period=4).dense(9)[0, 0].nonzero()[0].tolist()
    [0, 1, 4, 8]
"""

from __future__ import annotations

from maskc.limits import MAX_INT, check_int
from maskc.patterns.base import check_bool
from maskc.patterns.constructors import causal as _causal
from maskc.patterns.constructors import offsets, ring_local, stride, window
from maskc.patterns.registry import library_pattern
from maskc.patterns.structure import Named

#: The π-step variants, see :func:`pi_step`.
PI_STEP_VARIANTS = ("all", "bounded", "doubling")


@library_pattern("pi", gallery={"r": 8}, aliases=("ring_local_pattern",))
def pi_ring(r: int = 32, causal: bool = False) -> Named:
    """πAttention's ring-local component.

    Non-causal (the original): ``min(|i - j| mod N, N - |i - j| mod N) <= r`` with
    ``N = kv_len``: a band of radius ``r`` that wraps around the ends. Causal form:
    ``0 <= d <= r`` (no wrap: wrapping would look at the future).

    Keys per row: min(2r + 1, N) non-causal; min(r, i) + 1 causal.

    Example:
        >>> pi_ring(r=1).dense(6)[0, 0].nonzero()[0].tolist()
        [0, 1, 5]
        >>> pi_ring(r=1, causal=True).dense(6)[0, 0].nonzero()[0].tolist()
        [0]
    """
    rr = check_int(r, "pi_ring: r", 0)
    c = check_bool(causal, "pi_ring: causal")
    return Named("pi_ring", {"r": rr, "causal": c}, window(rr) if c else ring_local(rr))


def ring_local_pattern(r: int = 32, causal: bool = False) -> Named:
    """Alias of :func:`pi_ring` (the text form is ``pi_ring(...)``)."""
    return pi_ring(r, causal)


@library_pattern("pi", gallery={"period": 16})
def pi_step(period: int = 16, variant: str = "all", m: int | None = None, causal: bool = False) -> Named:
    """πAttention's π-step component: periodic jumps by multiples of ``period`` (π).

    Variants (the non-causal forms go both directions, ``|d|``; the causal forms need
    ``d >= 0``; ``d = 0`` is always included):

    - ``"all"`` (the original): ``d mod π == 0``. Keys per row ≈ N / π
      (causal: floor(i / π) + 1).
    - ``"bounded"``: ``d = k π`` with ``0 <= k <= m`` (``m`` required). Keys per row
      <= 2m + 1 (causal: m + 1).
    - ``"doubling"``: ``d in {0} ∪ {π 2^k : 0 <= k <= m}`` (``m=None``: every k; so π
      itself is a jump). Keys per row ≈ 2 log2(N / π) + 1 (causal: about half).

    Example:
        >>> pi_step(period=3, causal=True).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 3, 6, 9]
        >>> pi_step(period=2, variant="doubling", causal=True).dense(10)[0, 9].nonzero()[0].tolist()
        [1, 5, 7, 9]
        >>> pi_step(period=2, variant="bounded", m=1).dense(9)[0, 4].nonzero()[0].tolist()
        [2, 4, 6]
    """
    fn = "pi_step"
    p = check_int(period, f"{fn}: period", 1)
    if variant not in PI_STEP_VARIANTS:
        raise ValueError(f"{fn}: variant must be one of {', '.join(map(repr, PI_STEP_VARIANTS))}, got {variant!r}")
    c = check_bool(causal, f"{fn}: causal")
    mm = None if m is None else check_int(m, f"{fn}: m", 0, 64 if variant == "doubling" else MAX_INT)
    if variant == "all":
        if mm is not None:
            raise ValueError(f"{fn}: m applies to variant 'bounded' or 'doubling' only; use m=None with variant='all'")
        body = _causal() & stride(p) if c else stride(p)
    elif variant == "bounded":
        if mm is None:
            raise ValueError(f"{fn}: variant='bounded' needs m, the largest multiple (an integer >= 0)")
        if mm * p > MAX_INT:
            raise ValueError(f"{fn}: m * period must be at most {MAX_INT:,}, got {mm * p:,}")
        body = stride(p) & (window(mm * p) if c else window(mm * p, mm * p))
    else:
        ks = [p << k for k in range(0, 65 if mm is None else mm + 1) if p << k < MAX_INT]
        body = offsets([0] + ks, symmetric=not c)
    return Named(fn, {"period": p, "variant": variant, "m": mm, "causal": c}, body)


@library_pattern("pi", gallery={"r": 8, "period": 16})
def pi_attention_union(r: int = 32, period: int = 16, variant: str = "all", m: int | None = None,
                       causal: bool = False) -> Named:
    """The union of πAttention's two components: ``pi_ring(r) | pi_step(period, ...)``.

    πAttention itself runs the two as *separate* softmax attentions fused by a gate
    (``maskc.nn.PiAttention``); this single mask is what one attention over both sees,
    useful for coverage and hop-diameter analysis.

    Keys per row ≈ 2r + 1 + N / π (non-causal, variant "all").

    Example:
        >>> pi_attention_union(r=1, period=4).dense(9)[0, 0].nonzero()[0].tolist()
        [0, 1, 4, 8]
    """
    ring = pi_ring(r, causal)
    step = pi_step(period, variant, m, causal)
    kwargs = dict(step.kwargs)
    kwargs["r"] = dict(ring.kwargs)["r"]
    return Named("pi_attention_union", kwargs, ring | step)
