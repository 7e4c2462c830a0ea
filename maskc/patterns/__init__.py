"""The pattern DSL: attention-mask rules as immutable expression trees, their text form and library.

A pattern is a rule ``M(b, h, i, j)``: in batch element ``b`` and head ``h``, query
position ``i`` may attend key position ``j``. Positions are absolute: a pattern is
evaluated at sizes ``(q_total, kv_len)``, where ``q_total = q_offset + q_len`` when the
layout holds only the last ``q_len`` query rows (decoding, chunked prefill). Combine
patterns with ``|`` (union), ``&`` (intersection), ``-`` (difference) and ``~``
(complement).

**Patterns are values.** Nodes are frozen (``__slots__``; setting an attribute raises),
hashable and equal by content, so they serve as cache keys; ``bool(pattern)`` raises,
since Python's ``and`` / ``or`` / ``not`` would silently pick one operand.

**One evaluation protocol.** Every node defines its rule once:

- *the element rule* ``_eval(i, j, sizes)``, read through ``pattern.evaluate(i, j, ...)``
  and ``pattern.dense(q_len, kv_len, heads, q_offset)`` (the oracle the compiler is
  tested against). Leaves on one axis (below) define only a membership array over
  their variable, and their element rule is a lookup into it, so ``dense`` and the
  compiler read the same data and cannot disagree;
- *the lowering* ``pattern.lower(sink)``, how the compiler reads a head-free, batch-free
  pattern (double dispatch, no isinstance chains):

  ====================================  =============================================
  node                                  calls
  ====================================  =============================================
  one axis "D", "S", "R" or "C"         ``sink.leaf_axis(node)``; the sink reads
                                        ``node.membership(q_total, kv_len)``
  segments                              ``sink.leaf_segments(node)``; the sink reads
                                        ``node.segment_ids(n)``
  predicate                             ``sink.leaf_predicate(node)``: ``node.jit``,
                                        ``node.arity`` (2 or 4), ``node.args``
  block level                           ``sink.leaf_block_level(node)``: ``node.inner``
                                        at ``node.block``
  explicit pairs (e.g. random blocks)   ``sink.leaf_cells(node)``; the sink reads
                                        ``node.cells(q_total, kv_len) -> (i, j)``
  union / intersection of n operands    the operands, then ``sink.op("or"|"and", n)``
  complement                            the operand, then ``sink.op("not", 1)``
  difference, named, global tokens      their primitive form (``a & ~b``, the body,
                                        ``rows(G) | cols(G)``)
  ====================================  =============================================

Axis classes: ``"D"`` the offset d = i - j (full, causal, window, ring_local, stride,
offsets), ``"S"`` the sum i + j (sums), ``"R"`` the query position (rows), ``"C"`` the key
position (cols); unions, intersections, differences and complements of one axis are on
that axis too. The other leaves say what they are (``"SEG"`` segments, ``"G"`` predicates,
``"B"`` block level, ``"CELLS"`` explicit pairs); mixed nodes have ``axis`` None. ``heads([...])`` and ``batched([...])`` hold one pattern per head / batch
element: ``pattern.for_batch(b).for_head(h)`` is the head-free, batch-free pattern the
compiler lowers (``n_heads`` / ``n_batch`` say how many).

Modules: ``base`` (the value semantics and protocol), ``indexset``, ``algebra``,
``leaves``, ``segments``, ``structure``, ``cells``, ``predicate``, ``constructors``
(the public functions), ``registry`` (names for the text form, the library, the
gallery and the docs), ``parse`` (the text form), ``library/`` (one module per
family), ``sequences`` and ``zeta`` (number-theoretic data); ``core`` keeps the old
import paths.

Example:
    >>> import maskc as mc
    >>> p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    >>> p.text()
    "causal() & (window(3) | global_tokens(2) | offsets('primes'))"
    >>> mc.parse(p.text()) == p
    True
    >>> p.dense(6)[0].astype(int).sum(axis=1).tolist()
    [1, 2, 3, 4, 5, 6]
"""

from maskc.patterns.base import Pattern
from maskc.patterns.constructors import (
    batched, block_level, causal, cols, full, global_tokens, heads, offsets, predicate, random_keys, ring_local,
    rows, segments, stride, sums, window,
)
from maskc.patterns.parse import parse

__all__ = [
    "Pattern", "batched", "block_level", "causal", "cols", "full", "global_tokens", "heads", "offsets",
    "predicate", "random_keys", "ring_local", "rows", "segments", "stride", "sums", "window", "parse",
]
