"""TEMPORARY dense compile (replaced by the structural numba compiler)."""

from __future__ import annotations

from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern


def clear_cache() -> None:
    pass


def compile(pattern: Pattern, q_len: int, kv_len: int | None = None, block=128, heads: int | None = None) -> Layout:
    kv_len = q_len if kv_len is None else kv_len
    return Layout.from_dense(pattern.dense(q_len, kv_len, heads=None), block, pattern.text())
