"""The torch backend: block-sparse attention over any Layout with plain torch ops, forward and backward.

Runs on any torch device (the fast path on CPU; CUDA without Triton), for float16,
bfloat16, float32 (accumulated in float32) and float64, with torch autograd, and is the
backend ``backend="auto"`` picks for CPU torch tensors.

How it works:

* **Units.** The (batch element, head) pairs that share a stored slice of the layout
  run together as one batch of ``bmm``. For a one-head layout the query heads of a
  grouped-query group are folded into the rows of a tile (``group x block_q`` rows read
  the same key block of their shared K/V head), so K and V are never repeated per query
  head; a per-head layout reads its K/V head through the gather index instead.
* **Chunks** (:mod:`maskc.backends.torch_blocks`): query-block rows bucketed by how many
  key blocks they read; each chunk is one gather of its key blocks, one ``bmm`` for the
  scores and one for the output. Only padding slots, PARTIAL blocks and FULL blocks on
  the ragged key tail are masked.
* **Backward**: small calls keep their (unnormalised) probabilities (up to
  :data:`SAVED_PROBS_BYTES`); larger ones recompute the scores chunk by chunk from the
  saved log-sum-exp (flash-attention style, memory O(chunk)). The gradient of lse is
  honoured.
* **Dropout** on the attention probabilities (as ``nn.MultiheadAttention`` in training):
  each chunk draws its keep-mask from a generator seeded by ``(seed, chunk)``, so the
  backward regenerates exactly the forward's mask without storing it.
* **Exact rows.** A row with no allowed key gives 0 and lse -inf. Values (NaN, inf) at
  keys a row may not attend never reach it: when k or v holds a non-finite value the
  kernel computes with it zeroed and marks NaN exactly the outputs that attended it
  (one ``isfinite`` pass when every value is finite).

Example:
    >>> import torch, maskc as mc
    >>> from maskc.backends.torch_backend import attention_torch
    >>> lay = mc.compile(mc.causal() & mc.window(4), q_len=10, block=4)
    >>> q = torch.randn(2, 4, 10, 8, requires_grad=True)
    >>> kv = torch.randn(2, 2, 10, 8)
    >>> out, lse = attention_torch(q, kv, kv, lay, scale=0.35)
    >>> out.sum().backward()
    >>> out.shape, q.grad.shape, lse.dtype
    (torch.Size([2, 4, 10, 8]), torch.Size([2, 4, 10, 8]), torch.float32)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import maskc.backends.torch_blocks as torch_blocks
from maskc.backends.softmax import accumulation_dtype, finite_or_zero, safe_lse, split_nonfinite
from maskc.backends.torch_blocks import chunk_plan, mask_table
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import Layout

Tensor = torch.Tensor
_DEVICE_PLANS = LayoutCache("maskc.backends.torch_backend")

#: Bytes of dense per-chunk masks (``[rows, block_q, K * block_k]`` booleans, shared by every
#: unit and folded head) kept per layout: one ``masked_fill_`` pass instead of gathering and
#: scattering the masked slots. Chunks past the budget use the gather path.
DENSE_MASK_BYTES: int = 1 << 28
#: A call whose probabilities take at most this many bytes keeps them for the backward
#: (no recomputation of scores, masks and exponentials); larger calls recompute them from
#: the saved log-sum-exp, chunk by chunk, in O(chunk) memory.
SAVED_PROBS_BYTES: int = 1 << 27


def is_available() -> tuple[bool, str]:
    """torch is importable (this module imports it): always ``(True, 'ok')``."""
    return True, "ok"


@dataclass(frozen=True)
class Arrangement:
    """How q / k / v map onto the kernel's ``[units, rows, tile rows, head_dim]`` tensors.

    ``fold`` (one-head layout): units are (batch / Bl, kv head) pairs and the GQA group's
    query heads are folded into the tile rows. Otherwise units are batch elements and
    every (batch element of the layout, q head) pair is a stored slice.
    """

    batch: int
    q_heads: int
    kv_heads: int
    layout_batch: int
    fold: bool

    @classmethod
    def of(cls, q: Tensor, k: Tensor, layout: Layout) -> "Arrangement":
        return cls(int(q.shape[0]), int(q.shape[1]), int(k.shape[1]), int(layout.batch), layout.heads == 1)

    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads

    @property
    def units(self) -> int:
        bb = self.batch // self.layout_batch
        return bb * self.kv_heads if self.fold else bb

    @property
    def fold_rows(self) -> int:
        """Query heads stacked in one tile (the GQA group when folding, else 1)."""
        return self.group if self.fold else 1

    @property
    def kv_div(self) -> int:
        """Stored slice s reads K/V slice ``s // kv_div``."""
        return 1 if self.fold else self.group

    def _q_shape(self, n_blocks: int, blk: int, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = (self.layout_batch, self.batch // self.layout_batch, self.kv_heads, self.group, n_blocks, blk, d)
        perm = (1, 2, 0, 4, 3, 5, 6) if self.fold else (1, 0, 2, 3, 4, 5, 6)
        return shape, perm

    def _kv_shape(self, n_blocks: int, blk: int, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = (self.layout_batch, self.batch // self.layout_batch, self.kv_heads, n_blocks, blk, d)
        perm = (1, 2, 0, 3, 4, 5) if self.fold else (1, 0, 2, 3, 4, 5)
        return shape, perm

    def q_units(self, x: Tensor, n_blocks: int, blk: int) -> Tensor:
        """``[B, Hq, N, D]`` -> ``[units, slices * n_blocks, fold_rows * blk, D]`` (zero padded)."""
        shape, perm = self._q_shape(n_blocks, blk, x.shape[-1])
        x = _pad_seq(x, n_blocks * blk).reshape(shape).permute(perm)
        return x.reshape(self.units, -1, self.fold_rows * blk, x.shape[-1])

    def q_back(self, y: Tensor, n_blocks: int, blk: int, n: int) -> Tensor:
        """Inverse of :meth:`q_units`, cut to ``n`` rows: ``[B, Hq, n, D]``."""
        shape, perm = self._q_shape(n_blocks, blk, y.shape[-1])
        y = y.reshape(tuple(shape[i] for i in perm)).permute(tuple(np.argsort(perm)))
        return y.reshape(self.batch, self.q_heads, n_blocks * blk, y.shape[-1])[:, :, :n]

    def kv_units(self, x: Tensor, n_blocks: int, blk: int) -> Tensor:
        """``[B, Hkv, M, D]`` -> ``[units, kv slices * n_blocks, blk, D]`` (zero padded)."""
        shape, perm = self._kv_shape(n_blocks, blk, x.shape[-1])
        x = _pad_seq(x, n_blocks * blk).reshape(shape).permute(perm)
        return x.reshape(self.units, -1, blk, x.shape[-1])

    def kv_back(self, y: Tensor, n_blocks: int, blk: int, m: int) -> Tensor:
        """Inverse of :meth:`kv_units`, cut to ``m`` keys: ``[B, Hkv, m, D]``."""
        shape, perm = self._kv_shape(n_blocks, blk, y.shape[-1])
        y = y.reshape(tuple(shape[i] for i in perm)).permute(tuple(np.argsort(perm)))
        return y.reshape(self.batch, self.kv_heads, n_blocks * blk, y.shape[-1])[:, :, :m]


def _pad_seq(x: Tensor, n: int) -> Tensor:
    L = x.shape[2]
    return x if L == n else torch.nn.functional.pad(x, (0, 0, 0, n - L))


@dataclass(frozen=True)
class _DeviceChunk:
    rows: Tensor  # int64 [c]: global rows (slice * n_qb + qb)
    kidx: Tensor  # int64 [c, K]: global K/V block (kv slice * (n_kb + 1) + kb; padding -> the zero block)
    mask_rows: Tensor
    mask_slots: Tensor
    drop: Tensor | None  # bool [n, Bq, Bk]: True where the slot's score is masked out
    K: int
    dense_drop: Tensor | None = None  # bool [c, Bq, K * Bk]: the same, for the whole chunk (within budget)
    has_key: Tensor | None = None  # bool [c, Bq]: the row allows some key (with dense_drop)


def _device_chunks(layout: Layout, unit: int, kv_div: int, device: torch.device) -> list[_DeviceChunk]:
    def make() -> list[_DeviceChunk]:
        n_qb, n_kb = layout.n_qb, layout.n_kb
        drop_table = ~mask_table(layout)
        bq, bk = layout.block_q, layout.block_k
        out, budget = [], DENSE_MASK_BYTES
        for c in chunk_plan(layout, unit):
            kv_slice = (c.rows // n_qb) // kv_div
            kidx = kv_slice[:, None] * (n_kb + 1) + np.where(c.kb >= 0, c.kb, n_kb)
            drop = dense = has_key = None
            if c.mask_codes.size:
                drop = drop_table[c.mask_codes]
                if c.kb.size * bq * bk <= budget:
                    budget -= c.kb.size * bq * bk
                    d = np.zeros((c.kb.shape[0], c.K, bq, bk), dtype=bool)
                    d[c.mask_rows, c.mask_slots] = drop
                    d = d.transpose(0, 2, 1, 3).reshape(c.kb.shape[0], bq, c.K * bk)
                    dense = torch.from_numpy(d).to(device)
                    has_key = torch.from_numpy(~d.all(axis=2)).to(device)
                    drop = None
                else:
                    drop = torch.from_numpy(drop).to(device)
            out.append(_DeviceChunk(torch.from_numpy(c.rows).to(device), torch.from_numpy(kidx).to(device),
                                    torch.from_numpy(c.mask_rows).to(device), torch.from_numpy(c.mask_slots).to(device),
                                    drop, c.K, dense, has_key))
        return out

    return _DEVICE_PLANS.get(layout, ("chunks", int(unit), int(kv_div), str(device), DENSE_MASK_BYTES), make)


#: Rows whose allowed probabilities would sum below this, shifted by the raw row maximum
#: (masked pairs included), are recomputed shifted by their exact allowed maximum.
_UNDERFLOW_GUARD: float = 2.0 ** -40


def _raw_scores(qs: Tensor, kg: Tensor) -> Tensor:
    U, c, RB, D = qs.shape
    kg = kg.reshape(U * c, -1, D)
    return torch.bmm(qs.reshape(U * c, RB, D), kg.transpose(1, 2)).view(U, c, RB, kg.shape[1])


def _exp_scores(qs: Tensor, kg: Tensor, ch: _DeviceChunk, block_q: int, shift: Tensor | None = None,
                exact: bool = False) -> tuple[Tensor, Tensor]:
    """``(exp(qs @ kg^T - shift), shift)`` with masked pairs exactly 0: ``[U, c, rows, K * Bk]``.

    kg is ``[U, c, K, Bk, D]``. ``shift`` defaults to a row maximum. With a dense chunk mask
    the exponential runs on the raw scores and masked pairs are zeroed afterwards (``exp``
    of ``-inf`` takes a slow path in the vectorised kernels, about 4x slower on the dev
    CPU), shifted by the raw row maximum, which bounds the allowed one: the softmax and
    ``lse = shift + log(sum)`` do not depend on the shift, unless allowed scores sit so far
    below a masked one that their sum falls under :data:`_UNDERFLOW_GUARD`: such pieces (and
    every piece when ``exact``, e.g. k holds non-finite values) are shifted by the maximum
    over allowed pairs instead (0 for rows without one).
    """
    s = _raw_scores(qs, kg)
    U, c, RB, L = s.shape
    if ch.dense_drop is not None:
        drop = ch.dense_drop[None, :, None]
        s5 = s.view(U, c, RB // block_q, block_q, L)
        if shift is None and not exact:
            raw = finite_or_zero(s.amax(dim=-1))
            e = s.sub_(raw.unsqueeze(-1)).exp_()
            e.view(U, c, RB // block_q, block_q, L).masked_fill_(drop, 0.0)
            z = e.sum(dim=-1).view(U, c, RB // block_q, block_q)
            if not bool(((z < _UNDERFLOW_GUARD) & ch.has_key[None, :, None]).any()):
                return e, raw
            s = _raw_scores(qs, kg)  # rare: recompute, shifted by the exact allowed maximum
            s5 = s.view(U, c, RB // block_q, block_q, L)
        if shift is None:
            shift = finite_or_zero(s5.masked_fill(drop, float("-inf")).amax(-1)).view(U, c, RB)
        e = s.sub_(shift.unsqueeze(-1)).exp_()  # masked pairs: whatever they give, zeroed next
        e.view(U, c, RB // block_q, block_q, L).masked_fill_(drop, 0.0)
        return e, shift
    if ch.drop is not None:
        s6 = s.view(U, c, RB // block_q, block_q, ch.K, L // ch.K)
        blk = s6[:, ch.mask_rows, :, :, ch.mask_slots, :]  # [n, U, R, Bq, Bk]
        s6[:, ch.mask_rows, :, :, ch.mask_slots, :] = blk.masked_fill_(ch.drop[:, None, None], float("-inf"))
    if shift is None:
        shift = finite_or_zero(s.amax(dim=-1))
    return s.sub_(shift.unsqueeze(-1)).exp_(), shift


def _pieces(chunks: list[_DeviceChunk], U: int, RB: int, Bk: int):
    """``(piece index, chunk, unit slice)``: a chunk whose scores over every unit exceed the
    chunk budget runs in groups of units, so each piece's scores stay in cache."""
    pi = 0
    for ch in chunks:
        per_unit = ch.rows.shape[0] * RB * ch.K * Bk
        step = max(1, torch_blocks.CHUNK_ELEMENTS // max(per_unit, 1))
        for u0 in range(0, U, step):
            yield pi, ch, slice(u0, min(U, u0 + step))
            pi += 1


def _keep_mask(shape, seed: int, chunk: int, p: float, device, dtype) -> Tensor:
    """The dropout keep-mask of one chunk, scaled by 1 / (1 - p); the same for the same (seed, chunk)."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + chunk * 7_919 + 17) % (1 << 63))
    keep = torch.rand(shape, generator=gen, device=device, dtype=dtype) >= p
    return keep.to(dtype).mul_(1.0 / (1.0 - p))


class _BlockSparse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, layout, arr, scale, p_drop, seed, will_backward):
        N, M, Dv = q.shape[2], k.shape[2], v.shape[-1]
        Bq, Bk, n_qb, n_kb = layout.block_q, layout.block_k, layout.n_qb, layout.n_kb
        acc = accumulation_dtype(q.dtype)
        U = arr.units
        v_clean, v_bad = split_nonfinite(v)
        k_bad = not bool(torch.isfinite(k).all())  # NaN / inf in k: shift by exact allowed maxima
        qp = arr.q_units(q.to(acc), n_qb, Bq) * scale
        kp = arr.kv_units(k.to(acc), n_kb + 1, Bk)  # block n_kb of every kv slice: the zero dummy
        vp = arr.kv_units(v_clean.to(acc), n_kb + 1, Bk)
        badp = arr.kv_units(v_bad.to(acc), n_kb + 1, Bk) if v_bad is not None else None
        RB = qp.shape[2]
        out = torch.zeros(U, qp.shape[1], RB, Dv, dtype=acc, device=q.device)
        lse = torch.full((U, qp.shape[1], RB), float("-inf"), dtype=acc, device=q.device)
        chunks = _device_chunks(layout, U * RB * Bk, arr.kv_div, q.device)
        elt = torch.empty(0, dtype=acc).element_size()
        keep_probs = will_backward and sum(U * ch.rows.shape[0] * RB * ch.K * Bk for ch in chunks) * elt <= SAVED_PROBS_BYTES
        saved = []
        for pi, ch, us in _pieces(chunks, U, RB, Bk):
            n, c, L = us.stop - us.start, ch.rows.shape[0], ch.K * Bk
            e, mx = _exp_scores(qp[us, ch.rows], kp[us, ch.kidx], ch, Bq, exact=k_bad)
            z = e.sum(dim=-1)
            e.div_(torch.where(z > 0, z, torch.ones_like(z)).unsqueeze(-1))  # probabilities (empty rows: 0)
            if keep_probs:
                saved.append(e)
            if p_drop > 0:
                e = e * _keep_mask(e.shape, seed, pi, p_drop, q.device, acc)
            e2 = e.view(n * c, RB, L)
            o = torch.bmm(e2, vp[us, ch.kidx].view(n * c, L, Dv))
            if badp is not None:
                hit = torch.bmm((e2 > 0).to(acc), badp[us, ch.kidx].view(n * c, L, Dv)) > 0
                o.masked_fill_(hit, float("nan"))
            out[us, ch.rows] = o.view(n, c, RB, Dv)
            lse[us, ch.rows] = safe_lse(mx, z)
        out = arr.q_back(out, n_qb, Bq, N).to(q.dtype)
        lse = arr.q_back(lse.unsqueeze(-1), n_qb, Bq, N).squeeze(-1)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (layout, arr, scale, p_drop, seed)
        ctx.probs = saved if keep_probs else None
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        layout, arr, scale, p_drop, seed = ctx.args
        N, M, D, Dv = q.shape[2], k.shape[2], q.shape[-1], v.shape[-1]
        Bq, Bk, n_qb, n_kb = layout.block_q, layout.block_k, layout.n_qb, layout.n_kb
        acc = accumulation_dtype(q.dtype)
        U = arr.units
        dout = torch.zeros_like(out) if dout is None else dout
        dlse = torch.zeros_like(lse) if dlse is None else finite_or_zero(dlse)
        delta = (dout.to(acc) * out.to(acc)).sum(-1) - dlse.to(acc)  # [B, Hq, N]
        # rows without keys: lse -inf -> +inf, so p = exp(s - inf) = 0 (NaN rows stay NaN)
        lse_f = torch.where(torch.isneginf(lse), torch.full_like(lse, float("inf")), lse).to(acc)
        qp = arr.q_units(q.to(acc), n_qb, Bq) * scale
        dop = arr.q_units(dout.to(acc), n_qb, Bq)
        lsep = arr.q_units(lse_f.unsqueeze(-1), n_qb, Bq).squeeze(-1)
        dlp = arr.q_units(delta.unsqueeze(-1), n_qb, Bq).squeeze(-1)
        # non-finite k / v zeroed: masked pairs then give exact zeros (0 * NaN would not); rows
        # that attended a non-finite value have a NaN forward and get NaN gradients through it
        kp = arr.kv_units(split_nonfinite(k)[0].to(acc), n_kb + 1, Bk)
        vp = arr.kv_units(split_nonfinite(v)[0].to(acc), n_kb + 1, Bk)
        RB = qp.shape[2]
        dq = torch.zeros(U, qp.shape[1], RB, D, dtype=acc, device=q.device)
        dk = torch.zeros(U, kp.shape[1], Bk, D, dtype=acc, device=q.device)
        dv = torch.zeros(U, kp.shape[1], Bk, Dv, dtype=acc, device=q.device)
        for pi, ch, us in _pieces(_device_chunks(layout, U * RB * Bk, arr.kv_div, q.device), U, RB, Bk):
            n, c, L = us.stop - us.start, ch.rows.shape[0], ch.K * Bk
            qs, dos = qp[us, ch.rows], dop[us, ch.rows].reshape(n * c, RB, Dv)
            kg = kp[us, ch.kidx]
            if ctx.probs is not None:  # the forward's probabilities
                p = ctx.probs[pi].view(n * c, RB, L)
            else:  # recompute from the saved lse: masked / empty -> 0
                p = _exp_scores(qs, kg, ch, Bq, lsep[us, ch.rows])[0].view(n * c, RB, L)
            vgt = vp[us, ch.kidx].view(n * c, L, Dv).transpose(1, 2)
            delta_c = dlp[us, ch.rows].reshape(n * c, RB, 1)
            if p_drop > 0:
                keep = _keep_mask((n, c, RB, L), seed, pi, p_drop, q.device, acc).view(n * c, RB, L)
                dvg = torch.bmm((p * keep).transpose(1, 2), dos)
                ds = torch.bmm(dos, vgt).mul_(keep).sub_(delta_c).mul_(p)
            else:
                dvg = torch.bmm(p.transpose(1, 2), dos)
                ds = torch.baddbmm(delta_c, dos, vgt, alpha=1.0, beta=-1.0).mul_(p)  # p * (dO v^T - delta)
            dq[us, ch.rows] = torch.bmm(ds, kg.view(n * c, L, D)).mul_(scale).view(n, c, RB, D)
            dkg = torch.bmm(ds.transpose(1, 2), qs.reshape(n * c, RB, D))
            flat = ch.kidx.reshape(-1)
            dk[us].index_add_(1, flat, dkg.view(n, c * ch.K, Bk, D))
            dv[us].index_add_(1, flat, dvg.view(n, c * ch.K, Bk, Dv))
        dq = arr.q_back(dq, n_qb, Bq, N).to(q.dtype)
        dk = arr.kv_back(dk, n_kb + 1, Bk, M).to(k.dtype)
        dv = arr.kv_back(dv, n_kb + 1, Bk, M).to(v.dtype)
        ctx.probs = None
        return dq, dk, dv, None, None, None, None, None, None


def attention_torch(q: Tensor, k: Tensor, v: Tensor, layout: Layout, *, scale: float,
                    dropout_p: float = 0.0, dropout_seed: int | None = None) -> tuple[Tensor, Tensor]:
    """Block-sparse attention on validated torch inputs; returns ``(out like q, lse)``.

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` (``Hq % Hkv == 0``); ``layout.heads``
    in {1, Hq} and ``layout.batch`` in {1, B}. lse is float32 (float64 for float64
    inputs), -inf on rows without keys. Differentiable in q, k, v, including through
    lse. ``dropout_p > 0`` drops attention probabilities (scaled by 1 / (1 - p)) with a
    mask drawn from ``dropout_seed`` (default: drawn from torch's global generator).
    """
    if not isinstance(layout, Layout):
        raise TypeError(f"the torch backend takes a maskc.Layout, got {type(layout).__name__}")
    p = float(dropout_p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    seed = 0
    if p > 0:
        seed = int(torch.randint(0, 1 << 62, (1,)).item()) if dropout_seed is None else int(dropout_seed)
    will_backward = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    return _BlockSparse.apply(q, k, v, layout, Arrangement.of(q, k, layout), float(scale), p, seed, will_backward)
