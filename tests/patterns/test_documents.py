"""Documents, key padding and batches: segment ids, cu_seqlens and [B, kv_len] padding masks
(numpy, torch, lists), composition with any pattern, compact text that parses back, and
clear refusals of ids that do not describe documents."""

from __future__ import annotations

import numpy as np
import pytest

import maskc as mc
from _pattern_helpers import compiled_dense, lowered_dense  # noqa: E402


def _random_ids(rng, B, N, max_docs=6):
    rows = []
    for _ in range(B):
        cuts = np.sort(rng.choice(np.arange(1, N), size=rng.integers(0, max_docs), replace=False))
        rows.append(np.searchsorted(cuts, np.arange(N), side="right") * 7 + 3)  # values do not matter
    return np.stack(rows)


def _reference(ids, causal, pad=None):
    B, N = ids.shape
    want = (ids[:, :, None] == ids[:, None, :])
    if causal:
        want &= np.tril(np.ones((N, N), bool))[None]
    if pad is not None:
        want &= pad[:, None, :]
    return want[:, None]


@pytest.mark.parametrize("seed", range(4))
def test_document_mask_from_segment_ids_matches_the_rule(seed):
    rng = np.random.default_rng(seed)
    ids = _random_ids(rng, 3, 37)
    p = mc.document_mask(segment_ids=ids)
    assert p.n_batch == 3 and mc.parse(p.text()) == p
    want = _reference(ids, True)
    np.testing.assert_array_equal(p.dense(37), want)
    np.testing.assert_array_equal(lowered_dense(p, 37), want)
    pad = rng.random((3, 37)) < 0.8
    q = mc.prime_bird() & p & mc.key_padding(pad)
    want = _reference(ids, True, pad) & mc.prime_bird().dense(37)[None]
    np.testing.assert_array_equal(q.dense(37), want)
    np.testing.assert_array_equal(lowered_dense(q, 37), want)
    for b in range(3):
        np.testing.assert_array_equal(q.for_batch(b).dense(37), want[b])


def test_torch_inputs_and_cu_seqlens():
    torch = pytest.importorskip("torch", reason="torch is optional; checks tensor inputs")
    ids = torch.tensor([[0, 0, 1, 1, 1], [4, 4, 4, 4, 9]])
    assert mc.document_mask(segment_ids=ids) == mc.document_mask(lengths=[[2, 3], [4, 1]])
    assert mc.document_mask(cu_seqlens=torch.tensor([0, 2, 5], dtype=torch.int32)) == mc.document_mask([2, 3])
    assert mc.document_mask(cu_seqlens=[[0, 2, 5], [0, 4, 4, 5]]) == mc.document_mask([[2, 3], [4, 1]])
    assert mc.segments(ids=ids[0]) == mc.segments([2, 3])
    pad = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]])
    assert mc.key_padding(pad) == mc.key_padding(pad.bool().numpy())
    assert mc.key_padding(pad).text() == "key_padding(real=[[0, 1, 2], [range(1, 5)]], width=5)"


def test_text_stays_compact_and_parses_back():
    rng = np.random.default_rng(0)
    ids = _random_ids(rng, 8, 32768, max_docs=32)
    docs = mc.document_mask(segment_ids=ids)
    pad = np.ones((8, 32768), bool)
    pad[:, 30000:] = False
    pad[3, :100] = False
    p = mc.causal() & docs & mc.key_padding(pad)
    assert len(p.text()) < 3000  # run lengths, not 262,144 numbers
    assert mc.parse(p.text()) == p
    assert mc.parse(mc.segments(range(1, 1048576)).text()) == mc.segments(range(1, 1048576))


@pytest.mark.parametrize("call, err, match", [
    (lambda: mc.document_mask(segment_ids=[0, 0, 1, 0]), ValueError, "id 0 appears in two separate runs"),
    (lambda: mc.segments(ids=[[0, 0, 1], [3, 4, 3]]), ValueError, r"ids\[1\]: id 3 appears in two separate runs"),
    (lambda: mc.document_mask(segment_ids=np.zeros((2, 3, 4), int)), ValueError, "1-D"),
    (lambda: mc.document_mask(segment_ids=[0.0, 1.0]), TypeError, "must hold integers"),
    (lambda: mc.document_mask(segment_ids=[]), ValueError, "must not be empty"),
    (lambda: mc.document_mask(cu_seqlens=[1, 3]), ValueError, "must start at 0"),
    (lambda: mc.document_mask(cu_seqlens=[0, 4, 2]), ValueError, "never decrease"),
    (lambda: mc.document_mask(cu_seqlens=[0, 0]), ValueError, "no token"),
    (lambda: mc.document_mask([2], segment_ids=[0]), TypeError, "exactly one of"),
    (lambda: mc.document_mask(), TypeError, "exactly one of"),
    (lambda: mc.key_padding(np.array([0.5, 1.0])), TypeError, "bool"),
    (lambda: mc.key_padding(np.array([[[True]]])), ValueError, r"\[kv_len\] or \[batch, kv_len\]"),
    (lambda: mc.key_padding(real=[range(0, 9)], width=5), ValueError, r"\[0, width=5\)"),
    (lambda: mc.key_padding([True], width=3), TypeError, "width= goes with real="),
    (lambda: mc.segments([2], ids=[0]), TypeError, "exactly one"),
])
def test_bad_ids_and_masks_are_refused_clearly(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_key_padding_refuses_more_keys_than_its_width():
    p = mc.causal() & mc.key_padding([True, True, False])
    assert p.dense(3)[0, 2].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="covers 3 keys, but the pattern is evaluated at kv_len=5"):
        p.dense(5)
    with pytest.raises(ValueError, match="covers 3 keys"):
        lowered_dense(p, 5)


def test_all_padding_row_allows_no_key():
    p = mc.key_padding(np.array([[True, True, True], [False, False, False]]))
    assert p.dense(3)[1].sum() == 0 and p.dense(3)[0].all()
    assert p.text() == "key_padding(real=[[0, 1, 2], []], width=3)"


def test_batched_shapes_follow_layouts():
    one = mc.batched([mc.causal()])
    assert one.n_batch == 1 and one.dense(4).shape == (1, 4, 4)  # batch 1 broadcasts, like Layout.to_dense
    two = mc.heads([mc.causal(), mc.full()]) & mc.batched([mc.window(1), mc.full()])
    assert (two.n_batch, two.n_heads) == (2, 2) and two.dense(4).shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(two.dense(4)[1, 0], mc.causal().dense(4)[0])
    with pytest.raises(ValueError, match="different counts"):
        mc.batched([mc.causal()] * 2) & mc.batched([mc.causal()] * 3)
    with pytest.raises(ValueError, match="cannot be nested"):
        mc.batched([mc.batched([mc.causal()])])
    with pytest.raises(ValueError, match="out of range"):
        two.for_batch(2)


def test_huge_document_masks_compile_validate_and_save(tmp_path):
    """A compiled document_mask(range(1, 200000)) had a pattern text over 1 MiB and failed its own
    validate(); ranges now stay ranges."""
    p = mc.document_mask(range(1, 200000))
    lay = mc.compile(p, 4096, block=128)
    lay.validate()
    assert lay.pattern_text == "document_mask(causal=True, lengths=range(1, 200000))"
    lay.save(tmp_path / "docs.npz")
    assert mc.load(tmp_path / "docs.npz") == lay
    np.testing.assert_array_equal(lay.to_dense(), p.dense(4096))


def test_batched_document_masks_compile_to_batched_layouts():
    rng = np.random.default_rng(5)
    ids = _random_ids(rng, 4, 200, max_docs=8)
    pad = rng.random((4, 200)) < 0.9
    p = mc.causal() & mc.window(64) & mc.document_mask(segment_ids=ids) & mc.key_padding(pad)
    lay = mc.compile(p, 200, block=32)
    assert lay.batch == 4
    np.testing.assert_array_equal(lay.to_dense(), p.dense(200))
    np.testing.assert_array_equal(compiled_dense(p, 200, block=(16, 32)), p.dense(200))
