"""mc.from_mask_mod against torch's create_block_mask / create_mask on attention-gym's mask_mods at odd lengths."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
flex = pytest.importorskip("torch.nn.attention.flex_attention", reason="this torch has no FlexAttention")

import maskc as mc  # noqa: E402
from maskc.errors import MaskcError  # noqa: E402


# ---- attention-gym's mask_mods (attn_gym/masks), written out: attn_gym is not installed here
def causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def sliding_window(window: int):
    def mod(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= window)
    return mod


def prefix_lm(prefix_length: int):
    def mod(b, h, q_idx, kv_idx):
        return (kv_idx < prefix_length) | (q_idx >= kv_idx)
    return mod


def document(inner, lengths: list[int]):
    """attn_gym.masks.document_mask.generate_doc_mask_mod: inner mask on in-document positions."""
    offsets = torch.tensor([0] + list(np.cumsum(lengths)), dtype=torch.int32)
    doc_id = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32), torch.tensor(lengths))

    def mod(b, h, q_idx, kv_idx):
        same = doc_id[q_idx] == doc_id[kv_idx]
        return same & inner(b, h, q_idx - offsets[doc_id[q_idx]], kv_idx - offsets[doc_id[kv_idx]])
    return mod


def dilated_sliding_window(window: int, dilation: int):
    def mod(b, h, q_idx, kv_idx):
        diff = torch.abs(q_idx - kv_idx)
        return (diff <= window) & (diff % dilation == 0)
    return mod


def per_head_window(windows: list[int]):
    w = torch.tensor(windows)

    def mod(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= w[h])
    return mod


def per_batch_documents(ids: torch.Tensor):
    def mod(b, h, q_idx, kv_idx):
        return (ids[b, q_idx] == ids[b, kv_idx]) & (q_idx >= kv_idx)
    return mod


N = 203  # documents summing to N: the mask_mod indexes length-N tensors (IndexError past N)
CASES = {
    "causal": (causal, None, None),
    "sliding_window": (sliding_window(19), None, None),
    "prefix_lm": (prefix_lm(37), None, None),
    "document_causal": (document(causal, [50, 71, 1, 81]), None, None),
    "dilated_sliding_window": (dilated_sliding_window(24, 3), None, None),
    "per_head_window": (per_head_window([5, 40]), None, 2),
    "per_batch_documents": (per_batch_documents(torch.tensor([[0] * 100 + [1] * 103, [0] * 7 + [1] * 196])), 2, None),
}


def _blocks(num, idx) -> set:
    num, idx = num.numpy(), idx.numpy()
    return {(b, h, r, int(idx[b, h, r, w])) for b, h, r in np.ndindex(*num.shape) for w in range(num[b, h, r])}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("q_len, kv_len, block", [(N, N, 32), (N - 66, N, 16)])
def test_matches_create_block_mask(name: str, q_len: int, kv_len: int, block: int) -> None:
    mod, B, H = CASES[name]
    lay = mc.from_mask_mod(mod, q_len, kv_len, B=B, H=H, block=block)
    bm = flex.create_block_mask(mod, B, H, q_len, kv_len, device="cpu", BLOCK_SIZE=block)
    dense = flex.create_mask(mod, B or 1, H or 1, q_len, kv_len, device="cpu").numpy()
    got = lay.to_dense().reshape(dense.shape)
    assert np.array_equal(got, dense)
    ours_full, ours_part = set(), set()
    for s in range(lay.n_slices):
        b, h = divmod(s, lay.heads)
        for r in range(lay.n_qb):
            for p in range(lay.row_ptr[s, r], lay.row_ptr[s, r + 1]):
                (ours_full if lay.kind[p] == mc.FULL else ours_part).add((b, h, r, int(lay.col_idx[p])))
    torch_full = _blocks(bm.full_kv_num_blocks, bm.full_kv_indices)
    torch_part = _blocks(bm.kv_num_blocks, bm.kv_indices)
    assert ours_full | ours_part == torch_full | torch_part  # the same block lists
    # FULL blocks agree, except that torch lists a block on a ragged tail as partial even when every valid
    # element of it is allowed (maskc: FULL)
    ragged = {x for x in ours_full if (x[2] + 1) * block > q_len or (x[3] + 1) * block > kv_len}
    assert torch_full == ours_full - ragged and ragged <= torch_part


def test_never_evaluated_past_the_lengths_and_bounded_chunks(monkeypatch) -> None:
    from maskc.integrations import flex_mask_mod

    seen = []

    def mod(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    real = flex_mask_mod._evaluate

    def spy(fn, B, H, r0, r1, kv_len, device, name):
        seen.append((r0, r1, kv_len))
        return real(fn, B, H, r0, r1, kv_len, device, name)

    monkeypatch.setattr(flex_mask_mod, "_evaluate", spy)
    monkeypatch.setattr(flex_mask_mod, "CHUNK_ELEMENTS", 8 * 101 * 2)
    lay = mc.from_mask_mod(mod, 99, 101, block=8)
    assert max(r1 for _, r1, _ in seen) == 99 and all(k == 101 for *_, k in seen)
    assert all(r1 - r0 <= 16 for r0, r1, _ in seen) and len(seen) == 7  # 2 block rows per chunk
    assert np.array_equal(lay.to_dense()[0], np.tril(np.ones((99, 101), bool)))


def test_changed_closure_data_gives_the_new_layout() -> None:
    ids = torch.zeros(64, dtype=torch.int64)

    def doc(b, h, q_idx, kv_idx):
        return (ids[q_idx] == ids[kv_idx]) & (q_idx >= kv_idx)

    before = mc.from_mask_mod(doc, 64, block=16)
    ids[32:] = 1
    after = mc.from_mask_mod(doc, 64, block=16)
    want = np.tril(np.ones((64, 64), bool))
    want[32:, :32] = False
    assert np.array_equal(after.to_dense()[0], want)
    assert not np.array_equal(before.to_dense()[0], after.to_dense()[0])


def test_errors_name_the_problem() -> None:
    with pytest.raises(TypeError, match="callable"):
        mc.from_mask_mod("causal", 8)
    with pytest.raises(TypeError, match="bool tensor"):
        mc.from_mask_mod(lambda b, h, q, kv: (q - kv).float(), 8)
    short = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(MaskcError, match="raised"):
        mc.from_mask_mod(lambda b, h, q, kv: short[q] == short[kv], 8)  # the mask_mod's own bug
    with pytest.raises(ValueError, match="q_len"):
        mc.from_mask_mod(causal, 0)
