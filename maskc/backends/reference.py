"""The reference backend: dense masked softmax in float64, the truth for cross-checks.

Takes numpy, torch and jax arrays. For torch it is differentiable with torch autograd
(computed in float64, cast back to q's dtype), so torch modules can train on CPU with it
and gradient cross-checks use torch float64 autograd through it as the truth. Memory is
dense per head: ``batch * q_len * kv_len`` float64 scores, capped by
:data:`MAX_SCORE_ELEMENTS`.

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

from maskc.errors import TooLargeError

#: Largest ``batch * q_len * kv_len`` (per head) the reference materialises.
MAX_SCORE_ELEMENTS: int = 1 << 26


def check_size(layout, batch: int) -> None:
    """Raise :class:`~maskc.errors.TooLargeError` when the reference would hold too many scores.

    Example:
        >>> import numpy as np, maskc as mc
        >>> check_size(mc.Layout.from_dense(np.ones((8, 8), bool), block=4), batch=2)  # fits: no error
    """
    need = batch * layout.q_len * layout.kv_len
    if need > MAX_SCORE_ELEMENTS:
        raise TooLargeError(
            f"the reference backend would materialise {need:,} float64 scores per head "
            f"({need * 8 / 2**30:.2f} GiB) for batch {batch} x {layout.q_len} x {layout.kv_len}, above "
            f"maskc.backends.reference.MAX_SCORE_ELEMENTS={MAX_SCORE_ELEMENTS:,}; use a sparse backend "
            "(scipy, jax, flex, triton) or raise the cap"
        )


def check_grad_size(q, k, v, layout) -> None:
    """Refuse a recorded (autograd) call whose retained float64 scores would exceed the cap.

    Under autograd every head's scores and probabilities stay alive until backward, so
    the cap applies to batch x heads x q_len x kv_len, not to one head.

    Example:
        >>> import torch, maskc as mc
        >>> q = torch.randn(1, 2, 8, 4, requires_grad=True)
        >>> check_grad_size(q, q, q, mc.compile(mc.causal(), 8, block=8))  # fits: no error
    """
    import torch

    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))):
        return
    need = int(q.shape[0]) * int(q.shape[1]) * layout.q_len * layout.kv_len
    if need > MAX_SCORE_ELEMENTS:
        raise TooLargeError(
            f"the reference backend under autograd would keep {need:,} float64 scores alive for backward "
            f"(~{3 * need * 8 / 2**30:.1f} GiB with the probabilities) for batch {q.shape[0]} x {q.shape[1]} heads x "
            f"{layout.q_len} x {layout.kv_len}, above MAX_SCORE_ELEMENTS={MAX_SCORE_ELEMENTS:,}; train through a "
            "sparse backend with gradients (triton, jax; flex on CUDA), or smaller batches"
        )


def _dense_mask(layout) -> np.ndarray:
    return layout.to_dense(max_elements=max(MAX_SCORE_ELEMENTS, 1 << 20) * max(layout.heads, 1))


def _numpy_reference(q, k, v, mask, scale):
    """float64 numpy: returns out [B,Hq,Lq,D] float64 and lse [B,Hq,Lq] float64."""
    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    group = Hq // Hkv
    out = np.zeros((B, Hq, Lq, D), np.float64)
    lse = np.full((B, Hq, Lq), -np.inf, np.float64)
    for h in range(Hq):
        m = mask[h if mask.shape[0] > 1 else 0]  # [Lq, Lk]
        kh, vh = k[:, h // group], v[:, h // group]
        s = np.einsum("bid,bjd->bij", q[:, h], kh) * scale
        s = np.where(m[None], s, -np.inf)
        mx = s.max(axis=2, initial=-np.inf)
        mx_safe = np.where(np.isfinite(mx), mx, 0.0)
        p = np.exp(s - mx_safe[..., None])  # exp(-inf) = 0 on masked pairs
        den = p.sum(axis=2)
        nonempty = den > 0
        den_safe = np.where(nonempty, den, 1.0)
        out[:, h] = np.einsum("bij,bjd->bid", p, vh) / den_safe[..., None]
        lse[:, h] = np.where(nonempty, mx_safe + np.log(den_safe), -np.inf)
    return out, lse


def _torch_reference(q, k, v, mask_np, scale):
    """float64 torch, differentiable: out [B,Hq,Lq,D] float64, lse [B,Hq,Lq] float64."""
    import torch

    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    group = Hq // Hkv
    q64, k64, v64 = q.to(torch.float64), k.to(torch.float64), v.to(torch.float64)
    mask = torch.from_numpy(mask_np).to(q.device)
    if group > 1:
        k64 = k64.repeat_interleave(group, dim=1)
        v64 = v64.repeat_interleave(group, dim=1)
    outs, lses = [], []
    neg_inf = torch.tensor(-float("inf"), dtype=torch.float64, device=q.device)
    for h in range(Hq):
        m = mask[h if mask.shape[0] > 1 else 0]
        s = torch.einsum("bid,bjd->bij", q64[:, h], k64[:, h]) * scale
        s = torch.where(m[None], s, neg_inf)
        mx = s.detach().amax(dim=2)
        mx_safe = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        p = torch.exp(s - mx_safe[..., None])
        den = p.sum(dim=2)
        nonempty = den > 0
        den_safe = torch.where(nonempty, den, torch.ones_like(den))
        outs.append(torch.einsum("bij,bjd->bid", p, v64[:, h]) / den_safe[..., None])
        lses.append(torch.where(nonempty, mx_safe + torch.log(den_safe), neg_inf))
    return torch.stack(outs, dim=1), torch.stack(lses, dim=1)


def attention_reference(q: Any, k: Any, v: Any, layout, *, scale: float, keep_float64: bool = False):
    """Dense float64 masked-softmax attention on validated inputs; returns ``(out, lse)``.

    out has q's dtype (float64 when ``keep_float64``), lse is float64 ``[B, Hq, Lq]``,
    ``-inf`` (and out 0) on rows without an allowed key. numpy, torch (differentiable) or
    jax (not differentiable: converted through numpy) arrays.
    """
    from maskc.backends.checks import array_lib

    check_size(layout, int(q.shape[0]))
    mask = _dense_mask(layout)
    lib = array_lib(q)
    if lib == "torch":
        check_grad_size(q, k, v, layout)
        out, lse = _torch_reference(q, k, v, mask, scale)
        return (out if keep_float64 else out.to(q.dtype)), lse
    if lib == "jax":
        import jax.numpy as jnp

        qn, kn, vn = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
        out, lse = _numpy_reference(qn, kn, vn, mask, scale)
        return jnp.asarray(out, dtype=jnp.float64 if keep_float64 else q.dtype), jnp.asarray(lse)
    qn, kn, vn = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    out, lse = _numpy_reference(qn, kn, vn, mask, scale)
    return (out if keep_float64 else out.astype(q.dtype)), lse


def check() -> tuple[bool, str]:
    """The reference is always available (numpy only; torch / jax when their arrays come in).

    Example:
        >>> check()
        (True, 'ok')
    """
    return True, "ok"
