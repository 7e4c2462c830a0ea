"""SparseSelfAttention against nn.MultiheadAttention: weights, layouts, GQA, dropout, errors;
and a small model trained on the torch backend with the reference's gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import maskc as mc
import maskc.backends as mb
from maskc.nn import SparseSelfAttention

PATTERN = mc.causal() & (mc.window(5) | mc.global_tokens(2))


def _mha_mask(pattern, n):
    return ~torch.from_numpy(pattern.dense(n)).reshape(n, n)  # nn.MultiheadAttention: True = may NOT attend


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_from_multihead_equals_multihead_attention_on_the_dense_mask(batch_first, bias):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(24, 3, bias=bias, batch_first=batch_first).double().eval()
    sparse = SparseSelfAttention.from_multihead(mha, PATTERN, block=8)
    assert sparse.batch_first is batch_first and sparse.q_proj.weight.dtype == torch.float64
    x = torch.randn(2, 37, 24, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1)
    want, _ = mha(x, x, x, attn_mask=_mha_mask(PATTERN, 37), need_weights=False)
    got, none = sparse(x)
    assert none is None and got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)
    assert mb.last_choice().name == "torch"
    u = x[0] if batch_first else x[:, 0]  # unbatched [seq, E]
    got_u, _ = sparse(u)
    want_u, _ = mha(u, u, u, attn_mask=_mha_mask(PATTERN, 37), need_weights=False)
    assert torch.allclose(got_u, want_u, atol=1e-12)


def test_from_multihead_refuses_what_has_no_sparse_equivalent():
    with pytest.raises(ValueError, match="kdim / vdim"):
        SparseSelfAttention.from_multihead(nn.MultiheadAttention(8, 2, kdim=4, vdim=4), mc.causal())
    with pytest.raises(ValueError, match="add_bias_kv"):
        SparseSelfAttention.from_multihead(nn.MultiheadAttention(8, 2, add_bias_kv=True), mc.causal())
    with pytest.raises(TypeError, match="MultiheadAttention"):
        SparseSelfAttention.from_multihead(nn.Linear(8, 8), mc.causal())


def test_batch_first_false_takes_seq_batch_embed_and_a_swapped_input_is_named():
    torch.manual_seed(1)
    a = SparseSelfAttention(8, 2, PATTERN, block=8)
    b = SparseSelfAttention(8, 2, PATTERN, block=8, batch_first=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 20, 8)
    assert torch.allclose(a(x)[0], b(x.transpose(0, 1))[0].transpose(0, 1), atol=1e-6)
    fixed = SparseSelfAttention(8, 2, mc.compile(PATTERN, 20, block=8))
    with pytest.raises(ValueError, match="looks like the other layout.*batch_first=False"):
        fixed(torch.randn(20, 3, 8))
    with pytest.raises(ValueError, match="batch/length mismatch"):
        a(torch.randn(3, 20, 8), torch.randn(4, 20, 8))


def test_num_kv_heads_is_grouped_query_attention():
    torch.manual_seed(2)
    gqa = SparseSelfAttention(16, 4, PATTERN, block=8, num_kv_heads=2).double()
    assert gqa.k_proj.out_features == 8
    x = torch.randn(2, 19, 16, dtype=torch.float64)
    got = gqa(x)[0]
    # the same module with each K/V head repeated for its two query heads
    full = SparseSelfAttention(16, 4, PATTERN, block=8).double()
    with torch.no_grad():
        full.q_proj.load_state_dict(gqa.q_proj.state_dict())
        full.out_proj.load_state_dict(gqa.out_proj.state_dict())
        for src, dst in ((gqa.k_proj, full.k_proj), (gqa.v_proj, full.v_proj)):
            dst.weight.copy_(src.weight.view(2, 1, 4, 16).expand(2, 2, 4, 16).reshape(16, 16))
            dst.bias.copy_(src.bias.view(2, 1, 4).expand(2, 2, 4).reshape(16))
    assert torch.allclose(got, full(x)[0], atol=1e-12)
    with pytest.raises(ValueError, match="num_kv_heads"):
        SparseSelfAttention(16, 4, PATTERN, num_kv_heads=3)


def test_dropout_acts_on_probabilities_in_training_only():
    torch.manual_seed(3)
    attn = SparseSelfAttention(8, 2, PATTERN, block=8, dropout=0.5)
    x = torch.randn(2, 16, 8)
    attn.eval()
    assert torch.equal(attn(x)[0], attn(x)[0])  # no dropout in eval mode
    attn.train()
    y1, y2 = attn(x)[0], attn(x)[0]
    assert mb.last_choice().name == "torch" and not torch.allclose(y1, y2)
    torch.manual_seed(9)
    a = attn(x)[0]
    torch.manual_seed(9)
    assert torch.equal(a, attn(x)[0])  # the mask seed comes from torch's generator
    ref = SparseSelfAttention(8, 2, PATTERN, block=8, dropout=0.5, backend="reference")
    with pytest.raises(ValueError, match="does not implement dropout"):
        ref(x)
    assert ref.eval()(x)[0].shape == x.shape


def test_is_causal_is_checked_against_the_pattern():
    attn = SparseSelfAttention(8, 2, PATTERN, block=8)
    assert attn(torch.randn(1, 9, 8), is_causal=True)[0].shape == (1, 9, 8)
    with pytest.raises(ValueError, match="is_causal=True"):
        SparseSelfAttention(8, 2, mc.window(2, 2), block=8)(torch.randn(1, 9, 8), is_causal=True)


class _TinyModel(nn.Module):
    def __init__(self, backend: str):
        super().__init__()
        self.blocks = nn.ModuleList(SparseSelfAttention(16, 4, PATTERN, backend=backend, block=8, num_kv_heads=2)
                                    for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(16) for _ in range(2))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        for attn, norm in zip(self.blocks, self.norms):
            x = x + attn(norm(x))[0]
        return self.head(x)


def test_a_small_model_trains_on_the_torch_backend_with_the_references_gradients():
    torch.manual_seed(4)
    model = _TinyModel("auto").double()
    twin = _TinyModel("reference").double()
    twin.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(3, 29, 16, dtype=torch.float64)
    y = torch.randint(0, 5, (3, 29))
    losses = []
    for step in range(4):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 5), y.reshape(-1))
        loss.backward()
        assert mb.last_choice().name == "torch"
        if step == 0:
            twin_loss = nn.functional.cross_entropy(twin(x).reshape(-1, 5), y.reshape(-1))
            twin_loss.backward()
            assert abs(loss.item() - twin_loss.item()) < 1e-12
            for (name, p), q in zip(model.named_parameters(), twin.parameters()):
                assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12), name
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
