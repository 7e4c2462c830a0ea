"""attn_implementation="maskc" in tiny random Llama / Qwen2 models against SDPA with the equivalent dense mask."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install maskc[hf])")

import maskc as mc  # noqa: E402
from maskc.integrations import transformers as mct  # noqa: E402

FAMILIES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
}
V = 64


def _pair(family: str, pattern):
    """(maskc model, sdpa model) with the same random weights."""
    cfg_cls, model_cls = FAMILIES[family]
    kw = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128)
    mct.register()
    torch.manual_seed(0)
    ours = model_cls(cfg_cls(**kw, attn_implementation="maskc")).eval()
    ref = model_cls(cfg_cls(**kw, attn_implementation="sdpa")).eval()
    ref.load_state_dict(ours.state_dict())
    return mct.use_pattern(ours, pattern, block=8), ref


def _dense(pattern, n: int) -> torch.Tensor:
    return torch.from_numpy(pattern.dense(n))[None]  # [1, 1, n, n] (1 head)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("pattern", [mc.causal(), mc.causal() & (mc.window(5) | mc.global_tokens(2))],
                         ids=["causal", "window+globals"])
def test_prefill_logits_match_sdpa(family: str, pattern) -> None:
    ours, ref = _pair(family, pattern)
    x = torch.randint(0, V, (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x).logits
        want = ref(x, attention_mask=_dense(pattern, 37).expand(2, 1, 37, 37)).logits
    assert _rel(got, want) < 1e-5


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_left_padding_matches_sdpa(family: str) -> None:
    pattern = mc.causal() & mc.window(6)
    ours, ref = _pair(family, pattern)
    x = torch.randint(0, V, (2, 30), generator=torch.Generator().manual_seed(2))
    pad = torch.ones(2, 30, dtype=torch.bool)
    pad[1, :9] = False  # row 1 is left-padded by 9 tokens
    with torch.no_grad():
        got = ours(x, attention_mask=pad.long()).logits
        want = ref(x, attention_mask=_dense(pattern, 30) & pad[:, None, None, :]).logits
    assert _rel(got[0], want[0]) < 1e-5
    assert _rel(got[1, 9:], want[1, 9:]) < 1e-5  # real tokens; padded rows attend nothing in both


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_packed_sequences_from_position_ids(family: str) -> None:
    pattern = mc.causal() & mc.window(7)
    ours, ref = _pair(family, pattern)
    x = torch.randint(0, V, (1, 32), generator=torch.Generator().manual_seed(3))
    lengths = [10, 15, 7]
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    doc = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    same_doc = doc[:, None] == doc[None, :]
    with torch.no_grad():
        got = ours(x, position_ids=pos, use_cache=False).logits  # transformers detects packing without a cache
        want = ref(x, position_ids=pos, attention_mask=(_dense(pattern, 32) & same_doc)).logits
    assert _rel(got, want) < 1e-5


def _greedy_reference(ref, x: torch.Tensor, pattern, steps: int) -> torch.Tensor:
    """Greedy decoding without a cache: every step recomputes the whole sequence with SDPA and the dense mask."""
    seq = x
    for _ in range(steps):
        n = seq.shape[1]
        with torch.no_grad():
            logits = ref(seq, attention_mask=_dense(pattern, n)).logits
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], dim=1)
    return seq


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_greedy_generation_with_kv_cache(family: str) -> None:
    pattern = mc.causal() & (mc.window(6) | mc.global_tokens(1))
    ours, ref = _pair(family, pattern)
    x = torch.randint(0, V, (1, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = ours.generate(x, max_new_tokens=32, do_sample=False, min_new_tokens=32)
    want = _greedy_reference(ref, x, pattern, 32)
    assert got.shape == (1, 41)
    assert torch.equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_greedy_generation_left_padded_batch_matches_sdpa(family: str) -> None:
    ours, ref = _pair(family, mc.causal())
    x = torch.randint(1, V, (2, 12), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :4] = 0
    kw = dict(attention_mask=mask, max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        got, want = ours.generate(x, **kw), ref.generate(x, **kw)
    assert torch.equal(got, want)


def test_per_layer_patterns_and_missing_pattern_error() -> None:
    ours, ref = _pair("llama", mc.causal())
    mct.use_pattern(ours, [mc.causal() & mc.window(3), mc.causal()], block=8)
    x = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got = ours(x).logits
    assert ours.model.layers[0].self_attn.maskc_pattern == mc.causal() & mc.window(3)
    # SDPA takes one mask for all layers: check that the per-layer window is applied (changes the logits) and
    # that going back to one causal pattern reproduces SDPA
    mct.use_pattern(ours, mc.causal(), block=8)
    with torch.no_grad():
        causal = ours(x).logits
        want = ref(x).logits
    assert _rel(causal, want) < 1e-5 and _rel(got, causal) > 1e-3
    del ours.model.layers[0].self_attn.maskc_pattern
    with pytest.raises(ValueError, match="use_pattern"):
        ours(x)


def test_per_head_pattern_matches_sdpa_with_a_per_head_mask() -> None:
    pattern = mc.heads([mc.causal() & mc.window(w) for w in (1, 3, 6, 30)])
    ours, ref = _pair("qwen2", pattern)
    x = torch.randint(0, V, (1, 25), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        got = ours(x).logits
        want = ref(x, attention_mask=torch.from_numpy(pattern.dense(25, heads=4))[None]).logits  # [1, 4, 25, 25]
    assert _rel(got, want) < 1e-5
