"""Classical sparse-attention patterns: windows, Longformer, BigBird, Sparse Transformer, chunks, sinks.

Positions are 0-based, query i, key j, offset d = i - j; "causal" means j <= i. "Keys
per row" is the number of allowed keys of query row i in N-token self-attention.

Example:
    >>> from maskc.patterns.library import sliding_window
    >>> sliding_window(2).dense(5)[0, 4].nonzero()[0].tolist()
    [2, 3, 4]
"""

from __future__ import annotations

from typing import Any

from maskc.limits import MAX_INT, check_int
from maskc.patterns.base import check_bool
from maskc.patterns.constructors import (
    block_level, causal, cols, global_tokens as _global_tokens, random_keys, stride as _stride, window as _window,
)
from maskc.patterns.indexset import IndexSet
from maskc.patterns.registry import library_pattern
from maskc.patterns.structure import Named


@library_pattern("classical", gallery={"w": 16})
def sliding_window(w: int, symmetric: bool = False) -> Named:
    """Sliding-window attention: ``0 <= d <= w`` (causal) or ``|d| <= w`` (symmetric).

    Keys per row: min(i, w) + 1 causal; up to 2w + 1 symmetric. O(N w) total.

    Example:
        >>> sliding_window(1, symmetric=True).dense(5)[0, 2].nonzero()[0].tolist()
        [1, 2, 3]
    """
    ww = check_int(w, "sliding_window: w", 0)
    s = check_bool(symmetric, "sliding_window: symmetric")
    return Named("sliding_window", {"w": ww, "symmetric": s}, _window(ww, ww) if s else _window(ww))


@library_pattern("classical", gallery={"w": 8, "dilation": 4})
def dilated_window(w: int, dilation: int, symmetric: bool = False) -> Named:
    """Dilated sliding window: ``d = k * dilation`` for ``0 <= k <= w`` (``|d|`` if symmetric).

    Keys per row: min(w, floor(i / dilation)) + 1 causal; up to 2w + 1 symmetric.

    Example:
        >>> dilated_window(2, 3).dense(10)[0, 9].nonzero()[0].tolist()
        [3, 6, 9]
    """
    fn = "dilated_window"
    ww = check_int(w, f"{fn}: w", 0)
    dl = check_int(dilation, f"{fn}: dilation", 1)
    s = check_bool(symmetric, f"{fn}: symmetric")
    if ww * dl > MAX_INT:
        raise ValueError(f"{fn}: w * dilation must be at most {MAX_INT:,}, got {ww * dl:,}")
    span = _window(ww * dl, ww * dl) if s else _window(ww * dl)
    return Named(fn, {"w": ww, "dilation": dl, "symmetric": s}, span if dl == 1 else _stride(dl) & span)


@library_pattern("classical", gallery={"window": 8, "global_tokens": 2})
def longformer(window: int, global_tokens: Any, causal: bool = False) -> Named:
    """Longformer: symmetric band ``|d| <= window`` plus global tokens.

    ``global_tokens``: an int n (the first n positions), a range or a list of positions;
    global rows attend every key and every query attends global columns. ``causal=True``
    intersects everything with ``j <= i``. (``window`` is the one-sided radius; the
    paper's "window size w" is 2 * window.)

    Keys per row: 2 window + 1 + |G| (global rows: N). O(N (w + |G|)) total.

    Example:
        >>> longformer(1, 1).dense(6)[0, 4].nonzero()[0].tolist()
        [0, 3, 4, 5]
    """
    fn = "longformer"
    w = check_int(window, f"{fn}: window", 0)
    g = IndexSet(global_tokens, f"{fn}: global_tokens")
    c = check_bool(causal, f"{fn}: causal")
    band = _window(w, 0 if c else w)
    body = band | _global_tokens(g) if g.data else band
    return Named(fn, {"window": w, "global_tokens": g, "causal": c}, _causal() & body if c else body)


def _causal():
    return causal()


@library_pattern("classical", gallery={"window": 3, "global_tokens": 8, "random_blocks": 1, "block": 8})
def bigbird(window: int = 3, global_tokens: int = 64, random_blocks: int = 3, block: int = 64, seed: int = 0,
            causal: bool = False) -> Named:
    """BigBird, block level: window blocks + global tokens + seeded random blocks.

    With ``qb = i // block`` and ``kb = j // block``:

    - window: ``|qb - kb| <= window // 2`` (``window`` blocks per row, odd; BigBird's 3);
    - global: the first ``global_tokens`` tokens, as rows and as columns (token level;
      the default is one block, as in BigBird-ITC);
    - random: query block ``qb`` draws ``random_blocks`` distinct key blocks uniformly from
      the earlier blocks ``[gb, qb - window // 2)`` outside its window and past the
      ``gb = global_tokens // block`` all-global blocks (all of them if there are no
      more); the non-causal form adds the transpose, so the random block graph is
      symmetric (each row gets its r draws to the left plus about r ln(n_b / qb) to the
      right). The draws are a fixed function of ``(seed, qb)`` (``random_keys``), so the
      mask is deterministic, does not depend on the sequence length, and a shorter
      sequence's mask is a prefix of a longer one's. They are generated as data: a new
      seed costs no compilation.
    - ``causal=True``: everything intersected with ``j <= i`` at token level (random
      blocks are then only the left draws).

    Keys per row ≈ block * (window + 2 random_blocks) + global_tokens non-causal,
    block * (window // 2 + random_blocks) + global_tokens causal: O(N) total.

    Example:
        >>> p = bigbird(window=3, global_tokens=2, random_blocks=1, block=2, seed=0)
        >>> bool((p.dense(20) == p.dense(20)).all()), int(p.dense(20)[0, 19].sum()) >= 6
        (True, True)
    """
    fn = "bigbird"
    w = check_int(window, f"{fn}: window", 1, 1 << 20)
    if w % 2 == 0:
        raise ValueError(f"{fn}: window must be an odd number of blocks (1, 3, 5, ...), got {w}")
    g = check_int(global_tokens, f"{fn}: global_tokens", 0)
    r = check_int(random_blocks, f"{fn}: random_blocks", 0, 1024)
    b = check_int(block, f"{fn}: block", 1, 1 << 20)
    sd = check_int(seed, f"{fn}: seed", 0, 2147483646)
    c = check_bool(causal, f"{fn}: causal")
    rad = w // 2
    local = _window(rad, 0 if c else rad)
    inner = local | random_keys(r, seed=sd, first=g // b, recent=rad, symmetric=not c) if r else local
    body = block_level(inner, b) | _global_tokens(g) if g else block_level(inner, b)
    kwargs = {"window": w, "global_tokens": g, "random_blocks": r, "block": b, "seed": sd, "causal": c}
    return Named(fn, kwargs, _causal() & body if c else body)


@library_pattern("classical", gallery={"stride": 16})
def sparse_transformer_strided(stride: int) -> Named:
    """Sparse Transformer, strided (Child et al. 2019), both heads' masks merged.

    Causal and (``0 <= d < stride`` (the previous ``stride`` tokens) or
    ``d mod stride == 0``).

    Keys per row ≈ stride + i / stride (minimal at stride ≈ sqrt(N): O(N sqrt N) total).

    Example:
        >>> sparse_transformer_strided(3).dense(10)[0, 9].nonzero()[0].tolist()
        [0, 3, 6, 7, 8, 9]
    """
    s = check_int(stride, "sparse_transformer_strided: stride", 1)
    return Named("sparse_transformer_strided", {"stride": s}, causal() & (_window(s - 1) | _stride(s)))


@library_pattern("classical", gallery={"block": 16, "c": 2})
def sparse_transformer_fixed(block: int, c: int = 1) -> Named:
    """Sparse Transformer, fixed (Child et al. 2019), both heads' masks merged.

    Causal and (same block: ``i // block == j // block``, or ``j`` a summary column:
    ``j mod block >= block - c``). The same-block part is ``block_level(window(0),
    block)``, the summary columns one periodic column set ``cols(range(block - c,
    block), period=block)``, so the cost does not grow with ``c``.

    Keys per row: (i mod block) + 1 + c * floor(i / block) ≈ c i / block.

    Example:
        >>> sparse_transformer_fixed(4, 1).dense(10)[0, 9].nonzero()[0].tolist()
        [3, 7, 8, 9]
    """
    fn = "sparse_transformer_fixed"
    b = check_int(block, f"{fn}: block", 1, 1 << 20)
    cc = check_int(c, f"{fn}: c", 1, b)
    if cc == b:  # every column is a summary column: plain causal attention
        body = causal()
    else:
        body = causal() & (block_level(_window(0), b) | cols(range(b - cc, b), period=b))
    return Named(fn, {"block": b, "c": cc}, body)


@library_pattern("classical", gallery={"chunk": 32})
def chunked_causal(chunk: int) -> Named:
    """Chunked causal attention: causal within chunks of ``chunk`` tokens.

    Rule: ``j <= i`` and ``i // chunk == j // chunk``. Keys per row: (i mod chunk) + 1.

    Example:
        >>> chunked_causal(3).dense(7)[0, 4].nonzero()[0].tolist()
        [3, 4]
    """
    ch = check_int(chunk, "chunked_causal: chunk", 1, 1 << 20)
    return Named("chunked_causal", {"chunk": ch}, causal() & block_level(_window(0), ch))


@library_pattern("classical", gallery={"prefix": 32})
def prefix_lm(prefix: int) -> Named:
    """Prefix-LM: bidirectional over the first ``prefix`` tokens, causal after.

    Rule: ``j <= i`` or ``j < prefix`` (queries in the prefix see the whole prefix;
    later queries see the prefix anyway through causality). Keys per row: max(i + 1, prefix).

    Example:
        >>> prefix_lm(3).dense(5)[0].astype(int).sum(axis=1).tolist()
        [3, 3, 3, 4, 5]
    """
    p = check_int(prefix, "prefix_lm: prefix", 0)
    return Named("prefix_lm", {"prefix": p}, causal() | cols(p) if p else causal())


@library_pattern("classical", gallery={"n_sinks": 4, "window": 16})
def attention_sinks(n_sinks: int = 4, window: int = 1020) -> Named:
    """Streaming attention with sinks (StreamingLLM): the first tokens plus a causal window.

    Rule: ``j <= i`` and (``j < n_sinks`` or ``0 <= d <= window``), so a row far from the
    start has ``n_sinks + window + 1`` keys: the sinks, the query itself and ``window``
    earlier keys; 1,025 with the defaults. (StreamingLLM's KV cache of 1,024 tokens,
    4 sinks and 1,020 recent tokens including the current one, is
    ``attention_sinks(4, 1019)``.)

    Keys per row: min(i + 1, n_sinks + window + 1).

    Example:
        >>> attention_sinks(1, 2).dense(6)[0, 5].nonzero()[0].tolist()
        [0, 3, 4, 5]
        >>> int(attention_sinks().dense(1, kv_len=4096, q_offset=4095).sum())
        1025
    """
    fn = "attention_sinks"
    n = check_int(n_sinks, f"{fn}: n_sinks", 0)
    w = check_int(window, f"{fn}: window", 0)
    body = causal() & (cols(n) | _window(w, 0)) if n else _window(w, 0)
    return Named(fn, {"n_sinks": n, "window": w}, body)
