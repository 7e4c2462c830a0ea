"""maskc: a mask compiler for structured sparse attention.

Declare a sparsity pattern, compile it to a block-sparse layout, run attention on any
backend, export the layout, and prove properties of it.

Example:
    >>> import maskc as mc
    >>> p = mc.causal() & (mc.window(3) | mc.global_tokens(2) | mc.offsets("primes"))
    >>> layout = mc.compile(p, q_len=1024, block=128)
    >>> layout.nnz_blocks
    36

Sub-packages are imported on first use, so ``import maskc`` stays fast: the compiler
(``mc.compile``, ``mc.as_layout``), the backends (``mc.attention``, ``mc.crosscheck``,
``mc.backends``), and those that need optional dependencies (torch for ``maskc.nn`` and
``maskc.planner``): ``mc.plan``, ``mc.nn``, ``mc.export``, ``mc.guarantees``,
``mc.testing``, ``mc.viz``.
"""

from __future__ import annotations

import importlib
from typing import Any

from maskc.errors import LayoutFormatError, MaskcError, PatternSyntaxError, TooLargeError
from maskc.ir import FULL, PARTIAL, Layout, load
from maskc.patterns.core import (
    Pattern, batched, block_level, causal, cols, full, global_tokens, heads, offsets, predicate,
    random_keys, ring_local, rows, segments, stride, sums, window,
)
from maskc.patterns.parse import parse
from maskc.patterns import library
from maskc.patterns.library import (
    arithmetic_progression, attention_sinks, bigbird, chunked_causal, dilated_window, document_mask,
    goldbach, key_padding, library_names, longformer, mersenne, mian_chowla_bird, pi_attention_union, pi_ring, pi_step,
    prefix_lm, prime_bird, prime_gaps, prime_powers, primeformer_heads, quadratic_residue, riemann_zeros,
    ring_local_pattern, sieve, sliding_window, sparse_transformer_fixed, sparse_transformer_strided,
    square_bird, twin_primes,
)
from maskc.patterns.sequences import named_sequence, register_sequence

__version__ = "0.1.0"

_LAZY_MODULES = {"nn", "export", "guarantees", "testing", "viz", "planner", "compiler", "backends", "distributed",
                 "integrations"}
_LAZY_NAMES = {
    "compile": ("maskc.compiler", "compile"), "as_layout": ("maskc.compiler", "as_layout"),
    "attention": ("maskc.backends", "attention"), "crosscheck": ("maskc.backends", "crosscheck"),
    "from_mask_mod": ("maskc.integrations.flex_mask_mod", "from_mask_mod"),
    "CrosscheckReport": ("maskc.backends", "CrosscheckReport"),
    "plan": ("maskc.planner", "plan"), "Plan": ("maskc.planner", "Plan"),
    "decode_attention": ("maskc.decode", "decode_attention"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"maskc.{name}")
    if name in _LAZY_NAMES:
        mod, attr = _LAZY_NAMES[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'maskc' has no attribute {name!r}")


__all__ = [
    # IR, compile, text form
    "Layout", "load", "compile", "as_layout", "parse", "Pattern", "FULL", "PARTIAL",
    # DSL leaves
    "full", "causal", "window", "ring_local", "stride", "offsets", "sums", "global_tokens",
    "rows", "cols", "segments", "predicate", "heads", "batched", "block_level", "random_keys", "named_sequence",
    "register_sequence",
    # library
    "library", "library_names", "prime_bird", "square_bird", "mian_chowla_bird", "pi_ring", "ring_local_pattern",
    "pi_step", "pi_attention_union", "twin_primes", "arithmetic_progression", "goldbach", "mersenne", "sieve",
    "riemann_zeros", "prime_gaps", "quadratic_residue", "prime_powers", "primeformer_heads", "sliding_window",
    "dilated_window", "longformer", "bigbird", "sparse_transformer_strided", "sparse_transformer_fixed",
    "chunked_causal", "prefix_lm", "document_mask", "key_padding", "attention_sinks",
    # attention
    "attention", "crosscheck", "CrosscheckReport", "backends", "plan", "Plan", "from_mask_mod",
    # errors
    "MaskcError", "PatternSyntaxError", "LayoutFormatError", "TooLargeError",
]
