"""Every example of the hostile-input issue, as a regression test: short inputs with unbounded
cost are refused or done in memory proportional to the result (tracemalloc counts numpy's
allocations), importers raise only documented errors, and answers agree."""

from __future__ import annotations

import io
import time
import tracemalloc
import types
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import maskc as mc
import maskc.backends as mb
import maskc.export as ex
from maskc.errors import LayoutFormatError, PatternSyntaxError, TooLargeError
from maskc.ir.io import dumps, layout_from_arrays, loads
from maskc.ir.layout import Layout
from maskc.limits import MAX_TEXT

pytestmark = pytest.mark.xdist_group("fuzz-examples")


def peak(fn):
    """(result or the exception raised, peak traced bytes, seconds) of fn()."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - the caller checks the type
            out = e
        return out, tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


def refused(fn, types_, match, max_bytes=16 << 20):
    out, used, _ = peak(fn)
    assert isinstance(out, types_), f"expected {types_}, got {type(out).__name__}: {out}"
    assert match in str(out), str(out)
    assert used < max_bytes, used


@pytest.mark.parametrize("text,match", [("riemann_zeros(K=100000)", "at most 1,000"),
                                        ("riemann_zeros(K=1010)", "at most 1,000"),
                                        ("heads(range(0, 1099511627776))", "at most 65,536")])
def test_short_texts_asking_for_unbounded_work_are_refused_up_front(text, match):
    refused(lambda: mc.parse(text), PatternSyntaxError, match, max_bytes=1 << 20)


def test_the_whole_zeta_table_parses_and_compiles():
    p, used, _ = peak(lambda: mc.compile(mc.parse("riemann_zeros(K=1000)"), q_len=512, block=64))
    assert isinstance(p, Layout) and used < 32 << 20


@pytest.mark.parametrize("text", ["document_mask(range(1, 1073741824))", "longformer(1, range(0, 1073741824))",
                                  "sparse_transformer_fixed(block=1048576, c=1048575)",
                                  "segments(range(1, 1099511627776))", "offsets(range(-1099511627776, 1))",
                                  "rows(1099511627776, shift=1099511627776)"])
def test_huge_arguments_cost_what_the_compiled_size_needs(text):
    p, used, _ = peak(lambda: mc.parse(text))
    assert used < 1 << 20 and mc.parse(p.text()) == p and len(p.text()) < 2 * len(text) + 64
    lay, used, _ = peak(lambda: mc.compile(p, 100, block=16, cache=False))
    assert isinstance(lay, Layout), lay
    assert used < 32 << 20, used  # offsets / rows once asked numpy for 8 TiB
    np.testing.assert_array_equal(lay.to_dense(), p.dense(100))


def test_a_two_billion_token_causal_compile_is_refused_before_allocating():
    refused(lambda: mc.compile(mc.causal(), q_len=2**31 - 1, block=4096), TooLargeError, "max_bytes")


def test_primeformer_heads_4096_compiles_without_a_system_error():
    p = mc.primeformer_heads(4096)
    lay, used, _ = peak(lambda: mc.compile(p, q_len=64, block=4096, cache=False))
    assert isinstance(lay, Layout), lay  # was SystemError: CPUDispatcher(block_bits) returned ...
    assert lay.heads == 4096 and used < 128 << 20
    np.testing.assert_array_equal(lay.to_dense(), p.dense(64))


@pytest.mark.parametrize("block", [1, 8])
def test_a_small_file_declaring_kv_len_2_31_loads_in_memory_of_its_size(block):
    kv = 2**31 - 1
    n_kb = -(-kv // block)
    lay = Layout.from_blocks(2 * block, kv, block, [0] * 4, [0, 0, 1, 1], [0, n_kb - 1] * 2)
    blob = dumps(lay)
    assert len(blob) < 4096
    back, used, _ = peak(lambda: loads(blob))
    assert back == lay and used < 8 << 20, used  # was 2.2 GB (block 8) / MemoryError (block 1)


def _npz_with_streamed_member(arrs: dict, name: str, header_shape: tuple, n_bytes: int) -> bytes:
    """An npz whose ``name`` member is a compressed .npy of ``n_bytes`` zeros, written in chunks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in arrs.items():
            if k != name:
                with z.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, v)
        with z.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": header_shape})
            zeros = bytes(1 << 20)
            for _ in range(n_bytes >> 20):
                f.write(zeros)
    return buf.getvalue()


@pytest.mark.parametrize("mib", [256, 512])
def test_a_compressed_bomb_is_refused_without_inflating_it(mib):
    """A 263 KB file used to load in 5 s at 2.45 GB; a 524 KB one raised numpy's MemoryError."""
    lay = mc.compile(mc.causal() & mc.window(3), q_len=64, block=8)
    arrs = lay.to_arrays()
    n = (mib << 20) // (8 * 1)
    blob = _npz_with_streamed_member(arrs, "masks", (n, 8, 1), mib << 20)
    assert len(blob) < 1 << 20
    out, used, _ = peak(lambda: loads(blob))
    assert isinstance(out, LayoutFormatError), out
    assert used < 32 << 20, used


def test_interval_exports_of_a_million_token_causal_layout_are_bounded():
    lay = mc.compile(mc.causal(), q_len=1 << 20, block=1024)
    refused(lambda: ex.to_scipy(lay), TooLargeError, "allowed pairs", max_bytes=64 << 20)
    (d, used, _) = peak(lambda: ex.to_magi(lay))
    assert d["q_ranges"].tolist() == [[0, 1 << 20]] and used < 64 << 20
    (f, used, _) = peak(lambda: ex.to_flashmask(lay))  # its output is one int32 per query row
    assert (f["startend_row_indices"] == 1 << 20).all() and used < 160 * (1 << 20), used


def _flex_fields(lay: Layout, **changes) -> types.SimpleNamespace:
    bm = ex.to_flex_block_mask(lay)
    keys = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices", "BLOCK_SIZE", "mask_mod",
            "seq_lengths")
    return types.SimpleNamespace(**{**{k: getattr(bm, k) for k in keys}, **changes})


def test_flex_import_with_a_huge_kv_len_costs_its_blocks():
    lay = mc.compile(mc.causal(), q_len=256, block=128)
    assert ex.from_flex_block_mask(ex.to_flex_block_mask(lay)) == lay  # first use imports torch's flex modules
    out, used, _ = peak(lambda: ex.from_flex_block_mask(ex.to_flex_block_mask(lay), kv_len=2**31 - 1))
    assert isinstance(out, Layout) and out.kv_len == 2**31 - 1 and used < 16 << 20, (out, used)
    refused(lambda: ex.from_flex_block_mask(ex.to_flex_block_mask(lay), kv_len=2**31), ValueError, "kv_len")


def test_flashinfer_variable_with_one_huge_block_costs_its_blocks():
    out, used, _ = peak(lambda: ex.from_flashinfer_variable(np.ones((1, 1, 1), bool), [[16384]], [[16384]],
                                                            block=128))
    assert isinstance(out, Layout) and out.n_full == 128 * 128 and used < 32 << 20, (out, used)


def test_reference_backend_counts_every_broadcast_head():
    lay = mc.compile(mc.causal(), 32, block=32)
    q = torch.randn(1, 1, 32, 32).expand(1, 10**6, 32, 32)
    refused(lambda: mc.attention(q, q, q, lay, backend="reference"), TooLargeError, "MAX_BYTES")


@pytest.mark.parametrize("shape", [(5,), (5, 5, 5), {"q": 5}, (0, 5), (5, -1), ("5", 5), 5, (2**40, 6)])
def test_from_scipy_bad_shape_is_documented(shape):
    out, _, _ = peak(lambda: ex.from_scipy(sp.eye(6, format="csr"), block=4, shape=shape))
    assert isinstance(out, (ValueError, TypeError)), f"{type(out).__name__}: {out}"


@pytest.mark.parametrize("change", ["index -1", "extra dimension", "BLOCK_SIZE (0, 16)", "BLOCK_SIZE (16, 0)",
                                    "num above width"])
def test_from_flex_block_mask_hostile_fields_are_documented(change):
    lay = mc.compile(mc.causal() & mc.window(20), q_len=64, block=16)
    bm = ex.to_flex_block_mask(lay)
    idx, num = bm.kv_indices.clone(), bm.kv_num_blocks.clone()
    fields = {"index -1": {"kv_indices": idx.fill_(-1)}, "extra dimension": {"kv_indices": idx[None]},
              "BLOCK_SIZE (0, 16)": {"BLOCK_SIZE": (0, 16)}, "BLOCK_SIZE (16, 0)": {"BLOCK_SIZE": (16, 0)},
              "num above width": {"kv_num_blocks": num + 100}}[change]
    out, _, _ = peak(lambda: ex.from_flex_block_mask(_flex_fields(lay, **fields)))
    assert isinstance(out, (ValueError, TypeError)), f"{type(out).__name__}: {out}"


def test_paley_sums_compile_to_their_dense_definition():
    p = mc.parse("sums('paley_residues')")
    np.testing.assert_array_equal(mc.compile(p, 31, block=128).to_dense(), p.dense(31))  # 424 of 961 differed


@pytest.mark.parametrize("name,lib", [("reference", "numpy"), ("reference", "torch"), ("scipy", "numpy"),
                                      ("jax", "jax"), ("flex", "torch"), ("torch", "torch"), ("triton", "torch")])
def test_non_finite_values_at_unattended_keys_leave_empty_rows_exactly_zero(name, lib):
    ok, why = mb.available()[name]
    if not ok:
        pytest.skip(f"{name} is not available here: {why}")
    m = np.tril(np.ones((32, 32), bool), -1)  # row 0 attends nothing, key 31 is attended by no row
    lay = Layout.from_dense(m, 16)
    g = np.random.default_rng(0)
    q, k, v = (g.normal(size=(1, 2, 32, 16)).astype(np.float32) for _ in range(3))
    k[:, :, 31], v[:, :, 31] = np.nan, np.inf
    if lib == "torch":
        args = [torch.from_numpy(x) for x in (q, k, v)]
    elif lib == "jax":
        import jax.numpy as jnp

        args = [jnp.asarray(x) for x in (q, k, v)]
    else:
        args = [q, k, v]
    out, lse = mc.attention(*args, lay, backend=name, return_lse=True)
    out = np.asarray(out.detach() if hasattr(out, "detach") else out)
    lse = np.asarray(lse.detach() if hasattr(lse, "detach") else lse)
    assert (out[:, :, 0] == 0).all() and np.isneginf(lse[:, :, 0]).all()
    assert np.isfinite(out[:, :, 1:]).all()


def test_a_compiled_long_document_mask_validates_and_saves(tmp_path):
    p = mc.parse("document_mask(range(1, 200000))")
    lay = mc.compile(p, q_len=4096, block=256)
    assert len(lay.pattern_text) < 100
    lay.validate().save(tmp_path / "doc.npz")
    assert mc.load(tmp_path / "doc.npz") == lay
    np.testing.assert_array_equal(lay.to_dense(), p.dense(4096))


@pytest.mark.parametrize("text", ["segments(range(1, 1048576))", " | ".join(f"window({k})" for k in range(70)),
                                  " & ".join(f"~stride({k + 2})" for k in range(300)),
                                  "heads([" + ", ".join(f"window({k})" for k in range(2000)) + "])"])
def test_canonical_texts_are_compact_and_parse_back(text):
    p = mc.parse(text)
    t = p.text()
    assert len(t) <= min(MAX_TEXT, 2 * len(text) + 64)
    assert mc.parse(t) == p


@pytest.mark.parametrize("text,bad", [("'é' + causal()", "+"), ("causal() & (window(2) * 3)", "*"),
                                      ("window(1) |\n 'ü' ^ causal()", "^"), ("ééé(1)", "é"),
                                      ("global_tokens([-8, 27, -5, 38,", None), ("rows([([([", None)])
def test_parse_errors_point_at_the_offending_character(text, bad):
    with pytest.raises(PatternSyntaxError) as info:
        mc.parse(text)
    e = info.value
    pos = text.index(bad) if bad else text.rindex("[")  # None: ends early, the bracket never closed (IndexError)
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    assert (e.line, e.column) == (line, col), (e.line, e.column, str(e))


def test_layout_from_arrays_refuses_what_load_refuses():
    lay = mc.compile(mc.causal(), 20, block=8)
    buf = io.BytesIO()
    np.savez(buf, **lay.to_arrays())
    with np.load(io.BytesIO(buf.getvalue())) as f:
        with pytest.raises(LayoutFormatError):
            layout_from_arrays(f)  # an open NpzFile (any member compression, duplicates) goes through mc.load
    d = lay.to_arrays()
    d["row_ptr"] = d["row_ptr"].astype(">i8")
    for fn in (lambda: layout_from_arrays(d), lambda: loads(dumps_npz(d))):
        with pytest.raises(LayoutFormatError, match="row_ptr"):
            fn()


def dumps_npz(arrs: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrs)
    return buf.getvalue()


@pytest.mark.parametrize("text", [
    "cols('primes', period=1073741824, shift=1073741600)",
    "rows('squares', shift=536870912)",
    "offsets('primes', shift=1000000000)",
])
def test_named_sequence_work_is_bounded_by_the_positions_not_the_shift_or_period(text: str) -> None:
    """Found by the long fuzz run: a named sequence was generated up to shift + period (a sieve of 2**30)."""
    try:
        p = mc.parse(text)
    except (ValueError, TypeError):
        return  # refused at parse time: also bounded
    for call in (lambda: p.dense(8, 96), lambda: mc.compile(p, 96, block=16, cache=False)):
        out, used, took = peak(call)
        if isinstance(out, Exception):
            assert isinstance(out, TooLargeError) and "shift or period" in str(out), repr(out)
        else:
            assert out is not None
        assert took < 2.0 and used < 64 << 20, (took, used)


def test_interval_importers_refuse_huge_lengths_before_allocating() -> None:
    """Found by the fuzz rerun: from_magi with two slices and total_seqlen 2**31 - 1 asked for 32 GiB of run pointers."""
    magi = (np.array([[0, 4], [4, 8]]), np.array([[0, 4], [0, 8]]), np.array([0, 1]), 2**31 - 1, 2**31 - 1)
    t = time.perf_counter()
    refused(lambda: ex.from_magi(*magi), TooLargeError, "run pointers")
    assert time.perf_counter() - t < 1.0


def test_a_row_that_fills_the_slot_table_grows_the_slot_table() -> None:
    """Found by the final long fuzz run: a row that filled the compiler's slot table mid-row was taken
    for a full kept-runs array, which then doubled up to the budget (1-10 GB reserved, then TooLargeError)."""
    p = mc.parse("(mian_chowla_bird() & document_mask([18, 1]) | mian_chowla_bird() | riemann_zeros(19) | "
                 "attention_sinks(0, 2147483648) & heads([rows('mersenne'), quadratic_residue()]))")
    lay, used, took = peak(lambda: mc.compile(p, 70, block=3, cache=False))
    assert isinstance(lay, mc.Layout), repr(lay)
    np.testing.assert_array_equal(lay.to_dense(), p.dense(70))
    assert used < 64 << 20, used
    assert took < 30.0  # generous: the first call may build numba kernels
