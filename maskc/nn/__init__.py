"""Torch modules running on maskc layouts and backends.

===========================  ===================================================
module                       what
===========================  ===================================================
SparseSelfAttention          multi-head attention over any pattern (MHA drop-in)
PrimeSelfAttention           global + window + prime offsets (PrimeAttention.jl)
SquareSelfAttention          global + window + square offsets
MianChowlaSelfAttention      global + window + Mian-Chowla offsets
PiAttention                  ring-local + π-step softmaxes fused by a gate
AdaptivePiAttention          softmax mixture over a fixed (π, r) menu
PrimeHarmonyAttention        nine number-theoretic heads, output gates, ω weights
RiemannPositionalEncoding    zeta-zero log-position encoding (additive / rotary)
prime_composite_regularizer  KL to a von-Mangoldt target
entropy_hinge                row-entropy band penalty
MomentumAttentionBlock       SympFormer momentum block (velocity form)
NesterovAttentionBlock       v+ = βv + h·Attn(LN(x + μv)), x+ = x + v+
===========================  ===================================================

See docs/modules.md. Every module's ``backend="auto"`` trains on CPU through the sparse
torch backend (forward and backward); name ``backend="reference"`` only to check against
the dense float64 truth.
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
