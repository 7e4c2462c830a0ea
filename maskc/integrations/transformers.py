"""maskc as a HuggingFace transformers attention implementation: ``attn_implementation="maskc"``.

:func:`register` adds ``"maskc"`` to transformers' ``AttentionInterface`` (the attention
function) and ``AttentionMaskInterface`` (the mask function, where the installed version
has one); :func:`use_pattern` gives a model its pattern: one for every layer, a list
(one per layer) or a callable ``layer_idx -> pattern``; a ``mc.heads([...])`` pattern
gives every head its own.

What a layer attends: the maskc pattern **and** the mask transformers builds for the
model (for a decoder: causal, the padding of ``attention_mask``, the documents of packed
``position_ids``), evaluated on cache positions: queries are the last ``q_len`` of the
``kv_len`` keys, so the pattern is compiled with ``q_offset = kv_len - q_len`` (decode
with the KV cache and chunked prefill are exact). Without padding or packing the layer
runs the compiled block-sparse layout (cached per size by ``mc.compile``); with a
transformers mask the pattern's dense mask is intersected with it (``O(batch x q x kv)``
booleans per call, then block-sparse attention). Sliding-window KV caches (a cache that
drops keys, ``kv_offset > 0``) are refused.

Example:
    >>> import pytest, torch, maskc as mc
    >>> transformers = pytest.importorskip("transformers")  # the optional extra maskc[hf]
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from maskc.integrations import transformers as mct
    >>> mct.register()
    'maskc'
    >>> cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                   num_attention_heads=4, num_key_value_heads=2, attn_implementation="maskc")
    >>> model = mct.use_pattern(LlamaForCausalLM(cfg), mc.causal() & mc.window(16))
    >>> model(torch.randint(0, 64, (1, 20))).logits.shape
    torch.Size([1, 20, 64])
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

import maskc
from maskc.compiler import compile as compile_pattern
from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern

NAME = "maskc"
PatternSpec = Pattern | Sequence[Pattern] | Callable[[int], Pattern]


def register(name: str = NAME) -> str:
    """Register the maskc attention (and mask) function under ``name`` in transformers; returns ``name``.

    Example:
        >>> import pytest
        >>> _ = pytest.importorskip("transformers")
        >>> register()
        'maskc'
    """
    from transformers import AttentionInterface

    AttentionInterface.register(name, maskc_attention)
    try:
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError:  # older transformers: no mask interface, the model's default mask is used
        return name
    AttentionMaskInterface.register(name, maskc_mask)
    return name


def use_pattern(model: torch.nn.Module, pattern: PatternSpec, block: int = 128, backend: str = "auto") -> Any:
    """Give every attention layer of ``model`` its maskc pattern; returns ``model``.

    ``pattern``: one Pattern for all layers, a sequence with one per layer, or a callable
    ``layer_idx -> Pattern``. Layers are the submodules with a ``layer_idx`` attribute
    (transformers' attention modules).

    Example:
        >>> import pytest, maskc as mc
        >>> transformers = pytest.importorskip("transformers")
        >>> cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        ...                                num_attention_heads=2, attn_implementation=register())
        >>> model = use_pattern(transformers.LlamaForCausalLM(cfg), lambda i: mc.causal() & mc.window(8 if i else 64))
        >>> model.model.layers[1].self_attn.maskc_pattern == mc.causal() & mc.window(8)
        True
    """
    layers = [m for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int) and hasattr(m, "config")]
    if not layers:
        raise ValueError("use_pattern: no attention module with a layer_idx found in this model")
    for m in layers:
        p = pattern(m.layer_idx) if callable(pattern) and not isinstance(pattern, Pattern) else (
            pattern if isinstance(pattern, Pattern) else pattern[m.layer_idx])
        if not isinstance(p, Pattern):
            raise TypeError(f"use_pattern: layer {m.layer_idx} got {type(p).__name__}, expected a maskc Pattern")
        m.maskc_pattern, m.maskc_block, m.maskc_backend = p, int(block), backend
    return model


def maskc_mask(batch_size: int, q_length: int, kv_length: int, q_offset: Any = 0, kv_offset: int = 0,
               **kwargs: Any) -> torch.Tensor | None:
    """transformers' mask for this call as bool ``[batch, 1, q, kv]`` (True = may attend), or None when it is
    plain causal (or full) with no padding: the layer then runs the compiled pattern alone."""
    from transformers.masking_utils import sdpa_mask

    if int(kv_offset) != 0:
        raise ValueError("attn_implementation='maskc' does not support KV caches that drop keys (kv_offset > 0, e.g. "
                         "a sliding-window cache): use a full cache and put the window in the maskc pattern")
    kwargs["allow_is_causal_skip"] = kwargs.get("allow_is_causal_skip", True)
    return sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset, **kwargs)


def layer_layout(module: Any, batch: int, heads: int, q_len: int, kv_len: int,
                 hf_mask: torch.Tensor | None) -> Layout:
    """The Layout one call of a layer runs: its pattern (queries = the last ``q_len`` of ``kv_len``) and transformers' mask."""
    pattern = getattr(module, "maskc_pattern", None)
    if pattern is None:
        raise ValueError("attn_implementation='maskc' but this layer has no maskc pattern: call "
                         "maskc.integrations.transformers.use_pattern(model, pattern) after building the model")
    block, offset = getattr(module, "maskc_block", 128), kv_len - q_len
    per_head = heads if pattern.n_heads else None
    if hf_mask is None:
        if getattr(module, "is_causal", True):
            pattern = pattern & maskc.causal()
        return compile_pattern(pattern, q_len, kv_len, block=block, heads=per_head, q_offset=offset)
    dense = torch.from_numpy(pattern.dense(q_len, kv_len, heads=per_head, q_offset=offset))  # [H, q, kv]
    hf = hf_mask if hf_mask.dtype == torch.bool else hf_mask == 0  # float masks: 0 allowed, -inf masked
    both = dense[None] & hf.to("cpu").expand(batch, 1, q_len, kv_len)
    return Layout.from_dense(both.numpy(), block=block, pattern_text=f"{pattern} & <transformers mask>",
                             q_offset=offset)


def maskc_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function: query ``[B, Hq, q, D]``, key / value ``[B, Hkv, kv, D]`` (after the cache
    update) -> ``(out [B, q, Hq, D], None)``."""
    B, H, q_len, _ = query.shape
    lay = layer_layout(module, B, H, q_len, key.shape[2], attention_mask)
    out = maskc.attention(query, key, value, lay, backend=getattr(module, "maskc_backend", "auto"), scale=scaling,
                          dropout_p=float(dropout) if module.training else 0.0)
    return out.transpose(1, 2).contiguous(), None
