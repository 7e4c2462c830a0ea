"""maskc's FlexAttention backend: torch ``flex_attention`` fed a BlockMask built from the Layout.

The BlockMask comes from :func:`maskc.export.flex.to_flex_block_mask` (no
``create_block_mask``; partial blocks masked by a lookup in the layout's bitmask
dictionary). On CUDA the ``torch.compile``'d flex_attention is used (compiled once per
process, cached at module level); on CPU the eager implementation is used unless
``compiled=True`` or the environment variable ``MASKC_FLEX_COMPILE=1`` asks for the
compiled one (about 17 s of compilation on a small CPU). Forward and backward on CUDA;
on CPU, forward only (torch's CPU flex has no backward). torch's compiled CPU flex
cannot return the log-sum-exp, so on that path lse comes from the eager implementation.

A layout with ``batch > 1`` runs one BlockMask per batch element (each built from that
element's slices). Rows with no allowed key are set to exactly 0 / -inf, and NaN / inf
at keys a row may not attend never reach it: flex's kernels multiply masked
probabilities (0) with V, so non-finite k / v are zeroed first and a second flex call
over an indicator of the non-finite entries marks NaN exactly the outputs that attended
one (only when some value is non-finite).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from maskc.backends.checks import check_direct_call
from maskc.backends.softmax import split_nonfinite
from maskc.errors import MaskcError, TooLargeError
from maskc.export.flex import to_flex_block_mask
from maskc.ir.cache import LayoutCache
from maskc.ir.layout import Layout

__all__ = ["attention_flex", "is_available", "supports", "compiled_flex_attention", "MAX_EAGER_SCORE_ELEMENTS"]

_COMPILED = None
_CACHE = LayoutCache("maskc.backends.flex")

#: Eager (uncompiled) flex_attention materialises every score: refuse calls with more than
#: this many ``batch * q_heads * q_len * kv_len`` elements before anything is allocated.
MAX_EAGER_SCORE_ELEMENTS: int = 1 << 26


def _compiled_default(device_type: str) -> bool:
    return device_type == "cuda" or os.environ.get("MASKC_FLEX_COMPILE", "0") not in ("", "0")


def _eager_too_large(q, kv_len: int, compiled: bool) -> str:
    """Why an eager call is too large ("" when it fits)."""
    if compiled:
        return ""
    B, Hq, Lq, _ = (int(s) for s in q.shape)
    need = B * Hq * Lq * int(kv_len)
    if need <= MAX_EAGER_SCORE_ELEMENTS:
        return ""
    return (
        f"eager FlexAttention would materialise {need:,} scores (batch {B} x {Hq} heads x {Lq} x "
        f"{int(kv_len)}), above maskc.backends.flex.MAX_EAGER_SCORE_ELEMENTS="
        f"{MAX_EAGER_SCORE_ELEMENTS:,}; use the compiled kernel (CUDA, or MASKC_FLEX_COMPILE=1 on CPU), "
        "a sparse backend, or split the batch / heads"
    )


def _check_size(q, k, compiled: bool) -> None:
    why = _eager_too_large(q, int(k.shape[2]), compiled)
    if why:
        raise TooLargeError(why)


def supports(q, layout) -> tuple[bool, str]:
    """Whether ``attention`` may run these inputs on flex (used by backend selection).

    Refuses eager calls whose dense scores exceed :data:`MAX_EAGER_SCORE_ELEMENTS` (the
    size of k is taken as the layout's ``kv_len``) by raising TooLargeError, so an
    explicit ``backend="flex"`` raises TooLargeError, as :func:`attention_flex` does.
    Gradients are checked by the registry.

    Example:
        >>> import torch, maskc as mc
        >>> lay = mc.compile(mc.causal(), q_len=64, block=32)
        >>> supports(torch.zeros(1, 2, 64, 16), lay)
        (True, '')
    """
    if layout is None:
        return True, ""
    why = _eager_too_large(q, layout.kv_len, _compiled_default(q.device.type))
    if why:
        raise TooLargeError(why)
    return True, ""


def is_available() -> tuple[bool, str]:
    """Whether torch FlexAttention can be used here, and why not.

    Example:
        >>> from maskc.backends import flex
        >>> ok, reason = flex.is_available()
        >>> isinstance(ok, bool) and isinstance(reason, str)
        True
    """
    try:
        import torch  # noqa: F401
        from torch.nn.attention.flex_attention import BlockMask, flex_attention  # noqa: F401
    except Exception as exc:
        return False, f"torch.nn.attention.flex_attention not importable: {exc}"
    return True, "torch FlexAttention (compiled on CUDA, eager on CPU)"


def compiled_flex_attention():
    """The module-level ``torch.compile(flex_attention)`` (built on first use, then reused).

    Example:
        >>> from maskc.backends.flex import compiled_flex_attention
        >>> fn = compiled_flex_attention()
        >>> fn is compiled_flex_attention()
        True
    """
    global _COMPILED
    if _COMPILED is None:
        import torch
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED = torch.compile(flex_attention, dynamic=False)
    return _COMPILED


def _kernel_options(layout: Layout, device_type: str) -> dict | None:
    """Tile sizes that divide the layout blocks (flex's GPU kernels require it)."""
    if device_type != "cuda":
        return None
    bq, bk = layout.block_q, layout.block_k
    if bq >= 128 and bk >= 128:
        return None
    m1 = min(bq, bk, 32)
    n2 = min(bq, bk, 32)
    return {
        "BLOCK_M": min(bq, 64), "BLOCK_N": min(bk, 64),
        "bwd_BLOCK_M1": m1, "bwd_BLOCK_N1": min(bk, 64),
        "bwd_BLOCK_M2": min(bq, 64), "bwd_BLOCK_N2": n2,
    }


def _empty_rows(layout: Layout, device):
    """bool [heads, q_len] on device: query rows with no allowed key (cached)."""
    import torch

    return _CACHE.get(layout, ("empty_rows", str(device)),
                      lambda: torch.from_numpy(layout.row_counts() == 0).to(device))


def batch_element(layout: Layout, b: int) -> Layout:
    """The one-batch layout of batch element ``b`` (its ``heads`` slices, the masks they use).

    Example:
        >>> import numpy as np, maskc as mc
        >>> m = np.zeros((2, 1, 4, 4), bool); m[0, 0] = np.eye(4, dtype=bool); m[1, 0, :, 0] = True
        >>> lay = mc.Layout.from_dense(m, block=2)
        >>> batch_element(lay, 1).to_dense()[0, :, 0].tolist()
        [True, True, True, True]
    """
    def make() -> Layout:
        rp = layout.row_ptr[b * layout.heads:(b + 1) * layout.heads]
        lo, hi = int(rp[0, 0]), int(rp[-1, -1])
        pid = layout.partial_id[lo:hi].copy()
        used, new_pid = np.unique(pid[pid >= 0], return_inverse=True)
        pid[pid >= 0] = new_pid.astype(pid.dtype)
        return Layout(q_len=layout.q_len, kv_len=layout.kv_len, block_q=layout.block_q, block_k=layout.block_k,
                      row_ptr=rp - lo, col_idx=layout.col_idx[lo:hi], kind=layout.kind[lo:hi], partial_id=pid,
                      masks=layout.masks[used], pattern_text=layout.pattern_text, q_offset=layout.q_offset)

    return _CACHE.get(layout, ("batch_element", int(b)), make)


def _flex_call(q, k, v, layout: Layout, scale: float, compiled: bool, needs_grad: bool):
    """One flex_attention call over a one-batch layout: ``(out, lse float32 / float64)``."""
    import torch
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention

    bm = to_flex_block_mask(layout, q.device)
    fn = compiled_flex_attention() if compiled else flex_attention
    kw = dict(block_mask=bm, scale=float(scale), enable_gqa=q.shape[1] != k.shape[1],
              return_aux=AuxRequest(lse=True))
    opts = _kernel_options(layout, q.device.type)
    if opts is not None:
        kw["kernel_options"] = opts
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        if compiled and q.device.type == "cpu":
            # torch's compiled CPU flex is inference-only and cannot return lse (torch 2.13):
            # the output comes from the compiled kernel, lse from the eager implementation
            if needs_grad:
                raise MaskcError("flex backend: torch's compiled CPU FlexAttention has no backward; "
                                 "use compiled=False (eager) or run on CUDA for gradients")
            kw.pop("return_aux")
            out = fn(q, k, v, **kw)
            _, aux = flex_attention(q, k, v, **kw, return_aux=AuxRequest(lse=True))
        else:
            out, aux = fn(q, k, v, **kw)
    # lse: float32, float64 for float64 inputs (the backend contract)
    lse = aux.lse.to(torch.float64 if q.dtype == torch.float64 else torch.float32)
    # rows with no allowed key: zeros and -inf whatever the kernel produced
    empty = _empty_rows(layout, q.device)[None]  # [1, H or 1, Lq]
    if bool(empty.any()):
        out = torch.where(empty[..., None], torch.zeros((), dtype=out.dtype, device=out.device), out)
        lse = torch.where(empty, torch.full((), float("-inf"), device=lse.device), lse)
    return out, lse


def _finite_call(q, k, v, layout: Layout, scale: float, compiled: bool, needs_grad: bool):
    """:func:`_flex_call` with non-finite k / v zeroed and the outputs that read them set to NaN."""
    import torch

    k_clean, k_bad = split_nonfinite(k)
    v_clean, v_bad = split_nonfinite(v)
    out, lse = _flex_call(q, k_clean, v_clean, layout, scale, compiled, needs_grad)
    if k_bad is None and v_bad is None:
        return out, lse
    with torch.no_grad():
        ind = torch.zeros_like(v_clean) if v_bad is None else v_bad.to(v_clean.dtype)
        if k_bad is not None:  # a non-finite k poisons every output element of a row attending that key
            ind = torch.maximum(ind, k_bad.any(-1, keepdim=True).to(ind.dtype).expand_as(ind))
        hit = _flex_call(q.detach(), k_clean.detach(), ind, layout, scale, compiled, False)[0] > 0
    return out.masked_fill(hit, float("nan")), lse


def attention_flex(q, k, v, layout: Layout, *, scale: float, compiled: bool | None = None):
    """Block-sparse attention through torch FlexAttention.

    Args:
        q: ``[B, Hq, Lq, D]`` torch tensor; k, v: ``[B, Hkv, Lk, D]`` (``Hq % Hkv == 0``,
            GQA through ``enable_gqa``).
        layout: the Layout (``heads`` in {1, Hq}, ``batch`` in {1, B}, lengths Lq / Lk).
        scale: softmax scale.
        compiled: use ``torch.compile(flex_attention)``; default: True on CUDA, on CPU
            only when ``MASKC_FLEX_COMPILE=1``.

    Returns:
        ``(out, lse)``: out like q, lse float32 ``[B, Hq, Lq]`` (natural log); rows with
        no allowed key give out 0 and lse -inf.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.backends.flex import attention_flex
        >>> lay = mc.compile(mc.causal(), q_len=64, block=32)
        >>> q = k = v = torch.randn(1, 2, 64, 16)
        >>> out, lse = attention_flex(q, k, v, lay, scale=0.25)
        >>> out.shape, lse.dtype
        (torch.Size([1, 2, 64, 16]), torch.float32)
    """
    import torch

    check_direct_call("flex", q, k, layout)
    if compiled is None:
        compiled = _compiled_default(q.device.type)
    _check_size(q, k, compiled)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if not needs_grad:  # no graph is recorded: detach, or torch's CPU flex refuses requires_grad inputs
        q, k, v = q.detach(), k.detach(), v.detach()
    if layout.batch == 1:
        return _finite_call(q, k, v, layout, scale, compiled, needs_grad)
    res = [_finite_call(q[b:b + 1], k[b:b + 1], v[b:b + 1], batch_element(layout, b), scale, compiled, needs_grad)
           for b in range(layout.batch)]
    return torch.cat([r[0] for r in res]), torch.cat([r[1] for r in res])
