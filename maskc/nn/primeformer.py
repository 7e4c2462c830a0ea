"""PrimeFormer modules: PrimeHarmonyAttention, Riemann positional encoding,
the prime-composite regulariser and the entropy hinge."""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, attend, check_embed, check_input, check_key_padding, check_positive_int, dense_mask, merge_heads, resolve_backend,
    split_heads,
)
from maskc.patterns.core import Pattern, heads
from maskc.patterns.library import primeformer_heads
from maskc.patterns.sequences import primes
from maskc.patterns.zeta import zeta_zeros


class PrimeHarmonyAttention(nn.Module):
    """PrimeFormer's multi-head attention: one number-theoretic pattern per head.

    Head h uses pattern h of ``patterns`` (default: the nine PrimeFormer heads
    twin_primes, arithmetic_progression, goldbach, mersenne, sieve, riemann_zeros,
    prime_gaps, quadratic_residue, prime_powers, cycled when ``num_heads > 9``).
    Logits are q·k/sqrt(d_head) on allowed pairs. The seed's gate sigmoid(φ_h(q_i))
    depends only on the query, so inside a softmax it would cancel; it is applied to the
    head's *output*: ``o_h,i = sigmoid(φ_h(q_h,i)) · attn_h(i)``. Heads are scaled by
    ``ω = softmax(α)`` (learnable α, initialised to 0, so ω = 1/H), concatenated and
    projected by W_O. All nine patterns are causal, so the module is causal.

    Args:
        d_model, num_heads: width and heads (d_model divisible by num_heads).
        patterns: per-head patterns (cycled to num_heads); default the nine heads.
        backend, block: as in :class:`SparseSelfAttention`.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import PrimeHarmonyAttention
        >>> attn = PrimeHarmonyAttention(36, 9)
        >>> attn(torch.randn(1, 20, 36)).shape
        torch.Size([1, 20, 36])
    """

    def __init__(self, d_model: int, num_heads: int = 9, patterns: Sequence[Pattern] | None = None,
                 backend: str = "auto", block: int | tuple[int, int] = 128, bias: bool = True) -> None:
        super().__init__()
        self.head_dim = check_embed(d_model, num_heads, "d_model")
        self.d_model, self.num_heads, self.backend = d_model, num_heads, backend
        if patterns is None:
            self.pattern: Pattern = primeformer_heads(num_heads)
            self.head_patterns = [self.pattern.for_head(h) for h in range(num_heads)]
        else:
            self.head_patterns = self._cycle(list(patterns), num_heads)
            self.pattern = heads(self.head_patterns)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.phi = nn.Parameter(torch.zeros(num_heads, self.head_dim))  # φ_h(q) = q · w_h + c_h
        self.phi_bias = nn.Parameter(torch.zeros(num_heads))
        self.alpha = nn.Parameter(torch.zeros(num_heads))
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        nn.init.normal_(self.phi, std=self.head_dim ** -0.5)
        self._layouts = LayoutCache(self.pattern, block, num_heads)

    @staticmethod
    def _cycle(base: list, num_heads: int) -> list[Pattern]:
        if not base:
            raise ValueError("patterns must contain at least one pattern")
        for p in base:
            if not isinstance(p, Pattern):
                raise TypeError(f"patterns must be maskc Patterns, got {type(p).__name__}")
            if p.n_heads is not None:
                raise ValueError("each entry of patterns is one head's pattern; do not pass heads([...]) entries")
        return [base[h % len(base)] for h in range(num_heads)]

    def layout(self, seq_len: int) -> Layout:
        """The per-head layout at this length (cached)."""
        return self._layouts.get(seq_len)

    @property
    def omega(self) -> torch.Tensor:
        """Head weights ω = softmax(α): [num_heads]."""
        return torch.softmax(self.alpha, dim=0)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [batch, seq, d_model] -> [batch, seq, d_model].

        ``key_padding_mask``: optional bool ``[batch, seq]``, True = padding (as
        ``nn.MultiheadAttention``): padded keys are never attended.
        """
        B, T = check_input(x, self.d_model, type(self).__name__, param=self.qkv.weight)
        pad = check_key_padding(key_padding_mask, B, T, type(self).__name__)
        H = self.num_heads
        q, k, v = (split_heads(t, H) for t in self.qkv(x).chunk(3, dim=-1))
        lay = self.layout(T) if pad is None else self._layouts.get(T, T, pad)
        out = attend(q, k, v, lay, resolve_backend(self.backend, q))
        gate = torch.sigmoid(torch.einsum("bhtd,hd->bht", q, self.phi) + self.phi_bias[None, :, None])
        out = out * gate.unsqueeze(-1) * self.omega[None, :, None, None]
        return self.out_proj(merge_heads(out))


def _zeta_zeros(K: int) -> np.ndarray:
    return np.asarray(zeta_zeros(K), dtype=np.float64)[:K]


class RiemannPositionalEncoding(nn.Module):
    """Riemann oscillatory positional encoding with zeta-zero frequencies.

    With d_model = 2K, u = ln(pos + 1) and γ_k the k-th zeta-zero ordinate (k = 1..K):
    ``PE[2k-2] = cos(γ_k u + φ_k) / sqrt(K)``, ``PE[2k-1] = sin(γ_k u + φ_k) / sqrt(K)``
    (0-based dims), φ_k = arctan(2 γ_k) when ``phase=True`` else 0.

    Modes:
        * ``"additive"``: ``forward(x)`` returns ``x + PE[:seq]``.
        * ``"rotary"``: log-position RoPE: ``forward(x)`` rotates each pair
          (x[2k-2], x[2k-1]) by the angle γ_k ln(pos + 1); apply it to queries and keys
          (``[..., seq, d]``), so q_i·k_j depends on ln((i+1)/(j+1)). The phase cancels
          in q·k and is ignored here.

    Example:
        >>> import torch
        >>> from maskc.nn import RiemannPositionalEncoding
        >>> pe = RiemannPositionalEncoding(8)
        >>> pe(torch.zeros(1, 5, 8))[0, 0].tolist()[:2]   # pos 0: u = 0 -> cos 0 / sqrt(4)
        [0.5, 0.0]
    """

    def __init__(self, d_model: int, mode: Literal["additive", "rotary"] = "additive", phase: bool = False,
                 max_len: int = 8192) -> None:
        super().__init__()
        d_model = check_positive_int(d_model, "d_model")
        if d_model % 2:
            raise ValueError(f"d_model must be even (d_model = 2K), got {d_model}")
        if mode not in ("additive", "rotary"):
            raise ValueError(f"mode must be 'additive' or 'rotary', got {mode!r}")
        self.d_model, self.mode, self.phase = d_model, mode, bool(phase)
        self.max_len = check_positive_int(max_len, "max_len")
        K = d_model // 2
        gamma = torch.tensor(_zeta_zeros(K), dtype=torch.float64)
        self.register_buffer("gamma", gamma, persistent=False)
        self.register_buffer("phi", torch.atan(2 * gamma) if self.phase else torch.zeros_like(gamma),
                             persistent=False)

    def angles(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """γ_k ln(pos + 1) (+ φ_k in additive mode) as float64 [seq_len, K]."""
        if offset + seq_len > self.max_len:
            raise ValueError(f"positions up to {offset + seq_len} exceed max_len={self.max_len}")
        u = torch.log1p(torch.arange(offset, offset + seq_len, dtype=torch.float64, device=self.gamma.device))
        ang = u[:, None] * self.gamma[None, :]
        return ang + self.phi[None, :] if self.mode == "additive" else ang

    def encoding(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """The additive table PE: float64 [seq_len, d_model]."""
        ang = self.angles(seq_len, offset)
        K = self.d_model // 2
        pe = torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1).reshape(seq_len, self.d_model)
        return pe / math.sqrt(K)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x: [..., seq, d_model]; additive: x + PE, rotary: x rotated per position."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"RiemannPositionalEncoding expects [..., seq, d_model={self.d_model}], got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        T = x.shape[-2]
        if self.mode == "additive":
            return x + self.encoding(T, offset).to(x.dtype)
        ang = self.angles(T, offset)
        cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
        x2 = x.unflatten(-1, (self.d_model // 2, 2))
        a, b = x2[..., 0], x2[..., 1]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


# ---------------------------------------------------------------- losses
def von_mangoldt(n: int) -> np.ndarray:
    """Λ(d) for d in [0, n): ln p if d = p^k (k >= 1), else 0 (Λ(0) = Λ(1) = 0)."""
    lam = np.zeros(max(n, 2), dtype=np.float64)
    for p in primes(max(n - 1, 2)):
        pk = int(p)
        while pk < n:
            lam[pk] = math.log(p)
            pk *= int(p)
    return lam[:n]


def _allowed_tensor(allowed, shape, device) -> torch.Tensor:
    """bool [H or 1, N, M] allowed-keys mask."""
    N, M = shape[-2], shape[-1]
    if allowed is None:
        return torch.ones(N, M, dtype=torch.bool, device=device).tril()[None]
    if isinstance(allowed, Layout):
        m = torch.from_numpy(dense_mask(allowed)).to(device)
    elif isinstance(allowed, Pattern):
        m = torch.from_numpy(allowed.dense(N, M)).to(device)
    else:
        m = torch.as_tensor(allowed, device=device).bool()
        if m.dim() == 2:
            m = m[None]
    if m.shape[-2:] != (N, M):
        raise ValueError(f"allowed mask shape {tuple(m.shape)} does not match attention rows/keys {(N, M)}")
    return m


def _as_list(attn_probs) -> list[torch.Tensor]:
    items = list(attn_probs) if isinstance(attn_probs, (list, tuple)) else [attn_probs]
    if not items:
        raise ValueError("attn_probs is empty")
    for a in items:
        if not isinstance(a, torch.Tensor) or a.dim() < 2:
            raise ValueError("attn_probs must be a tensor [..., q_len, kv_len] or a list of them (one per layer)")
    return items


def prime_composite_regularizer(attn_probs, allowed=None, alpha: float = 1e-3, eps: float = 0.1) -> torch.Tensor:
    """α · mean over rows/heads/layers of KL(A_i || P_ε,i) (the prime-composite loss).

    Target: P_i(j) ∝ Λ(i - j) (von Mangoldt: ln p on prime powers) on the row's allowed
    keys with offset d = i - j >= 2; smoothed ``P_ε = (1 - ε) P + ε · Uniform(allowed keys
    of row i)`` so the KL is finite wherever A lives on allowed keys. Rows whose allowed
    keys contain no prime-power offset use the uniform target. Rows without any allowed
    key are skipped.

    Args:
        attn_probs: probabilities ``[..., N, M]`` (rows sum to 1), or a list of such
            tensors (one per layer); mean over everything but the key axis.
        allowed: the keys each row may attend: None (causal j <= i), a bool mask
            ``[N, M]`` / ``[H, N, M]``, a Layout or a Pattern.
        alpha: weight α (default 1e-3). eps: smoothing ε in (0, 1] (default 0.1).

    Example:
        >>> import torch
        >>> from maskc.nn import prime_composite_regularizer
        >>> A = torch.softmax(torch.randn(2, 16, 16).masked_fill(~torch.ones(16, 16).tril().bool(), -1e9), -1)
        >>> float(prime_composite_regularizer(A)) > 0
        True
    """
    if not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    losses = []
    for A in _as_list(attn_probs):
        N, M = A.shape[-2:]
        allow = _allowed_tensor(allowed, A.shape, A.device)
        i = torch.arange(N, device=A.device)[:, None]
        j = torch.arange(M, device=A.device)[None, :]
        d = i - j
        lam = torch.as_tensor(von_mangoldt(max(N, M) + 1), dtype=A.dtype, device=A.device)
        w = torch.where(d >= 2, lam[d.clamp(0, max(N, M))], torch.zeros((), dtype=A.dtype, device=A.device))
        w = w[None] * allow  # [H?, N, M]
        n_allowed = allow.sum(-1, keepdim=True).to(A.dtype)
        uni = allow.to(A.dtype) / n_allowed.clamp_min(1)
        wsum = w.sum(-1, keepdim=True)
        P = torch.where(wsum > 0, w / wsum.clamp_min(1e-300), uni)
        P_eps = (1 - eps) * P + eps * uni
        logratio = torch.log(A.clamp_min(1e-30)) - torch.log(P_eps.clamp_min(1e-30))
        kl = torch.where(A > 0, A * logratio, torch.zeros((), dtype=A.dtype, device=A.device)).sum(-1)
        row_ok = (n_allowed.squeeze(-1) > 0).expand_as(kl)
        losses.append(kl[row_ok].mean())
    return alpha * torch.stack(losses).mean()


def entropy_hinge(attn_probs, n: int | None = None) -> torch.Tensor:
    """Mean hinge penalty on row entropy outside [log 2, log(ln N / ln ln N)].

    ``relu(log 2 - H_i) + relu(H_i - log(ln N / ln ln N))`` averaged over rows, heads and
    layers; H_i = -Σ_j A_ij ln A_ij in nats, N = ``n`` or the key length. Requires N >= 3
    (the interval is empty or undefined below). Note the upper end is small: at N = 4096
    it is 1.37 nats, the entropy of about 4 equally weighted keys.

    Example:
        >>> import torch
        >>> from maskc.nn import entropy_hinge
        >>> float(entropy_hinge(torch.full((1, 4, 64), 1 / 64)))   # log 64 is above the band
        3.08...
    """
    items = _as_list(attn_probs)
    out = []
    for A in items:
        N = int(n if n is not None else A.shape[-1])
        if N < 3:
            raise ValueError(f"entropy_hinge needs N >= 3 (ln ln N > 0), got N={N}")
        lo, hi = math.log(2.0), math.log(math.log(N) / math.log(math.log(N)))
        H = -torch.where(A > 0, A * torch.log(A.clamp_min(1e-30)), torch.zeros((), dtype=A.dtype, device=A.device)).sum(-1)
        out.append((torch.relu(lo - H) + torch.relu(H - hi)).mean())
    return torch.stack(out).mean()
