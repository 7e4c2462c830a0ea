"""``mc.compile``: a Pattern to a block-sparse Layout, in work that grows with the output.

A pattern may hold a different rule per batch element (``pattern.n_batch``,
``pattern.for_batch(b)``) and per head (``pattern.n_heads``, ``pattern.for_head(h)``);
each (batch element, head) *slice* is compiled on its own
(:func:`maskc.compiler.build.compile_slice`; equal slices once) and the slices are
stacked batch-major, masks deduplicated across them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np

from maskc.compiler.budget import DEFAULT_MAX_BYTES, Budget
from maskc.compiler.build import CompileStats, compile_slice, dedupe_packed
from maskc.compiler.interp import choose_interpreted, interpreted, record
from maskc.compiler.runtime import announce_first_build, mark_built
from maskc.compiler.grid import make_grid
from maskc.ir.layout import Layout, normalize_block
from maskc.limits import MAX_HEADS, MAX_LEN, check_int
from maskc.patterns.core import Pattern

_CACHE: "OrderedDict[tuple, Layout]" = OrderedDict()
_CACHE_SIZE = 32
_LOCK = threading.Lock()
_LOCAL = threading.local()


def clear_cache() -> None:
    """Forget every cached compilation."""
    with _LOCK:
        _CACHE.clear()


def last_stats() -> CompileStats | None:
    """Work counters of this thread's last :func:`compile` that compiled (not a cache hit).

    Example:
        >>> import maskc as mc
        >>> _ = mc.compile(mc.causal(), 1024, block=128, cache=False)
        >>> last_stats().blocks                     # 8 block rows, 1 + 2 + ... + 8 blocks
        36
    """
    return getattr(_LOCAL, "stats", None)


def _merge_slices(layouts: list[Layout], batch: int, text: str) -> Layout:
    """Stack one-slice layouts (batch-major) into one, masks deduplicated across slices."""
    first = layouts[0]
    if len(layouts) == 1:
        masks, pids = first.masks, first.partial_id
        row_ptr, col_idx, kind = first.row_ptr, first.col_idx, first.kind
    else:
        distinct = list({id(lay): lay for lay in layouts}.values())  # equal slices are one object
        masks, ids = dedupe_packed(np.concatenate([lay.masks for lay in distinct]))
        mask_base = dict(zip((id(lay) for lay in distinct), np.cumsum([0] + [lay.masks.shape[0] for lay in distinct])))
        remapped = {}
        for lay in distinct:
            pid = lay.partial_id.astype(np.int64)
            part = pid >= 0
            pid[part] = ids[pid[part] + mask_base[id(lay)]]
            remapped[id(lay)] = pid.astype(np.int32)
        ptrs, pid_parts = [], []
        base = 0
        for lay in layouts:
            ptrs.append(lay.row_ptr[0] + base)
            pid_parts.append(remapped[id(lay)])
            base += lay.nnz_blocks
        row_ptr, pids = np.stack(ptrs), np.concatenate(pid_parts)
        col_idx = np.concatenate([lay.col_idx for lay in layouts])
        kind = np.concatenate([lay.kind for lay in layouts])
    lay = Layout(q_len=first.q_len, kv_len=first.kv_len, block_q=first.block_q, block_k=first.block_k,
                 row_ptr=row_ptr, col_idx=col_idx, kind=kind, partial_id=pids, masks=masks, pattern_text=text,
                 q_offset=first.q_offset, batch=batch)
    for a in (lay.row_ptr, lay.col_idx, lay.kind, lay.partial_id, lay.masks):
        a.setflags(write=False)
    return lay


def compile(pattern: Pattern, q_len: int, kv_len: int | None = None, block: int | tuple[int, int] = 128,
            heads: int | None = None, q_offset: int = 0, max_bytes: int = DEFAULT_MAX_BYTES,
            cache: bool = True) -> Layout:
    """Compile a pattern to a block-sparse :class:`~maskc.ir.layout.Layout`.

    Never allocates O(q_len x kv_len): work and memory grow with the block rows, the
    non-empty blocks and the distinct partial blocks. Results are cached by
    (pattern, sizes, q_offset).

    Args:
        pattern: the rule, e.g. ``mc.causal() & mc.window(64)``.
        q_len: query tokens the layout holds. kv_len: key tokens (default ``q_offset + q_len``).
        block: tile size, an int or ``(block_q, block_k)``.
        heads: attention heads. A pattern without ``heads([...])`` is stored once and
            broadcasts; with ``heads([...])`` it must match the pattern's count.
        q_offset: absolute position of the first query: the pattern is evaluated as if
            the queries were ``q_offset + q_len`` rows, of which the layout holds the last
            ``q_len`` (``q_offset = kv_len - q_len`` for decoding and chunked prefill).
        max_bytes: refuse (TooLargeError, before allocating) above this working memory.

    A batched pattern (``pattern.n_batch = B``) compiles to a layout with ``batch = B``.

    Example:
        >>> import maskc as mc
        >>> lay = mc.compile(mc.causal() & mc.window(255), q_len=4096, block=128)
        >>> (lay.nnz_blocks, lay.n_full, lay.n_partial, lay.n_unique_masks)
        (93, 31, 62, 2)
        >>> last = mc.compile(mc.causal() & mc.window(255), q_len=128, kv_len=4096, q_offset=3968, block=128)
        >>> last.to_dense()[0].sum(axis=1).tolist() == lay.to_dense()[0, 3968:].sum(axis=1).tolist()
        True
    """
    if not isinstance(pattern, Pattern):
        raise TypeError(f"compile() needs a maskc Pattern, got {type(pattern).__name__}; "
                        "text patterns go through maskc.parse first")
    q_len = check_int(q_len, "q_len", 1, MAX_LEN)
    q_offset = check_int(q_offset, "q_offset", 0, MAX_LEN - q_len)
    kv_len = q_offset + q_len if kv_len is None else check_int(kv_len, "kv_len", 1, MAX_LEN)
    max_bytes = check_int(max_bytes, "max_bytes", 1, None)
    bq, bk = normalize_block(block)
    n_heads = pattern.n_heads
    if heads is not None:
        heads = check_int(heads, "heads", 1, MAX_HEADS)
        if n_heads is not None and heads != n_heads:
            raise ValueError(f"heads={heads} does not match the pattern's heads([...]) of {n_heads} patterns")
    key = (pattern, q_len, kv_len, bq, bk, q_offset)
    if cache:
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    n_batch = getattr(pattern, "n_batch", None)
    grid = make_grid(q_len, kv_len, q_offset, bq, bk)
    budget = Budget(max_bytes)
    stats = CompileStats()
    plain = choose_interpreted(grid.n_qb * grid.n_kb)  # small: numba's kernels run as Python
    if not plain:
        announce_first_build()
    with np.errstate(over="ignore"):  # interpreted hashes wrap as numba's do
        t0 = time.perf_counter()
        lay = _compile_slices(pattern, grid, budget, stats, n_batch, n_heads, plain)
        record(time.perf_counter() - t0, plain)
    if not plain:
        mark_built()
    _LOCAL.stats = stats
    if cache:
        with _LOCK:
            _CACHE[key] = lay
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return lay


def _compile_slices(pattern: Pattern, grid, budget: Budget, stats: CompileStats, n_batch: int | None,
                    n_heads: int | None, plain: bool) -> Layout:
    """Compile every (batch element, head) slice and stack them (``plain``: kernels as Python)."""
    one_slice = interpreted(compile_slice) if plain else compile_slice
    merge = interpreted(_merge_slices) if plain else _merge_slices
    done: dict = {}
    layouts = []
    for b in range(n_batch or 1):
        element = pattern.for_batch(b) if n_batch else pattern
        if element.n_heads != n_heads:
            raise ValueError(f"batch element {b} has {element.n_heads} heads, the pattern {n_heads}")
        for h in range(n_heads or 1):
            one = element.for_head(h) if n_heads else element
            lay = done.get(one)
            if lay is None:
                with budget.transient():
                    lay = one_slice(one, grid, budget, stats, b, h, text="")
                budget.take(lay.nbytes, "the compiled slices")
                if not stats.slice_dependent:
                    done[one] = lay
            layouts.append(lay)
    if len(layouts) > 1:
        distinct = {id(lay): lay for lay in layouts}.values()
        budget.take(2 * sum(lay.masks.nbytes for lay in distinct) + 16 * sum(lay.nnz_blocks for lay in layouts),
                    f"stacking {len(layouts):,} slices")
    return merge(layouts, n_batch or 1, pattern.text())


def as_layout(source: Layout | Pattern, q_len: int | None = None, kv_len: int | None = None,
              block: int | tuple[int, int] = 128, heads: int | None = None, q_offset: int = 0) -> Layout:
    """A Layout from a Layout (returned as it is) or a Pattern compiled at the given sizes.

    The one "Pattern or Layout" coercion of the package: sizes given with a Layout must
    match it, and a Pattern needs ``q_len``.

    Example:
        >>> import maskc as mc
        >>> lay = as_layout(mc.causal(), q_len=256, block=64)
        >>> as_layout(lay) is lay, lay.nnz_blocks
        (True, 10)
    """
    if isinstance(source, Layout):
        given = {"q_len": q_len, "kv_len": kv_len}
        for name, value in given.items():
            if value is not None and value != getattr(source, name):
                raise ValueError(f"{name}={value} given with a Layout of {name}={getattr(source, name)}; "
                                 "sizes are only for patterns (leave them unset)")
        if q_offset and q_offset != source.q_offset:
            raise ValueError(f"q_offset={q_offset} given with a Layout of q_offset={source.q_offset}")
        return source
    if isinstance(source, Pattern):
        if q_len is None:
            raise ValueError(f"pattern {source.text()[:200]} needs q_len= (and optionally kv_len=, block=) "
                             "to become a layout")
        return compile(source, q_len, kv_len, block=block, heads=heads, q_offset=q_offset)
    raise TypeError(f"expected a maskc Layout or Pattern, got {type(source).__name__}")
