"""Layout <-> torch FlexAttention ``BlockMask``, built straight from the block arrays.

``to_flex_block_mask`` never calls ``create_block_mask`` and never builds a token-level
N x N mask: the per-row block lists come from the Layout's BSR arrays, the q-side
transposes from its CSC view, and the ``mask_mod`` looks partial blocks up in the
Layout's deduplicated bitmask dictionary. Memory is O(heads * n_qb * n_kb) int32
(the block grid, as in any BlockMask) plus the unpacked unique masks.

Conventions (match ``create_block_mask``):

* FULL blocks go to ``full_kv_*`` (mask_mod skipped there), PARTIAL blocks to ``kv_*``.
* A FULL block in a ragged tail (its query rows or key columns run past q_len /
  kv_len) is listed as partial, so the kernels apply ``mask_mod`` and its bounds check
  to it; ``create_block_mask`` classifies such blocks the same way.
* Index lists are padded to the full grid width (n_kb for kv, n_qb for q), as in
  ``create_block_mask``, so every BlockMask method (``to_dense``, ``_adjust``, slicing)
  works on the result.
"""

from __future__ import annotations

import numpy as np

from maskc.errors import MaskcError
from maskc.ir.convert import dedupe_masks
from maskc.ir.layout import FULL, PARTIAL, Layout, _ceil_div

__all__ = ["to_flex_block_mask", "from_flex_block_mask", "flex_lookup_tables"]

#: lookup-table codes: 0 = empty block, 1 = full block, 2 + pid = partial mask ``pid``
_EMPTY_CODE, _FULL_CODE, _PARTIAL_BASE = 0, 1, 2


def _tail_blocks(layout: Layout) -> np.ndarray:
    """bool [nnzb]: block lies in the ragged query-row or key-column tail."""
    tail_q = layout.q_len % layout.block_q != 0
    tail_k = layout.kv_len % layout.block_k != 0
    t = np.zeros(layout.nnz_blocks, dtype=bool)
    if tail_q:
        t |= layout.block_row == layout.n_qb - 1
    if tail_k:
        t |= layout.col_idx == layout.n_kb - 1
    return t


def flex_lookup_tables(layout: Layout, device=None):
    """The tensors the mask_mod reads: ``(lut, bits)``.

    ``lut`` int32 ``[heads, n_qb, n_kb]``: 0 empty, 1 full, ``2 + pid`` partial.
    ``bits`` bool ``[U + 2, block_q, block_k]``: entry 0 all False, entry 1 all True,
    entry ``2 + pid`` the unpacked partial mask ``pid``. Cached per device on the layout.
    """
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    key = ("flex_lut", str(dev))
    if key in layout._cache:
        return layout._cache[key]
    H, n_qb, n_kb = layout.heads, layout.n_qb, layout.n_kb
    lut = np.zeros((H, n_qb, n_kb), dtype=np.int32)
    code = np.where(layout.kind == FULL, _FULL_CODE, layout.partial_id.astype(np.int64) + _PARTIAL_BASE)
    lut[layout.block_head, layout.block_row, layout.col_idx] = code
    bq, bk = layout.block_q, layout.block_k
    bits = np.zeros((layout.n_unique_masks + 2, bq, bk), dtype=bool)
    bits[_FULL_CODE] = True
    if layout.n_unique_masks:
        bits[_PARTIAL_BASE:] = layout.mask_bits
    out = (torch.from_numpy(lut).to(dev), torch.from_numpy(bits).to(dev))
    layout._cache[key] = out
    return out


def _make_mask_mod(layout: Layout, lut, bits):
    """mask_mod(b, h, q, kv) = Layout allows (q, kv) in head h (bounds-checked)."""
    import torch

    bq, bk = layout.block_q, layout.block_k
    q_len, kv_len = layout.q_len, layout.kv_len
    n_qb, n_kb = layout.n_qb, layout.n_kb
    broadcast = layout.heads == 1
    lut3 = lut

    def maskc_mask_mod(b, h, q_idx, kv_idx):
        qb = torch.clamp(q_idx // bq, 0, n_qb - 1)
        kb = torch.clamp(kv_idx // bk, 0, n_kb - 1)
        hh = h * 0 if broadcast else h
        c = lut3[hh, qb, kb]
        allowed = bits[c, q_idx % bq, kv_idx % bk]
        return allowed & (q_idx < q_len) & (kv_idx < kv_len)

    return maskc_mask_mod


def _padded_lists(ptr: np.ndarray, idx: np.ndarray, select: np.ndarray, width: int):
    """Per-row lists of the selected entries, padded with 0 to ``width``.

    ptr int64 [H, R + 1] (global offsets), idx [nnz], select bool [nnz].
    Returns (num int32 [H, R], indices int32 [H, R, width]).
    """
    H, R = ptr.shape[0], ptr.shape[1] - 1
    nnz = idx.shape[0]
    counts_all = np.diff(ptr, axis=1).reshape(-1)  # [H * R]
    row_of = np.repeat(np.arange(H * R), counts_all)
    sel_rows = row_of[select[:nnz]] if nnz else np.zeros(0, np.int64)
    num = np.bincount(sel_rows, minlength=H * R).astype(np.int32)
    out = np.zeros((H * R, max(width, 1)), dtype=np.int32)
    if sel_rows.size:
        starts = np.zeros(H * R, dtype=np.int64)
        starts[1:] = np.cumsum(num)[:-1]
        pos = np.arange(sel_rows.size) - starts[sel_rows]  # rank inside its row (input is row-sorted)
        out[sel_rows, pos] = idx[select]
    return num.reshape(H, R), out.reshape(H, R, max(width, 1))[:, :, :width]


def to_flex_block_mask(layout: Layout, device=None):
    """A FlexAttention ``BlockMask`` for ``layout``, built from its block arrays.

    No ``create_block_mask``, no token-level N x N: ``kv_num_blocks`` / ``kv_indices``
    list the PARTIAL blocks (plus FULL blocks in ragged tails), ``full_kv_*`` the FULL
    ones, the q-side lists come from the layout's CSC view, ``BLOCK_SIZE`` is
    ``(block_q, block_k)`` and ``mask_mod`` reads the layout's bitmask dictionary (and
    masks positions past ``q_len`` / ``kv_len``). Shapes: ``[1, heads, n_qb, n_kb]``;
    a one-head layout broadcasts over attention heads. Cached per device.

    Args:
        layout: the layout to export.
        device: torch device for the tensors (default CPU).

    Example:
        >>> import maskc as mc
        >>> from maskc.export.flex import to_flex_block_mask
        >>> bm = to_flex_block_mask(mc.compile(mc.causal(), q_len=256, block=128))
        >>> bm.BLOCK_SIZE, bm.full_kv_num_blocks.flatten().tolist(), bm.kv_num_blocks.flatten().tolist()
        ((128, 128), [0, 1], [1, 1])
    """
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    dev = torch.device(device) if device is not None else torch.device("cpu")
    key = ("flex_block_mask", str(dev))
    if key in layout._cache:
        return layout._cache[key]
    H, n_qb, n_kb = layout.heads, layout.n_qb, layout.n_kb
    full_sel = (layout.kind == FULL) & ~_tail_blocks(layout)
    part_sel = ~full_sel
    kv_num, kv_idx = _padded_lists(layout.row_ptr, layout.col_idx, part_sel, n_kb)
    fkv_num, fkv_idx = _padded_lists(layout.row_ptr, layout.col_idx, full_sel, n_kb)
    csc = layout.csc
    q_num, q_idx = _padded_lists(csc.col_ptr, csc.row_idx, part_sel[csc.perm], n_qb)
    fq_num, fq_idx = _padded_lists(csc.col_ptr, csc.row_idx, full_sel[csc.perm], n_qb)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)[None]).to(dev)

    lut, bits = flex_lookup_tables(layout, dev)
    bm = BlockMask(
        seq_lengths=(layout.q_len, layout.kv_len),
        kv_num_blocks=t(kv_num),
        kv_indices=t(kv_idx),
        full_kv_num_blocks=t(fkv_num),
        full_kv_indices=t(fkv_idx),
        q_num_blocks=t(q_num),
        q_indices=t(q_idx),
        full_q_num_blocks=t(fq_num),
        full_q_indices=t(fq_idx),
        BLOCK_SIZE=(layout.block_q, layout.block_k),
        mask_mod=_make_mask_mod(layout, lut, bits),
    )
    layout._cache[key] = bm
    return bm


def _eval_mask_mod(mask_mod, h: np.ndarray, qb: np.ndarray, kb: np.ndarray, bq: int, bk: int, device,
                   chunk_elems: int = 1 << 22) -> np.ndarray:
    """Evaluate mask_mod on whole blocks (h, qb, kb): bool [n, bq, bk], in chunks."""
    import torch
    from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

    n = h.shape[0]
    out = np.zeros((n, bq, bk), dtype=bool)
    if n == 0:
        return out
    per = max(1, chunk_elems // (bq * bk))
    ar_q = torch.arange(bq, device=device, dtype=torch.int32)
    ar_k = torch.arange(bk, device=device, dtype=torch.int32)
    fn = torch.vmap(mask_mod, in_dims=(0, 0, 0, 0))
    for s in range(0, n, per):
        e = min(n, s + per)
        m = e - s
        hh = torch.from_numpy(h[s:e].astype(np.int32)).to(device)
        qq = torch.from_numpy((qb[s:e] * bq).astype(np.int32)).to(device)
        kk = torch.from_numpy((kb[s:e] * bk).astype(np.int32)).to(device)
        q_idx = (qq[:, None, None] + ar_q[None, :, None]).expand(m, bq, bk).reshape(-1)
        kv_idx = (kk[:, None, None] + ar_k[None, None, :]).expand(m, bq, bk).reshape(-1)
        h_idx = hh[:, None, None].expand(m, bq, bk).reshape(-1)
        b_idx = torch.zeros_like(h_idx)
        with TransformGetItemToIndex():
            res = fn(b_idx, h_idx, q_idx, kv_idx)
        out[s:e] = res.reshape(m, bq, bk).cpu().numpy().astype(bool)
    return out


def from_flex_block_mask(block_mask, q_len: int | None = None, kv_len: int | None = None,
                         pattern_text: str = "") -> Layout:
    """Build a Layout from a FlexAttention ``BlockMask``.

    ``mask_mod`` is evaluated only on the partial blocks (full blocks are taken as
    they are), positions past ``q_len`` / ``kv_len`` are dropped, and every block is
    reclassified: all valid elements allowed -> FULL, none -> absent, else PARTIAL with
    a deduplicated bitmask. The batch dimension must be 1 (or all batches equal).

    Args:
        block_mask: a ``torch.nn.attention.flex_attention.BlockMask``.
        q_len, kv_len: sequence lengths (default ``block_mask.seq_lengths``).
        pattern_text: stored as the layout's pattern text.

    Example:
        >>> import maskc as mc
        >>> from maskc.export.flex import to_flex_block_mask, from_flex_block_mask
        >>> lay = mc.compile(mc.causal(), q_len=100, block=32)
        >>> from_flex_block_mask(to_flex_block_mask(lay)) == lay
        True
    """
    import torch

    if q_len is None or kv_len is None:
        sq, sk = block_mask.seq_lengths
        q_len = int(sq) if q_len is None else int(q_len)
        kv_len = int(sk) if kv_len is None else int(kv_len)
    if q_len < 1 or kv_len < 1:
        raise MaskcError(f"from_flex_block_mask: q_len and kv_len must be positive, got {q_len}, {kv_len}")
    bq, bk = (int(x) for x in block_mask.BLOCK_SIZE)
    n_qb, n_kb = _ceil_div(q_len, bq), _ceil_div(kv_len, bk)

    widths = [n_kb, block_mask.kv_indices.shape[-1]]
    if block_mask.full_kv_indices is not None:
        widths.append(block_mask.full_kv_indices.shape[-1])
    W = max(widths)

    def grid(num, idx):
        """Dense block grid bool [B, H, rows, W] from padded (num, idx) lists."""
        num = num.cpu()
        idx = idx.cpu().long()
        valid = torch.arange(idx.shape[-1])[None, None, None, :] < num[..., None]
        g = torch.zeros(*idx.shape[:-1], W + 1, dtype=torch.bool)
        g.scatter_(-1, torch.where(valid, idx, torch.full_like(idx, W)), True)
        return g[..., :W]

    part = grid(block_mask.kv_num_blocks, block_mask.kv_indices)
    if block_mask.full_kv_num_blocks is not None:
        full = grid(block_mask.full_kv_num_blocks, block_mask.full_kv_indices)
    else:
        full = torch.zeros_like(part)
    if part.shape[0] > 1:
        if not (bool((part == part[:1]).all()) and bool((full == full[:1]).all())):
            raise MaskcError("from_flex_block_mask: the BlockMask differs across its batch dimension; "
                             "a Layout has no batch axis (slice one batch out first: block_mask[b])")
    if part.shape[-2] < n_qb or part.shape[-1] < n_kb:
        raise MaskcError(
            f"from_flex_block_mask: the BlockMask covers {part.shape[-2]} x {part.shape[-1]} blocks of "
            f"{(bq, bk)}, fewer than q_len={q_len}, kv_len={kv_len} need ({n_qb} x {n_kb})"
        )
    part = part[0, :, :n_qb, :n_kb].numpy()
    full = full[0, :, :n_qb, :n_kb].numpy() & ~part
    H = part.shape[0]

    # evaluate mask_mod on the partial blocks only
    ph, pq, pk = np.nonzero(part)
    dev = block_mask.kv_num_blocks.device
    ev = _eval_mask_mod(block_mask.mask_mod, ph, pq, pk, bq, bk, dev)
    vr = np.full(n_qb, bq)
    vr[-1] = q_len - (n_qb - 1) * bq
    vc = np.full(n_kb, bk)
    vc[-1] = kv_len - (n_kb - 1) * bk
    if ev.size:
        ev &= (np.arange(bq)[None, :, None] < vr[pq][:, None, None])
        ev &= (np.arange(bk)[None, None, :] < vc[pk][:, None, None])
    counts = ev.reshape(ev.shape[0], bq * bk).sum(axis=1)
    cap = vr[pq] * vc[pk]

    code = np.zeros((H, n_qb, n_kb), dtype=np.int8)  # 0 empty, FULL, PARTIAL
    code[full] = FULL
    code[ph, pq, pk] = np.where(counts == cap, FULL, np.where(counts > 0, PARTIAL, 0))
    part_slot = -np.ones((H, n_qb, n_kb), dtype=np.int64)
    part_slot[ph, pq, pk] = np.arange(ph.size)

    h_idx, qb_idx, kb_idx = np.nonzero(code)  # row-major: head, row, column
    kind = code[h_idx, qb_idx, kb_idx].astype(np.int8)
    is_part = kind == PARTIAL
    masks, ids = dedupe_masks(ev[part_slot[h_idx[is_part], qb_idx[is_part], kb_idx[is_part]]])
    partial_id = np.full(kind.shape, -1, dtype=np.int32)
    partial_id[is_part] = ids
    per_row = (code != 0).sum(axis=2).reshape(-1)
    flat_ptr = np.zeros(H * n_qb + 1, dtype=np.int64)
    np.cumsum(per_row, out=flat_ptr[1:])
    row_ptr = np.stack([flat_ptr[h * n_qb: (h + 1) * n_qb + 1] for h in range(H)]).astype(np.int64)
    if masks.shape[0] == 0:
        masks = np.zeros((0, bq, _ceil_div(bk, 8)), dtype=np.uint8)
    lay = Layout(
        q_len=q_len, kv_len=kv_len, block_q=bq, block_k=bk,
        row_ptr=row_ptr, col_idx=kb_idx.astype(np.int32), kind=kind,
        partial_id=partial_id, masks=masks, pattern_text=pattern_text,
    )
    return lay.validate()
