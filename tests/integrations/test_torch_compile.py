"""maskc attention under torch.compile(fullgraph=True): the custom ops, no graph break, no recompile."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch._dynamo  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

import maskc as mc  # noqa: E402
from maskc.backends import torch_ops  # noqa: E402

N, E, H, V = 40, 32, 2, 50


class TinyLM(torch.nn.Module):
    """Embedding, one maskc attention layer (residual), LM head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        self.qkv = torch.nn.Linear(E, 3 * E)
        self.out = torch.nn.Linear(E, E)
        self.head = torch.nn.Linear(E, V)

    def forward(self, x: torch.Tensor, layout) -> torch.Tensor:
        h = self.emb(x)
        B = x.shape[0]
        q, k, v = self.qkv(h).view(B, N, 3, H, E // H).permute(2, 0, 3, 1, 4)
        a = mc.attention(q, k, v, layout).transpose(1, 2).reshape(B, N, E)
        return self.head(h + self.out(a))


def document_layout(seed: int):
    """Causal attention within 4 random documents per batch element (a new mask each step)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((2, N), np.int64)
    for b in range(2):
        for c in rng.choice(np.arange(1, N), 3, replace=False):
            ids[b, c:] += 1
    return mc.compile(mc.causal() & mc.document_mask(segment_ids=ids), q_len=N, block=16)


def _fresh() -> None:
    torch._dynamo.reset()
    counters.clear()


def _train(model, layouts, steps: int) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for step in range(steps):
        x = torch.randint(0, V, (2, N), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        logits = model(x, layouts[step])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), x.roll(-1, 1).reshape(-1))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.slow
def test_tiny_lm_compiles_fullgraph_and_trains_like_eager() -> None:
    _fresh()
    torch.manual_seed(0)
    eager, compiled = TinyLM(), TinyLM()
    compiled.load_state_dict(eager.state_dict())
    layouts = [document_layout(s) for s in range(20)]
    assert len({lay.to_dense().tobytes() for lay in layouts}) == 20  # a new document mask every step
    layouts = [torch_ops.layout_tensors(lay) for lay in layouts]
    want = _train(eager, layouts, 20)
    got = _train(torch.compile(compiled, fullgraph=True), layouts, 20)
    rel = np.abs(np.array(got) - np.array(want)) / np.abs(np.array(want))
    assert rel.max() < 1e-5, (want, got)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1  # one compile: no recompile per step or per new document mask
    for p, q in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_custom_op_matches_float64_reference_forward_and_backward() -> None:
    lay = mc.compile(mc.causal() & (mc.window(5) | mc.global_tokens(2)), q_len=23, block=8)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 23, 8, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out, lse = torch_ops.attention(q.float(), k.float()[:, :2], v.float()[:, :2], torch_ops.layout_tensors(lay),
                                   return_lse=True)
    ref, ref_lse = mc.attention(q, k[:, :2], v[:, :2], lay, backend="reference", return_lse=True)
    assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-5
    assert ((lse.double() - ref_lse).norm() / ref_lse.norm()).item() < 1e-5
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((out.double() * w).sum() + lse.double().sum(), (q, k, v))
    want = torch.autograd.grad((ref * w).sum() + ref_lse.sum(), (q, k, v))
    for a, b in zip(got, want):
        assert torch.isfinite(a).all() and ((a - b).norm() / b.norm()).item() < 1e-5


def test_op_checks_and_fake_shapes() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    lt = torch_ops.layout_tensors(mc.compile(mc.causal(), q_len=12, block=4))
    with pytest.raises(ValueError, match="do not fit the layout"):
        torch_ops.attention(torch.randn(1, 1, 10, 4), torch.randn(1, 1, 10, 4), torch.randn(1, 1, 10, 4), lt)
    with pytest.raises(ValueError, match="over the bounds"):
        torch_ops.layout_tensors(mc.compile(mc.causal(), q_len=12, block=4), max_blocks=2)
    bad = torch_ops.LayoutTensors(lt.row_ptr, lt.col_idx + 50, *[getattr(lt, f) for f in
                                  ("kind", "partial_id", "masks", "q_len", "kv_len", "block_q", "block_k",
                                   "q_offset", "batch", "heads")])
    with pytest.raises(mc.LayoutFormatError):  # edited tensors: validated before the kernel reads them
        torch_ops.attention(torch.randn(1, 1, 12, 4), torch.randn(1, 1, 12, 4), torch.randn(1, 1, 12, 4), bad)
    q = torch.randn(1, 2, 12, 4, requires_grad=True)
    args = (q, q, q, lt.row_ptr, lt.col_idx, lt.kind, lt.partial_id, lt.masks, [12, 12, 4, 4, 0, 1], 0.5)
    torch.library.opcheck(torch.ops.maskc.block_sparse_attention.default, args)  # schema, fake impl, autograd
    with FakeTensorMode(allow_non_fake_inputs=True):
        out, lse = torch.ops.maskc.block_sparse_attention(torch.empty(1, 2, 12, 4), *args[1:])
        assert tuple(out.shape) == (1, 2, 12, 4) and tuple(lse.shape) == (1, 2, 12) and lse.dtype == torch.float32


def test_layout_constant_and_refusals_under_compile() -> None:
    _fresh()
    lay = mc.compile(mc.causal() & mc.window(4), q_len=12, block=4)
    q = torch.randn(1, 2, 12, 8)
    f = torch.compile(lambda q: mc.attention(q, q, q, lay, backend="torch"), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(f(q), mc.attention(q, q, q, lay, backend="torch"), rtol=1e-6, atol=1e-6)
    assert sum(counters["graph_break"].values()) == 0
    # a Layout passed as an argument is a guarded constant: another layout recompiles, never reuses the old one
    h = torch.compile(lambda q, lay: mc.attention(q, q, q, lay), fullgraph=True, backend="aot_eager")
    other = mc.compile(mc.causal(), q_len=12, block=4)
    for lt in (lay, other, lay):
        torch.testing.assert_close(h(q, lt), mc.attention(q, q, q, lt, backend="torch"), rtol=1e-6, atol=1e-6)
    g = torch.compile(lambda q: mc.attention(q, q, q, lay, backend="flex"), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="to_flex_block_mask"):
        g(q)


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_named_backends_run_as_one_opaque_node_under_fullgraph(backend: str) -> None:
    """Any other backend on a Layout (Triton here through its interpreter) is one graph node, forward and backward."""
    _fresh()
    lay = mc.compile(mc.causal() & (mc.window(5) | mc.cols([0])), q_len=40, block=16)
    q, k, v = (torch.randn(1, 2, 40, 16, requires_grad=True) for _ in range(3))
    f = torch.compile(lambda q, k, v: mc.attention(q, k, v, lay, backend=backend), fullgraph=True, backend="aot_eager")
    out = f(q, k, v)
    out.square().sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    ref = [t.detach().double().requires_grad_() for t in (q, k, v)]
    want = mc.attention(*ref, lay, backend="reference")
    want.square().sum().backward()
    tol = 1e-3 if backend == "triton" else 1e-6
    assert float((out.double() - want).norm() / want.norm()) < tol
    for g, r in zip(got, ref):
        assert float((g.double() - r.grad).norm() / r.grad.norm()) < tol


def test_sparse_self_attention_module_compiles_after_an_eager_call() -> None:
    from maskc.nn import SparseSelfAttention

    _fresh()
    torch.manual_seed(0)
    m = SparseSelfAttention(32, 4, mc.causal() & mc.window(8), num_kv_heads=2)
    x = torch.randn(2, 30, 32, requires_grad=True)
    cm = torch.compile(m, fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="call the module once eagerly"):
        cm(x)
    want = m(x)[0]
    gw = torch.autograd.grad(want.square().sum(), x)[0]
    got = cm(x)[0]
    gg = torch.autograd.grad(got.square().sum(), x)[0]
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gg, gw, rtol=1e-5, atol=1e-6)
    assert sum(counters["graph_break"].values()) == 0


@pytest.mark.slow
def test_flex_attention_with_an_exported_block_mask_compiles_fullgraph() -> None:
    """The flex route under compile: the BlockMask built outside, flex_attention traced (CPU: forward)."""
    from torch.nn.attention.flex_attention import flex_attention

    _fresh()
    lay = mc.compile(mc.causal() & (mc.window(4) | mc.global_tokens(1)), q_len=40, block=16)
    q = torch.randn(1, 2, 40, 16, generator=torch.Generator().manual_seed(3))
    f = torch.compile(lambda q, bm: flex_attention(q, q, q, block_mask=bm), fullgraph=True, backend="aot_eager")
    got = f(q, mc.export.to_flex_block_mask(lay))
    want = mc.attention(q.double(), q.double(), q.double(), lay, backend="reference")
    assert ((got.double() - want).norm() / want.norm()).item() < 1e-5
    assert sum(counters["graph_break"].values()) == 0
