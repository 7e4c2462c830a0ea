"""Split a pattern into DISJOINT parts whose union is the pattern (A | B = A + (B - A)).

Recognised shape (after ``pattern.lowered()``, which expands named patterns and
``global_tokens(G)`` into ``rows(G) | cols(G)``)::

    ctx & (t_1 | t_2 | ... )        ctx: the conjunction of offset (axis "D") rules, e.g. causal()

Terms are grouped by axis:

* Toeplitz terms (axis "D": window, ring_local, stride, offsets, ...): their union, and
  with ctx, is ONE 1-D membership array over d = i - j, computed exactly. The planner
  later cuts that array into runs (bands), residue classes of stride periods, and
  isolated offsets — all disjoint by construction.
* column terms (axis "C", e.g. the columns of global tokens): a set of key columns;
  the part is those columns *minus* the Toeplitz union (evaluated on d, exactly).
* row terms (axis "R", the rows of global tokens): a set of query rows minus the
  Toeplitz union and minus the column set.
* anything else (block-level, predicates, Hankel, segments): one generic part per term,
  ``ctx & t_k & ~(t_1 | ... | t_{k-1})``, compiled by ``mc.compile`` (exact).

A pattern of another shape is one generic part (the whole pattern).

Example:
    >>> import maskc as mc
    >>> from maskc.planner.decompose import decompose
    >>> p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("squares"))
    >>> dec = decompose(p, 64)
    >>> int(dec.d_member.sum()), dec.cols.tolist(), dec.rows.tolist(), dec.generic
    (10, [0, 1], [0, 1], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskc.patterns.core import And, Not, Or, Pattern, Stride


@dataclass
class Decomposition:
    """The disjoint pieces of one head's pattern at given lengths."""

    pattern: Pattern
    q_len: int
    kv_len: int
    ctx: Pattern | None  #: the offset-rule conjunction (None = no restriction)
    ctx_member: np.ndarray  #: bool [q_len + kv_len - 1]
    d_member: np.ndarray  #: union of the Toeplitz terms & ctx, bool over d
    d_terms: list[Pattern] = field(default_factory=list)
    strides: list[tuple[int, int]] = field(default_factory=list)  #: (period, phase) candidates
    cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    col_terms: list[Pattern] = field(default_factory=list)
    row_terms: list[Pattern] = field(default_factory=list)
    generic: list[Pattern] = field(default_factory=list)  #: exact, disjoint from everything before
    note: str = ""  #: why the pattern was (not) split

    @property
    def is_whole(self) -> bool:
        """True when the pattern could not be split (one generic part)."""
        return self.note.startswith("not split")


def _find_strides(p: Pattern, out: list[tuple[int, int]]) -> None:
    if isinstance(p, Stride):
        if (p.period, p.phase) not in out:
            out.append((p.period, p.phase))
    for c in p.children():
        _find_strides(c, out)


def _conj(parts: list[Pattern]) -> Pattern | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(*parts)


def decompose(pattern: Pattern, q_len: int, kv_len: int | None = None) -> Decomposition:
    """Split a head-free pattern into disjoint parts (see the module docstring).

    Raises:
        ValueError: for a ``heads([...])`` pattern (plan each head on its own).
    """
    kv_len = q_len if kv_len is None else kv_len
    if pattern.n_heads is not None:
        raise ValueError("decompose takes one head's pattern; use pattern.for_head(h) for heads([...]) patterns")
    p = pattern.lowered()
    L = q_len + kv_len - 1
    everything = np.ones(L, dtype=bool)

    def whole(note: str) -> Decomposition:
        return Decomposition(pattern, q_len, kv_len, None, everything, np.zeros(L, bool), generic=[p], note=note)

    if p.axis == "D":
        m = np.asarray(p.membership(q_len, kv_len), dtype=bool)
        dec = Decomposition(pattern, q_len, kv_len, None, everything, m, d_terms=[p],
                            note="offset rule (Toeplitz): one membership array over d")
        _find_strides(p, dec.strides)
        return dec
    conj = list(p.parts) if isinstance(p, And) else [p]
    ctx_parts = [c for c in conj if c.axis == "D"]
    others = [c for c in conj if c.axis != "D"]
    if len(others) != 1:
        return whole(f"not split: {len(others)} non-offset conjuncts (need exactly one union)")
    union = others[0]
    terms = list(union.parts) if isinstance(union, Or) else [union]
    ctx = _conj(ctx_parts)
    ctx_member = np.asarray(ctx.membership(q_len, kv_len), dtype=bool) if ctx is not None else everything
    dec = Decomposition(pattern, q_len, kv_len, ctx, ctx_member, np.zeros(L, bool),
                        note="split: ctx & (union of terms) into Toeplitz / column / row / generic parts")
    cols = np.zeros(kv_len, dtype=bool)
    rows = np.zeros(q_len, dtype=bool)
    generic_terms: list[Pattern] = []
    for t in terms:
        ax = t.axis
        if ax == "D":
            dec.d_member |= np.asarray(t.membership(q_len, kv_len), dtype=bool)
            dec.d_terms.append(t)
            _find_strides(t, dec.strides)
        elif ax == "C":
            cols |= np.asarray(t.membership(q_len, kv_len), dtype=bool)
            dec.col_terms.append(t)
        elif ax == "R":
            rows |= np.asarray(t.membership(q_len, kv_len), dtype=bool)
            dec.row_terms.append(t)
        else:
            generic_terms.append(t)
    dec.d_member &= ctx_member
    dec.cols = np.nonzero(cols)[0].astype(np.int64)
    dec.rows = np.nonzero(rows)[0].astype(np.int64)
    before: list[Pattern] = dec.d_terms + dec.col_terms + dec.row_terms
    for t in generic_terms:
        body = [t] if ctx is None else [ctx, t]
        part = And(*body, Not(Or(*before))) if len(before) > 1 else (
            And(*body, Not(before[0])) if before else _conj(body))
        dec.generic.append(part)
        before = before + [t]
    return dec


def pair_count(member: np.ndarray, q_len: int, kv_len: int) -> int:
    """Exact number of (i, j) pairs whose offset is in ``member`` (O(q_len + kv_len)).

    Example:
        >>> import numpy as np
        >>> from maskc.planner.decompose import pair_count
        >>> m = np.zeros(7, bool); m[3:] = True      # causal at 4 x 4
        >>> pair_count(m, 4, 4)
        10
    """
    d = np.arange(-(kv_len - 1), q_len, dtype=np.int64)
    per = np.minimum(q_len, kv_len + d) - np.maximum(0, d)
    return int(np.clip(per, 0, None)[np.asarray(member, bool)].sum())


def runs(member: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (start index, stop index) pairs.

    Example:
        >>> import numpy as np
        >>> from maskc.planner.decompose import runs
        >>> runs(np.array([0, 1, 1, 0, 1], bool))
        [(1, 3), (4, 5)]
    """
    m = np.asarray(member, dtype=np.int8)
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    return list(zip(starts.tolist(), stops.tolist()))
