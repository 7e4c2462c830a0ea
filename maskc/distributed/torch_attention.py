"""Distributed block-sparse attention on ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Each rank holds its tokens of q, k, v (``dp.shard(x, rank)``). One call:

1. posts the key/value blocks other ranks need from it, and the receives it expects
   (point-to-point, one message per peer that has something to exchange);
2. computes its local part (its queries against its own keys) while they travel;
3. waits, computes the remote part (its queries against the received blocks);
4. merges the two by log-sum-exp.

The backward pass sends the gradients of the received blocks back to their owners, who
add them into dK / dV (the transposed exchange), overlapped with the local part's
backward. Rows with no allowed key give zeros and lse = -inf, as everywhere in maskc.

Example (in a process group; every rank runs the same code)::

    dp = maskc.distributed.plan(layout, dist.get_world_size())
    r = dist.get_rank()
    out_local = maskc.distributed.attention(dp.shard(q, r), dp.shard(k, r), dp.shard(v, r), dp)
    out = dp.unshard(all_gathered_parts)      # if the full sequence is wanted
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.distributed as dist

from maskc.distributed.exchange import Exchange, verify_plan
from maskc.distributed.local import local_attention
from maskc.distributed.plan import DispatchPlan
from maskc.distributed.views import RankView, rank_view
from maskc.planner.merge import merge_lse

Tensor = torch.Tensor


def _check(q: Tensor, k: Tensor, v: Tensor, dp: DispatchPlan, view: RankView) -> None:
    for name, x in (("q_local", q), ("k_local", k), ("v_local", v)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise TypeError(f"{name} must be a 4-D torch tensor [batch, heads, tokens, head_dim], got "
                            f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if k.shape != v.shape[:3] + (k.shape[3],) or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k_local {tuple(k.shape)} and v_local {tuple(v.shape)} must agree on batch, heads and tokens")
    if q.dtype != k.dtype or q.dtype != v.dtype or q.device != k.device or q.device != v.device:
        raise ValueError(f"q, k, v must share dtype and device, got {q.dtype}/{k.dtype}/{v.dtype} on "
                         f"{q.device}/{k.device}/{v.device}")
    B, Hq, n, _ = q.shape
    Hkv = k.shape[1]
    if n != view.n_tokens or k.shape[2] != view.n_tokens or k.shape[0] != B:
        raise ValueError(f"rank {view.rank} holds {view.n_tokens} tokens under this plan, got q_local {tuple(q.shape)} "
                         f"and k_local {tuple(k.shape)}; shard the inputs with dp.shard(x, rank)")
    if Hq % Hkv:
        raise ValueError(f"q has {Hq} heads, k / v {Hkv}: q heads must be a multiple of kv heads")
    lay = dp.layout
    if lay.heads not in (1, Hq):
        raise ValueError(f"the plan's layout has {lay.heads} heads but q has {Hq}; compile it with 1 or {Hq} heads")
    if lay.heads > 1 and Hkv != dp.kv_heads:
        raise ValueError(f"k / v have {Hkv} heads but the plan was made for kv_heads={dp.kv_heads}; "
                         f"build it with plan(layout, world_size, kv_heads={Hkv})")
    if lay.batch not in (1, B):
        raise ValueError(f"the plan's layout stores {lay.batch} batch elements but q has {B}; they must agree")


def _warn_figures(dp: DispatchPlan, k: Tensor) -> None:
    """Warn once per plan when its byte figures were made for other tensor sizes (they stay figures only)."""
    B, Hkv, _, D = k.shape
    have = (dp.batch, dp.kv_heads, dp.head_dim, dp.itemsize)
    real = (B, Hkv, D, k.element_size())
    if have != real and not dp._derived.get("warned_figures"):
        dp._derived["warned_figures"] = True
        warnings.warn(f"the plan's byte figures (report()) assume batch, kv_heads, head_dim, itemsize = {have}, "
                      f"these tensors have {real}; build it with plan(layout, world_size, batch={real[0]}, "
                      f"kv_heads={real[1]}, head_dim={real[2]}, dtype=k.dtype) for exact figures", stacklevel=3)


def attention(q_local: Tensor, k_local: Tensor, v_local: Tensor, dp: DispatchPlan, group=None, *,
              scale: float | None = None, return_lse: bool = False):
    """Context-parallel block-sparse attention of this rank's queries; differentiable.

    Args:
        q_local: ``[B, Hq, n_r, D]``: this rank's tokens (``dp.shard(q, rank)``).
        k_local, v_local: ``[B, Hkv, n_r, D]`` likewise (``Hq % Hkv == 0``).
        dp: the :func:`~maskc.distributed.plan` every rank of ``group`` built alike.
        group: the process group (default: the world); its size must be ``dp.world_size``
            and the rank's index in it selects its share of the plan.
        scale: score scale, default ``1 / sqrt(D)``.
        return_lse: also return the log-sum-exp ``[B, Hq, n_r]`` (float32; float64 inputs: float64).

    Returns:
        this rank's output ``[B, Hq, n_r, D]`` (``dp.unshard`` of all ranks' outputs is the
        attention over the whole sequence), or ``(out, lse)``.
    """
    if not isinstance(dp, DispatchPlan):
        raise TypeError(f"dp must be a DispatchPlan from maskc.distributed.plan(layout, world_size), got {type(dp).__name__}")
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call torch.distributed.init_process_group first")
    P, rank = dist.get_world_size(group), dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of the given process group; call attention only on its ranks")
    if P != dp.world_size:
        raise ValueError(f"the process group has {P} ranks but the plan was made for {dp.world_size}; "
                         f"build it with plan(layout, {P})")
    view = rank_view(dp, rank)
    _check(q_local, k_local, v_local, dp, view)
    _warn_figures(dp, k_local)
    s = 1.0 / math.sqrt(q_local.shape[-1]) if scale is None else float(scale)
    verify_plan(dp, group, q_local.device)
    if not view.send and not view.recv:
        out, lse = local_attention(q_local, k_local, v_local, view.local_layout, scale=s)
        return (out, lse) if return_lse else out
    lay = dp.layout
    ex = Exchange(view, group, (lay.batch, 1 if lay.heads == 1 else k_local.shape[1]), tuple(k_local.shape[:2]))
    ex.post(k_local, v_local)
    out, lse = local_attention(q_local, k_local, v_local, view.local_layout, scale=s)
    k_remote, v_remote, out, lse = ex.collect(out, lse)
    if view.remote_layout is not None:
        out_r, lse_r = local_attention(q_local, k_remote, v_remote, view.remote_layout, scale=s)
        out, lse = merge_lse([(out, lse), (out_r, lse_r)])
    return (out, lse) if return_lse else out
