"""Torch modules of the source documents, running on maskc layouts and backends.

========================  =====  ===================================================
module                    SPEC   what
========================  =====  ===================================================
SparseSelfAttention       -      multi-head attention over any pattern (MHA drop-in)
PrimeSelfAttention        A      global + window + prime offsets (PrimeAttention.jl)
SquareSelfAttention       A      global + window + square offsets
MianChowlaSelfAttention   A      global + window + Mian-Chowla offsets
PiAttention               B      ring-local + π-step softmaxes fused by a gate
AdaptivePiAttention       B      softmax mixture over a fixed (π, r) menu
PrimeHarmonyAttention     C      nine number-theoretic heads, output gates, ω weights
RiemannPositionalEncoding C      zeta-zero log-position encoding (additive / rotary)
prime_composite_regularizer C    KL to a von-Mangoldt target
entropy_hinge             C      row-entropy band penalty
MomentumAttentionBlock    D      SympFormer damped Hamiltonian block
NesterovAttentionBlock    D      v+ = βv + h·Attn(LN(x + μv)), x+ = x + v+
========================  =====  ===================================================

See docs/modules.md. On CPU, train with ``backend="reference"`` (differentiable float64);
``"auto"`` resolves to it while autograd records.
"""

from maskc.nn.attention import (
    MianChowlaSelfAttention, PrimeSelfAttention, SparseSelfAttention, SquareSelfAttention,
)
from maskc.nn.pi import AdaptivePiAttention, PiAttention
from maskc.nn.primeformer import (
    PrimeHarmonyAttention, RiemannPositionalEncoding, entropy_hinge, prime_composite_regularizer, von_mangoldt,
)
from maskc.nn.sympformer import MomentumAttentionBlock, NesterovAttentionBlock

__all__ = [
    "SparseSelfAttention", "PrimeSelfAttention", "SquareSelfAttention", "MianChowlaSelfAttention",
    "PiAttention", "AdaptivePiAttention", "PrimeHarmonyAttention", "RiemannPositionalEncoding",
    "prime_composite_regularizer", "entropy_hinge", "von_mangoldt",
    "MomentumAttentionBlock", "NesterovAttentionBlock",
]
