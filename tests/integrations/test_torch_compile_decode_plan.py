"""mc.decode_attention and a Plan under torch.compile(fullgraph=True): one opaque op each, 0 graph breaks."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch._dynamo  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

import maskc as mc  # noqa: E402
from maskc.backends import opaque_op  # noqa: E402
from maskc.planner import plan  # noqa: E402

PATTERN = mc.causal() & (mc.window(5) | mc.global_tokens(2) | mc.offsets([11, 17]))
L, E, H, HKV, V = 40, 32, 4, 2, 50
D = E // H


def _fresh() -> None:
    torch._dynamo.reset()
    counters.clear()


def _breaks() -> int:
    return sum(counters["graph_break"].values())


def _rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _reference_rows(q, k, v, pattern, position: int):
    """float64 softmax of q (rows position .. position+T-1) over the cache under the pattern's rows."""
    T = q.shape[2]
    mask = torch.from_numpy(pattern.dense(T, position + T, q_offset=position))  # [T, position + T]
    g = q.shape[1] // k.shape[1]
    kk = k.double()[:, :, : position + T].repeat_interleave(g, 1)
    vv = v.double()[:, :, : position + T].repeat_interleave(g, 1)
    s = (q.double() @ kk.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ vv


class TinyDecoder(torch.nn.Module):
    """Embedding, one maskc decode-attention layer over a preallocated KV cache, LM head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        self.q = torch.nn.Linear(E, E)
        self.kv = torch.nn.Linear(E, 2 * HKV * D)
        self.head = torch.nn.Linear(E, V)

    def forward(self, x, position, k_cache, v_cache):
        """x [B, 1] tokens at ``position`` (a 0-d int64 tensor); the caches are written in place."""
        h = self.emb(x)  # [B, 1, E]
        B = x.shape[0]
        q = self.q(h).view(B, 1, H, D).transpose(1, 2)
        k, v = self.kv(h).view(B, 1, 2, HKV, D).permute(2, 0, 3, 1, 4)
        k_cache.index_copy_(2, position.view(1), k)
        v_cache.index_copy_(2, position.view(1), v)
        a = mc.decode_attention(q, k_cache, v_cache, PATTERN, position)
        return self.head(h + a.transpose(1, 2).reshape(B, 1, E))


def _greedy(model, steps: int) -> tuple[list[list[int]], list[torch.Tensor]]:
    k_cache, v_cache = torch.zeros(2, HKV, L, D), torch.zeros(2, HKV, L, D)
    x = torch.tensor([[3], [7]])
    tokens, logits = [], []
    with torch.no_grad():
        for p in range(steps):
            out = model(x, torch.tensor(p), k_cache, v_cache)
            logits.append(out)
            x = out.argmax(-1)
            tokens.append(x[:, 0].tolist())
    return tokens, logits


def test_decode_loop_of_a_tiny_model_compiles_once() -> None:
    _fresh()
    torch.manual_seed(0)
    model = TinyDecoder()
    want_tokens, want = _greedy(model, 32)
    got_tokens, got = _greedy(torch.compile(model, fullgraph=True, backend="aot_eager"), 32)
    assert got_tokens == want_tokens
    assert max(_rel(a, b) for a, b in zip(got, want)) < 1e-5
    assert _breaks() == 0, dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1  # 32 steps, position as a tensor: one graph


def test_compiled_decode_steps_equal_eager_and_float64_with_grads() -> None:
    _fresh()
    g = torch.Generator().manual_seed(1)
    kc, vc = (torch.randn(1, HKV, L, D, generator=g, requires_grad=True) for _ in range(2))

    def step(q, k, v, pos):
        return mc.decode_attention(q, k, v, PATTERN, pos, return_lse=True)

    f = torch.compile(step, fullgraph=True, backend="aot_eager")
    for p, T in [(0, 1), (9, 1), (20, 4), (35, 1), (36, 4)]:  # decode steps and prefill chunks (T = 4)
        q = torch.randn(1, H, T, D, generator=g, requires_grad=True)
        (out, lse), (want, want_lse) = f(q, kc, vc, torch.tensor(p)), step(q, kc, vc, p)
        assert lse.dtype == torch.float32 and tuple(lse.shape) == (1, H, T)
        assert _rel(out, want) < 1e-6 and _rel(lse, want_lse) < 1e-6
        assert _rel(out, _reference_rows(q, kc, vc, PATTERN, p)) < 1e-5
        w = torch.randn(out.shape, generator=g)
        got_g = torch.autograd.grad((out * w).sum() + lse.sum(), (q, kc, vc))
        want_g = torch.autograd.grad((want * w).sum() + want_lse.sum(), (q, kc, vc))
        for a, b in zip(got_g, want_g):
            assert torch.isfinite(a).all() and _rel(a, b) < 1e-5
    assert _breaks() == 0
    assert counters["stats"]["unique_graphs"] == 2  # one graph per query length T (1 and 4)


def test_int_positions_recompile_at_most_once_and_per_batch_positions_work() -> None:
    _fresh()
    kc = torch.randn(2, HKV, L, D, generator=torch.Generator().manual_seed(2))
    f = torch.compile(lambda q, p: mc.decode_attention(q, kc, kc, PATTERN, p), fullgraph=True, backend="aot_eager")
    for p in range(8, 40):  # 32 steps with a Python int position
        q = torch.randn(2, H, 1, D)
        torch.testing.assert_close(f(q, p), mc.decode_attention(q, kc, kc, PATTERN, p), rtol=1e-6, atol=1e-6)
    assert _breaks() == 0
    assert counters["stats"]["unique_graphs"] <= 2  # the first int is a constant, then dynamo makes it symbolic
    _fresh()
    h = torch.compile(lambda q, p, n: mc.decode_attention(q, kc, kc, PATTERN, p, kv_len=n), fullgraph=True,
                      backend="aot_eager")
    for p in range(8, 40):  # kv_len changing every step (here: every key so far and the next two)
        q, n = torch.randn(2, H, 1, D), min(p + 3, L)
        want = mc.decode_attention(q, kc, kc, PATTERN, p, kv_len=n)
        torch.testing.assert_close(h(q, torch.tensor(p), n), want, rtol=1e-6, atol=1e-6)
    assert _breaks() == 0 and counters["stats"]["unique_graphs"] <= 2
    pos = torch.tensor([39, 12])  # one position per batch element
    q = torch.randn(2, H, 1, D)
    torch.testing.assert_close(f(q, pos), mc.decode_attention(q, kc, kc, PATTERN, pos), rtol=1e-6, atol=1e-6)


def test_decode_refusals_under_compile() -> None:
    _fresh()
    kc = torch.randn(1, HKV, L, D)
    q = torch.randn(1, H, 1, D)
    f = torch.compile(lambda q: mc.decode_attention(q, kc, kc, PATTERN, 3, backend="scipy"), fullgraph=True,
                      backend="aot_eager")
    with pytest.raises(Exception, match="does not run decode_attention under torch.compile"):
        f(q)
    g = torch.compile(lambda q, p: mc.decode_attention(q, kc, kc, PATTERN, p), fullgraph=True, backend="aot_eager")
    with pytest.raises(ValueError, match="exceeds the cache length"):  # checked inside the op, at run time
        g(q, torch.tensor(L))


def _plans():
    return [
        plan(mc.causal() & (mc.ring_local(6) | mc.stride(4) | mc.global_tokens(2)), 72, block=16,
             allow_whole=False, force={"band": "dia", "stride4": "residue"}),
        plan(mc.heads([mc.causal() & mc.window(8), mc.causal() & mc.stride(8), mc.causal() & mc.window(3),
                       mc.causal() & (mc.window(2) | mc.global_tokens(1))]), 72, block=16, allow_whole=False),
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_plan_compiles_fullgraph_equal_to_eager_and_float64(which: int) -> None:
    pl = _plans()[which]
    lowerings = {p.lowering for hp in pl.heads for p in hp.parts}
    assert lowerings >= ({"dia", "residue", "gather"} if which == 0 else {"bsr", "residue", "gather"})
    _fresh()
    proj = torch.nn.Linear(D, D)

    def f(q, k, v):
        out, lse = mc.attention(proj(q), k, v, pl, return_lse=True)
        return out, lse

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    whole = mc.compile(pl.pattern, 72, block=16, heads=pl.pattern.n_heads)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # new data each call: the same graph
        q = torch.randn(2, H, 72, D, generator=g, requires_grad=True)
        k, v = (torch.randn(2, HKV, 72, D, generator=g, requires_grad=True) for _ in range(2))
        (out, lse), (want, want_lse) = cf(q, k, v), f(q, k, v)
        assert _rel(out, want) < 1e-6 and _rel(lse, want_lse) < 1e-6
        ref = mc.attention(proj(q).double(), k.double(), v.double(), whole, backend="reference")
        assert _rel(out, ref) < 1e-5
        w = torch.randn(out.shape, generator=g)
        got_g = torch.autograd.grad((out * w).sum(), (q, k, v, proj.weight))
        want_g = torch.autograd.grad((want * w).sum(), (q, k, v, proj.weight))
        for a, b in zip(got_g, want_g):
            assert torch.isfinite(a).all() and _rel(a, b) < 1e-5
    assert _breaks() == 0, dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1


def test_plan_under_compile_checks_lengths() -> None:
    _fresh()
    pl = _plans()[0]
    f = torch.compile(lambda q: pl.run(q, q, q), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="plan is for q_len=72"):
        f(torch.randn(1, 1, 64, 8))


def test_registered_op_schema_and_refusals() -> None:
    pos = torch.tensor(9)
    q = torch.randn(1, H, 1, D, requires_grad=True)
    kc = torch.randn(1, HKV, L, D, requires_grad=True)
    token = importlib.import_module("maskc.decode.attention")._runner_token(PATTERN, "auto", None, 128)
    torch.library.opcheck(torch.ops.maskc.registered_attention.default, (q, kc, kc, pos, [-1], token))
    detached = opaque_op.register_runner(("test-detached",), lambda q, k, v, e, i: (q.detach() * 1, q.detach()[..., 0]))
    out, _ = opaque_op.registered_attention(q, kc, kc, None, [], detached)
    with pytest.raises(RuntimeError, match="has no autograd: pass backend='torch'"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="no maskc runner"):
        opaque_op.registered_attention(q, kc, kc, None, [], "runner-unknown")
    assert np.isfinite(out.detach().numpy()).all()


def test_sparse_self_attention_over_a_plan_compiles_without_a_warm_up() -> None:
    from maskc.nn import SparseSelfAttention

    _fresh()
    torch.manual_seed(0)
    m = SparseSelfAttention(32, 4, _plans()[0], num_kv_heads=2)
    x = torch.randn(2, 72, 32, requires_grad=True)
    got = torch.compile(m, fullgraph=True, backend="aot_eager")(x)[0]  # first call compiled: a plan needs no numba
    gg = torch.autograd.grad(got.square().sum(), x)[0]
    want = m(x)[0]
    gw = torch.autograd.grad(want.square().sum(), x)[0]
    assert _rel(got, want) < 1e-6 and _rel(gg, gw) < 1e-5
    assert _breaks() == 0 and counters["stats"]["unique_graphs"] == 1


def test_a_cache_grown_by_cat_gives_a_bounded_number_of_graphs() -> None:
    _fresh()
    pattern = mc.causal() & (mc.window(5) | mc.global_tokens(2))

    def step(q, k_new, v_new, kc, vc, pos):
        kc, vc = torch.cat([kc, k_new], 2), torch.cat([vc, v_new], 2)
        return mc.decode_attention(q, kc, vc, pattern, pos), kc, vc

    f = torch.compile(step, fullgraph=True, backend="aot_eager")
    g = torch.Generator().manual_seed(4)
    kc = vc = torch.zeros(1, HKV, 0, D)
    for p in range(32):
        q, kn, vn = torch.randn(1, H, 1, D, generator=g), *torch.randn(2, 1, HKV, 1, D, generator=g)
        want = mc.decode_attention(q, torch.cat([kc, kn], 2), torch.cat([vc, vn], 2), pattern, p)
        out, kc, vc = f(q, kn, vn, kc, vc, torch.tensor(p))
        assert _rel(out, want) < 1e-6
    assert _breaks() == 0
    assert counters["stats"]["unique_graphs"] == 3  # cache lengths 0, 1 specialised, then symbolic
