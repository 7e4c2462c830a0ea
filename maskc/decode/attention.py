"""``mc.decode_attention``: attention of the newest query rows over a KV cache, under a pattern.

A decode step (``T = 1``) or a chunk of prefill (``T > 1``) holds the queries of absolute
positions ``position .. position + T - 1``; the cache holds the keys and values of
positions ``0 .. L - 1``. The rows' keys come straight from the pattern
(:func:`maskc.decode.keys.decode_keys`: ``T x kv_len`` mask elements, no compile, cached
across the layers of a step), so a step costs O(keys of those rows), not a compile of
the ``L x L`` layout. The result equals rows ``position ..`` of
``mc.compile(pattern, q_len=T, kv_len=kv_len, q_offset=position)``, i.e. the rows of the
full-sequence layout for ``kv_len = position + T`` (``q_offset = kv_len - q_len``).

Example:
    >>> import torch, maskc as mc
    >>> k = torch.randn(1, 2, 10, 8); v = torch.randn(1, 2, 10, 8)
    >>> q = torch.randn(1, 4, 1, 8)   # the query of position 9; 4 query heads, 2 kv heads
    >>> out = mc.decode_attention(q, k, v, mc.causal() & mc.window(3), position=9)
    >>> full = mc.compile(mc.causal() & mc.window(3), q_len=10, block=4)
    >>> qs = torch.zeros(1, 4, 10, 8); qs[:, :, 9:] = q
    >>> want = mc.attention(qs, k, v, full, backend="reference")[:, :, 9:]
    >>> bool(torch.allclose(out, want, atol=1e-6))
    True
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from maskc.backends import attention
from maskc.backends.opaque_op import register_runner, registered_attention
from maskc.backends.checks import InputInfo, validate_arrays, validate_scale
from maskc.backends.softmax import accumulation_dtype, finite_or_zero, poison, safe_lse, split_nonfinite
from maskc.compiler import compile as compile_pattern
from maskc.decode.keys import MAX_ROW_ELEMENTS, DecodeKeys, decode_keys
from maskc.ir.layout import normalize_block
from maskc.patterns.core import Pattern

Tensor = torch.Tensor


def decode_attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, pattern: Pattern, position: int | Tensor, *,
                     kv_len: int | None = None, backend: str = "auto", scale: float | None = None,
                     block: int | tuple[int, int] = 128, return_lse: bool = False) -> Any:
    """Attention of queries at ``position .. position + T - 1`` over a KV cache, restricted to ``pattern``.

    Args:
        q: ``[B, H, T, D]`` torch tensor, the newest T query rows (T = 1: a decode step).
        k_cache, v_cache: ``[B, Hkv, L, D]`` (``H % Hkv == 0``), keys / values of positions
            ``0 .. L - 1``; same dtype and device as q. Slots past ``kv_len`` (e.g. of a
            preallocated cache) are never read.
        pattern: any maskc Pattern (``heads([...])``, batched / document masks included).
        position: absolute position of q's first row: an int, or a ``[B]`` integer tensor
            (one per batch element, e.g. left-aligned sequences of different lengths).
        kv_len: keys that exist, default ``position + T`` (the tokens so far); at most L.
            ``kv_len=L`` lets rows see every key in the cache (non-causal patterns over
            a known sequence).
        backend: ``"auto"``: the rows' keys are gathered from the cache and attended with
            torch ops (any device, autograd); a backend name (``"torch"``, ``"triton"``,
            ``"reference"``, ...): the rows are compiled
            (``mc.compile(..., q_offset=position)``) and run on that backend (one int position).
            Row ranges past :data:`~maskc.decode.keys.MAX_ROW_ELEMENTS` mask elements
            (long prefill chunks) are compiled and run with ``"auto"`` too.
        scale: score scale, default ``1 / sqrt(D)``.
        block: block size of a compiled layout (ignored by the gather path).
        return_lse: also return the log-sum-exp ``[B, H, T]`` (float32; float64 inputs: float64).

    Under ``torch.compile(fullgraph=True)`` the call is one custom op (keys found inside it,
    so no shape depends on them): with a preallocated cache and a tensor ``position`` a
    decode loop compiles one graph for every step (``backend`` "auto" or "torch").

    Returns:
        out like q (rows with no allowed key: 0), or ``(out, lse)``.

    Example:
        >>> import torch, maskc as mc
        >>> k = torch.randn(2, 1, 64, 16); q = torch.randn(2, 2, 1, 16)
        >>> mc.decode_attention(q, k, k, mc.prime_bird(), position=torch.tensor([63, 40])).shape
        torch.Size([2, 2, 1, 16])
    """
    if torch.compiler.is_compiling():
        return _traced(q, k_cache, v_cache, pattern, position, kv_len, backend, scale, block, return_lse)
    info = _check(q, k_cache, v_cache, pattern)
    B, H, T, D = q.shape
    L = int(k_cache.shape[2])
    pos, batch_pos = _check_position(position, B, T, L)
    if kv_len is not None:
        if isinstance(kv_len, bool) or not isinstance(kv_len, (int, np.integer)) or not 1 <= kv_len <= L:
            raise ValueError(f"kv_len must be an int in [1, L={L}] (the keys that exist in the cache), got {kv_len!r}")
    s = validate_scale(scale, info.head_dim)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    width = max(pos) + T if kv_len is None else int(kv_len)
    n_elem = (B if (pattern.n_batch or batch_pos) else 1) * (pattern.n_heads or 1) * T * width
    if backend == "auto" and n_elem <= MAX_ROW_ELEMENTS:
        keys = decode_keys(pattern, T, kv_len, pos if batch_pos else pos[0], batch=B)
        out, lse = gather_attention(q, k_cache, v_cache, keys, scale=s)
    else:
        if batch_pos:
            raise ValueError("per-batch positions run on the gather path only: pass backend='auto' with a short "
                             f"row range (<= {MAX_ROW_ELEMENTS:,} mask elements), or call once per position")
        n = pos[0] + T if kv_len is None else int(kv_len)
        bq, bk = normalize_block(block)
        bq = min(bq, max(16, 1 << (T - 1).bit_length()))  # a decode step is 1 row: no 128-row tiles
        layout = compile_pattern(pattern, T, n, block=(bq, bk), q_offset=pos[0],
                                 heads=H if pattern.n_heads else None)
        out, lse = attention(q, k_cache[:, :, :n], v_cache[:, :, :n], layout, backend=backend, scale=s,
                             return_lse=True)
    return (out, lse) if return_lse else out


def _traced(q: Any, k: Any, v: Any, pattern: Any, position: Any, kv_len: Any, backend: Any, scale: Any,
            block: Any, return_lse: bool) -> Any:
    """What decode_attention runs while ``torch.compile`` traces: one ``maskc::registered_attention`` node.

    The step's keys are found inside the op (numpy, cached per step as eagerly), so no
    shape of the graph depends on them: a ``position`` tensor gives one graph for every
    step; an int position is a guarded constant until dynamo makes it symbolic (one
    recompile).
    """
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend={backend!r} does not run decode_attention under torch.compile: pass "
                         "backend='auto' (the gather path, with autograd), or call it eagerly")
    if not all(isinstance(x, torch.Tensor) and x.dim() == 4 for x in (q, k, v)):
        raise TypeError("decode_attention takes torch tensors q [B, H, T, D] and caches [B, Hkv, L, D]")
    if not isinstance(pattern, Pattern):
        raise TypeError(f"pattern must be a maskc Pattern (evaluated per step), got {type(pattern).__name__}")
    token = _runner_token(pattern, backend, scale, block)
    ints = [-1 if kv_len is None else kv_len]  # data of the op, not of its token: a new kv_len is no new graph
    extra, ints = (position, ints) if isinstance(position, torch.Tensor) else (None, ints + [position])
    out, lse = registered_attention(q, k, v, extra, ints, token)
    return (out, lse) if return_lse else out


@torch._dynamo.assume_constant_result
def _runner_token(pattern: Pattern, backend: str, scale: Any, block: Any) -> str:
    """The op's token for these settings (run once, at trace time; equal settings share it)."""
    def run(q: Tensor, k: Tensor, v: Tensor, extra: Tensor | None, ints: list) -> tuple[Tensor, Tensor]:
        return decode_attention(q, k, v, pattern, extra if extra is not None else ints[1],
                                kv_len=None if ints[0] < 0 else ints[0], backend=backend, scale=scale, block=block,
                                return_lse=True)

    key = ("decode", pattern, backend, scale, tuple(block) if isinstance(block, list) else block)
    return register_runner(key, run)


def _check(q: Any, k: Any, v: Any, pattern: Any) -> InputInfo:
    if not all(isinstance(x, torch.Tensor) for x in (q, k, v)):
        raise TypeError("decode_attention takes torch tensors q [B, H, T, D] and caches [B, Hkv, L, D]; "
                        f"got {type(q).__name__}, {type(k).__name__}, {type(v).__name__}")
    info = validate_arrays(q, k, v)
    if not isinstance(pattern, Pattern):
        raise TypeError(f"pattern must be a maskc Pattern (evaluated per step), got {type(pattern).__name__}; "
                        "a compiled Layout fixes its rows: use layout.rows(start, stop) with mc.attention")
    if k.shape[0] != q.shape[0] or v.shape[0] != q.shape[0]:
        raise ValueError(f"batch mismatch: q {tuple(q.shape)}, k_cache {tuple(k.shape)}, v_cache {tuple(v.shape)}")
    if tuple(k.shape[:3]) != tuple(v.shape[:3]):
        raise ValueError(f"k_cache {tuple(k.shape)} and v_cache {tuple(v.shape)} must share [B, Hkv, L]")
    nh = pattern.n_heads
    if nh is not None and nh not in (1, q.shape[1]):
        raise ValueError(f"the pattern has {nh} per-head patterns but q has {q.shape[1]} heads")
    if pattern.n_batch is not None and pattern.n_batch not in (1, q.shape[0]):
        raise ValueError(f"the pattern holds {pattern.n_batch} batch elements but q has batch {q.shape[0]}")
    return info


def _check_position(position: Any, B: int, T: int, L: int) -> tuple[tuple[int, ...], bool]:
    """``(positions, per_batch)``; every ``position + T`` must fit in the cache (<= L)."""
    if isinstance(position, torch.Tensor) and position.dim() == 0:
        position = int(position)
    if isinstance(position, (int, np.integer)) and not isinstance(position, bool):
        pos, per_batch = (int(position),), False
    elif isinstance(position, (torch.Tensor, np.ndarray, list, tuple)):
        arr = position.detach().cpu().numpy() if isinstance(position, torch.Tensor) else np.asarray(position)
        if arr.ndim != 1 or arr.shape[0] != B or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"position must be an int or a [B={B}] integer tensor, got {arr.dtype} of shape "
                             f"{arr.shape}")
        pos, per_batch = tuple(int(p) for p in arr), True
    else:
        raise TypeError(f"position must be an int or a [B] integer tensor, got {type(position).__name__}")
    if min(pos) < 0:
        raise ValueError(f"position must be >= 0, got {min(pos)}")
    if max(pos) + T > L:
        raise ValueError(f"position + T = {max(pos)} + {T} exceeds the cache length L = {L}: the rows' own keys "
                         "must be in the cache (append this step's k / v to the cache first)")
    return pos, per_batch


def gather_attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, keys: DecodeKeys, *,
                     scale: float) -> tuple[Tensor, Tensor]:
    """Softmax attention of q ``[B, H, T, D]`` over the cache slots ``keys`` lists (autograd).

    The listed keys are gathered (a slice when they are one contiguous range), scored,
    masked by ``keys.allowed`` and softmaxed in float32 (float64 for float64 inputs).
    Rows with no allowed key give 0 and lse -inf; a non-finite value at a key a row may
    not attend never reaches it.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.decode.keys import decode_keys
        >>> keys = decode_keys(mc.causal(), q_len=1, kv_len=None, position=3)
        >>> k = torch.randn(1, 1, 8, 4)
        >>> out, lse = gather_attention(torch.randn(1, 1, 1, 4), k, k, keys, scale=0.5)
        >>> out.shape, lse.shape
        (torch.Size([1, 1, 1, 4]), torch.Size([1, 1, 1]))
    """
    B, H, T, D = q.shape
    Hkv, L = k_cache.shape[1], k_cache.shape[2]
    Hm = keys.allowed.shape[1]
    acc = accumulation_dtype(q.dtype)
    Hx = Hkv if Hm == 1 else H  # key heads after the gather: the kv heads, or one per query head
    flat, allowed = _device_keys(keys, q.device, Hx, H // Hkv, L)
    if keys.span is not None:
        a, b = keys.span
        kg, vg = k_cache[:, :, a:b], v_cache[:, :, a:b]
    else:
        kg, vg = (_gather(x, flat, Hx) for x in (k_cache, v_cache))  # [B, Hx, K, D]
    g = H // Hx  # query heads per gathered key head, folded into the rows of one matmul
    s = torch.matmul(q.to(acc).reshape(B, Hx, g * T, D), kg.to(acc).transpose(-1, -2)) * scale
    s = s.view(B, Hx, g, T, -1).masked_fill(~allowed, float("-inf"))  # [B, Hx, g, T, K]
    m = finite_or_zero(s.detach().amax(dim=-1, keepdim=True))
    e = torch.exp(s - m)
    z = e.sum(dim=-1, keepdim=True)
    p = e / torch.where(z > 0, z, torch.ones_like(z))
    # a slot some row may not attend (other rows' keys, padding) must not leak a NaN / inf value
    # into it (0 * NaN); with one row and no padding every slot is attended, nothing to clean
    v_clean, v_bad = split_nonfinite(vg.to(acc)) if (T > 1 or keys.padded) else (vg.to(acc), None)
    p = p.view(B, Hx, g * T, -1)
    out = torch.matmul(p, v_clean)
    if v_bad is not None:
        out = poison(out, p.detach(), v_bad)
    lse = safe_lse(m.squeeze(-1), z.squeeze(-1))
    return out.reshape(B, H, T, -1).to(q.dtype), lse.reshape(B, H, T)


_DEVICE_KEYS: "OrderedDict[tuple, tuple[DecodeKeys, Tensor, Tensor]]" = OrderedDict()


def _device_keys(keys: DecodeKeys, device: torch.device, Hx: int, group: int, L: int) -> tuple[Tensor, Tensor]:
    """``(flat index [Bm, Hx, K] into a [B, Hkv * L] cache, allowed [Bm, Hm, 1, T, K])`` on ``device`` (cached
    for the layers of a step; the entry holds ``keys`` itself, so a recycled id never matches)."""
    key = (id(keys), str(device), Hx, group, L)
    hit = _DEVICE_KEYS.get(key)
    if hit is not None and hit[0] is keys:
        return hit[1], hit[2]
    head = np.arange(Hx) // (1 if keys.allowed.shape[1] == 1 else group)  # the kv head of each gathered head
    flat = torch.tensor(head[None, :, None] * L + keys.index, device=device)
    allowed = torch.tensor(keys.allowed, device=device)[:, :, None]
    _DEVICE_KEYS[key] = (keys, flat, allowed)
    while len(_DEVICE_KEYS) > 16:
        _DEVICE_KEYS.popitem(last=False)
    return flat, allowed


def _gather(x: Tensor, flat: Tensor, Hx: int) -> Tensor:
    """Rows ``flat`` of the cache x ``[B, Hkv, L, D]`` seen as ``[B, Hkv * L, D]``: ``[B, Hx, K, D]``."""
    B, D = x.shape[0], x.shape[-1]
    xf = x.reshape(B, -1, D)
    if flat.shape[0] == 1:
        return xf.index_select(1, flat.reshape(-1)).view(B, Hx, -1, D)
    return torch.gather(xf, 1, flat.reshape(B, -1, 1).expand(-1, -1, D)).view(B, Hx, -1, D)
