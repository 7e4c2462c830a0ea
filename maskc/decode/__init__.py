"""Decoding over a KV cache: the newest query rows of a pattern, without compiling the whole layout.

- :mod:`maskc.decode.keys`: :func:`decode_keys` evaluates a pattern on query rows
  ``position .. position + T - 1`` and lists each slice's keys (cached per step, so every
  layer of a step reuses the first layer's work);
- :mod:`maskc.decode.attention`: :func:`decode_attention` gathers those keys from the
  cache and runs attention in torch ops (or compiles the rows for a named backend).

Example:
    >>> import maskc as mc
    >>> from maskc.decode import decode_keys
    >>> decode_keys(mc.causal() & mc.window(2), q_len=1, kv_len=None, position=5).index.tolist()
    [[[3, 4, 5]]]
"""

from maskc.decode.attention import decode_attention
from maskc.decode.keys import MAX_ROW_ELEMENTS, DecodeKeys, decode_keys

__all__ = ["decode_attention", "decode_keys", "DecodeKeys", "MAX_ROW_ELEMENTS"]
