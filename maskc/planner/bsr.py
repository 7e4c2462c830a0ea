"""The planner's own CPU block-sparse path (torch, differentiable, bounded memory).

Block lists are kept in ELL form: for query block ``qb``, ``kb[qb, :]`` lists the key
blocks it reads (padded with -1). The per-block masks are produced lazily for a chunk of
query blocks by a *mask source*:

* :class:`ToeplitzBlocks` — a part that depends on d = i - j only, given by its 1-D
  membership array over d (index ``d + kv_len - 1``); the block list and the masks come
  straight from the array (prefix sums for "any", a gather for the bits), no compiler
  needed and no N x N anywhere.
* :class:`LayoutBlocks` — any :class:`maskc.Layout` (FULL / PARTIAL blocks, dictionary
  of bitmasks), one stored head.

:func:`ell_attention` runs softmax attention over the blocks with a custom autograd
function: the forward keeps only ``(out, lse)``; the backward recomputes scores chunk by
chunk (flash-attention style), so memory stays O(chunk) in forward and backward. The
gradient of ``lse`` is honoured (the LSE merge needs it).

Speed: query blocks are bucketed by how many key blocks they read (:func:`_chunks`), so a
chunk pads only to its own longest row; each chunk is one batched ``bmm`` for the scores
and one for the output, over at most :data:`CHUNK_ELEMENTS` scores (cache sized). Only the
slots that need it are masked (:func:`_slot_masks`): padding slots, PARTIAL blocks (their
bits, built for those blocks only) and blocks crossing kv_len; FULL blocks are not touched.

Example:
    >>> import numpy as np, torch
    >>> from maskc.planner.bsr import ToeplitzBlocks, ell_attention
    >>> member = np.zeros(2 * 6 - 1, bool); member[5:7] = True   # d in {0, 1}
    >>> src = ToeplitzBlocks(member, 6, 6, 4)
    >>> src.kb.tolist()
    [[0, -1], [0, 1]]
    >>> q = torch.randn(1, 1, 6, 8)
    >>> out, lse = ell_attention(q, q, q, src, scale=0.5)
    >>> out.shape, bool(torch.isfinite(lse).all())
    (torch.Size([1, 1, 6, 8]), True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from maskc.ir.layout import FULL, Layout
from maskc.planner.merge import safe_lse

Tensor = torch.Tensor

#: Score elements (floats) materialised per chunk of query blocks. Small enough that a
#: chunk's scores (2 MiB in float32) stay in cache through the softmax passes: on the 2-core
#: dev CPU (2026-11-22) 1 << 19 ran block-level PrimeBird at 8K ~20% faster forward than
#: 1 << 22 and ~30% faster forward+backward (1 << 20: ~10%; below 1 << 18 Python overhead wins).
CHUNK_ELEMENTS: int = 1 << 19


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class BlockSource:
    """ELL block list + lazy masks for one head. Subclasses fill ``kb`` and ``masks``."""

    q_len: int
    kv_len: int
    block_q: int
    block_k: int
    kb: np.ndarray  # int64 [n_qb, K], -1 padded

    @property
    def n_qb(self) -> int:
        return _cdiv(self.q_len, self.block_q)

    @property
    def n_kb(self) -> int:
        return _cdiv(self.kv_len, self.block_k)

    @property
    def n_blocks(self) -> int:
        """Non-empty blocks (the work a block-sparse kernel does)."""
        return int(np.count_nonzero(self.kb >= 0))

    def masks(self, qbs: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """bool [len(qbs), K, block_q, block_k] for the listed query blocks."""
        raise NotImplementedError

    def full_blocks(self, qbs: np.ndarray) -> np.ndarray:
        """bool [len(qbs), K]: slot is padding, or its block allows every pair inside q_len x kv_len.

        Chunks made only of such blocks skip the element masks (see :func:`_slot_masks`).
        This generic version derives it from :meth:`masks`; subclasses answer cheaply.
        """
        return (self.masks(qbs) | ~self._valid(qbs)).all(axis=(2, 3))

    def slot_masks(self, qb: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """bool [n, Bq, Bk]: the masks of the listed (query block, ELL slot) pairs only.

        Same values as ``masks(qbs)[i, slot]`` (padding slots all False); subclasses build
        just these blocks instead of every block of the rows.
        """
        uq, inv = np.unique(qb, return_inverse=True)
        return self.masks(uq)[inv, slot]

    def _valid_slots(self, qb: np.ndarray, kb: np.ndarray) -> np.ndarray:
        """bool [n, Bq, Bk] for block pairs (qb, kb): inside q_len / kv_len and kb >= 0."""
        Bq, Bk = self.block_q, self.block_k
        ok_r = qb[:, None] * Bq + np.arange(Bq)[None, :] < self.q_len
        ok_c = (kb[:, None] * Bk + np.arange(Bk)[None, :] < self.kv_len) & (kb[:, None] >= 0)
        return ok_r[:, :, None] & ok_c[:, None, :]

    def _valid(self, qbs: np.ndarray) -> np.ndarray:
        """bool [len(qbs), K, Bq, Bk]: element inside q_len / kv_len and block present."""
        Bq, Bk = self.block_q, self.block_k
        rows = qbs[:, None] * Bq + np.arange(Bq)[None, :]  # [c, Bq]
        kb = self.kb[qbs]  # [c, K]
        cols = kb[:, :, None] * Bk + np.arange(Bk)[None, None, :]  # [c, K, Bk]
        ok_r = rows < self.q_len
        ok_c = (cols < self.kv_len) & (kb[:, :, None] >= 0)
        return ok_r[:, None, :, None] & ok_c[:, :, None, :]


def _ell_from_rows(lists: list[np.ndarray]) -> np.ndarray:
    K = max([len(x) for x in lists] + [1])
    kb = np.full((len(lists), K), -1, dtype=np.int64)
    for r, x in enumerate(lists):
        kb[r, : len(x)] = x
    return kb


def toeplitz_block_any(member: np.ndarray, q_len: int, kv_len: int, bq: int, bk: int) -> np.ndarray:
    """bool [n_qb, n_kb]: does block (qb, kb) hold an allowed pair of this offset set?

    Prefix sums over the membership array answer each block in O(1).

    Example:
        >>> import numpy as np
        >>> from maskc.planner.bsr import toeplitz_block_any
        >>> d = np.arange(-7, 8); toeplitz_block_any(d >= 0, 8, 8, 4, 4).astype(int).tolist()
        [[1, 0], [1, 1]]
    """
    member = np.asarray(member, dtype=bool)
    pre = np.concatenate([[0], np.cumsum(member, dtype=np.int64)])
    n_qb, n_kb = _cdiv(q_len, bq), _cdiv(kv_len, bk)
    qb = np.arange(n_qb)[:, None]
    kbs = np.arange(n_kb)[None, :]
    # offsets touched by block (qb, kb): d in [qb*Bq - (last col), (last row) - kb*Bk], ragged tails clipped
    r_hi = np.minimum(qb * bq + bq - 1, q_len - 1)
    c_hi = np.minimum(kbs * bk + bk - 1, kv_len - 1)
    lo_i = np.clip(qb * bq - c_hi + kv_len - 1, 0, member.shape[0])
    hi_i = np.clip(r_hi - kbs * bk + kv_len, 0, member.shape[0])
    return (pre[np.maximum(hi_i, lo_i)] - pre[lo_i]) > 0


class ToeplitzBlocks(BlockSource):
    """Blocks of a pattern that depends on d = i - j only (membership over d).

    ``member[d + kv_len - 1]`` says whether offset d is allowed, for d in
    ``[-(kv_len - 1), q_len - 1]``.
    """

    def __init__(self, member: np.ndarray, q_len: int, kv_len: int, block: int | tuple[int, int]):
        bq, bk = (block, block) if isinstance(block, int) else block
        member = np.asarray(member, dtype=bool)
        if member.shape != (q_len + kv_len - 1,):
            raise ValueError(f"membership must have length q_len + kv_len - 1 = {q_len + kv_len - 1}, got {member.shape}")
        self.member, self.q_len, self.kv_len, self.block_q, self.block_k = member, q_len, kv_len, bq, bk
        any_ = toeplitz_block_any(member, q_len, kv_len, bq, bk)
        self.kb = _ell_from_rows([np.nonzero(any_[r])[0] for r in range(self.n_qb)])

    def masks(self, qbs: np.ndarray) -> np.ndarray:
        Bq, Bk = self.block_q, self.block_k
        kb = np.maximum(self.kb[qbs], 0)
        # the bits of block (qb, kb) depend only on qb*Bq - kb*Bk (then ragged tails are cut)
        diag = qbs[:, None] * Bq - kb * Bk  # [c, K]
        uniq, inv = np.unique(diag, return_inverse=True)
        d = uniq[:, None, None] + np.arange(Bq)[None, :, None] - np.arange(Bk)[None, None, :]
        table = self.member[np.clip(d + self.kv_len - 1, 0, self.member.shape[0] - 1)]
        table &= (d >= -(self.kv_len - 1)) & (d <= self.q_len - 1)
        return table[inv.reshape(diag.shape)] & self._valid(qbs)

    def slot_masks(self, qb: np.ndarray, slot: np.ndarray) -> np.ndarray:
        Bq, Bk = self.block_q, self.block_k
        kb = self.kb[qb, slot]
        # the bits depend only on qb*Bq - kb*Bk: build each distinct block once
        uniq, inv = np.unique(qb * Bq - np.maximum(kb, 0) * Bk, return_inverse=True)
        d = uniq[:, None, None] + np.arange(Bq)[None, :, None] - np.arange(Bk)[None, None, :]
        t = self.member[np.clip(d + self.kv_len - 1, 0, self.member.shape[0] - 1)]
        t &= (d >= -(self.kv_len - 1)) & (d <= self.q_len - 1)
        return t[inv.reshape(-1)] & self._valid_slots(qb, kb)

    def full_blocks(self, qbs: np.ndarray) -> np.ndarray:
        Bq, Bk = self.block_q, self.block_k
        kb = self.kb[qbs]
        # a block is full when every offset it spans, d in [qb*Bq - kb*Bk - (Bk-1), + (Bq-1)], is a member
        # (blocks on a ragged tail may be reported partial: that is only slower, never wrong)
        lo = qbs[:, None] * Bq - np.maximum(kb, 0) * Bk - (Bk - 1) + self.kv_len - 1
        hi = lo + Bq + Bk - 1
        pre = self._prefix()
        ok = (lo >= 0) & (hi <= self.member.shape[0])
        lo_c, hi_c = np.clip(lo, 0, self.member.shape[0]), np.clip(hi, 0, self.member.shape[0])
        full = ok & (pre[hi_c] - pre[lo_c] == hi - lo)
        return full | (kb < 0)

    def _prefix(self) -> np.ndarray:
        if getattr(self, "_pre", None) is None:
            self._pre = np.concatenate([[0], np.cumsum(self.member, dtype=np.int64)])
        return self._pre


class LayoutBlocks(BlockSource):
    """Blocks of one stored head of a :class:`maskc.Layout`."""

    def __init__(self, layout: Layout, head: int = 0):
        self.layout, self.q_len, self.kv_len = layout, layout.q_len, layout.kv_len
        self.block_q, self.block_k = layout.block_q, layout.block_k
        rp = layout.row_ptr[head]
        lists = [np.asarray(layout.col_idx[rp[r]: rp[r + 1]], dtype=np.int64) for r in range(layout.n_qb)]
        self.kb = _ell_from_rows(lists)
        pos = np.full(self.kb.shape, -1, dtype=np.int64)
        for r in range(layout.n_qb):
            pos[r, : rp[r + 1] - rp[r]] = np.arange(rp[r], rp[r + 1])
        self.pos = pos

    def masks(self, qbs: np.ndarray) -> np.ndarray:
        lay = self.layout
        pos = self.pos[qbs]  # [c, K]
        out = np.ones(pos.shape + (self.block_q, self.block_k), dtype=bool)
        part = pos >= 0  # padding slots (-1) stay "full" here and are cut by _valid / kb < 0
        part[part] = lay.kind[pos[part]] != FULL
        if part.any():
            out[part] = lay.mask_bits[lay.partial_id[pos[part]]]
        return out & self._valid(qbs)

    def slot_masks(self, qb: np.ndarray, slot: np.ndarray) -> np.ndarray:
        lay = self.layout
        pos = self.pos[qb, slot]
        out = np.ones((len(pos), self.block_q, self.block_k), dtype=bool)
        part = pos >= 0
        part[part] = lay.kind[pos[part]] != FULL
        if part.any():
            out[part] = lay.mask_bits[lay.partial_id[pos[part]]]
        return out & self._valid_slots(qb, self.kb[qb, slot])

    def full_blocks(self, qbs: np.ndarray) -> np.ndarray:
        pos = self.pos[qbs]
        full = pos < 0
        full[~full] = self.layout.kind[pos[~full]] == FULL
        return full


def _expand_kv(x: Tensor, hq: int) -> Tensor:
    hkv = x.shape[1]
    if hkv == hq:
        return x
    return x.repeat_interleave(hq // hkv, dim=1)


def _chunks(src: BlockSource, rows_per_qb: int) -> list[tuple[np.ndarray, int]]:
    """Query blocks bucketed by key-block count: ``[(qbs, K), ...]``.

    Rows are sorted by how many key blocks they read and cut greedily into chunks whose
    score tile ``rows_per_qb x len(qbs) x K x block_k`` stays under :data:`CHUNK_ELEMENTS`
    (a single row larger than that is a chunk of its own); ``K`` is the chunk's largest
    count, so padding is only the gap between neighbouring counts. Rows with no key block
    are left out (their output is 0 and lse -inf).
    """
    counts = np.count_nonzero(src.kb >= 0, axis=1)
    order = np.argsort(counts, kind="stable")
    order = order[counts[order] > 0]
    out: list[tuple[np.ndarray, int]] = []
    i, n = 0, len(order)
    unit = max(1, rows_per_qb * src.block_k)
    while i < n:
        j = i + 1
        while j < n and (j + 1 - i) * int(counts[order[j]]) * unit <= CHUNK_ELEMENTS:
            j += 1
        qbs = np.sort(order[i:j])
        out.append((qbs, int(counts[order[j - 1]])))
        i = j
    return out


def _pad_seq(x: Tensor, n: int) -> Tensor:
    L = x.shape[2]
    if L == n:
        return x
    return torch.nn.functional.pad(x, (0, 0, 0, n - L))


def _slot_masks(src: BlockSource, qbs: np.ndarray, K: int):
    """The slots of one chunk that need masking: ``(rows, slots, keep)`` or None.

    ``rows`` / ``slots`` (int64 ``[n]``) index ``src.kb[qbs, :K]``; ``keep`` is bool
    ``[n, Bq, Bk]`` (all False for padding slots), or None when every listed slot is
    padding. Full blocks inside kv_len need no mask,
    so only padding slots, partial blocks and the ragged kv tail are touched. Query rows
    past q_len are cut off afterwards and need no mask.
    """
    Bk = src.block_k
    kb = src.kb[qbs, :K]
    pad = kb < 0
    need = pad | ~src.full_blocks(qbs)[:, :K] | (kb * Bk + Bk > src.kv_len)
    if not need.any():
        return None
    r, sl = np.nonzero(need)
    if pad[r, sl].all():
        return torch.from_numpy(r), torch.from_numpy(sl), None
    keep = src.slot_masks(qbs[r], sl)
    return torch.from_numpy(r), torch.from_numpy(sl), torch.from_numpy(keep)


def _scores(qs: Tensor, kg: Tensor, sm, K: int) -> Tensor:
    """``qs @ kg^T`` with the chunk's slot masks applied (-inf outside): ``[G, c, Bq, K * Bk]``.

    qs ``[G, c, Bq, D]`` (already scaled), kg ``[G, c, K * Bk, D]``.
    """
    G, c, Bq, D = qs.shape
    L = kg.shape[2]
    s = torch.bmm(qs.reshape(G * c, Bq, D), kg.reshape(G * c, L, D).transpose(1, 2)).view(G, c, Bq, L)
    if sm is not None:
        r, sl, keep = sm
        s5 = s.view(G, c, Bq, K, L // K)
        if keep is None:  # padding slots only
            s5[:, r, :, sl, :] = float("-inf")
        else:
            blk = s5[:, r, :, sl, :]  # [n, G, Bq, Bk]
            s5[:, r, :, sl, :] = blk.masked_fill_(~keep.to(s.device).unsqueeze(1), float("-inf"))
    return s


class _EllAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, src, scale):  # q, k, v: [B, H, L, D] with equal heads
        B, H, N, D = q.shape
        Dv = v.shape[-1]
        G = B * H
        Bq, Bk, n_qb, n_kb = src.block_q, src.block_k, src.n_qb, src.n_kb
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        qp = _pad_seq(q, n_qb * Bq).reshape(G, n_qb, Bq, D).to(acc) * scale
        kp = _pad_seq(k, (n_kb + 1) * Bk).reshape(G, n_kb + 1, Bk, D).to(acc)  # block n_kb: zero dummy
        vp = _pad_seq(v, (n_kb + 1) * Bk).reshape(G, n_kb + 1, Bk, Dv).to(acc)
        out = torch.zeros(G, n_qb, Bq, Dv, dtype=acc, device=q.device)
        lse = torch.full((G, n_qb, Bq), float("-inf"), dtype=acc, device=q.device)
        for qbs_np, K in _chunks(src, G * Bq):
            c = len(qbs_np)
            qbs = torch.from_numpy(qbs_np).to(q.device)
            kb = torch.from_numpy(np.where(src.kb[qbs_np, :K] >= 0, src.kb[qbs_np, :K], n_kb)).to(q.device)
            kg = kp[:, kb].view(G, c, K * Bk, D)
            vg = vp[:, kb].view(G * c, K * Bk, Dv)
            s = _scores(qp[:, qbs], kg, _slot_masks(src, qbs_np, K), K)
            mx = s.amax(dim=-1)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            e = s.sub_(mx.unsqueeze(-1)).exp_()  # in place: s is not needed again
            z = e.sum(dim=-1)
            zs = torch.where(z > 0, z, torch.ones_like(z))
            o = torch.bmm(e.view(G * c, Bq, K * Bk), vg).view(G, c, Bq, Dv)
            out[:, qbs] = o.div_(zs.unsqueeze(-1))
            lse[:, qbs] = safe_lse(mx, z)
        out = out.view(B, H, n_qb * Bq, Dv)[:, :, :N].to(q.dtype)
        lse = lse.view(B, H, n_qb * Bq)[:, :, :N]
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.src, ctx.scale = src, scale
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        src, scale = ctx.src, ctx.scale
        B, H, N, D = q.shape
        Dv = v.shape[-1]
        G = B * H
        M = k.shape[2]
        Bq, Bk, n_qb, n_kb = src.block_q, src.block_k, src.n_qb, src.n_kb
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        if dout is None:
            dout = torch.zeros_like(out)
        dlse = torch.zeros_like(lse) if dlse is None else dlse
        delta = (dout.to(acc) * out.to(acc)).sum(-1) - dlse.to(acc)  # [B, H, N]
        lse_f = torch.where(torch.isfinite(lse), lse, torch.full_like(lse, float("inf"))).to(acc)  # exp(s - inf) = 0
        qp = _pad_seq(q, n_qb * Bq).reshape(G, n_qb, Bq, D).to(acc) * scale
        dop = _pad_seq(dout, n_qb * Bq).reshape(G, n_qb, Bq, Dv).to(acc)
        # padded query rows: lse +inf -> p = 0, so they add nothing to dk / dv
        lsep = torch.nn.functional.pad(lse_f, (0, n_qb * Bq - N), value=float("inf")).reshape(G, n_qb, Bq)
        dlp = _pad_seq(delta.unsqueeze(-1), n_qb * Bq).reshape(G, n_qb, Bq)
        kp = _pad_seq(k, (n_kb + 1) * Bk).reshape(G, n_kb + 1, Bk, D).to(acc)
        vp = _pad_seq(v, (n_kb + 1) * Bk).reshape(G, n_kb + 1, Bk, Dv).to(acc)
        dq = torch.zeros(G, n_qb, Bq, D, dtype=acc, device=q.device)
        dk = torch.zeros(G, n_kb + 1, Bk, D, dtype=acc, device=q.device)
        dv = torch.zeros(G, n_kb + 1, Bk, Dv, dtype=acc, device=q.device)
        for qbs_np, K in _chunks(src, G * Bq):
            c = len(qbs_np)
            L = K * Bk
            qbs = torch.from_numpy(qbs_np).to(q.device)
            kb = torch.from_numpy(np.where(src.kb[qbs_np, :K] >= 0, src.kb[qbs_np, :K], n_kb)).to(q.device)
            kg = kp[:, kb].view(G, c, L, D)
            vg = vp[:, kb].view(G * c, L, Dv)
            qs, dos = qp[:, qbs], dop[:, qbs].reshape(G * c, Bq, Dv)  # qs is scaled
            s = _scores(qs, kg, _slot_masks(src, qbs_np, K), K)
            p = s.sub_(lsep[:, qbs].unsqueeze(-1)).exp_().view(G * c, Bq, L)  # masked / empty rows -> 0
            dp = torch.bmm(dos, vg.transpose(1, 2))
            ds = dp.sub_(dlp[:, qbs].reshape(G * c, Bq, 1)).mul_(p)
            dq[:, qbs] = torch.bmm(ds, kg.view(G * c, L, D)).mul_(scale).view(G, c, Bq, D)
            dkg = torch.bmm(ds.transpose(1, 2), qs.reshape(G * c, Bq, D)).view(G, c * K, Bk, D)
            dvg = torch.bmm(p.transpose(1, 2), dos).view(G, c * K, Bk, Dv)
            flat = kb.reshape(-1)
            dk.index_add_(1, flat, dkg)
            dv.index_add_(1, flat, dvg)
        dq = dq.view(B, H, n_qb * Bq, D)[:, :, :N].to(q.dtype)
        dk = dk.view(B, H, (n_kb + 1) * Bk, D)[:, :, :M].to(k.dtype)
        dv = dv.view(B, H, (n_kb + 1) * Bk, Dv)[:, :, :M].to(v.dtype)
        return dq, dk, dv, None, None


def ell_attention(q: Tensor, k: Tensor, v: Tensor, src: BlockSource, *, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Block-sparse attention over ``src``'s blocks: returns ``(out like q, lse float32)``.

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` (GQA: Hq % Hkv == 0). Rows with no
    allowed key give 0 and -inf. Differentiable in q, k, v (including through lse).
    """
    if q.shape[2] != src.q_len or k.shape[2] != src.kv_len:
        raise ValueError(f"ell_attention: q/k lengths {q.shape[2]}/{k.shape[2]} != block source {src.q_len}/{src.kv_len}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    Hq = q.shape[1]
    return _EllAttention.apply(q.contiguous(), _expand_kv(k, Hq).contiguous(), _expand_kv(v, Hq).contiguous(), src, scale)
