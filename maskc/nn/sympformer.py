"""SympFormer blocks: momentum (accelerated, damped Hamiltonian) attention and the Nesterov block.

Provenance. SympFormer (Stein, Li, Steidl, arXiv 2603.16535, "accelerated attention blocks
via inertial dynamics on density manifolds") lets tokens carry positions X and momenta P and
integrates a damped Hamiltonian system, one softmax evaluation (the "oracle") per block. The
authors' Algorithm 2, as their public code states it, uses the kernel E_ij = exp(q_i·k_j/√d)
on the allowed pairs, z_i = (1/T) Σ_j E_ij, s_i = |P_i|² / z_i², the velocity F_i = B P_i / z_i
and the force G_i = W_O[(1/2T) Σ_j E_ij (s_i + s_j − 2) W_V x̂_j] (x̂ = LN(X)).

The velocity form (maskc's default) writes the state as the velocity U = B P / z (B folded
into W_O) and treats z as frozen over one step (the −P ż / z² term of d(P/z)/dt is dropped).
Dividing G_i by z_i turns E_ij / (T z_i) into the softmax p_ij, so z cancels:

    G̃_i = G_i / z_i = ½ W_O concat_h[(s_h,i − 2)(p_h v_h)_i + (p_h (s_h ⊙ v_h))_i],  s_h,i = |U_h,i|²,

both aggregations being one attention call with values [v, s ⊙ v] (queries and keys padded
with zeros to the doubled head dim, scale 1/√d kept): no autograd through the scores, any
maskc pattern, layout, plan and backend, and causal by construction (s_j depends on U_j,
which a causal stack only fills from positions <= j).

FLOPs per block (sequence N, width d, nnz allowed pairs per head), forward:

* classic attention: projections 8·N·d² + scores and values 4·nnz·d;
* :class:`MomentumAttentionBlock`, velocity form: the same projections + 4·nnz·d (scores at
  the head dim doubled with zeros) + 4·nnz·d (values [v, s ⊙ v]) + O(N·d) updates: twice the
  nnz part, the same parameters plus one LayerNorm;
* the Hamiltonian reference form: dense scores (O(N²·d)) and a backward through them for
  G = −∂H/∂x̂ (``create_graph`` in training), about 2× a classic block's attention;
* :class:`NesterovAttentionBlock`: exactly a classic block plus O(N·d) updates.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from maskc.ir.layout import Layout
from maskc.nn._functional import (
    LayoutCache, PatternLike, attend, check_dtype, check_embed, check_input, check_pattern, dense_mask, describe,
    layout_is_causal, merge_heads, resolve_backend, split_heads,
)
from maskc.nn.attention import SparseSelfAttention
from maskc.patterns.core import causal

Scheme = Literal["damp_kick", "kick_damp", "exponential_euler", "momentum"]
Form = Literal["velocity", "hamiltonian"]
_SCHEMES = ("damp_kick", "kick_damp", "exponential_euler", "momentum")
_REMOVED = {
    "conformal_symplectic": "it is 'kick_damp' (U+ = σ·LN_u(U + h_Y G̃)) or 'damp_kick' (the default)",
    "damped_euler": "its explicit damping factor 1 − Δη is negative at the default step (Δη = 3 ln 1.5 = 1.22); "
                    "use 'exponential_euler'",
}
#: the literal form's score clamp (the authors' ±60) and the largest T it materialises densely
SCORE_CLAMP = 60.0
MAX_DENSE_LEN = 4096


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _default_pattern(pattern: PatternLike | None) -> PatternLike:
    return causal() if pattern is None else pattern


class MomentumAttentionBlock(nn.Module):
    """SympFormer's momentum attention block: tokens carry positions X and velocities U.

    Velocity form (``form="velocity"``, default; see the module docstring for its derivation
    from the authors' Algorithm 2). With x̂ = LN(X), per head q, k, v = W_q x̂, W_k x̂, W_V x̂,
    p_h = softmax(q_h k_hᵀ / √d) (d the head dim) over the pattern's allowed pairs, s_h,i = |U_h,i|²:

    * force  G̃_i = ½ W_O concat_h[(s_h,i − 2)(p_h v_h)_i + (p_h (s_h ⊙ v_h))_i] — one maskc
      attention call with values [v, s ⊙ v];
    * damping α(t) = c_log/t + c_lin integrated over the step: Δη = c_log ln(1 + h_X/t) + c_lin h_X,
      σ = e^{−Δη} (c_log = 3, c_lin = 1e-4, step sizes h_X = h_Y = 0.5, all softplus-learned);
    * X+ = X + h_X U+, t+ = t + h_X; U₀ = 0, t₀ = 1; LN_u is a LayerNorm on the carried velocity.

    Schemes (``scheme``), U+ from the state (X, U) at time t:

    * ``"damp_kick"`` (default, conformal-symplectic Euler, exact damping then the kick):
      U+ = LN_u(σU + h_Y G̃);
    * ``"kick_damp"`` (conformal-symplectic, kick then exact damping): U+ = σ·LN_u(U + h_Y G̃)
      (the damping acts after LN_u, which would otherwise cancel it);
    * ``"exponential_euler"`` (integrating factor, exact for a frozen force):
      U+ = LN_u(σU + h_Y φ G̃), φ = (1 − σ)/Δη;
    * ``"momentum"`` (plain heavy-ball): U+ = LN_u(aU + h_Y G̃), a = sigmoid(·) learned from ``a``.

    Hamiltonian reference form (``form="hamiltonian"``, the literal autograd version, dense
    O(N²), T <= 4096): the state is the momentum P; per head E_ij = exp(clamp(q_i·k_j/√d, ±60))
    on the allowed pairs, z_i = (1/T) Σ_j E_ij (1 for a row without keys),
    H = ½ Σ P_iᵀ B P_i / z_i − ½ Σ z_i, F = B P / z (B = c_B, identity at init),
    G = −∂H/∂x̂ by autograd (``create_graph`` while autograd records), the same schemes with
    LN_u on P, then X+ = X + h_X F(X, P+). There is no W_V / W_O: the force moves W_qᵀk_j,
    the directions that set the logits. The key side of ∂H/∂x̂_j collects terms of the
    queries that attend j, later tokens under a causal mask; ``force="auto"`` differentiates
    through the queries only when the layout is causal (exactly causal), ``"query"`` /
    ``"full"`` force either. A reference for the authors' equations, not for training: it does
    not learn the copy task, and its 1/z can overflow once a row's clamped scores are all
    far below zero (z >= e^{-60}/T is the only bound).

    ``forward(x, u=None, t=None)`` returns ``(x_next, u_next, t_next)``; pass u and t on.

    Args:
        d_model, num_heads: width and heads. pattern: any maskc Pattern, Layout or Plan
            (default ``mc.causal()``; a Layout or Plan fixes the sequence length).
        scheme, form, force: see above (``force`` only with ``form="hamiltonian"``).
        backend, block: as in :class:`SparseSelfAttention`. h_x, h_y, c_log, c_lin, a: initial values.

    Example:
        >>> import torch, maskc as mc
        >>> from maskc.nn import MomentumAttentionBlock
        >>> blk = MomentumAttentionBlock(32, 4, mc.causal() & mc.window(8), backend="reference")
        >>> x, u, t = blk(torch.randn(2, 20, 32))
        >>> x.shape, u.shape, round(t.item(), 3)
        (torch.Size([2, 20, 32]), torch.Size([2, 20, 32]), 1.5)
    """

    def __init__(self, d_model: int, num_heads: int, pattern: PatternLike | None = None,
                 scheme: Scheme = "damp_kick", form: Form = "velocity",
                 force: Literal["auto", "query", "full"] = "auto", backend: str = "auto",
                 block: int | tuple[int, int] = 128, h_x: float = 0.5, h_y: float = 0.5, c_log: float = 3.0,
                 c_lin: float = 1e-4, a: float = 0.9, bias: bool = True) -> None:
        super().__init__()
        self.head_dim = check_embed(d_model, num_heads, "d_model")
        if scheme in _REMOVED:
            raise ValueError(f"scheme {scheme!r} is not offered: {_REMOVED[scheme]}")
        if scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
        if form not in ("velocity", "hamiltonian"):
            raise ValueError(f"form must be 'velocity' or 'hamiltonian', got {form!r}")
        if force not in ("auto", "query", "full"):
            raise ValueError(f"force must be 'auto', 'query' or 'full', got {force!r}")
        if force != "auto" and form != "hamiltonian":
            raise ValueError("force= chooses the autograd side of form='hamiltonian'; the velocity form has no "
                             "autograd force (it is causal by construction): drop force= or pass form='hamiltonian'")
        for name, val in (("h_x", h_x), ("h_y", h_y), ("c_log", c_log), ("c_lin", c_lin)):
            if not val > 0:
                raise ValueError(f"{name} must be > 0, got {val}")
        if not 0.0 < a < 1.0:
            raise ValueError(f"a must be in (0, 1), got {a}")
        self.d_model, self.num_heads, self.scheme, self.form, self.force = d_model, num_heads, scheme, form, force
        self.backend = backend
        self.pattern = check_pattern(_default_pattern(pattern), num_heads, type(self).__name__)
        self.norm = nn.LayerNorm(d_model)
        self.norm_u = nn.LayerNorm(d_model)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        if form == "velocity":
            self.v_proj = nn.Linear(d_model, d_model, bias=bias)
            self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        else:
            self.c_B = nn.Linear(d_model, d_model, bias=False)
            with torch.no_grad():
                self.c_B.weight.copy_(torch.eye(d_model))
        self.rho_x = nn.Parameter(torch.tensor(_inv_softplus(h_x)))
        self.rho_y = nn.Parameter(torch.tensor(_inv_softplus(h_y)))
        self.rho_clog = nn.Parameter(torch.tensor(_inv_softplus(c_log)))
        self.rho_clin = nn.Parameter(torch.tensor(_inv_softplus(c_lin)))
        if scheme == "momentum":
            self.a_logit = nn.Parameter(torch.tensor(math.log(a / (1 - a))))
        self._layouts = LayoutCache(self.pattern, block, num_heads)
        self._causal: dict[int, tuple[Layout, bool]] = {}

    # ---- learned scalars
    @property
    def h_x(self) -> torch.Tensor:
        return F.softplus(self.rho_x)

    @property
    def h_y(self) -> torch.Tensor:
        return F.softplus(self.rho_y)

    def damping(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Δη, σ) over the step from t: Δη = c_log ln(1 + h_X/t) + c_lin h_X, σ = exp(−Δη)."""
        hx = self.h_x
        deta = F.softplus(self.rho_clog) * torch.log1p(hx / t) + F.softplus(self.rho_clin) * hx
        return deta, torch.exp(-deta)

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

    # ---- forces
    def velocity_force(self, xn: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """G̃ [B, T, d] at x̂ = LN(X) = ``xn`` and velocity ``u``: one maskc attention call."""
        nh, dh = self.num_heads, self.head_dim
        q = split_heads(self.q_proj(xn), nh)
        k = split_heads(self.k_proj(xn), nh)
        v = split_heads(self.v_proj(xn), nh)
        uh = split_heads(u, nh)
        s = (uh * uh).sum(-1, keepdim=True)  # [B, H, T, 1]
        zeros = torch.zeros_like(q)
        out = attend(torch.cat([q, zeros], -1), torch.cat([k, zeros], -1), torch.cat([v, s * v], -1),
                     self._layouts.get(xn.shape[1]), resolve_backend(self.backend, q), scale=1.0 / math.sqrt(dh))
        pv, psv = out.split(dh, dim=-1)
        return self.out_proj(merge_heads(0.5 * ((s - 2.0) * pv + psv)))

    def hamiltonian_terms(self, xq: torch.Tensor, xk: torch.Tensor, p: torch.Tensor):
        """(H summed over the batch, z [B, H, T]) of the literal form; queries from xq, keys from xk."""
        B, T, _ = xq.shape
        nh = self.num_heads
        if T > MAX_DENSE_LEN:
            raise ValueError(f"form='hamiltonian' is a dense O(T²) reference and T={T} > {MAX_DENSE_LEN}; "
                             "use form='velocity' (any length, any backend)")
        mask = torch.from_numpy(dense_mask(self.layout(T))).to(xq.device)  # [H or 1, T, T]
        q = split_heads(self.q_proj(xq), nh)
        k = split_heads(self.k_proj(xk), nh)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        E = torch.where(mask, torch.exp(scores.clamp(-SCORE_CLAMP, SCORE_CLAMP)), torch.zeros_like(scores))
        z = E.sum(-1) / T
        z = torch.where(mask.any(-1), z, torch.ones_like(z))
        ph = split_heads(p, nh)
        kinetic = ((ph * split_heads(self.c_B(p), nh)).sum(-1) / z).sum()
        return 0.5 * kinetic - 0.5 * z.sum(), z

    def _hamiltonian_force(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        query_only = self._query_only(self.layout(x.shape[1]))
        # the force must stay differentiable whenever autograd records (train *and* eval mode)
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            xn = self.norm(x if create else x.detach())
            if not xn.requires_grad:
                xn = xn.detach().requires_grad_(True)
            # query_only: a separate graph node for the query side; keys stay in the training graph
            xq = xn.view_as(xn) if query_only else xn
            H, z = self.hamiltonian_terms(xq, xn, p if create else p.detach())
            (dH,) = torch.autograd.grad(H, xq, create_graph=create)
        return -dH, (z if create else z.detach())

    # ---- one step
    def forward(self, x: torch.Tensor, u: torch.Tensor | None = None, t: float | torch.Tensor | None = None):
        """x, u: [batch, seq, d_model] (u defaults to zeros), t > 0 (default 1) -> (x_next, u_next, t_next)."""
        B, T = check_input(x, self.d_model, type(self).__name__, param=self.q_proj.weight)
        if u is None:
            u = torch.zeros_like(x)
        elif not isinstance(u, torch.Tensor) or u.shape != x.shape:
            raise ValueError(f"{type(self).__name__}: velocity u must have x's shape {tuple(x.shape)}, got "
                             f"{tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__}")
        else:
            check_dtype(u, self.q_proj.weight, type(self).__name__, "velocity u")
        t = torch.as_tensor(1.0 if t is None else t, dtype=x.dtype, device=x.device)
        if not bool(torch.all(t > 0)):
            raise ValueError(f"time t must be > 0, got {t}")
        if self.form == "velocity":
            G, z = self.velocity_force(self.norm(x), u), None
        else:
            G, z = self._hamiltonian_force(x, u)
        deta, sigma = self.damping(t)
        hx, hy = self.h_x, self.h_y
        if self.scheme == "damp_kick":
            u_new = self.norm_u(sigma * u + hy * G)
        elif self.scheme == "kick_damp":
            u_new = sigma * self.norm_u(u + hy * G)
        elif self.scheme == "exponential_euler":
            u_new = self.norm_u(sigma * u + hy * (-torch.expm1(-deta) / deta) * G)
        else:
            u_new = self.norm_u(torch.sigmoid(self.a_logit) * u + hy * G)
        if z is None:
            step = u_new
        else:
            step = merge_heads(split_heads(self.c_B(u_new), self.num_heads) / z.to(x.dtype).unsqueeze(-1))
        return x + hx * step, u_new, t + hx

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, num_heads={self.num_heads}, form={self.form!r}, scheme={self.scheme!r}, "
                f"pattern={describe(self.pattern)!r}")


class NesterovAttentionBlock(nn.Module):
    """Nesterov attention block: ``v+ = β v + h · Attn(LN(x + μ v))``, ``x+ = x + v+``.

    The simple Nesterov (look-ahead momentum) scaffold around a classic attention; the
    SympFormer authors' later experiments use this scaffold. β = sigmoid(·) learned from
    ``beta`` (0.9), μ learned from ``mu`` (default β's initial value: the Nesterov
    look-ahead), h learned through softplus from ``h`` (1.0). Attn is a
    :class:`SparseSelfAttention` over any maskc pattern, layout or plan (default
    ``mc.causal()``), so the block is causal whenever the pattern is. One attention
    evaluation per block.

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
