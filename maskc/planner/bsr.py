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

#: Score elements (floats) materialised per chunk of query blocks.
CHUNK_ELEMENTS: int = 1 << 22


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


def _expand_kv(x: Tensor, hq: int) -> Tensor:
    hkv = x.shape[1]
    if hkv == hq:
        return x
    return x.repeat_interleave(hq // hkv, dim=1)


def _chunks(src: BlockSource, rows_per_qb: int):
    K = src.kb.shape[1]
    per = max(1, CHUNK_ELEMENTS // max(1, rows_per_qb * K * src.block_k))
    for c0 in range(0, src.n_qb, per):
        yield np.arange(c0, min(src.n_qb, c0 + per))


def _pad_seq(x: Tensor, n: int) -> Tensor:
    L = x.shape[2]
    if L == n:
        return x
    return torch.nn.functional.pad(x, (0, 0, 0, n - L))


class _EllAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, src, scale):  # q, k, v: [B, H, L, D] with equal heads
        B, H, N, D = q.shape
        Bq, Bk, n_qb, n_kb = src.block_q, src.block_k, src.n_qb, src.n_kb
        qp = _pad_seq(q, n_qb * Bq).view(B, H, n_qb, Bq, D)
        kp = _pad_seq(k, (n_kb + 1) * Bk).view(B, H, n_kb + 1, Bk, D)  # block n_kb: zero dummy
        vp = _pad_seq(v, (n_kb + 1) * Bk).view(B, H, n_kb + 1, Bk, D)
        out = torch.zeros(B, H, n_qb, Bq, D, dtype=q.dtype, device=q.device)
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        lse = torch.full((B, H, n_qb, Bq), float("-inf"), dtype=acc, device=q.device)
        for qbs_np in _chunks(src, B * H * Bq):
            qbs = torch.from_numpy(qbs_np)
            kb = torch.from_numpy(np.where(src.kb[qbs_np] >= 0, src.kb[qbs_np], n_kb)).to(q.device)
            mask = torch.from_numpy(src.masks(qbs_np)).to(q.device)  # [c, K, Bq, Bk]
            c, K = kb.shape
            kg = kp[:, :, kb].reshape(B, H, c, K * Bk, D).to(acc)
            vg = vp[:, :, kb].reshape(B, H, c, K * Bk, D).to(acc)
            qs = qp[:, :, qbs].to(acc)
            m2 = mask.permute(0, 2, 1, 3).reshape(c, Bq, K * Bk)
            s = torch.matmul(qs, kg.transpose(-1, -2)) * scale
            s = s.masked_fill(~m2, float("-inf"))
            mx = s.amax(dim=-1)
            mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
            e = torch.exp(s - mx.unsqueeze(-1))
            z = e.sum(dim=-1)
            zs = torch.where(z > 0, z, torch.ones_like(z))
            out[:, :, qbs] = (torch.matmul(e, vg) / zs.unsqueeze(-1)).to(q.dtype)
            lse[:, :, qbs] = safe_lse(mx, z)
        out = out.view(B, H, n_qb * Bq, D)[:, :, :N]
        lse = lse.view(B, H, n_qb * Bq)[:, :, :N]
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.src, ctx.scale = src, scale
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        src, scale = ctx.src, ctx.scale
        B, H, N, D = q.shape
        M = k.shape[2]
        Bq, Bk, n_qb, n_kb = src.block_q, src.block_k, src.n_qb, src.n_kb
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        if dout is None:
            dout = torch.zeros_like(out)
        dlse = torch.zeros_like(lse) if dlse is None else dlse
        delta = (dout.to(acc) * out.to(acc)).sum(-1) - dlse.to(acc)  # [B, H, N]
        lse_f = torch.where(torch.isfinite(lse), lse, torch.full_like(lse, float("inf"))).to(acc)  # exp(s - inf) = 0
        qp = _pad_seq(q, n_qb * Bq).view(B, H, n_qb, Bq, D).to(acc)
        dop = _pad_seq(dout, n_qb * Bq).view(B, H, n_qb, Bq, D).to(acc)
        lsep = _pad_seq(lse_f.unsqueeze(-1), n_qb * Bq).view(B, H, n_qb, Bq)
        dlp = _pad_seq(delta.unsqueeze(-1), n_qb * Bq).view(B, H, n_qb, Bq)
        kp = _pad_seq(k, (n_kb + 1) * Bk).view(B, H, n_kb + 1, Bk, D).to(acc)
        vp = _pad_seq(v, (n_kb + 1) * Bk).view(B, H, n_kb + 1, Bk, D).to(acc)
        dq = torch.zeros(B, H, n_qb, Bq, D, dtype=acc, device=q.device)
        dk = torch.zeros(B, H, n_kb + 1, Bk, D, dtype=acc, device=q.device)
        dv = torch.zeros_like(dk)
        for qbs_np in _chunks(src, B * H * Bq):
            qbs = torch.from_numpy(qbs_np)
            kbn = np.where(src.kb[qbs_np] >= 0, src.kb[qbs_np], n_kb)
            kb = torch.from_numpy(kbn).to(q.device)
            mask = torch.from_numpy(src.masks(qbs_np)).to(q.device)
            c, K = kb.shape
            kg = kp[:, :, kb].reshape(B, H, c, K * Bk, D)
            vg = vp[:, :, kb].reshape(B, H, c, K * Bk, D)
            qs, dos = qp[:, :, qbs], dop[:, :, qbs]
            m2 = mask.permute(0, 2, 1, 3).reshape(c, Bq, K * Bk)
            s = torch.matmul(qs, kg.transpose(-1, -2)) * scale
            p = torch.exp(s - lsep[:, :, qbs].unsqueeze(-1)) * m2  # masked / empty rows -> 0
            dp = torch.matmul(dos, vg.transpose(-1, -2))
            ds = p * (dp - dlp[:, :, qbs].unsqueeze(-1))
            dq[:, :, qbs] = torch.matmul(ds, kg) * scale
            dkg = (torch.matmul(ds.transpose(-1, -2), qs) * scale).reshape(B, H, c * K, Bk, D)
            dvg = torch.matmul(p.transpose(-1, -2), dos).reshape(B, H, c * K, Bk, D)
            flat = kb.reshape(-1)
            dk.index_add_(2, flat, dkg)
            dv.index_add_(2, flat, dvg)
        dq = dq.view(B, H, n_qb * Bq, D)[:, :, :N].to(q.dtype)
        dk = dk.view(B, H, (n_kb + 1) * Bk, D)[:, :, :M].to(k.dtype)
        dv = dv.view(B, H, (n_kb + 1) * Bk, D)[:, :, :M].to(v.dtype)
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
