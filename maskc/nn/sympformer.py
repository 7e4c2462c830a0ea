"""SympFormer blocks (SPEC D): damped Hamiltonian momentum attention and the Nesterov block.

FLOPs (per block, sequence N, width d, heads H, nnz allowed pairs per head):

* a classic attention block: projections 8·N·d² + scores/values 4·nnz·d (forward).
* :class:`MomentumAttentionBlock`: projections 4·N·d² (W_q, W_k, c_B) + one attention
  evaluation for z (2·nnz·d for the scores; the value product with v = k adds 2·nnz·d
  and is discarded) + the force G = -∂H/∂LN(X): one backward through the scores
  (≈ 4·nnz·d + 4·N·d²). So the forward costs about 2× a classic block's attention part;
  in training the backward goes through that backward (create_graph), ≈ 2× again.
  "Same number of oracle calls" (one attention evaluation) is true; equal FLOPs is not.
* :class:`NesterovAttentionBlock`: exactly a classic block's attention (one evaluation at
  the look-ahead point x + μv) plus O(N·d) vector updates.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, PatternLike, attend, check_dtype, check_embed, check_input, check_pattern, describe, layout_is_causal,
    resolve_backend, split_heads,
)
from maskc.patterns.core import Pattern

Scheme = Literal["conformal_symplectic", "exponential_euler", "damped_euler", "momentum"]
_SCHEMES = ("conformal_symplectic", "exponential_euler", "damped_euler", "momentum")


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _default_pattern(pattern: PatternLike | None) -> PatternLike:
    import maskc as mc

    return mc.causal() if pattern is None else pattern


class MomentumAttentionBlock(nn.Module):
    """SympFormer's accelerated attention block: a damped Hamiltonian step on positions X
    and velocities Y (SPEC D; Stein, Li, Steidl, arXiv 2603.16535).

    With x̂ = LN(X), q = W_q x̂, k = W_k x̂ (per head), the kernel M_ij = exp(q_i·k_j/√d)
    on the pattern's allowed pairs and its *row mean* z_i = (1/n_i) Σ_j M_ij (n_i = allowed
    keys of row i; from the attention's log-sum-exp, one attention evaluation):

    * H(X, Y) = ½ Σ_{h,i} Y_h,iᵀ (B Y)_h,i / z_h,i − ½ Σ_{h,i} z_h,i,
    * force on X: F = c_B(Y) / z (per head chunk; c_B linear, initialised to identity),
    * force on Y: G = −∂H/∂x̂ by autograd (``create_graph`` whenever autograd records,
      so the block's own gradients are exact in train and eval mode),
    * damping α(t) = c_log / t + c_lin (learnable, positive, c_log = 3, c_lin = 1e-4),
      Δη = ∫_t^{t+h_X} α = c_log ln(1 + h_X/t) + c_lin h_X, σ = exp(−Δη),
    * step sizes h_X = softplus(ρ_X), h_Y = softplus(ρ_Y) (learned), Y starts at zero.

    The row mean (instead of the sum, and without SPEC's N/2 prefactor) is the mean-field
    normalisation: it keeps F and G O(1) in N and in the number of allowed keys, which the
    raw sum does not (training diverges). With B symmetric, F = ∂H/∂Y as in the paper.

    Schemes (``scheme``):
        * ``"conformal_symplectic"`` (default): Y+ = σ (Y + h_Y G(X, Y)), X+ = X + h_X F(X, Y+).
        * ``"exponential_euler"``: Y+ = σ Y + h_Y φ G with φ = (1 − σ)/Δη (exact for frozen G).
        * ``"damped_euler"`` (explicit): Y+ = (1 − Δη) Y + h_Y G, X+ = X + h_X F(X, Y).
        * ``"momentum"``: Y+ = a Y + h_Y G, a = sigmoid(·) learned from 0.9.

    Causality: the key-side part of ∂H/∂x̂_j collects kernel terms of the queries that
    attend j; with a causal pattern those are *later* tokens. ``force="auto"`` (default)
    therefore differentiates only through the queries when the compiled layout is causal
    (G_i = −∂H/∂x̂_i with keys held fixed: exactly causal) and through both sides
    otherwise; ``"query"`` / ``"full"`` force either.

    ``forward(x, y=None, t=None)`` returns ``(x_next, y_next, t_next)``; t is the block's
    time (default 1.0; block k sits at t_k = 1 + Σ_{l<k} h_X, pass the returned t on).

    Args:
        d_model, num_heads: width and heads. pattern: any maskc Pattern, Layout or Plan
            (default ``mc.causal()``; a Layout or Plan fixes the sequence length). scheme: see above. force: "auto", "query" or "full".
        backend, block: as in :class:`SparseSelfAttention` (the reference backend is used
            on CPU while recording gradients; the force always needs a differentiable one).
        h_x, h_y: initial step sizes. c_log, c_lin: initial damping.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import MomentumAttentionBlock
        >>> blk = MomentumAttentionBlock(32, 4, mc.causal() & mc.window(8), backend="reference")
        >>> x, y, t = blk(torch.randn(2, 20, 32))
        >>> x.shape, y.shape, float(t) > 1
        (torch.Size([2, 20, 32]), torch.Size([2, 20, 32]), True)
    """

    def __init__(self, d_model: int, num_heads: int, pattern: PatternLike | None = None,
                 scheme: Scheme = "conformal_symplectic", force: Literal["auto", "query", "full"] = "auto",
                 backend: str = "auto", block: int | tuple[int, int] = 128, h_x: float = 1.0, h_y: float = 1.0,
                 c_log: float = 3.0, c_lin: float = 1e-4, bias: bool = True) -> None:
        super().__init__()
        self.head_dim = check_embed(d_model, num_heads, "d_model")
        if scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
        if force not in ("auto", "query", "full"):
            raise ValueError(f"force must be 'auto', 'query' or 'full', got {force!r}")
        for name, val in (("h_x", h_x), ("h_y", h_y), ("c_log", c_log), ("c_lin", c_lin)):
            if not val > 0:
                raise ValueError(f"{name} must be > 0, got {val}")
        self.d_model, self.num_heads, self.scheme, self.force, self.backend = d_model, num_heads, scheme, force, backend
        self.pattern = check_pattern(_default_pattern(pattern), num_heads, type(self).__name__)
        self.norm = nn.LayerNorm(d_model)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.c_B = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.c_B.weight.copy_(torch.eye(d_model))
        self.rho_x = nn.Parameter(torch.tensor(_inv_softplus(h_x)))
        self.rho_y = nn.Parameter(torch.tensor(_inv_softplus(h_y)))
        self.rho_clog = nn.Parameter(torch.tensor(_inv_softplus(c_log)))
        self.rho_clin = nn.Parameter(torch.tensor(_inv_softplus(c_lin)))
        self.a_logit = nn.Parameter(torch.tensor(math.log(0.9 / 0.1)))
        self._layouts = LayoutCache(self.pattern, block, num_heads)
        self._causal: dict[int, tuple[Layout, bool]] = {}

    # ---- learned scalars
    @property
    def h_x(self) -> torch.Tensor:
        return F.softplus(self.rho_x)

    @property
    def h_y(self) -> torch.Tensor:
        return F.softplus(self.rho_y)

    def damping(self, t) -> torch.Tensor:
        """α(t) = c_log / t + c_lin."""
        return F.softplus(self.rho_clog) / t + F.softplus(self.rho_clin)

    def layout(self, seq_len: int) -> Layout:
        """The compiled layout at this length (for a Plan: its pattern compiled, for row counts)."""
        return self._layouts.layout_of(seq_len)

    def _query_only(self, lay: Layout) -> bool:
        if self.force != "auto":
            return self.force == "query"
        # keep the layout next to its flag: an id alone may be reused by a later layout
        hit = self._causal.get(id(lay))
        if hit is None or hit[0] is not lay:
            if len(self._causal) > 32:
                self._causal.clear()
            hit = self._causal[id(lay)] = (lay, layout_is_causal(lay))
        return hit[1]

    def energy(self, xq: torch.Tensor, xk: torch.Tensor, y: torch.Tensor):
        """(H summed over the batch, z̄ [B, H, T]); queries from xq, keys from xk (both x̂)."""
        B, T, _ = xq.shape
        nh = self.num_heads
        lay = self.layout(T)
        q = split_heads(self.q_proj(xq), nh)
        k = split_heads(self.k_proj(xk), nh)
        _, lse = attend(q, k, k, self._layouts.get(T), resolve_backend(self.backend, q), return_lse=True)
        counts = torch.as_tensor(lay.row_counts(), device=xq.device)  # [Hl, T]
        log_n = torch.log(counts.clamp_min(1).to(lse.dtype))[None]
        zbar = torch.exp(lse - log_n)  # [B, H, T] row mean of the kernel
        zbar = torch.where(counts[None] > 0, zbar, torch.ones_like(zbar))
        By = split_heads(self.c_B(y), nh)
        yh = split_heads(y, nh)
        kinetic = ((yh * By).sum(-1).to(zbar.dtype) / zbar).sum()
        Hval = 0.5 * kinetic - 0.5 * zbar.sum()
        return Hval, zbar

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, t: float | torch.Tensor | None = None):
        """x, y: [batch, seq, d_model] (y defaults to zeros) -> (x_next, y_next, t_next)."""
        B, T = check_input(x, self.d_model, type(self).__name__, param=self.q_proj.weight)
        if y is None:
            y = torch.zeros_like(x)
        elif not isinstance(y, torch.Tensor) or y.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: velocity y must have x's shape {tuple(x.shape)}, got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        else:
            check_dtype(y, self.q_proj.weight, type(self).__name__, "velocity y")
        t = torch.as_tensor(1.0 if t is None else t, dtype=x.dtype, device=x.device)
        if not bool(torch.all(t > 0)):
            raise ValueError(f"time t must be > 0, got {t}")
        lay = self.layout(T)
        query_only = self._query_only(lay)
        # the force must stay differentiable whenever autograd records (training *and* eval:
        # otherwise gradients of an eval-mode forward would silently miss the force terms)
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            xn = self.norm(x if create else x.detach())
            if not xn.requires_grad:
                xn = xn.detach().requires_grad_(True)
            # query_only: differentiate H through the queries only (a separate graph node for
            # the query side); the keys stay in the graph so training gradients reach them
            xq = xn.view_as(xn) if query_only else xn
            Hval, zbar = self.energy(xq, xn, y if create else y.detach())
            (dH,) = torch.autograd.grad(Hval, xq, create_graph=create)
        G = -dH.to(x.dtype)
        if not create:
            zbar = zbar.detach()
        hx, hy = self.h_x, self.h_y
        deta = F.softplus(self.rho_clog) * torch.log1p(hx / t) + F.softplus(self.rho_clin) * hx
        sigma = torch.exp(-deta)
        if self.scheme == "conformal_symplectic":
            y_new = sigma * (y + hy * G)
        elif self.scheme == "exponential_euler":
            y_new = sigma * y + hy * ((1 - sigma) / deta) * G
        elif self.scheme == "damped_euler":
            y_new = (1 - deta) * y + hy * G
        else:
            y_new = torch.sigmoid(self.a_logit) * y + hy * G
        y_force = y if self.scheme == "damped_euler" else y_new
        nh = self.num_heads
        Fh = split_heads(self.c_B(y_force), nh) / zbar.to(x.dtype).unsqueeze(-1)
        x_new = x + hx * Fh.transpose(1, 2).reshape(B, T, self.d_model)
        return x_new, y_new, t + hx

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, num_heads={self.num_heads}, scheme={self.scheme!r}, "
                f"pattern={describe(self.pattern)!r}")


class NesterovAttentionBlock(nn.Module):
    """Nesterov attention block (SPEC D, the simple form):
    ``v+ = β v + h · Attn(LN(x + μ v))``, ``x+ = x + v+``.

    β = sigmoid(·) learned from ``beta`` (0.9), μ learned from ``mu`` (default β's initial
    value: the Nesterov look-ahead), h learned through softplus from ``h`` (1.0). Attn is a
    :class:`SparseSelfAttention` over any maskc pattern, layout or plan (default ``mc.causal()``),
    so the block is causal whenever the pattern is. One attention evaluation per block.

    ``forward(x, v=None)`` returns ``(x_next, v_next)``; v starts at zero.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import NesterovAttentionBlock
        >>> blk = NesterovAttentionBlock(32, 4, mc.causal() & mc.window(8), backend="reference")
        >>> x, v = blk(torch.randn(2, 20, 32))
        >>> x.shape == v.shape == (2, 20, 32)
        True
    """

    def __init__(self, d_model: int, num_heads: int, pattern: PatternLike | None = None, beta: float = 0.9,
                 mu: float | None = None, h: float = 1.0, backend: str = "auto",
                 block: int | tuple[int, int] = 128, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        from maskc.nn.attention import SparseSelfAttention

        check_embed(d_model, num_heads, "d_model")
        if not 0.0 < beta < 1.0:
            raise ValueError(f"beta must be in (0, 1), got {beta}")
        if not h > 0:
            raise ValueError(f"h must be > 0, got {h}")
        self.d_model = d_model
        self.norm = nn.LayerNorm(d_model)
        self.attn = SparseSelfAttention(d_model, num_heads, _default_pattern(pattern), backend=backend, block=block,
                                        dropout=dropout, bias=bias)
        self.beta_logit = nn.Parameter(torch.tensor(math.log(beta / (1 - beta))))
        self.mu = nn.Parameter(torch.tensor(float(beta if mu is None else mu)))
        self.rho_h = nn.Parameter(torch.tensor(_inv_softplus(h)))

    def forward(self, x: torch.Tensor, v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x, v: [batch, seq, d_model] -> (x_next, v_next)."""
        check_input(x, self.d_model, type(self).__name__, param=self.attn.q_proj.weight)
        if v is None:
            v = torch.zeros_like(x)
        elif not isinstance(v, torch.Tensor) or v.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: velocity v must have x's shape {tuple(x.shape)}")
        else:
            check_dtype(v, self.attn.q_proj.weight, type(self).__name__, "velocity v")
        a, _ = self.attn(self.norm(x + self.mu * v))
        v_new = torch.sigmoid(self.beta_logit) * v + F.softplus(self.rho_h) * a
        return x + v_new, v_new
