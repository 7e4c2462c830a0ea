"""The block-sparse IR: :class:`Layout`.

A Layout describes, for each stored slice, which (query, key) token pairs may attend,
at the granularity of (block_q x block_k) tiles:

* BSR over blocks: ``row_ptr[s, qb] .. row_ptr[s, qb + 1]`` index the flat arrays
  ``col_idx`` (key-block index, strictly increasing within a row), ``kind``
  (:data:`PARTIAL` or :data:`FULL`) and ``partial_id`` (index into ``masks`` or -1).
  Offsets are global: slice s's blocks follow slice s-1's, so ``row_ptr[s, 0] ==
  row_ptr[s - 1, -1]`` and ``row_ptr[-1, -1] == nnz_blocks``.
* ``masks``: the dictionary of *unique* partial-block bitmasks, packed little-endian
  along the key axis: ``uint8 [U, block_q, ceil(block_k / 8)]``. Bits of rows or
  columns beyond a ragged tail are zero.
* Empty blocks are absent. A FULL block allows every *valid* element (elements
  past ``q_len`` / ``kv_len`` in tail blocks never count).

Stored *slices*: ``row_ptr`` has one row per (batch element, head) pair, batch-major
(slice ``s = b * heads + h``). A layout with one stored head broadcasts over any number
of attention heads; one with ``batch == 1`` broadcasts over any batch size
(:meth:`Layout.slice_index` does the mapping).

Positions: query row ``r`` of the layout is the absolute position ``q_offset + r``; key
column ``c`` is position ``c``. A pattern compiled with ``q_offset`` is evaluated as if
the query sequence had ``q_offset + q_len`` rows, of which the layout holds the last
``q_len`` (decode and chunked prefill use ``q_offset = kv_len - q_len``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np

from maskc.errors import LayoutFormatError
from maskc.limits import refuse_above
from maskc.ir import containers, schema
from maskc.ir.assemble import blocks_from_dense, blocks_from_pairs, classify_tiles
from maskc.ir.checks import check_fields
from maskc.ir.kinds import (  # noqa: F401  (re-exported: the IR's vocabulary)
    DEFAULT_MAX_DENSE_ELEMENTS, EMPTY, FORMAT_VERSION, FULL, MAX_BLOCK, PARTIAL, ceil_div, extent, normalize_block,
)
from maskc.ir.masks import dedupe_packed, pack_masks, unpack_masks
from maskc.ir.runs import blocks_from_runs, merge_touching
from maskc.ir.subsets import LayoutSubsets
from maskc.ir.views import CSCView


_ceil_div = ceil_div  # old private name, still imported by other modules

__all__ = ["Layout", "CSCView", "EMPTY", "PARTIAL", "FULL", "FORMAT_VERSION", "normalize_block"]


def _short(text: str, limit: int = 200) -> str:
    if not text:
        return "<unnamed>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _indices(**named: tuple[Any, int]) -> list[np.ndarray]:
    """Equal-length int64 index arrays, each in [0, its bound): ``name=(values, bound)``."""
    out = []
    for name, (x, hi) in named.items():
        a = np.asarray(x)
        if a.dtype.kind not in "iu" and a.size:
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
        a = a.astype(np.int64).reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= hi):
            raise ValueError(f"{name} must be in [0, {hi}), got values in [{a.min()}, {a.max()}]")
        out.append(a)
    if len({a.size for a in out}) > 1:
        raise ValueError(f"{' / '.join(named)} differ in length: {', '.join(str(a.size) for a in out)}")
    return out


@dataclass(frozen=True, eq=False)
class Layout(LayoutSubsets):
    """Block-sparse attention layout (the maskc IR).

    Build one with :func:`maskc.compile` (from a pattern), or with :meth:`from_dense`,
    :meth:`from_blocks`, :meth:`from_pairs`, :meth:`from_slices`, :meth:`from_arrays`;
    never field by field unless you call :meth:`validate`.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((5, 5), bool)), block=2)
        >>> lay.nnz, lay.nnz_blocks, lay.n_full, lay.n_partial
        (15, 6, 4, 2)
    """

    q_len: int
    kv_len: int
    block_q: int
    block_k: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    kind: np.ndarray
    partial_id: np.ndarray
    masks: np.ndarray
    pattern_text: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    #: absolute position of query row 0 (see the module docstring).
    q_offset: int = 0
    #: stored batch elements (1 broadcasts over any batch size).
    batch: int = 1

    def _cached(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_dense(cls, mask: Any, block: int | tuple[int, int] = 128, pattern_text: str = "",
                   q_offset: int = 0) -> "Layout":
        """Build a Layout from a boolean mask [q_len, kv_len], [heads, q_len, kv_len] or
        [batch, heads, q_len, kv_len] (numpy or torch; ``q_offset``: absolute position of mask row 0).

        Example:
            >>> import numpy as np, maskc as mc
            >>> mc.Layout.from_dense(np.eye(3, dtype=bool), block=2).n_partial
            1
        """
        if hasattr(mask, "detach") and hasattr(mask, "cpu"):  # torch tensor
            mask = mask.detach().cpu().numpy()
        m = np.asarray(mask)
        if m.dtype != bool:
            if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
                raise LayoutFormatError(f"mask must be boolean (or 0/1 integers), got dtype {m.dtype}")
            m = m.astype(bool)
        if m.ndim not in (2, 3, 4):
            raise LayoutFormatError(f"mask must have shape [q_len, kv_len], [heads, q_len, kv_len] or "
                                    f"[batch, heads, q_len, kv_len], got {m.shape}")
        if 0 in m.shape:
            raise LayoutFormatError(f"mask must be non-empty in every dimension, got shape {m.shape}")
        batch = m.shape[0] if m.ndim == 4 else 1
        m = m.reshape((-1,) + m.shape[-2:])
        try:
            q_len, kv_len, bq, bk, S, batch, q_offset = cls._sizes(m.shape[1], m.shape[2], block, m.shape[0],
                                                                   batch, q_offset)
        except (TypeError, ValueError) as e:
            raise LayoutFormatError(str(e)) from None
        return cls._from_blocks(q_len, kv_len, bq, bk, S, blocks_from_dense(m, bq, bk), pattern_text, q_offset, batch)

    @classmethod
    def from_blocks(cls, q_len: int, kv_len: int, block: int | tuple[int, int], slices: Any, rows: Any, cols: Any,
                    tiles: Any = None, *, full: Any = None, n_slices: int = 1, batch: int = 1,
                    pattern_text: str = "", q_offset: int = 0) -> "Layout":
        """Build a Layout from listed blocks (slice, block row, block column), each listed once.

        Without ``tiles`` every listed block is FULL. ``tiles`` (bool [m, block_q, block_k])
        gives the element masks of the blocks to classify: all valid elements -> FULL, none
        -> dropped, else PARTIAL with a deduplicated mask (bits past a ragged tail are
        ignored). ``full`` (bool [n]) marks blocks known to be FULL, which need no tile; the
        tiles then belong to the other blocks, in order. O(n log n) plus the tiles.

        Example:
            >>> import maskc as mc
            >>> lay = mc.Layout.from_blocks(6, 6, 4, slices=[0, 0, 0], rows=[0, 1, 1], cols=[0, 0, 1])
            >>> lay.n_full, lay.nnz
            (3, 28)
        """
        q_len, kv_len, bq, bk, S, batch, q_offset = cls._sizes(q_len, kv_len, block, n_slices, batch, q_offset)
        s, r, c = _indices(slices=(slices, S), rows=(rows, ceil_div(q_len, bq)), cols=(cols, ceil_div(kv_len, bk)))
        known = np.ones(s.size, bool) if tiles is None else np.zeros(s.size, bool)
        if full is not None:
            known = np.asarray(full, dtype=bool).reshape(-1)
            if known.shape != s.shape:
                raise ValueError(f"full must have one entry per block ({s.size}), got {known.size}")
        kind = np.full(s.size, FULL, np.int8)
        packed = None
        if tiles is not None:
            t = np.array(tiles, dtype=bool, copy=True)
            todo = ~known
            if t.shape != (int(todo.sum()), bq, bk):
                raise ValueError(f"tiles must have shape [blocks to classify, block_q, block_k] = "
                                 f"{[int(todo.sum()), bq, bk]}, got {list(t.shape)}")
            kind[todo] = classify_tiles(t, extent(r[todo], bq, q_len), extent(c[todo], bk, kv_len))
            packed = pack_masks(t[kind[todo] == PARTIAL])
        elif not known.all():
            raise ValueError("blocks not marked full need tiles")
        keep = kind != EMPTY
        return cls._from_blocks(q_len, kv_len, bq, bk, S, (s[keep], r[keep], c[keep], kind[keep], packed),
                                pattern_text, q_offset, batch)

    @classmethod
    def from_pairs(cls, q_len: int, kv_len: int, block: int | tuple[int, int], slices: Any, queries: Any, keys: Any,
                   *, n_slices: int = 1, batch: int = 1, pattern_text: str = "", q_offset: int = 0,
                   max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> "Layout":
        """Build a Layout from allowed (slice, query, key) triples (duplicates counted once).

        O(P log P) for P triples plus the element bits of partial blocks (TooLargeError above
        ``max_elements`` booleans); never a dense grid.

        Example:
            >>> import maskc as mc
            >>> lay = mc.Layout.from_pairs(4, 4, 2, slices=[0, 0, 0, 0, 0], queries=[0, 0, 1, 1, 3], keys=[0, 1, 0, 1, 3])
            >>> lay.n_full, lay.n_partial
            (1, 1)
        """
        q_len, kv_len, bq, bk, S, batch, q_offset = cls._sizes(q_len, kv_len, block, n_slices, batch, q_offset)
        s, i, j = _indices(slices=(slices, S), queries=(queries, q_len), keys=(keys, kv_len))
        blocks = blocks_from_pairs(s, i, j, q_len, kv_len, bq, bk, max_elements)
        return cls._from_blocks(q_len, kv_len, bq, bk, S, blocks, pattern_text, q_offset, batch)

    @classmethod
    def from_runs(cls, q_len: int, kv_len: int, block: int | tuple[int, int], lines: Any, starts: Any, ends: Any,
                  *, by: str = "rows", pattern_text: str = "",
                  max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> "Layout":
        """Build a one-slice Layout from runs ``[starts, ends)`` of allowed positions per line.

        ``by="rows"``: ``lines`` are query rows and the runs key ranges; ``by="cols"``: key
        columns and query ranges. Runs may come in any order and touch (they are merged);
        overlapping runs of one line are refused. Work O(runs log runs + output blocks +
        partial blocks x block area) (see :mod:`maskc.ir.runs`); never a dense grid. TooLargeError
        above ``max_elements`` bytes of packed partial-block tiles, or of the per-line run
        pointers (16 bytes a line), before either is allocated.

        Example:
            >>> import maskc as mc
            >>> lay = mc.Layout.from_runs(4, 4, 2, lines=[0, 1, 2, 3], starts=[0, 0, 0, 0], ends=[1, 2, 3, 4])
            >>> lay.n_full, lay.n_partial, lay.nnz
            (1, 2, 10)
        """
        if by not in ("rows", "cols"):
            raise ValueError(f"by must be 'rows' or 'cols', got {by!r}"[:200])
        q_len, kv_len, bq, bk, S, batch, q_offset = cls._sizes(q_len, kv_len, block, 1, 1, 0)
        n_lines, n_other, bl, bo = (q_len, kv_len, bq, bk) if by == "rows" else (kv_len, q_len, bk, bq)
        refuse_above(16 * (n_lines + 1), max_elements, f"the per-line run pointers of {n_lines:,} {by}",
                     "use shorter sequences, or raise max_elements")
        (ln,) = _indices(lines=(lines, n_lines))
        st, en = (np.asarray(a).reshape(-1) for a in (starts, ends))
        if not (st.shape == en.shape == ln.shape) or (st.size and (st.dtype.kind not in "iu" or en.dtype.kind not in "iu")):
            raise ValueError(f"lines, starts and ends must be integer arrays of one length, got {ln.size}, "
                             f"{st.size} and {en.size} ({st.dtype}, {en.dtype})")
        if st.size and (st.min() < 0 or en.max() > n_other or (en < st).any()):
            raise ValueError(f"runs must satisfy 0 <= start <= end <= {n_other}")
        ln, st, en = merge_touching(ln, st.astype(np.int64), en.astype(np.int64))  # RunOverlapError on overlaps
        ptr = np.zeros(n_lines + 1, np.int64)
        np.cumsum(np.bincount(ln, minlength=n_lines), out=ptr[1:])
        lb, ob, kind, tiles = blocks_from_runs(ptr, st, en, n_lines, n_other, bl, bo, max_elements)
        r, c = (lb, ob) if by == "rows" else (ob, lb)
        packed = tiles
        if by == "cols":  # tiles are [key, query]: transpose each distinct one
            masks, ids = dedupe_packed(tiles)
            packed = pack_masks(unpack_masks(masks, bo).transpose(0, 2, 1))[ids]
        return cls._from_blocks(q_len, kv_len, bq, bk, 1, (np.zeros(r.size, np.int64), r, c, kind, packed),
                                pattern_text, 0, 1)

    @classmethod
    def from_arrays(cls, arrs: dict[str, np.ndarray], source: str = "arrays",
                    max_bytes: int = schema.DEFAULT_MAX_BYTES) -> "Layout":
        """Build and validate a Layout from the dict of schema arrays :meth:`to_arrays` returns.

        Runs exactly the checks :func:`maskc.load` runs on a file's contents (field names,
        dtypes, shapes, versions, sizes, ``max_bytes``, then :meth:`validate`).

        Example:
            >>> import numpy as np, maskc as mc
            >>> lay = mc.Layout.from_dense(np.eye(4, dtype=bool), block=2)
            >>> mc.Layout.from_arrays(lay.to_arrays()) == lay
            True
        """
        return cls._checked(schema.check_array_dict(arrs, source, max_bytes), source)

    @classmethod
    def _checked(cls, fields: dict[str, Any], source: str) -> "Layout":
        lay = cls(**fields)
        try:
            return lay.validate()
        except LayoutFormatError as e:
            raise schema.err(source, str(e)) from None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The layout as the flat dict of arrays of the file schema (see docs/format.md)."""
        return schema.schema_arrays({k: getattr(self, k) for k in (*schema.LAYOUT_SCALARS, *schema.ARRAYS,
                                                                     "pattern_text")})

    # --------------------------------------------------------------- checking
    def validate(self) -> "Layout":
        """Check every size, dtype, pointer and index; raise LayoutFormatError naming the field.

        O(slices * n_qb + nnzb + masks) time, O(nnzb) extra memory (see :mod:`maskc.ir.checks`).
        """
        check_fields(self)
        return self

    def save(self, path: str | os.PathLike | IO[bytes], format: containers.Format | None = None) -> None:
        """Write the layout to ``path`` (a path or a binary file object); validates first.

        ``format`` defaults to "safetensors" when the name ends in ``.safetensors``, else "npz".
        """
        if format is None:
            name = str(path) if isinstance(path, (str, os.PathLike)) else str(getattr(path, "name", ""))
            format = "safetensors" if name.endswith(".safetensors") else "npz"
        data = containers.encode(self.validate().to_arrays(), format)
        if isinstance(path, (str, os.PathLike)):
            Path(path).write_bytes(data)
        else:
            path.write(data)

    # ---------------------------------------------------------------- display
    def summary(self) -> str:
        """A short multi-line description: sizes, blocks, density, masks, bytes.

        Example:
            >>> import maskc as mc
            >>> print(mc.compile(mc.causal(), q_len=256, block=64).summary().splitlines()[0])
            Layout causal(): q_len=256 kv_len=256 block=(64, 64) heads=1
        """
        tot_blocks = self.n_slices * self.n_qb * self.n_kb
        return "\n".join([
            f"Layout {_short(self.pattern_text)}: q_len={self.q_len} kv_len={self.kv_len} "
            f"block=({self.block_q}, {self.block_k}) heads={self.heads}{self._extra()}",
            f"  blocks     {self.nnz_blocks:,} / {tot_blocks:,} non-empty ({100 * self.block_density:.2f}%):"
            f" {self.n_full:,} full, {self.n_partial:,} partial",
            f"  masks      {self.n_unique_masks:,} unique partial bitmasks",
            f"  density    {self.nnz:,} allowed pairs ({100 * self.density:.4f}% of "
            f"{self.n_slices * self.q_len * self.kv_len:,})",
            f"  memory     {self.nbytes:,} bytes",
        ])

    def __repr__(self) -> str:
        return (f"Layout({_short(self.pattern_text)}, q_len={self.q_len}, kv_len={self.kv_len}, "
                f"block=({self.block_q}, {self.block_k}), heads={self.heads}{self._extra(', ')}, "
                f"nnz_blocks={self.nnz_blocks})")

    def _extra(self, sep: str = " ") -> str:
        parts = [f"q_offset={self.q_offset}"] if self.q_offset else []
        if self.batch > 1:
            parts.append(f"batch={self.batch}")
        return "".join(sep + p for p in parts)

    def __eq__(self, other: object) -> bool:
        """Equal when sizes and the allowed pairs of every block agree (mask ids may differ)."""
        if not isinstance(other, Layout):
            return NotImplemented
        keys = ("q_len", "kv_len", "block_q", "block_k", "q_offset", "batch")
        if any(getattr(self, k) != getattr(other, k) for k in keys):
            return False
        if not all(np.array_equal(getattr(self, k), getattr(other, k)) for k in ("row_ptr", "col_idx", "kind")):
            return False
        part = self.kind == PARTIAL
        return bool(np.array_equal(self.masks[self.partial_id[part]], other.masks[other.partial_id[part]]))

    __hash__ = None  # type: ignore[assignment]

