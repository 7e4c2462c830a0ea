"""Sparse-aware context parallelism: shard a sequence over ranks, move only the key blocks a layout reads.

``plan(layout, world_size)`` (pure numpy, runs anywhere) decides which rank owns which
blocks of tokens and which key/value blocks each rank must receive from which other
rank; ``attention(q_local, k_local, v_local, dp)`` runs it on ``torch.distributed``
(gloo or NCCL), ``spmd_attention(q, k, v, dp, mesh)`` in JAX with ``shard_map``.

Example:
    >>> import maskc as mc
    >>> from maskc.distributed import plan
    >>> dp = plan(mc.compile(mc.causal() & mc.window(4096), q_len=1 << 16, block=128), 8)
    >>> rep = dp.report()
    >>> rep["strategy"], round(rep["max_received_vs_allgather"], 4)
    ('contiguous', 0.0714)
"""

from __future__ import annotations

import importlib
from typing import Any

from maskc.distributed.plan import DispatchPlan, plan
from maskc.distributed.report import PlanReport

_LAZY = {
    "attention": ("maskc.distributed.torch_attention", "attention"),
    "comm_counters": ("maskc.distributed.exchange", "comm_counters"),
    "reset_comm_counters": ("maskc.distributed.exchange", "reset_comm_counters"),
    "spmd_attention": ("maskc.distributed.spmd", "spmd_attention"),
    "spmd_schedule": ("maskc.distributed.spmd", "spmd_schedule"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'maskc.distributed' has no attribute {name!r}")


__all__ = ["plan", "DispatchPlan", "PlanReport", "attention", "spmd_attention", "spmd_schedule", "comm_counters",
           "reset_comm_counters"]
