"""The dispatch plan: who owns which tokens, and which key/value blocks travel where.

Computed from the Layout alone (no process group, no tensors), in vectorised numpy over
the layout's block arrays: O(blocks) memory and O(blocks log blocks) time.

* Ownership: the sequence is cut into blocks of ``block`` tokens; rank ``owner[t]`` holds
  the queries, keys and values of block ``t`` (for every batch element and head). The
  assignment balances computed blocks (:mod:`maskc.distributed.assign`).
* Need: rank ``d`` must receive key/value block ``kb`` of *KV group* ``g`` from its owner
  when some query block that ``d`` owns reads ``kb`` in a stored slice of group ``g``. A KV
  group is the part of k / v one stored layout slice reads: one batch element when the
  layout has a batch axis (all of them otherwise), one kv head when the layout has several
  heads (all kv heads otherwise). So a rank never receives keys its queries do not read:
  with per-sample documents, only the documents (and samples) its queries touch.

The units ``(dst, src, group, kb)`` are kept sorted in that order: the receiver and the
sender derive the same message layout from the plan, so no metadata needs to travel.

Example:
    >>> import maskc as mc
    >>> from maskc.distributed import plan
    >>> lay = mc.compile(mc.causal() & mc.window(64), q_len=1024, block=64)
    >>> dp = plan(lay, 4, head_dim=64, dtype="float32")
    >>> dp.strategy, dp.tokens_per_rank.tolist()
    ('contiguous', [256, 256, 256, 256])
    >>> dp.report()["bytes_received"]     # 64 keys and values of 64 floats from the left neighbour
    [0, 32768, 32768, 32768]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskc.distributed.assign import ChunkReads, candidates, choose_owner, unique_codes
from maskc.distributed.report import make_report
from maskc.ir.layout import Layout
from maskc.limits import MAX_HEADS, check_int, refuse_above

_ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}


def _itemsize(dtype: Any) -> int:
    if isinstance(dtype, str):
        if dtype not in _ITEMSIZE:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_ITEMSIZE)} or a numpy/torch dtype")
        return _ITEMSIZE[dtype]
    size = getattr(dtype, "itemsize", None)
    return int(size) if size is not None else int(np.dtype(dtype).itemsize)


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (start, length), vectorised (int64).

    Example:
        >>> expand_ranges(np.array([10, 3]), np.array([2, 3])).tolist()
        [10, 11, 3, 4, 5]
    """
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts - offs, lengths) + np.arange(total, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DispatchPlan:
    """How one layout runs sharded over ``world_size`` ranks; build it with :func:`plan`.

    Per block ``t`` of ``block`` tokens: ``owner[t]``, and its position ``local_index[t]``
    among its owner's blocks (a rank keeps its blocks in sequence order). The received
    units, sorted by (destination, source, group, key block): ``recv_ptr[d] ..
    recv_ptr[d + 1]`` index ``recv_src``, ``recv_group`` and ``recv_kb``. The figures
    (``bytes_*``) use ``head_dim``, ``itemsize``, ``batch`` and ``kv_heads``. ``scores``:
    ``(strategy, chunks_per_rank, busiest-rank cost, imbalance)`` of every candidate
    ``"auto"`` weighed.
    """

    layout: Layout
    world_size: int
    strategy: str
    chunks_per_rank: int
    owner: np.ndarray
    local_index: np.ndarray
    rank_ptr: np.ndarray
    rank_blocks: np.ndarray
    n_groups: int
    slice_group: np.ndarray
    recv_ptr: np.ndarray
    recv_src: np.ndarray
    recv_group: np.ndarray
    recv_kb: np.ndarray
    computed_blocks: np.ndarray
    head_dim: int
    itemsize: int
    batch: int
    kv_heads: int
    scores: tuple = ()
    _derived: dict = field(default_factory=dict, repr=False, compare=False)

    # ---------------------------------------------------------------- sizes
    @property
    def block(self) -> int:
        """Tokens per block (the layout's square block)."""
        return self.layout.block_q

    @property
    def n_blocks(self) -> int:
        """Blocks of the sequence."""
        return self.layout.n_qb

    @property
    def block_tokens(self) -> np.ndarray:
        """Valid tokens of every block (the last one may be short): int64 [n_blocks]."""
        return self.layout.valid_rows()

    @property
    def tokens_per_rank(self) -> np.ndarray:
        """Tokens each rank holds: int64 [world_size]."""
        return np.bincount(self.owner, weights=self.block_tokens, minlength=self.world_size).astype(np.int64)

    def blocks_of(self, rank: int) -> np.ndarray:
        """The blocks ``rank`` owns, in the order its local tensors hold them (increasing)."""
        return self.rank_blocks[self.rank_ptr[rank]: self.rank_ptr[rank + 1]]

    def tokens_of(self, rank: int) -> np.ndarray:
        """Global positions of the tokens ``rank`` holds, in local order (int64)."""
        b = self.blocks_of(check_int(rank, "rank", 0, self.world_size - 1))
        return expand_ranges(b * self.block, self.block_tokens[b])

    @property
    def row_bytes(self) -> int:
        """Bytes of one token of keys *and* values of one KV group (the unit that travels)."""
        lay = self.layout
        per_batch = self.batch // lay.batch
        per_group = 1 if lay.heads > 1 else self.kv_heads
        return 2 * self.head_dim * self.itemsize * per_batch * per_group

    def fingerprint(self) -> int:
        """A 63-bit hash of everything ranks must agree on (checked once per process group)."""
        import hashlib

        h = hashlib.blake2b(digest_size=8)
        for a in (self.owner, self.recv_ptr, self.recv_group, self.recv_kb, self.slice_group):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((self.world_size, self.n_groups, self.layout.n_slices, self.layout.q_len)).encode())
        return int.from_bytes(h.digest(), "little") >> 1

    # ------------------------------------------------------- token placement
    def shard(self, x: Any, rank: int, dim: int = 2) -> Any:
        """The tokens of ``x`` (``[B, H, N, D]`` torch / numpy / jax; sequence on ``dim``) that ``rank`` holds.

        Example:
            >>> import numpy as np, maskc as mc
            >>> from maskc.distributed import plan
            >>> dp = plan(mc.compile(mc.causal(), q_len=8, block=2), 2)
            >>> dp.shard(np.arange(8).reshape(1, 1, 8, 1), 1)[0, 0, :, 0].tolist()
            [2, 3, 4, 5]
        """
        if x.shape[dim] != self.layout.q_len:
            raise ValueError(f"shard: x has {x.shape[dim]} positions on dim {dim}, the plan's layout "
                             f"{self.layout.q_len}; pass the full sequence (or the right dim=)")
        idx = self.tokens_of(rank)
        if hasattr(x, "index_select"):  # torch
            import torch

            return x.index_select(dim, torch.as_tensor(idx, device=x.device))
        return x.take(idx, axis=dim)

    def unshard(self, parts: Any, dim: int = 2) -> Any:
        """Inverse of :meth:`shard`: the full sequence from every rank's part (rank order).

        Example:
            >>> import numpy as np, maskc as mc
            >>> from maskc.distributed import plan
            >>> dp = plan(mc.compile(mc.causal(), q_len=8, block=2), 2)
            >>> x = np.arange(8).reshape(1, 1, 8)
            >>> bool((dp.unshard([dp.shard(x, r) for r in range(2)]) == x).all())
            True
        """
        parts = list(parts)
        if len(parts) != self.world_size:
            raise ValueError(f"unshard: got {len(parts)} parts for a plan over {self.world_size} ranks")
        tpr = self.tokens_per_rank
        for r, p in enumerate(parts):
            if p.shape[dim] != tpr[r]:
                raise ValueError(f"unshard: part {r} has {p.shape[dim]} positions on dim {dim}, rank {r} holds {tpr[r]}")
        inv = np.argsort(np.concatenate([self.tokens_of(r) for r in range(self.world_size)]), kind="stable")
        if hasattr(parts[0], "index_select"):
            import torch

            return torch.cat(parts, dim).index_select(dim, torch.as_tensor(inv, device=parts[0].device))
        if type(parts[0]).__module__.startswith("jax"):
            import jax.numpy as jnp

            return jnp.concatenate(parts, axis=dim).take(inv, axis=dim)
        return np.concatenate([np.asarray(p) for p in parts], axis=dim).take(inv, axis=dim)

    # -------------------------------------------------------------- figures
    def unit_bytes(self) -> np.ndarray:
        """Bytes of every received unit (keys and values of one group's key block): int64."""
        return self.block_tokens[self.recv_kb] * self.row_bytes

    def report(self):
        """Per-rank figures (a dict of lists that prints as a table); see :mod:`maskc.distributed.report`.

        Example:
            >>> import maskc as mc
            >>> from maskc.distributed import plan
            >>> r = plan(mc.compile(mc.causal(), q_len=4096, block=128), 4).report()
            >>> r["computed_blocks"], r["imbalance"]
            ([132, 132, 132, 132], 1.0)
        """
        return make_report(self)

    def __repr__(self) -> str:
        return (f"DispatchPlan({self.layout.pattern_text or '<layout>'}, world_size={self.world_size}, "
                f"strategy={self.strategy!r}, units={len(self.recv_kb)})")


def _groups(layout: Layout, kv_heads: int) -> tuple[int, np.ndarray]:
    hl = layout.heads
    per_sample = 1 if hl == 1 else kv_heads
    s = np.arange(layout.n_slices, dtype=np.int64)
    group = (s // hl) * per_sample + (s % hl) // (hl // per_sample)
    return layout.batch * per_sample, group


def _check(layout: Any, world_size: Any) -> int:
    if not isinstance(layout, Layout):
        raise TypeError(f"plan needs a maskc.Layout (mc.compile(pattern, q_len, block=...)), got {type(layout).__name__}")
    if layout.block_q != layout.block_k:
        raise ValueError(f"the layout's blocks are {layout.block_q} x {layout.block_k}; context parallelism shards "
                         "queries and keys by the same blocks: compile with a square block (block=b)")
    if layout.q_len != layout.kv_len or layout.q_offset:
        raise ValueError(f"the layout is {layout.q_len} queries x {layout.kv_len} keys with q_offset={layout.q_offset}; "
                         "context parallelism shards one self-attention sequence: compile with kv_len == q_len and q_offset=0")
    n = layout.n_qb
    P = check_int(world_size, "world_size", 1, None)
    if P > n:
        raise ValueError(f"world_size={P} is more than the layout's {n} blocks; every rank needs at least one "
                         f"block: use at most {n} ranks or compile with a smaller block")
    return P


def plan(layout: Layout, world_size: int, *, strategy: str = "auto", chunks_per_rank: int | None = None,
         comm_weight: float = 1.0, head_dim: int = 128, dtype: Any = "bfloat16", batch: int | None = None,
         kv_heads: int | None = None) -> DispatchPlan:
    """The dispatch plan of ``layout`` over ``world_size`` ranks (pure: no process group needed).

    Args:
        layout: a self-attention Layout (square blocks, ``q_len == kv_len``, no q_offset);
            any number of heads and batch elements.
        world_size: number of ranks.
        strategy: ``"auto"`` (the candidate whose busiest rank has the lowest ``computed
            blocks + comm_weight * received key/value blocks``), ``"contiguous"``,
            ``"zigzag"`` or ``"lpt"`` (with ``chunks_per_rank``, default 2).
        comm_weight: for ``"auto"``, how many computed blocks one received key/value block
            (and its returning gradient) costs. 1 fits an NVLink-class link next to a
            tensor-core GPU with a few query heads per kv head (one block of keys and values
            of one kv head travels in about the time its query heads take to compute it);
            raise it for slower links or fewer query heads per kv head, lower it where
            compute is slow (CPUs).
        head_dim, dtype, batch, kv_heads: sizes of the k / v tensors, used for the byte
            figures only (batch defaults to the layout's, kv_heads to its heads). With a
            multi-head layout, ``kv_heads`` also says which heads share keys (GQA), so it
            must match the k / v tensors the plan runs on.

    Example:
        >>> import maskc as mc
        >>> from maskc.distributed import plan
        >>> dp = plan(mc.compile(mc.causal(), q_len=4096, block=128), 4)
        >>> dp.strategy, [len(dp.blocks_of(r)) for r in range(4)]
        ('zigzag', [8, 8, 8, 8])
    """
    P = _check(layout, world_size)
    hl = layout.heads
    d = check_int(head_dim, "head_dim", 1, 1 << 20)
    b = layout.batch if batch is None else check_int(batch, "batch", 1, None)
    if layout.batch > 1 and b != layout.batch:
        raise ValueError(f"batch={b} but the layout stores {layout.batch} batch elements; they must agree")
    kvh = hl if kv_heads is None else check_int(kv_heads, "kv_heads", 1, MAX_HEADS)
    if hl > 1 and hl % kvh:
        raise ValueError(f"kv_heads={kvh} must divide the layout's {hl} heads (grouped-query attention)")
    n = layout.n_qb
    qb = layout.block_row.astype(np.int64)
    weight = np.bincount(qb, minlength=n)
    G, slice_group = _groups(layout, kvh)
    refuse_above(P * P * G * n, 1 << 62, "the plan's unit keys", "use fewer ranks or fewer stored slices", unit="codes")
    grp = slice_group[layout.block_head]
    reads = ChunkReads(qb, layout.col_idx, grp, n, G, max(c * P for _, c in candidates(n, P))) \
        if strategy == "auto" else None
    owner, strat, m, scores = choose_owner(weight, P, strategy, chunks_per_rank,
                                           reads.received if reads else None, comm_weight)
    del reads
    rank_blocks = np.argsort(owner, kind="stable").astype(np.int64)
    rank_ptr = np.zeros(P + 1, np.int64)
    rank_ptr[1:] = np.cumsum(np.bincount(owner, minlength=P))
    local_index = np.empty(n, np.int64)
    local_index[rank_blocks] = np.arange(n) - np.repeat(rank_ptr[:-1], np.diff(rank_ptr))
    dst = owner[qb].astype(np.int64)
    src = owner[layout.col_idx].astype(np.int64)
    sel = np.flatnonzero(dst != src)
    key = ((dst[sel] * P + src[sel]) * G + grp[sel]) * n + layout.col_idx[sel]
    del src, sel
    units = unique_codes(key, P * P * G * n)
    del key
    kb, rest = units % n, units // n
    grp, rest = rest % G, rest // G
    usrc, udst = rest % P, rest // P
    recv_ptr = np.zeros(P + 1, np.int64)
    recv_ptr[1:] = np.cumsum(np.bincount(udst, minlength=P))
    return DispatchPlan(
        layout=layout, world_size=P, strategy=strat, chunks_per_rank=m, owner=owner, local_index=local_index,
        rank_ptr=rank_ptr, rank_blocks=rank_blocks, n_groups=G, slice_group=slice_group, recv_ptr=recv_ptr,
        recv_src=usrc, recv_group=grp, recv_kb=kb, computed_blocks=np.bincount(dst, minlength=P).astype(np.int64),
        head_dim=d, itemsize=_itemsize(dtype), batch=b, kv_heads=kvh, scores=tuple(scores),
    )
