"""Shared pieces of the guarantees: the error type and input resolution."""

from __future__ import annotations

from typing import Union

import numpy as np

from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern

#: What every guarantee accepts: a compiled layout, or a pattern plus lengths.
Source = Union[Layout, Pattern]


class GuaranteeError(AssertionError):
    """A ``check_*`` found a layout that breaks the property; carries a counterexample.

    It is an :class:`AssertionError` on purpose: a guarantee is an assertion about a
    layout, so inside pytest a failing check is reported as a test *failure* with the
    counterexample in the message (and ``python -O`` does not remove it, because it is
    raised explicitly). Bad *arguments* (a negative hop count, a pattern without
    lengths, a graph too large to search) raise ``ValueError`` subclasses instead.

    Attributes:
        prop: name of the property (``"causal"``, ``"reachable"``, ...).
        head: stored head of the counterexample (or None).
        query: query position i (or None).
        key: key position j (or None).
        details: extra facts (dict) such as the degree found or the hop count.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_causal, GuaranteeError
        >>> try:
        ...     check_causal(mc.window(0, 1), q_len=4, block=2)
        ... except GuaranteeError as e:
        ...     (e.head, e.query, e.key)
        (0, 0, 1)
    """

    def __init__(self, prop: str, message: str, *, head: int | None = None, query: int | None = None,
                 key: int | None = None, **details):
        self.prop = prop
        self.head = head
        self.query = query
        self.key = key
        self.details = details
        super().__init__(message)

    @property
    def counterexample(self) -> tuple[int | None, int | None, int | None]:
        """``(head, query, key)``."""
        return (self.head, self.query, self.key)


def as_layout(x: Source, q_len: int | None = None, kv_len: int | None = None, block=128,
              heads: int | None = None) -> Layout:
    """A Layout from a layout (returned as is) or a pattern compiled at the given lengths."""
    if isinstance(x, Layout):
        if q_len is not None and q_len != x.q_len or kv_len is not None and kv_len != x.kv_len:
            raise ValueError(
                f"lengths q_len={q_len} kv_len={kv_len} given with a Layout of q_len={x.q_len} "
                f"kv_len={x.kv_len}; lengths are only for patterns"
            )
        return x
    if isinstance(x, Pattern):
        if q_len is None:
            raise ValueError(f"pattern {x.text()} needs q_len= (and optionally kv_len=, block=) to be checked")
        from maskc.compiler import compile as _compile

        return _compile(x, q_len, kv_len, block=block, heads=heads)
    raise TypeError(f"expected a maskc Layout or Pattern, got {type(x).__name__}")


def n_heads_of(x: Source, heads: int | None) -> int:
    """Heads to examine for a pattern (its heads([...]) count, ``heads=``, or 1)."""
    if isinstance(x, Layout):
        return x.heads
    return int(heads or x.n_heads or 1)


def block_elements(layout: Layout, sel: np.ndarray) -> np.ndarray:
    """Token-level content of the stored blocks ``sel`` (indices): bool [n, Bq, Bk].

    FULL blocks are all True on their *valid* rows and columns; ragged tails are False.
    """
    sel = np.asarray(sel, dtype=np.int64)
    Bq, Bk = layout.block_q, layout.block_k
    out = np.ones((sel.size, Bq, Bk), dtype=bool)
    kind = layout.kind[sel]
    part = kind == 1
    if part.any():
        out[part] = layout.mask_bits[layout.partial_id[sel][part]]
    vr = layout.valid_rows()[layout.block_row[sel]]
    vc = layout.valid_cols()[layout.col_idx[sel]]
    out &= (np.arange(Bq)[None, :] < vr[:, None])[:, :, None]
    out &= (np.arange(Bk)[None, :] < vc[:, None])[:, None, :]
    return out


def token_row(layout: Layout, head: int, i: int) -> np.ndarray:
    """Allowed keys of query ``i`` in stored head ``head``: bool [kv_len]."""
    Bq, Bk = layout.block_q, layout.block_k
    qb, r = divmod(int(i), Bq)
    lo, hi = layout.row_ptr[head, qb], layout.row_ptr[head, qb + 1]
    out = np.zeros(layout.n_kb * Bk, dtype=bool)
    if hi > lo:
        blocks = block_elements(layout, np.arange(lo, hi))
        cols = layout.col_idx[lo:hi].astype(np.int64)
        idx = cols[:, None] * Bk + np.arange(Bk)[None, :]
        out[idx.reshape(-1)] = blocks[:, r, :].reshape(-1)
    return out[: layout.kv_len]
