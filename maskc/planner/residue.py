"""Residue-permutation lowering for periodic parts: (i - j) mod s == phase.

Write i = a + s*i' and j = b + s*j' (a, b the residue classes). A pair of the part has
b = (a - phase) mod s, so query class a only meets key class b, and with c = a - b
(= phase or phase - s) the offset is d = c + s*(i' - j'). Gathering every class into a
contiguous run turns the part into s independent problems of about N/s tokens whose mask
depends only on d' = i' - j' (a Toeplitz pattern again, usually dense triangular): a
strided O(N^2/s) pattern that touches *every* 128x128 block becomes s dense diagonal
blocks that tensor cores eat. Classes with equal (n_a, m_b, c) are batched together.

Example:
    >>> import numpy as np, torch
    >>> from maskc.planner.residue import residue_attention, reduced_member
    >>> N = 12; d = np.arange(-(N - 1), N)
    >>> member = (d >= 0) & (d % 4 == 0)             # causal stride(4)
    >>> reduced_member(member, N, N, 4, c=0, n=3, m=3).astype(int).tolist()
    [0, 0, 1, 1, 1]
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Tensor = torch.Tensor
Inner = Callable[[Tensor, Tensor, Tensor, np.ndarray, int, int], tuple[Tensor, Tensor]]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def class_len(length: int, s: int, a: int) -> int:
    """Positions a, a + s, ... below ``length``."""
    return max(0, _cdiv(length - a, s))


def reduced_member(member: np.ndarray, q_len: int, kv_len: int, s: int, c: int, n: int, m: int) -> np.ndarray:
    """Membership over d' in [-(m - 1), n - 1] of the class problem: member[c + s*d']."""
    dp = np.arange(-(m - 1), n, dtype=np.int64)
    d = c + s * dp
    ok = (d >= -(kv_len - 1)) & (d <= q_len - 1)
    out = np.zeros(dp.shape, dtype=bool)
    out[ok] = member[d[ok] + kv_len - 1]
    return out


def class_groups(q_len: int, kv_len: int, s: int, phase: int) -> dict[tuple[int, int, int], list[int]]:
    """Query classes grouped by (n_a, m_b, c); each group runs as one batched problem."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for a in range(min(s, q_len)):
        b = (a - phase) % s
        n, m = class_len(q_len, s, a), class_len(kv_len, s, b)
        if n == 0 or m == 0:
            continue
        groups.setdefault((n, m, a - b), []).append(a)
    return groups


def residue_attention(q: Tensor, k: Tensor, v: Tensor, member: np.ndarray, period: int, phase: int,
                      inner: Inner) -> tuple[Tensor, Tensor]:
    """Attention over a periodic part by permuting tokens into residue classes.

    ``member`` is the part's membership over d (every allowed d must satisfy
    d mod period == phase). ``inner(q, k, v, reduced_member, n, m)`` runs one class
    problem (any Toeplitz lowering: block-sparse, dense) and returns ``(out, lse)``.
    Differentiable when ``inner`` is.
    """
    s = int(period)
    B, H, N, D = q.shape
    M = k.shape[2]
    d = np.arange(-(M - 1), N)
    if np.any(member & (np.mod(d, s) != phase)):
        raise ValueError(f"residue part has offsets outside the class d mod {s} == {phase}")
    n_max, m_max = _cdiv(N, s), _cdiv(M, s)
    qc = torch.nn.functional.pad(q, (0, 0, 0, n_max * s - N)).view(B, H, n_max, s, D).transpose(2, 3)
    kc = torch.nn.functional.pad(k, (0, 0, 0, m_max * s - M)).view(B, k.shape[1], m_max, s, D).transpose(2, 3)
    vc = torch.nn.functional.pad(v, (0, 0, 0, m_max * s - M)).view(B, v.shape[1], m_max, s, D).transpose(2, 3)
    lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    outs: list[Tensor | None] = [None] * s
    lses: list[Tensor | None] = [None] * s
    for (n, m, c), cls in class_groups(N, M, s, phase).items():
        red = reduced_member(member, N, M, s, c, n, m)
        g = len(cls)
        a_idx = torch.tensor(cls, device=q.device)
        b_idx = torch.tensor([(a - phase) % s for a in cls], device=q.device)
        # [B, H, g, n, D] -> [B*g, H, n, D]: classes become batch entries
        qg = qc[:, :, a_idx, :n].transpose(1, 2).reshape(B * g, H, n, D)
        kg = kc[:, :, b_idx, :m].transpose(1, 2).reshape(B * g, k.shape[1], m, D)
        vg = vc[:, :, b_idx, :m].transpose(1, 2).reshape(B * g, v.shape[1], m, D)
        if red.any():
            o, l = inner(qg, kg, vg, red, n, m)
        else:
            o = torch.zeros_like(qg)
            l = torch.full(qg.shape[:3], float("-inf"), dtype=lse_dtype, device=q.device)
        o = o.reshape(B, g, H, n, D)
        l = l.reshape(B, g, H, n).to(lse_dtype)
        for t, a in enumerate(cls):
            outs[a] = torch.nn.functional.pad(o[:, t], (0, 0, 0, n_max - n))
            lses[a] = torch.nn.functional.pad(l[:, t], (0, n_max - n), value=float("-inf"))
    for a in range(s):
        if outs[a] is None:
            outs[a] = q.new_zeros(B, H, n_max, D)
            lses[a] = torch.full((B, H, n_max), float("-inf"), dtype=lse_dtype, device=q.device)
    out = torch.stack(outs, dim=3).reshape(B, H, n_max * s, D)[:, :, :N]  # [B,H,n_max,s,D] -> tokens
    lse = torch.stack(lses, dim=3).reshape(B, H, n_max * s)[:, :, :N]
    return out, lse
