"""The reference backend: dense masked softmax in float64, the truth for cross-checks.

Takes numpy, torch and jax arrays, block layouts (:class:`maskc.Layout`, any batch and
head slices) and diagonal sets (:class:`~maskc.backends.formats.DiagonalLayout`). For
torch it is differentiable with torch autograd (computed in float64, cast back to q's
dtype), so gradient cross-checks use it as the truth. It is never chosen automatically
for training: ``backend="auto"`` prefers the sparse torch backend.

Semantics, written out: ``out[b, h, i] = sum_j p_ij v[b, h // group, j]`` with
``p_i = softmax_j(scale * q_i . k_j)`` over the keys j that slice
``layout.slice_index(b, h)`` allows for row i. A row with no allowed key gives out = 0
and lse = -inf; keys a row may not attend never reach it, whatever they hold (NaN or
inf in k or v at such keys changes nothing). A row that does attend a non-finite value
gives NaN where that value enters ("non-finite in, non-finite out").

Memory is dense: every float64 copy of the inputs (broadcast views are materialised),
the mask, the output and one head's scores (every head's under autograd); time grows
with its per-head loop (:data:`MAX_STEPS`). Both are estimated from the arguments and
refused with :class:`~maskc.errors.TooLargeError` before anything is allocated
(:func:`check_size`).

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.backends.reference import attention_reference
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((4, 4), bool)), block=2)
    >>> q = np.random.default_rng(0).normal(size=(1, 1, 4, 8))
    >>> out, lse = attention_reference(q, q, q, lay, scale=0.5)
    >>> np.allclose(out[0, 0, 0], q[0, 0, 0])   # row 0 sees only key 0
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.backends.checks import array_lib
from maskc.errors import TooLargeError
from maskc.limits import refuse_above

#: Largest ``batch * q_len * kv_len`` score matrix the reference materialises at once
#: (one head; under autograd every head's scores count, since they live until backward).
MAX_SCORE_ELEMENTS: int = 1 << 26
#: Largest total the reference may allocate: float64 copies of q / k / v, the dense mask,
#: the output and the live scores.
MAX_BYTES: int = 4 << 30
#: Most (head, batch-slice) steps the reference loops over in Python (one per query head,
#: times the batch when the layout has per-batch slices): bounds its time, not only memory.
MAX_STEPS: int = 1 << 16


def estimate_bytes(layout, batch: int, q_heads: int, kv_heads: int, head_dim: int, grad: bool = False) -> int:
    """Bytes the reference allocates for these sizes (see the module docstring).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((8, 8), bool), block=4)
        >>> estimate_bytes(lay, 1, 2, 1, 4)
        3264
    """
    Lq, Lk = layout.q_len, layout.kv_len
    copies = (batch * q_heads * Lq + 2 * batch * kv_heads * Lk) * head_dim * 8
    out = batch * q_heads * Lq * (head_dim + 1) * 8
    per_head = batch * Lq * Lk
    scores = 3 * 8 * per_head * (q_heads if grad else 1)
    return copies + out + _mask_elements(layout) + scores


def _mask_elements(layout) -> int:
    """Booleans of the dense mask (a block layout's is built on its padded block grid)."""
    if hasattr(layout, "n_qb"):
        return layout.n_slices * layout.n_qb * layout.block_q * layout.n_kb * layout.block_k
    return getattr(layout, "n_slices", 1) * layout.q_len * layout.kv_len


def check_size(layout, batch: int, q_heads: int = 1, kv_heads: int = 1, head_dim: int = 1,
               grad: bool = False) -> None:
    """Raise :class:`~maskc.errors.TooLargeError` when the reference would allocate too much.

    Example:
        >>> import numpy as np, maskc as mc
        >>> check_size(mc.Layout.from_dense(np.ones((8, 8), bool), block=4), batch=2)  # fits: no error
    """
    Lq, Lk = layout.q_len, layout.kv_len
    per_head = batch * Lq * Lk
    if per_head > MAX_SCORE_ELEMENTS:
        raise TooLargeError(
            f"the reference backend would materialise {per_head:,} float64 scores per head "
            f"({per_head * 8 / 2**30:.2f} GiB) for batch {batch} x {Lq} x {Lk}, above "
            f"maskc.backends.reference.MAX_SCORE_ELEMENTS={MAX_SCORE_ELEMENTS:,}; use a sparse backend "
            "(torch, scipy, jax, flex, triton) or raise the cap"
        )
    if grad and per_head * q_heads > MAX_SCORE_ELEMENTS:
        raise TooLargeError(
            f"the reference backend under autograd would keep {per_head * q_heads:,} float64 scores alive for "
            f"backward (~{3 * per_head * q_heads * 8 / 2**30:.1f} GiB with the probabilities) for batch {batch} x "
            f"{q_heads} heads x {Lq} x {Lk}, above MAX_SCORE_ELEMENTS={MAX_SCORE_ELEMENTS:,}; train through a "
            "sparse backend with gradients (torch, triton, jax), or smaller batches"
        )
    refuse_above(estimate_bytes(layout, batch, q_heads, kv_heads, head_dim, grad), MAX_BYTES,
                 f"the reference backend (float64 copies of q/k/v for batch {batch} x {q_heads} q heads x "
                 f"{kv_heads} kv heads, mask, output and scores)",
                 "use a sparse backend (torch, scipy, jax) or raise maskc.backends.reference.MAX_BYTES")
    steps = q_heads * (batch if getattr(layout, "batch", 1) > 1 else 1)
    refuse_above(steps, MAX_STEPS, f"the reference backend ({q_heads} q heads x {batch} batch elements)",
                 "use a sparse backend (torch, scipy, jax), fewer heads, or raise maskc.backends.reference.MAX_STEPS",
                 unit="per-head steps")


def _needs_grad(q, k, v) -> bool:
    if array_lib(q) != "torch":
        return False
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))


def check_inputs(q, k, v, layout) -> None:
    """:func:`check_size` for these arrays (their real batch, heads and head_dim)."""
    B, Hq, _, D = (int(s) for s in q.shape)
    check_size(layout, B, Hq, int(k.shape[1]), max(D, int(v.shape[-1])), _needs_grad(q, k, v))


def supports(q, layout) -> tuple[bool, str]:
    """For backend selection: raise :class:`~maskc.errors.TooLargeError` where :func:`check_size`
    would (k / v sized like q, no autograd: the call itself checks the real sizes)."""
    if layout is not None:
        B, H, _, D = (int(s) for s in q.shape)
        check_size(layout, B, H, H, D)
    return True, ""


def _masks(layout) -> np.ndarray:
    """bool [slices, q_len, kv_len]."""
    m = layout.to_dense(max_elements=_mask_elements(layout))
    return m.reshape(-1, layout.q_len, layout.kv_len)


def _batches(layout, B: int) -> list[tuple[slice, int]]:
    """Batch ranges that share a mask slice: all of them when the layout broadcasts over the batch."""
    return [(slice(None), 0)] if layout.batch == 1 else [(slice(b, b + 1), b) for b in range(B)]


def _numpy_reference(q, k, v, masks, layout, scale):
    """float64 numpy: returns out [B,Hq,Lq,Dv] float64 and lse [B,Hq,Lq] float64."""
    B, Hq, Lq, _ = q.shape
    group = Hq // k.shape[1]
    bad = ~np.isfinite(v)
    v = np.where(bad, 0.0, v) if bad.any() else v
    out = np.zeros((B, Hq, Lq, v.shape[-1]), np.float64)
    lse = np.full((B, Hq, Lq), -np.inf, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        for h in range(Hq):
            hk = h // group
            for bs, b in _batches(layout, B):
                m = masks[layout.slice_index(b, h)]
                s = np.where(m[None], np.einsum("bid,bjd->bij", q[bs, h], k[bs, hk]) * scale, -np.inf)
                mx = s.max(axis=2, initial=-np.inf)
                mx_safe = np.where(np.isfinite(mx), mx, 0.0)
                p = np.exp(s - mx_safe[..., None])  # exp(-inf) = 0 on masked pairs
                den = p.sum(axis=2)
                nonempty = den > 0
                den_safe = np.where(nonempty, den, 1.0)
                o = np.einsum("bij,bjd->bid", p, v[bs, hk]) / den_safe[..., None]
                if bad.any():
                    o[np.einsum("bij,bjd->bid", (p > 0).astype(np.float64), bad[bs, hk].astype(np.float64)) > 0] = np.nan
                out[bs, h] = o
                lse[bs, h] = np.where(nonempty, mx_safe + np.log(den_safe), -np.inf)
    return out, lse


def _torch_reference(q, k, v, masks_np, layout, scale):
    """float64 torch, differentiable: out [B,Hq,Lq,Dv] float64, lse [B,Hq,Lq] float64."""
    import torch

    from maskc.backends.softmax import finite_or_zero, poison, safe_lse, split_nonfinite  # needs torch (optional)

    B, Hq, Lq, _ = q.shape
    group = Hq // k.shape[1]
    q64, k64, v64 = q.to(torch.float64), k.to(torch.float64), v.to(torch.float64)
    # gradients flow through the finite values only: 0 * NaN at masked pairs would poison them
    k_clean, k_bad = split_nonfinite(k64)
    v_clean, v_bad = split_nonfinite(v64)
    masks = torch.from_numpy(masks_np).to(q.device)
    neg_inf = torch.tensor(-float("inf"), dtype=torch.float64, device=q.device)
    outs, lses = [], []
    for h in range(Hq):
        hk = h // group
        o_b, l_b = [], []
        for bs, b in _batches(layout, B):
            m = masks[layout.slice_index(b, h)]
            s = torch.einsum("bid,bjd->bij", q64[bs, h], k_clean[bs, hk]) * scale
            if k_bad is not None:  # attended non-finite keys keep their true (non-finite) scores
                raw = torch.einsum("bid,bjd->bij", q64[bs, h].detach(), k64[bs, hk].detach()) * scale
                s = torch.where(k_bad[bs, hk].any(-1)[:, None, :], raw, s)
            s = torch.where(m[None], s, neg_inf)
            mx = finite_or_zero(s.detach().amax(dim=2))
            p = torch.exp(s - mx[..., None])
            den = p.sum(dim=2)
            den_safe = torch.where(den > 0, den, torch.ones_like(den))
            o = torch.einsum("bij,bjd->bid", p, v_clean[bs, hk]) / den_safe[..., None]
            o_b.append(o if v_bad is None else poison(o, p.detach(), v_bad[bs, hk]))
            l_b.append(safe_lse(mx, den))
        outs.append(torch.cat(o_b, 0))
        lses.append(torch.cat(l_b, 0))
    return torch.stack(outs, dim=1), torch.stack(lses, dim=1)


def attention_reference(q: Any, k: Any, v: Any, layout, *, scale: float, keep_float64: bool = False):
    """Dense float64 masked-softmax attention on validated inputs; returns ``(out, lse)``.

    out has q's dtype (float64 when ``keep_float64``), lse is float64 ``[B, Hq, Lq]``,
    ``-inf`` (and out 0) on rows without an allowed key. numpy, torch (differentiable) or
    jax (not differentiable: converted through numpy) arrays.
    """
    check_inputs(q, k, v, layout)
    masks = _masks(layout)
    lib = array_lib(q)
    if lib == "torch":
        out, lse = _torch_reference(q, k, v, masks, layout, scale)
        return (out if keep_float64 else out.to(q.dtype)), lse
    qn, kn, vn = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    out, lse = _numpy_reference(qn, kn, vn, masks, layout, scale)
    if lib == "jax":
        import jax.numpy as jnp

        return jnp.asarray(out, dtype=jnp.float64 if keep_float64 else q.dtype), jnp.asarray(lse)
    return (out if keep_float64 else out.astype(q.dtype)), lse


def check() -> tuple[bool, str]:
    """The reference is always available (numpy only; torch / jax when their arrays come in).

    Example:
        >>> check()
        (True, 'ok')
    """
    return True, "ok"
