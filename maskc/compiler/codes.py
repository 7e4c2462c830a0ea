"""Integer codes shared by the compiler's Python side and its numba kernels.

Block classes (a block of the token grid, or a leaf's verdict on it):
``EMPTY`` (no allowed pair), ``PARTIAL`` (some), ``FULL`` (every valid pair), and
``UNKNOWN``: a combination the class algebra cannot decide (``PARTIAL & PARTIAL``, or a
predicate), which only the element bits settle.

Leaf kinds (what a leaf's data is and how its class on a block is found):

=============  ===============================================  ============================
kind           data                                             class of a block from
=============  ===============================================  ============================
``T_D``        membership over the offset d = i - j              table per block diagonal
``T_S``        membership over the sum s = i + j                 table per anti-diagonal
``T_R``        membership over the query position i              prefix counts of the rows
``T_C``        membership over the key position j                table per key block
``T_SEG``      segment ids, allowed iff seg(i) == seg(j)         runs per block row
``T_BLOCK``    a pattern on coarse cells (i // b, j // b)         runs per block row
``T_CELLS``    an explicit list of allowed (i, j) pairs           runs per block row
``T_PRED``     a numba predicate f(i, j) or f(b, h, i, j)         always UNKNOWN
=============  ===============================================  ============================

Program instructions (see :mod:`maskc.compiler.program`): ``OP_LEAF l`` pushes leaf l's
verdict; ``OP_NARROW_AND`` / ``OP_NARROW_OR`` restrict the next operand to where the
left operand does not already decide the result (not EMPTY for ``&``, not FULL for
``|``; their argument is the index of the matching ``OP_AND`` / ``OP_OR``, so
evaluators may jump over the operand); ``OP_AND`` / ``OP_OR`` combine the top two
results; ``OP_NOT`` complements the top one.

A run's *context* is a bit set of leaves (bit l for leaf l): those its content depends on
(see :mod:`maskc.compiler.runs`).
"""

from __future__ import annotations

EMPTY, PARTIAL, FULL, UNKNOWN = 0, 1, 2, 3

T_D, T_S, T_R, T_C, T_SEG, T_BLOCK, T_CELLS, T_PRED = 0, 1, 2, 3, 4, 5, 6, 7
#: kinds whose verdict per block row is a precomputed run list
RUN_KINDS = (T_SEG, T_BLOCK, T_CELLS)

OP_LEAF, OP_NARROW_AND, OP_NARROW_OR, OP_AND, OP_OR, OP_NOT = 0, 1, 2, 3, 4, 5

#: most leaves a 64-bit context holds; beyond it content sharing is off
CTX_LEAVES = 63

# Content-key kinds: what determines the bits of an undecided block.
#: the block diagonal (undecided leaves all T_D)
K_DIAG = 0
#: the block anti-diagonal (all T_S)
K_ANTI = 1
#: the block row (all T_R)
K_ROW = 2
#: the block column (all T_C)
K_COL = 3
#: nothing shared: the block gets a key of its own
K_UNIQUE = 4
#: a full-size block whose undecided leaves are axis leaves: key (content id of each)
K_CONTENT = 5
#: segment leaf s undecided, query block inside one segment u: key (key block, u);
#: encoded as K_SEG_COL + 2 * s
K_SEG_COL = 8
#: segment leaf s undecided, key block inside one segment v: key (query block, v);
#: encoded as K_SEG_ROW + 2 * s
K_SEG_ROW = 9
