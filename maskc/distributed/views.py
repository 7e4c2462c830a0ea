"""What one rank needs to execute a dispatch plan: its sub-layouts and its message rows.

A rank computes two parts and merges them by log-sum-exp:

* the *local* part: its query blocks against its own key blocks (renumbered to local
  positions), runnable before any message arrives;
* the *remote* part: its query blocks against the key blocks it receives, stored in one
  buffer of ``remote_tokens`` positions: the union of the received key blocks over all KV
  groups, in sequence order (a group that did not receive a block has zeros there, which
  its layout slice never reads).

Both are ordinary :class:`~maskc.Layout` objects with every slice of the original
layout, so any backend runs them. The global ragged tail block, if a rank holds it, is
the last block of that rank's local tokens and of its remote buffer, so valid rows and
columns stay those of a ragged tail.

Messages are rows of the *group-major* view of k / v: ``[B, Hkv, n, D]`` viewed as
``[n_groups * n, width]`` (see :func:`group_rows`): ``send[i] = (dst, rows)`` lists the
local rows sent to ``dst``; ``recv[i] = (src, rows)`` the remote-buffer rows filled from
``src``, in the same (group, key block, token) order on both sides.

Example:
    >>> import maskc as mc
    >>> from maskc.distributed import plan
    >>> from maskc.distributed.views import rank_view
    >>> dp = plan(mc.compile(mc.causal() & mc.window(2), q_len=8, block=2), 2, strategy="contiguous")
    >>> v = rank_view(dp, 1)
    >>> v.remote_blocks.tolist(), [(s, rows.tolist()) for s, rows in v.recv]
    ([1], [(0, [0, 1])])
    >>> v.local_layout.q_len, v.remote_layout.kv_len
    (4, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskc.distributed.plan import DispatchPlan, expand_ranges
from maskc.ir.layout import Layout


@dataclass(frozen=True, eq=False)
class RankView:
    """One rank's share of a plan (see the module docstring)."""

    rank: int
    n_tokens: int
    local_layout: Layout | None
    remote_layout: Layout | None
    remote_blocks: np.ndarray
    remote_tokens: int
    send: tuple[tuple[int, np.ndarray], ...]
    recv: tuple[tuple[int, np.ndarray], ...]

    @property
    def send_rows(self) -> int:
        """Rows (tokens x groups) this rank sends."""
        return int(sum(len(r) for _, r in self.send))

    @property
    def recv_rows(self) -> int:
        """Rows (tokens x groups) this rank receives."""
        return int(sum(len(r) for _, r in self.recv))


def sub_layout(lay: Layout, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, q_len: int, kv_len: int) -> Layout:
    """The layout of blocks ``idx`` of ``lay`` moved to block rows ``rows`` and columns ``cols``.

    ``idx`` must be increasing and the renumbering monotone within each slice, so the
    block order stays (slice, row, column). Masks are compacted to those used.
    """
    S, bs = lay.n_slices, lay.block_q
    n_qb = -(-q_len // bs)
    counts = np.bincount(lay.block_head[idx].astype(np.int64) * n_qb + rows, minlength=S * n_qb)
    flat = np.concatenate([[0], np.cumsum(counts)])
    row_ptr = flat[np.arange(S)[:, None] * n_qb + np.arange(n_qb + 1)[None, :]].astype(np.int64)
    pid = lay.partial_id[idx]
    used = pid >= 0
    uniq, inv = np.unique(pid[used], return_inverse=True)
    new_pid = np.full(len(idx), -1, np.int32)
    new_pid[used] = inv.astype(np.int32)
    return Layout(
        q_len=int(q_len), kv_len=int(kv_len), block_q=bs, block_k=bs, row_ptr=row_ptr,
        col_idx=np.ascontiguousarray(cols, dtype=np.int32), kind=lay.kind[idx].copy(), partial_id=new_pid,
        masks=np.ascontiguousarray(lay.masks[uniq]), pattern_text=lay.pattern_text, batch=lay.batch,
    )


def _blocks_by_rank(dp: DispatchPlan) -> tuple[np.ndarray, np.ndarray]:
    """Layout block indices grouped by the rank owning their query block (increasing inside)."""
    if "by_rank" not in dp._derived:
        dst = dp.owner[dp.layout.block_row]
        order = np.argsort(dst, kind="stable")
        ptr = np.zeros(dp.world_size + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(dst, minlength=dp.world_size))
        dp._derived["by_rank"] = (order, ptr)
    return dp._derived["by_rank"]


def _unit_rows(dp: DispatchPlan, sel: np.ndarray, block_pos: np.ndarray, n_rows: int) -> np.ndarray:
    """Row indices of units ``sel``: group g, block at ``block_pos`` -> ``g * n_rows + pos * block + t``."""
    kb = dp.recv_kb[sel]
    starts = dp.recv_group[sel] * n_rows + block_pos * dp.block
    return expand_ranges(starts, dp.block_tokens[kb])


def _split(peers: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> tuple[tuple[int, np.ndarray], ...]:
    """Cut ``rows`` (concatenated per unit) into one array per peer (peers sorted)."""
    out, at = [], 0
    if not len(peers):
        return ()
    cuts = np.flatnonzero(np.diff(peers)) + 1
    for seg in np.split(np.arange(len(peers)), cuts):
        n = int(lengths[seg].sum())
        out.append((int(peers[seg[0]]), rows[at: at + n]))
        at += n
    return tuple(out)


def _make_view(dp: DispatchPlan, r: int) -> RankView:
    lay, bs = dp.layout, dp.block
    order, ptr = _blocks_by_rank(dp)
    idx = order[ptr[r]: ptr[r + 1]]
    qb, kb = lay.block_row[idx], lay.col_idx[idx].astype(np.int64)
    mine = dp.owner[kb] == r
    n_tok = int(dp.tokens_per_rank[r])
    rows = dp.local_index[qb]
    local = None
    if mine.any():
        local = sub_layout(lay, idx[mine], rows[mine], dp.local_index[kb[mine]], n_tok, n_tok)
    lo, hi = dp.recv_ptr[r], dp.recv_ptr[r + 1]
    remote_blocks = np.unique(dp.recv_kb[lo:hi])
    m_tok = int(dp.block_tokens[remote_blocks].sum())
    remote = None
    if (~mine).any():
        far = ~mine
        remote = sub_layout(lay, idx[far], rows[far], np.searchsorted(remote_blocks, kb[far]), n_tok, m_tok)
    rsel = np.arange(lo, hi)
    recv_rows = _unit_rows(dp, rsel, np.searchsorted(remote_blocks, dp.recv_kb[rsel]), m_tok)
    recv = _split(dp.recv_src[rsel], recv_rows, dp.block_tokens[dp.recv_kb[rsel]])
    ssel = np.flatnonzero(dp.recv_src == r)  # sorted by destination, then group, then key block
    send_rows = _unit_rows(dp, ssel, dp.local_index[dp.recv_kb[ssel]], n_tok)
    dst = np.searchsorted(dp.recv_ptr, ssel, side="right") - 1
    send = _split(dst, send_rows, dp.block_tokens[dp.recv_kb[ssel]])
    return RankView(r, n_tok, local, remote, remote_blocks, m_tok, send, recv)


def rank_view(dp: DispatchPlan, rank: int) -> RankView:
    """The :class:`RankView` of ``rank`` (computed once per plan and rank)."""
    key = ("view", int(rank))
    if key not in dp._derived:
        if not 0 <= int(rank) < dp.world_size:
            raise ValueError(f"rank {rank} is outside the plan's {dp.world_size} ranks")
        dp._derived[key] = _make_view(dp, int(rank))
    return dp._derived[key]


def group_rows(x, n_groups_batch: int, n_groups_head: int):
    """``[B, H, n, D]`` -> ``[n_groups_batch * n_groups_head * n, (B / gb) * (H / gh) * D]`` rows (group-major).

    Group ``g = b_slot * n_groups_head + h_slot`` holds batch elements ``b_slot * B/gb ..``
    and heads ``h_slot * H/gh ..``. Works on torch tensors and numpy / jax arrays.

    Example:
        >>> import numpy as np
        >>> group_rows(np.arange(8).reshape(2, 1, 2, 2), 2, 1).tolist()
        [[0, 1], [2, 3], [4, 5], [6, 7]]
    """
    B, H, n, D = x.shape
    gb, gh = n_groups_batch, n_groups_head
    y = x.reshape(gb, B // gb, gh, H // gh, n, D)
    y = y.permute(0, 2, 4, 1, 3, 5) if hasattr(y, "permute") else y.transpose(0, 2, 4, 1, 3, 5)
    return y.reshape(gb * gh * n, (B // gb) * (H // gh) * D)


def ungroup_rows(rows, B: int, H: int, n_groups_batch: int, n_groups_head: int):
    """Inverse of :func:`group_rows`: ``[G * n, width]`` -> ``[B, H, n, D]``."""
    gb, gh = n_groups_batch, n_groups_head
    n = rows.shape[0] // (gb * gh)
    D = rows.shape[1] // ((B // gb) * (H // gh))
    y = rows.reshape(gb, gh, n, B // gb, H // gh, D)
    y = y.permute(0, 3, 1, 4, 2, 5) if hasattr(y, "permute") else y.transpose(0, 3, 1, 4, 2, 5)
    return y.reshape(B, H, n, D)
