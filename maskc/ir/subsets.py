"""Combining and selecting layouts: stacking slices, one batch element, a range of query rows.

:class:`LayoutSubsets` is mixed into :class:`~maskc.ir.layout.Layout`; its methods
build new layouts with ``type(self)`` / ``cls`` and the block-list assembly of
:mod:`maskc.ir.assemble`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from maskc.ir.assemble import bsr_fields, classify_tiles
from maskc.ir.kinds import EMPTY, PARTIAL, ceil_div, extent, normalize_block
from maskc.ir.masks import dedupe_packed, empty_masks, pack_masks
from maskc.ir.tokens import TokenViews
from maskc.limits import MAX_LEN, MAX_SLICES, check_int


def _gather(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[k], hi[k])`` over k (int64), without a Python loop."""
    n = hi - lo
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    return np.repeat(lo - starts, n) + np.arange(int(n.sum()), dtype=np.int64)


class LayoutSubsets(TokenViews):
    """Operations of :class:`~maskc.ir.layout.Layout` that build layouts from layouts."""

    q_offset: int
    pattern_text: str

    @classmethod
    def _from_blocks(cls, q_len: int, kv_len: int, bq: int, bk: int, n_slices: int, blocks: tuple,
                     pattern_text: str, q_offset: int, batch: int) -> "LayoutSubsets":
        s, r, c, kind, packed = blocks
        f = bsr_fields(n_slices, ceil_div(q_len, bq), bq, bk, s=s, r=r, c=c, kind=kind, packed=packed)
        return cls(q_len=int(q_len), kv_len=int(kv_len), block_q=bq, block_k=bk, pattern_text=pattern_text,
                   q_offset=int(q_offset), batch=int(batch), **f)

    @staticmethod
    def _sizes(q_len: Any, kv_len: Any, block: Any, n_slices: Any, batch: Any, q_offset: Any) -> tuple:
        q_len, kv_len = check_int(q_len, "q_len", 1, MAX_LEN), check_int(kv_len, "kv_len", 1, MAX_LEN)
        bq, bk = normalize_block(block)
        n_slices, batch = check_int(n_slices, "n_slices", 1, MAX_SLICES), check_int(batch, "batch", 1, MAX_SLICES)
        if n_slices % batch:
            raise ValueError(f"n_slices={n_slices} must be a multiple of batch={batch} (batch x heads slices)")
        return q_len, kv_len, bq, bk, n_slices, batch, check_int(q_offset, "q_offset", 0, MAX_LEN - q_len)

    @classmethod
    def from_slices(cls, layouts: Sequence["LayoutSubsets"], batch: int = 1, pattern_text: str | None = None) -> "LayoutSubsets":
        """Stack layouts of equal sizes into one multi-slice layout (the one place that assembles
        per-slice row pointers from layouts).

        The slices of ``layouts`` (each with batch 1) are concatenated in order and read as
        ``batch`` elements of ``n_slices // batch`` heads (batch-major). Masks are deduplicated
        across inputs. ``pattern_text`` defaults to the inputs' common text ("" when they differ).

        Example:
            >>> import numpy as np, maskc as mc
            >>> a = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
            >>> b = mc.Layout.from_dense(np.ones((4, 4), bool), block=2)
            >>> lay = mc.Layout.from_slices([a, b, a, a], batch=2)
            >>> lay.batch, lay.heads, lay.to_dense().shape, lay.n_unique_masks
            (2, 2, (2, 2, 4, 4), 1)
        """
        lays = list(layouts)
        if not lays or not all(isinstance(x, LayoutSubsets) for x in lays):
            raise TypeError("from_slices takes a non-empty sequence of Layouts")
        first = lays[0]
        sizes = (first.q_len, first.kv_len, first.block_q, first.block_k, first.q_offset)
        for k, x in enumerate(lays):
            if (x.q_len, x.kv_len, x.block_q, x.block_k, x.q_offset) != sizes:
                raise ValueError(f"layout {k} has (q_len, kv_len, block_q, block_k, q_offset) = "
                                 f"{(x.q_len, x.kv_len, x.block_q, x.block_k, x.q_offset)}, layout 0 has {sizes}")
            if x.batch != 1:
                raise ValueError(f"layout {k} has batch={x.batch}; stack batch-1 layouts (use for_batch(b))")
        S = sum(x.n_slices for x in lays)
        cls._sizes(first.q_len, first.kv_len, first.block, S, batch, first.q_offset)
        offsets = np.cumsum([0] + [x.nnz_blocks for x in lays])
        moff = np.cumsum([0] + [x.n_unique_masks for x in lays])
        row_ptr = np.concatenate([x.row_ptr + o for x, o in zip(lays, offsets)])
        masks, ids = dedupe_packed(np.concatenate([x.masks for x in lays]))
        pid = np.concatenate([np.where(x.partial_id >= 0, x.partial_id + o, -1) for x, o in zip(lays, moff)])
        pid = np.where(pid >= 0, ids[np.maximum(pid, 0)] if ids.size else -1, -1).astype(np.int32)
        if pattern_text is None:
            texts = {x.pattern_text for x in lays}
            pattern_text = texts.pop() if len(texts) == 1 else ""
        return cls(q_len=first.q_len, kv_len=first.kv_len, block_q=first.block_q, block_k=first.block_k,
                   row_ptr=row_ptr, col_idx=np.concatenate([x.col_idx for x in lays]),
                   kind=np.concatenate([x.kind for x in lays]), partial_id=pid,
                   masks=masks if masks.shape[0] else empty_masks(*first.block), pattern_text=pattern_text,
                   q_offset=first.q_offset, batch=int(batch))

    def _take(self, slices: np.ndarray, batch: int) -> "LayoutSubsets":
        lo, hi = self.row_ptr[slices, 0], self.row_ptr[slices, -1]
        idx = _gather(lo, hi)
        row_ptr = self.row_ptr[slices] - (lo - np.concatenate([[0], np.cumsum(hi - lo)[:-1]]))[:, None]
        kind, pid = self.kind[idx], self.partial_id[idx]
        used, inv = np.unique(pid[pid >= 0], return_inverse=True)
        new_pid = np.full(pid.shape, -1, np.int32)
        new_pid[pid >= 0] = inv.reshape(-1)
        return type(self)(q_len=self.q_len, kv_len=self.kv_len, block_q=self.block_q, block_k=self.block_k,
                      row_ptr=row_ptr, col_idx=self.col_idx[idx], kind=kind, partial_id=new_pid,
                      masks=self.masks[used], pattern_text=self.pattern_text, q_offset=self.q_offset, batch=batch)

    def for_batch(self, b: int) -> "LayoutSubsets":
        """The layout batch element ``b`` reads (batch 1, every head); a batch-1 layout returns itself.

        Example:
            >>> import numpy as np, maskc as mc
            >>> lay = mc.Layout.from_dense(np.ones((2, 1, 4, 4), bool), block=2)
            >>> lay.for_batch(1).batch, lay.for_batch(1).heads
            (1, 1)
        """
        b = check_int(b, "b", 0, MAX_SLICES)
        if self.batch == 1:
            return self
        if b >= self.batch:
            raise ValueError(f"batch element {b} is out of range for a layout of batch {self.batch}")
        return self._take(np.arange(b * self.heads, (b + 1) * self.heads), 1)

    def rows(self, start: int, stop: int) -> "LayoutSubsets":
        """The layout of query rows ``start .. stop - 1``: the same allowed pairs as those rows.

        ``q_len`` becomes ``stop - start`` and ``q_offset`` advances by ``start``; key columns
        and every slice stay. Block rows are copied when ``start`` is a multiple of block_q,
        else the rows are re-tiled (cost: the element tiles of the selected block rows).

        Example:
            >>> import maskc as mc
            >>> full = mc.compile(mc.causal(), q_len=10, block=4)
            >>> part = full.rows(3, 7)
            >>> part.q_len, part.q_offset, bool((part.to_dense() == full.to_dense()[:, 3:7]).all())
            (4, 3, True)
        """
        start, stop = check_int(start, "start", 0, self.q_len - 1), check_int(stop, "stop", 1, self.q_len)
        if stop <= start:
            raise ValueError(f"rows(start, stop) needs start < stop, got {start}, {stop}")
        if (start, stop) == (0, self.q_len):
            return self
        bq, q_len = self.block_q, stop - start
        r0, r1 = start // bq, (stop - 1) // bq + 1  # old block rows involved
        idx = _gather(self.row_ptr[:, r0], self.row_ptr[:, r1])
        s, r, c = self.block_head[idx].astype(np.int64), self.block_row[idx].astype(np.int64) - r0, self.col_idx[idx]
        sh = start % bq
        if sh == 0:
            blocks = self._cut_blocks(idx, s, r, c, q_len)
        else:
            blocks = self._shifted_blocks(idx, s, r, c, sh, q_len)
        return self._from_blocks(q_len, self.kv_len, bq, self.block_k, self.n_slices, blocks, self.pattern_text,
                                   self.q_offset + start, self.batch)

    def _cut_blocks(self, idx: np.ndarray, s: np.ndarray, r: np.ndarray, c: np.ndarray, q_len: int) -> tuple:
        """Block list of the selected (aligned) block rows; partial blocks of a cut last row re-classified."""
        kind = self.kind[idx].copy()
        part_pos = np.flatnonzero(kind == PARTIAL)
        packed = self.masks[self.partial_id[idx[part_pos]]]
        cut = (r == ceil_div(q_len, self.block_q) - 1) & (kind == PARTIAL) & (q_len % self.block_q != 0)
        if cut.any():
            tiles = self.block_tiles(idx[cut])
            kind[cut] = classify_tiles(tiles, extent(r[cut], self.block_q, q_len), self.col_extent(c[cut]))
            packed[cut[part_pos]] = pack_masks(tiles)
            packed = packed[kind[part_pos] == PARTIAL]
        keep = kind != EMPTY
        return s[keep], r[keep], c[keep], kind[keep], packed

    def _shifted_blocks(self, idx: np.ndarray, s: np.ndarray, r: np.ndarray, c: np.ndarray, sh: int,
                        q_len: int) -> tuple:
        """Block list of the selected blocks moved up by ``sh`` rows (re-tiled to block_q)."""
        bq, n_qb = self.block_q, ceil_div(q_len, self.block_q)
        tiles = self.block_tiles(idx)
        # rows a >= sh of old block row r go to new row r (rows a - sh), rows a < sh to new row r - 1
        src = np.concatenate([np.arange(idx.size), np.arange(idx.size)])
        top = np.concatenate([np.ones(idx.size, bool), np.zeros(idx.size, bool)])
        ns, nr, nc = np.tile(s, 2), np.concatenate([r, r - 1]), np.tile(c, 2)
        ok = (nr >= 0) & (nr < n_qb)
        src, top, ns, nr, nc = src[ok], top[ok], ns[ok], nr[ok], nc[ok]
        o = np.lexsort((nc, nr, ns))
        src, top, ns, nr, nc = src[o], top[o], ns[o], nr[o], nc[o]
        new = np.ones(ns.size, bool)
        new[1:] = (np.diff(ns) != 0) | (np.diff(nr) != 0) | (np.diff(nc) != 0)
        g = np.cumsum(new) - 1
        out = np.zeros((int(new.sum()), bq, self.block_k), dtype=bool)
        out[g[top], : bq - sh] = tiles[src[top], sh:]
        out[g[~top], bq - sh:] = tiles[src[~top], :sh]
        ns, nr, nc = ns[new], nr[new], nc[new]
        kind = classify_tiles(out, extent(nr, bq, q_len), self.col_extent(nc))
        keep = kind != EMPTY
        return ns[keep], nr[keep], nc[keep], kind[keep], pack_masks(out[kind == PARTIAL])

