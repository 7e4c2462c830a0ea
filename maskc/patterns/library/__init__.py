"""The pattern library: named patterns, one module per family.

=================  =====================================================================
family             patterns
=================  =====================================================================
``bird``           prime_bird, square_bird, mian_chowla_bird (PrimeAttention.jl)
``pi``             pi_ring, pi_step, pi_attention_union (πAttention)
``primeformer``    the nine PrimeFormer heads and primeformer_heads
``classical``      sliding / dilated windows, Longformer, BigBird, Sparse Transformer, ...
``documents``      document_mask, key_padding (per sequence or per batch element)
=================  =====================================================================

Every constructor returns a :class:`~maskc.patterns.structure.Named` node whose text is
the call itself (keyword arguments sorted, defaults included) and whose body is made of
the DSL's structured leaves, so the compiler works on offsets, rows, columns and
segments rather than on element predicates; ``mc.parse(p.text()) == p``. Each is
registered once by ``@library_pattern`` (see :mod:`maskc.patterns.registry`).

Conventions: positions are 0-based, query ``i``, key ``j``, offset ``d = i - j``;
"causal" means ``j <= i``; rules on the *value* of a position use ``v(i) = i + 1``;
every PrimeAttention / πAttention / PrimeFormer pattern includes the diagonal ``d = 0``.

Example:
    >>> import maskc as mc
    >>> from maskc.patterns import library as L
    >>> p = L.prime_bird()
    >>> p.text()
    'prime_bird(cap=None, global_tokens=2, window=3)'
    >>> mc.parse(p.text()) == p
    True
"""

from __future__ import annotations

from typing import Callable

from maskc.patterns.library.bird import mian_chowla_bird, prime_bird, square_bird
from maskc.patterns.library.classical import (
    attention_sinks, bigbird, chunked_causal, dilated_window, longformer, prefix_lm, sliding_window,
    sparse_transformer_fixed, sparse_transformer_strided,
)
from maskc.patterns.library.documents import KeyPadding, document_mask, key_padding
from maskc.patterns.library.pi import PI_STEP_VARIANTS, pi_attention_union, pi_ring, pi_step, ring_local_pattern
from maskc.patterns.library.primeformer import (
    PRIMEFORMER_HEADS, arithmetic_progression, goldbach, mersenne, prime_gaps, prime_powers,
    primeformer_heads, quadratic_residue, riemann_zero_offsets, riemann_zeros, sieve, twin_primes, value_divides,
)
from maskc.patterns.registry import library_entries
from maskc.patterns.structure import Named

__all__ = [
    "prime_bird", "square_bird", "mian_chowla_bird",
    "pi_ring", "ring_local_pattern", "pi_step", "pi_attention_union", "PI_STEP_VARIANTS",
    "twin_primes", "arithmetic_progression", "goldbach", "mersenne", "sieve", "riemann_zeros",
    "prime_gaps", "quadratic_residue", "prime_powers", "primeformer_heads", "PRIMEFORMER_HEADS",
    "riemann_zero_offsets", "VALUE_DIVIDES",
    "sliding_window", "dilated_window", "longformer", "bigbird", "sparse_transformer_strided",
    "sparse_transformer_fixed", "chunked_causal", "prefix_lm", "attention_sinks",
    "document_mask", "key_padding", "KeyPadding",
    "LIBRARY", "library_names", "gallery_patterns",
]

#: Every library constructor by its text-form name (read from the registry).
LIBRARY: dict[str, Callable[..., Named]] = {e.name: e.fn for e in library_entries()}


def library_names() -> list[str]:
    """Names of the library's constructors (as used in the text form)."""
    return sorted(LIBRARY)


def gallery_patterns() -> dict[str, Named]:
    """One representative instance of every library pattern, sized for 128-token pictures.

    Example:
        >>> sorted(gallery_patterns()) == library_names()
        True
    """
    return {e.name: e.example() for e in library_entries()}


def __getattr__(name: str):
    if name == "VALUE_DIVIDES":  # built on first use (numba compiles it): not at import
        return value_divides()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
