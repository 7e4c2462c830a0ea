"""key_padding_mask (bool [B, kv_len], True = padding, as nn.MultiheadAttention) in maskc.nn modules:
a padded batch gives, on its real tokens, the outputs of each sequence run alone; parity with MHA;
no stale layout when the mask changes; clear errors."""

from __future__ import annotations

import pytest
import torch

import maskc as mc
from maskc.nn import PrimeHarmonyAttention, SparseSelfAttention

LENGTHS = [20, 13, 7]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert not torch.isnan(a).any()
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def _padded_batch(E: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = max(LENGTHS)
    x = torch.randn(len(LENGTHS), n, E, generator=g)
    pad = torch.arange(n)[None, :] >= torch.tensor(LENGTHS)[:, None]
    x[pad] = 1e3 * torch.randn(int(pad.sum()), E, generator=g)  # loud garbage in the padding
    return x, pad


@pytest.mark.parametrize("pattern", [mc.window(3, 3) | mc.global_tokens(2), mc.prime_bird(), mc.window(100, 100)],
                         ids=["window_globals", "prime_bird", "dense_bidirectional"])
def test_padded_batch_equals_each_sequence_alone(pattern: mc.Pattern) -> None:
    torch.manual_seed(0)
    attn = SparseSelfAttention(32, 4, pattern, block=8, num_kv_heads=2).eval()
    x, pad = _padded_batch(32)
    got, _ = attn(x, key_padding_mask=pad)
    for b, n in enumerate(LENGTHS):
        alone, _ = attn(x[b:b + 1, :n])
        assert _rel(got[b, :n], alone[0]) < 1e-5


def test_matches_multihead_attention_with_key_padding_mask() -> None:
    torch.manual_seed(1)
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()
    pattern = mc.window(2, 2) | mc.global_tokens(1)
    sparse = SparseSelfAttention.from_multihead(mha, pattern, block=8)
    x, pad = _padded_batch(16, seed=1)
    n = x.shape[1]
    attn_mask = ~torch.from_numpy(pattern.dense(n)[0])
    want, _ = mha(x, x, x, key_padding_mask=pad, attn_mask=attn_mask, need_weights=False)
    got, _ = sparse(x, key_padding_mask=pad)
    real = ~pad
    assert _rel(got[real], want[real]) < 1e-5


def test_a_new_mask_never_returns_a_stale_layout() -> None:
    torch.manual_seed(2)
    attn = SparseSelfAttention(16, 2, mc.window(4, 4), block=8).eval()
    x = torch.randn(2, 12, 16)
    a = torch.zeros(2, 12, dtype=torch.bool)
    a[0, 9:] = True
    b = torch.zeros(2, 12, dtype=torch.bool)
    b[1, 5:] = True
    out_a = attn(x, key_padding_mask=a)[0]
    out_b = attn(x, key_padding_mask=b)[0]
    assert attn._layouts.get(12, 12, a) is not attn._layouts.get(12, 12, b)
    assert _rel(out_b[1, :5], attn(x[1:, :5])[0][0]) < 1e-5
    assert _rel(out_a[0, :9], attn(x[:1, :9])[0][0]) < 1e-5
    assert not torch.allclose(out_a[1, :5], out_b[1, :5])


def test_fully_padded_sequence_gives_zeros_and_gradients_flow() -> None:
    attn = SparseSelfAttention(8, 2, mc.causal() & mc.window(3), block=4, bias=False)
    x = torch.randn(2, 6, 8, requires_grad=True)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1] = True
    out, _ = attn(x, key_padding_mask=pad)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0].abs().sum() > 0


def test_prime_harmony_attention_takes_key_padding() -> None:
    torch.manual_seed(3)
    # length-free head patterns (the default heads include quadratic residues mod N, which change with N)
    heads = [mc.prime_bird(), mc.causal() & mc.window(3), mc.window(2, 2) | mc.global_tokens(1)]
    mod = PrimeHarmonyAttention(36, num_heads=9, patterns=heads, block=8).eval()
    x, pad = _padded_batch(36, seed=3)
    got = mod(x, key_padding_mask=pad)
    for b, n in enumerate(LENGTHS):
        assert _rel(got[b, :n], mod(x[b:b + 1, :n])[0]) < 1e-5


def test_bad_key_padding_masks_are_refused() -> None:
    attn = SparseSelfAttention(8, 2, mc.window(2))
    x = torch.randn(2, 5, 8)
    with pytest.raises(TypeError, match="bool"):
        attn(x, key_padding_mask=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"\[batch=2, kv_len=5\]"):
        attn(x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    fixed = SparseSelfAttention(8, 2, mc.compile(mc.window(2), 5, block=4))
    with pytest.raises(ValueError, match="build the module with the Pattern"):
        fixed(x, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask"):
        attn(x, attn_mask=torch.ones(5, 5, dtype=torch.bool))
