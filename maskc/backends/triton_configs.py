"""Tile configurations of maskc's Triton kernels: the default table and the autotune space.

A configuration is ``(BLOCK_M, BLOCK_N, num_warps, num_stages)`` per kernel
(``fwd``, ``dq``, ``dkdv``), chosen by GPU generation (``sm90``: Hopper; ``sm80``:
Ampere, Ada and anything else), by dtype class (16-bit or fp32) and by the padded head
dim ``BLOCK_D``. For ``fwd`` and ``dq`` BLOCK_M is the query tile and BLOCK_N the key
tile; for ``dkdv`` the same (its matmuls have BLOCK_N rows). The tile never exceeds
the layout block: it is clamped to ``(block_q, block_k)`` (both powers of two, so the
layout block is a whole number of tiles), and a clamped tile below 64 rows gets fewer
warps.

Every entry here is compiled for sm_90a and sm_80 by ``python -m
maskc.backends.kernel_report`` and must build without register spills (see
docs/kernels.md for the table and its build report).

Example:
    >>> pick("fwd", 90, "bfloat16", 128, 128, 128)
    TileConfig(block_m=128, block_n=64, num_warps=8, num_stages=3, maxnreg=None)
    >>> pick("fwd", 90, "bfloat16", 128, 32, 32)
    TileConfig(block_m=32, block_n=32, num_warps=1, num_stages=3, maxnreg=None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

KERNELS: tuple[str, ...] = ("fwd", "dq", "dkdv")
BLOCK_DS: tuple[int, ...] = (16, 32, 64, 128)


@dataclass(frozen=True)
class TileConfig:
    """One launch configuration of one kernel."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    #: ptxas register cap (``.maxnreg``); None leaves it to ptxas, whose occupancy heuristic
    #: can stop small kernels at 72-80 registers and spill (the exact redo sets 255)
    maxnreg: int | None = None


def arch_class(cc: int) -> str:
    """'sm90' for Hopper (compute capability 9.x), else 'sm80' (the Ampere tuning)."""
    return "sm90" if 90 <= cc < 100 else "sm80"


def dtype_class(dtype) -> str:
    """'fp32' for float32, '16' for float16 / bfloat16."""
    return "fp32" if str(dtype).replace("torch.", "") == "float32" else "16"


def _t(m: int, n: int, w: int, s: int) -> TileConfig:
    return TileConfig(m, n, w, s)


# (arch, dtype class, kernel) -> {BLOCK_D bucket: config} (see _bucket). Chosen from the
# build report: the largest tiles that compile without spills on that architecture.
_TABLE: dict[tuple[str, str, str], dict[int, TileConfig]] = {
    ("sm90", "16", "fwd"): {32: _t(128, 128, 8, 3), 64: _t(128, 128, 8, 3), 128: _t(128, 64, 8, 3)},
    ("sm90", "16", "dq"): {32: _t(128, 64, 8, 3), 64: _t(128, 64, 8, 3), 128: _t(128, 64, 8, 3)},
    ("sm90", "16", "dkdv"): {32: _t(64, 128, 8, 3), 64: _t(64, 128, 8, 3), 128: _t(32, 128, 8, 3)},
    ("sm90", "fp32", "fwd"): {32: _t(64, 64, 8, 2), 64: _t(64, 64, 8, 2), 128: _t(64, 32, 4, 2)},
    ("sm90", "fp32", "dq"): {32: _t(64, 32, 4, 2), 64: _t(64, 32, 4, 2), 128: _t(64, 32, 4, 2)},
    ("sm90", "fp32", "dkdv"): {32: _t(16, 128, 8, 2), 64: _t(16, 128, 8, 2), 128: _t(16, 32, 4, 2)},
    ("sm80", "16", "fwd"): {32: _t(128, 128, 8, 3), 64: _t(128, 64, 8, 3), 128: _t(128, 64, 8, 3)},
    ("sm80", "16", "dq"): {32: _t(128, 64, 8, 2), 64: _t(128, 64, 8, 3), 128: _t(128, 32, 8, 2)},
    ("sm80", "16", "dkdv"): {32: _t(64, 128, 8, 3), 64: _t(32, 32, 4, 2), 128: _t(32, 64, 8, 2)},
    ("sm80", "fp32", "fwd"): {32: _t(64, 64, 8, 2), 64: _t(64, 64, 8, 2), 128: _t(64, 64, 8, 2)},
    ("sm80", "fp32", "dq"): {32: _t(64, 32, 4, 2), 64: _t(64, 32, 4, 2), 128: _t(32, 32, 4, 2)},
    ("sm80", "fp32", "dkdv"): {32: _t(32, 32, 4, 2), 64: _t(32, 32, 4, 2), 128: _t(16, 64, 8, 2)},
}

# Alternatives the autotuner tries besides the default (same clamping rules).
_ALTERNATIVES: dict[tuple[str, str, str], dict[int, tuple[TileConfig, ...]]] = {
    ("sm90", "16", "fwd"): {64: (_t(128, 64, 8, 3), _t(64, 64, 4, 2)), 128: (_t(128, 64, 8, 2), _t(64, 64, 4, 2))},
    ("sm90", "16", "dq"): {64: (_t(64, 64, 4, 2),), 128: (_t(64, 64, 4, 2), _t(128, 32, 8, 2))},
    ("sm90", "16", "dkdv"): {64: (_t(32, 128, 8, 3),), 128: (_t(16, 128, 8, 2), _t(32, 64, 8, 2))},
    ("sm80", "16", "fwd"): {64: (_t(64, 64, 4, 2),), 128: (_t(128, 64, 8, 2), _t(64, 32, 4, 2))},
    ("sm80", "16", "dq"): {128: (_t(64, 64, 4, 2),)},
    ("sm80", "16", "dkdv"): {128: (_t(16, 64, 8, 2),)},
}


def _bucket(block_d: int) -> int:
    """The table row of a padded head dim: 32 (up to 32), 64 or 128."""
    return 32 if block_d <= 32 else (64 if block_d <= 64 else 128)


def clamp(cfg: TileConfig, kernel: str, block_q: int, block_k: int) -> TileConfig:
    """``cfg`` fitted into the layout block: tiles at most (block_q, block_k), fewer warps if shrunk."""
    m, n = min(cfg.block_m, block_q), min(cfg.block_n, block_k)
    if (m, n) == (cfg.block_m, cfg.block_n):
        return cfg
    rows = n if kernel == "dkdv" else m  # rows of the kernel's matmuls
    if rows >= 64:  # keep the warpgroups (Hopper's wgmma) and the registers per thread
        return TileConfig(m, n, cfg.num_warps, cfg.num_stages, cfg.maxnreg)
    warps = max(1, min(cfg.num_warps, (m * n) // 1024, max(1, rows // 16)))
    return TileConfig(m, n, warps, cfg.num_stages, cfg.maxnreg)


def pick(kernel: str, cc: int, dtype, block_d: int, block_q: int, block_k: int) -> TileConfig:
    """The default configuration of ``kernel`` for this device, dtype, BLOCK_D and layout block."""
    cfg = _TABLE[(arch_class(cc), dtype_class(dtype), kernel)][_bucket(block_d)]
    return clamp(cfg, kernel, block_q, block_k)


def exact(kernel: str, cfg: TileConfig) -> TileConfig:
    """The tile of the rare exact redo that follows a launch with ``cfg`` (see triton_kernels).

    Its matmuls carry extra fp32 accumulators, so it runs a small tile within the main one
    (16 x 32 forward, 16 x 16 backward, 4 warps: ``mma`` rather than ``wgmma`` on Hopper;
    it runs only when a result was not finite, so its speed does not matter).
    """
    small = clamp(TileConfig(16, 32 if kernel == "fwd" else 16, 4, 1), kernel, cfg.block_m, cfg.block_n)
    return TileConfig(small.block_m, small.block_n, small.num_warps, small.num_stages, maxnreg=255)


def space(kernel: str, cc: int, dtype, block_d: int, block_q: int, block_k: int) -> list[TileConfig]:
    """The autotune candidates (default first, clamped, without duplicates)."""
    key = (arch_class(cc), dtype_class(dtype), kernel)
    alts = _ALTERNATIVES.get(key, {}).get(_bucket(block_d), ())
    out: list[TileConfig] = []
    for cfg in (pick(kernel, cc, dtype, block_d, block_q, block_k),
                *(clamp(a, kernel, block_q, block_k) for a in alts)):
        if cfg not in out:
            out.append(cfg)
    return out


def autotune_enabled() -> bool:
    """``MASKC_TRITON_AUTOTUNE=1`` turns on ``triton.autotune`` over :func:`space` (CUDA only)."""
    return os.environ.get("MASKC_TRITON_AUTOTUNE", "0") not in ("", "0")
