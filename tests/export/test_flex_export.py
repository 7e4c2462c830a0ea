"""FlexAttention BlockMask export / import against torch's own create_block_mask and flex_attention,
batched (B-dimensional) layouts included; importer inputs checked before use."""

from __future__ import annotations

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: FlexAttention export not checkable")
fa = pytest.importorskip("torch.nn.attention.flex_attention", reason="this torch has no FlexAttention")

import maskc as mc  # noqa: E402
from maskc.errors import MaskcError, TooLargeError  # noqa: E402
from maskc.export.flex import from_flex_block_mask, to_flex_block_mask  # noqa: E402
from maskc.ir.layout import Layout  # noqa: E402

LISTS = ("kv", "full_kv", "q", "full_q")


def valid_lists(bm, name):
    num, idx = getattr(bm, f"{name}_num_blocks"), getattr(bm, f"{name}_indices")
    return [idx[b, h, r, : int(num[b, h, r])].tolist() for b in range(num.shape[0]) for h in range(num.shape[1])
            for r in range(num.shape[2])]


def assert_same_block_lists(ours, ref):
    assert ours.BLOCK_SIZE == ref.BLOCK_SIZE and tuple(ours.seq_lengths) == tuple(ref.seq_lengths)
    for name in LISTS:
        assert getattr(ours, f"{name}_num_blocks").shape == getattr(ref, f"{name}_num_blocks").shape, name
        assert torch.equal(getattr(ours, f"{name}_num_blocks"), getattr(ref, f"{name}_num_blocks")), name
        assert valid_lists(ours, name) == valid_lists(ref, name), name


def documents(B: int, N: int, seed: int) -> np.ndarray:
    """Segment ids [B, N]: random document boundaries per batch element."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((B, N), np.int64)
    for b in range(B):
        cuts = np.sort(rng.choice(np.arange(1, N), size=min(N - 1, int(rng.integers(1, 5))), replace=False))
        ids[b, cuts] = 1
    return np.cumsum(ids, axis=1)


@pytest.mark.parametrize("B,H,N,block", [(3, 1, 100, 16), (2, 2, 77, (16, 32)), (4, 3, 64, 32)])
def test_batched_export_matches_create_block_mask_and_runs_in_flex_attention(B, H, N, block):
    seg = documents(B, N, seed=B * 100 + N)
    tseg = torch.from_numpy(seg)
    window = torch.tensor([5, 9, 1000])[:H]

    def mask_mod(b, h, q, k):
        return (tseg[b, q] == tseg[b, k]) & (q >= k) & (q - k < window[h])

    i, j = np.arange(N)[:, None], np.arange(N)[None, :]
    dense = np.stack([np.stack([(seg[b][:, None] == seg[b][None, :]) & (i >= j) & (i - j < int(window[h]))
                                for h in range(H)]) for b in range(B)])  # [B, H, N, N]
    lay = Layout.from_dense(dense, block).validate()
    assert (lay.batch, lay.heads) == (B, H)
    # the same layout stacked slice by slice
    assert Layout.from_slices([Layout.from_dense(dense[b, h], block) for b in range(B) for h in range(H)],
                              batch=B) == lay
    ours = to_flex_block_mask(lay)
    ref = fa.create_block_mask(mask_mod, B, H, N, N, device="cpu", BLOCK_SIZE=block)
    assert_same_block_lists(ours, ref)
    assert torch.equal(fa.create_mask(ours.mask_mod, B, H, N, N, device="cpu"), torch.from_numpy(dense))
    gen = torch.Generator().manual_seed(N)
    q, k, v = (torch.randn(B, H, N, 16, generator=gen) for _ in range(3))
    out = fa.flex_attention(q, k, v, block_mask=ours)
    ref_out = fa.flex_attention(q, k, v, block_mask=ref)
    s = (q.double() @ k.double().transpose(-1, -2)) / 4.0
    s = s.masked_fill(~torch.from_numpy(dense), float("-inf"))
    want = torch.softmax(s, -1) @ v.double()
    rel = float((out.double() - want).norm() / want.norm())
    assert rel < 1e-5 and float((ref_out.double() - want).norm() / want.norm()) < 1e-5, rel


def test_one_slice_layouts_broadcast_over_batch_and_heads():
    lay = mc.compile(mc.causal() & mc.window(20), q_len=90, block=16)
    bm = to_flex_block_mask(lay)
    assert bm.kv_num_blocks.shape[:2] == (1, 1)
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 3, 90, 8, generator=gen) for _ in range(3))  # distinct tensors (no aliasing)
    out = fa.flex_attention(q, k, v, block_mask=bm)
    ref = fa.flex_attention(q, k, v, block_mask=fa.create_block_mask(
        lambda b, h, qi, ki: (qi >= ki) & (qi - ki <= 20), None, None, 90, 90, device="cpu", BLOCK_SIZE=16))
    assert torch.allclose(out, ref, atol=1e-6)
    assert to_flex_block_mask(lay) is bm  # cached per layout and device


def test_export_is_refused_before_allocating_huge_grids():
    lay = mc.compile(mc.window(1), q_len=1 << 20, block=16)  # 65536 x 65536 blocks
    with pytest.raises(TooLargeError, match="BlockMask"):
        to_flex_block_mask(lay)


@pytest.mark.parametrize("N,block", [(100, 16), (77, (16, 32)), (129, 128)])
def test_import_never_evaluates_past_the_lengths(N, block):
    """attention-gym's document mask indexes a length-N tensor: padded positions would raise IndexError."""
    seg = torch.from_numpy(documents(1, N, seed=N)[0])

    def document_causal(b, h, q_idx, kv_idx):
        return (seg[q_idx] == seg[kv_idx]) & (q_idx >= kv_idx)

    ref = fa.create_block_mask(document_causal, None, None, N, N, device="cpu", BLOCK_SIZE=block)
    lay = from_flex_block_mask(ref)
    want = fa.create_mask(document_causal, 1, 1, N, N, device="cpu")[0].numpy()
    assert np.array_equal(lay.to_dense(), want)

    window = 10

    def global_sliding(b, h, q_idx, kv_idx):
        glob = torch.arange(N) < 3
        return glob[kv_idx] | glob[q_idx] | ((q_idx - kv_idx).abs() <= window)

    ref = fa.create_block_mask(global_sliding, None, None, N, N, device="cpu", BLOCK_SIZE=block)
    assert np.array_equal(from_flex_block_mask(ref).to_dense(),
                          fa.create_mask(global_sliding, 1, 1, N, N, device="cpu")[0].numpy())


def test_import_of_a_batched_block_mask_is_batched():
    B, N = 3, 70
    seg = torch.from_numpy(documents(B, N, seed=5))
    ref = fa.create_block_mask(lambda b, h, q, k: seg[b, q] == seg[b, k], B, 1, N, N, device="cpu", BLOCK_SIZE=16)
    lay = from_flex_block_mask(ref)
    assert lay.batch == B
    assert np.array_equal(lay.to_dense()[:, 0], (seg[:, :, None] == seg[:, None, :]).numpy())
    same = fa.create_block_mask(lambda b, h, q, k: q >= k, 2, 1, N, N, device="cpu", BLOCK_SIZE=16)
    assert from_flex_block_mask(same).batch == 1  # identical batch elements collapse


def _base_block_mask():
    lay = Layout.from_dense(np.random.default_rng(3).random((2, 40, 50)) < 0.4, 16)
    return lay, to_flex_block_mask(lay)


def _mutations(bm, rng):
    fields = {k: getattr(bm, k) for k in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
                                          "BLOCK_SIZE", "mask_mod", "seq_lengths")}
    tensors = [k for k in fields if k.endswith(("_blocks", "_indices"))]
    for _ in range(300):
        f = dict(fields)
        op = int(rng.integers(9))
        name = tensors[int(rng.integers(len(tensors)))]
        t = f[name].clone()
        if op == 0 and t.numel():
            t.view(-1)[int(rng.integers(t.numel()))] = int(rng.choice([-1, -(2**31), 2**31 - 1, 10**6, 3]))
            f[name] = t
        elif op == 1:
            f[name] = t.unsqueeze(0)
        elif op == 2:
            f["BLOCK_SIZE"] = [(0, 16), (16, 0), (-1, 16), (16,), (16, 16, 16), "16", (2**20, 16), (16.5, 16)][
                int(rng.integers(8))]
        elif op == 3:
            f["seq_lengths"] = [(0, 40), (-5, 40), (40,), None, (2**31, 50), (40, 2**40)][int(rng.integers(6))]
        elif op == 4:
            f[name] = t.float() + 0.5
        elif op == 5:
            f[name] = t[..., :1] if t.dim() else t
        elif op == 6:
            f[name] = None
        elif op == 7:
            f[name] = t.reshape(-1)
        else:
            f["kv_indices"] = torch.zeros_like(f["kv_indices"])  # every row lists block 0, maybe twice
        yield f


def test_importer_mutations_raise_only_documented_errors():
    _, bm = _base_block_mask()
    rng = np.random.default_rng(20260101)
    outcomes = {"ok": 0, "refused": 0}
    for f in _mutations(bm, rng):
        obj = types.SimpleNamespace(**f)
        try:
            from_flex_block_mask(obj, max_elements=1 << 22).validate()
            outcomes["ok"] += 1
        except (ValueError, TypeError):  # MaskcError, LayoutFormatError and TooLargeError are ValueErrors
            outcomes["refused"] += 1
    assert outcomes["refused"] > 150, outcomes
    with pytest.raises(TypeError, match="BlockMask"):
        from_flex_block_mask(object())


def test_import_refuses_huge_lengths_without_allocating():
    _, bm = _base_block_mask()
    lay = from_flex_block_mask(bm, q_len=40, kv_len=2**31 - 1)  # blocks are listed; nothing sized by kv_len
    assert lay.kv_len == 2**31 - 1 and lay.nnz_blocks == _base_block_mask()[0].nnz_blocks
    with pytest.raises(MaskcError, match="fewer"):
        from_flex_block_mask(bm, q_len=2**31 - 1, kv_len=50)
