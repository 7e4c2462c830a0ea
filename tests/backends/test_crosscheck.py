"""mc.backends.crosscheck and `maskc check`: good backends pass, wrong / NaN / crashing ones fail,
unavailable ones are skipped with a reason, and the CLI exit code follows the verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

import maskc as mc
import maskc.backends as mb
from maskc.backends.crosscheck import CrosscheckReport, rel_err
from maskc.cli import main

LAY = mc.Layout.from_dense(np.tril(np.ones((2, 40, 40), bool)) & (np.random.default_rng(0).random((2, 40, 40)) < 0.5), 16)



def _ref(q, k, v, layout, *, scale):
    return mb.get("reference").impl(q, k, v, layout, scale=scale)


def test_reference_scipy_jax_pass_forward_and_grads():
    rep = mb.crosscheck(LAY, backends=["reference", "scipy", "jax"], heads=2, kv_heads=1, batch=2)
    assert isinstance(rep, CrosscheckReport) and rep.passed, rep.table()
    assert rep.row("jax").dq is not None and rep.row("jax").dq <= 1e-5
    assert rep.row("scipy").dq is None and "forward only" in rep.row("scipy").reason
    assert rep.auto["numpy"] == "scipy"
    assert "jax" in str(rep) and "PASSED" in str(rep)


def test_bfloat16_skips_numpy_backends_with_a_reason():
    rep = mb.crosscheck(LAY, backends="scipy,jax", dtype="bf16")
    assert rep.row("scipy").status == "skipped" and "bfloat16" in rep.row("scipy").reason
    assert rep.row("jax").status == "pass" and rep.row("jax").tol == 1e-2
    assert rep.passed


def test_slightly_wrong_backend_fails(scratch):
    def off(q, k, v, layout, *, scale):
        out, lse = _ref(q, k, v, layout, scale=scale)
        return out * 1.001, lse

    mb.register("off", off, array="torch", grads=True)
    scratch.append("off")
    rep = mb.crosscheck(LAY, backends=["off"])
    row = rep.row("off")
    assert row.status == "fail" and not rep.passed
    assert 5e-4 < row.out < 2e-3  # the measured error is the injected one
    assert "above tolerance" in row.reason and "FAILED" in str(rep)


def test_nan_never_passes(scratch):
    def nan(q, k, v, layout, *, scale):
        out, lse = _ref(q, k, v, layout, scale=scale)
        out = out.copy()
        out[0, 0, 3, 0] = np.nan
        return out, lse

    mb.register("nanny", nan, array="numpy")
    scratch.append("nanny")
    rep = mb.crosscheck(LAY, backends=["nanny"])
    assert rep.row("nanny").status == "fail" and math.isnan(rep.row("nanny").out)


def test_crashing_backend_is_an_error_with_reason(scratch):
    def boom(q, k, v, layout, *, scale):
        raise RuntimeError("kernel exploded")

    mb.register("boom", boom, array="numpy")
    scratch.append("boom")
    rep = mb.crosscheck(LAY, backends=["boom", "reference"])
    assert rep.row("boom").status == "error" and "kernel exploded" in rep.row("boom").reason
    assert not rep.passed and len(rep.failed) == 1


def test_unavailable_backend_is_skipped_with_reason(scratch):
    mb.register("ghost", _ref, array="numpy", check=lambda: (False, "ghost library not installed"))
    scratch.append("ghost")
    rep = mb.crosscheck(LAY, backends=["ghost", "reference"])
    assert rep.row("ghost").status == "skipped" and "ghost library not installed" in rep.row("ghost").reason
    assert rep.passed and "ghost library not installed" in rep.table()


def test_only_skips_is_not_a_pass(scratch):
    mb.register("ghost", _ref, array="numpy", check=lambda: (False, "absent"))
    scratch.append("ghost")
    assert not mb.crosscheck(LAY, backends=["ghost"]).passed


def test_pattern_input_and_unknown_backend():
    rep = mb.crosscheck(mc.causal() & mc.window(5), backends=["scipy"], q_len=50, block=16)
    assert rep.passed and "q_len=50" in rep.layout
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        mb.crosscheck(LAY, backends=["nope"])


def test_inputs_are_fresh_and_seeded(scratch):
    seen = []

    def spy(q, k, v, layout, *, scale):
        seen.append(np.array(q))
        return _ref(q, k, v, layout, scale=scale)

    mb.register("spy", spy, array="numpy")
    scratch.append("spy")
    mb.crosscheck(LAY, backends=["spy"], seed=1)
    mb.crosscheck(LAY, backends=["spy"], seed=1)
    mb.crosscheck(LAY, backends=["spy"], seed=2)
    assert np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[0], seen[2])
    assert np.all(seen[0] != 0) and abs(float(seen[0].std()) - 1) < 0.2


def test_rel_err_rules():
    ref = np.array([1.0, -np.inf, 2.0])
    assert rel_err(np.array([1.0, -np.inf, 2.0]), ref) == 0
    assert rel_err(np.array([1.0, 0.0, 2.0]), ref) == math.inf  # -inf must match
    assert math.isnan(rel_err(np.array([np.nan, -np.inf, 2.0]), ref))
    assert rel_err(np.array([1e-7]), np.array([0.0]), floor=1.0) == pytest.approx(1e-7)


def test_cli_check_pattern_and_file(tmp_path, capsys):
    code = main(["check", "causal() & window(20)", "--len", "60", "--block", "16", "--backends", "scipy,reference", "--plain"])
    out = capsys.readouterr().out
    assert code == 0 and "scipy" in out and "PASSED" in out
    path = tmp_path / "lay.npz"
    LAY.save(path)
    code = main(["check", str(path), "--backends", "jax", "--dtype", "float16", "--no-grads", "--plain"])
    out = capsys.readouterr().out
    assert code == 0 and "float16" in out and "dq" in out


def test_cli_check_exit_code_1_on_failure(scratch, capsys):
    mb.register("off", lambda q, k, v, layout, *, scale: (_ref(q, k, v, layout, scale=scale)[0] * 1.1,
                                                         _ref(q, k, v, layout, scale=scale)[1]), array="numpy")
    scratch.append("off")
    assert main(["check", "causal()", "--len", "32", "--block", "16", "--backends", "off", "--plain"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_errors_and_backends(capsys, tmp_path):
    assert main(["check", "causal( &"]) == 2
    assert "error" in capsys.readouterr().err
    bad = tmp_path / "x.npz"
    assert main(["check", str(bad)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["backends"]) == 0
    assert "reference" in capsys.readouterr().out


def _hand_packed_layout():
    """A layout whose bitmasks are packed by hand, little-endian along keys (bit b of byte c = key c*8 + b).

    q_len 16, kv_len 20 (ragged key tail), block 16: query row r may attend key r % 8 (block 0)
    and key 16 + r % 4 (block 1, in the tail); row 15 has no key. Returns (layout, expected mask).
    """
    from maskc.ir.layout import PARTIAL, Layout

    masks = np.zeros((2, 16, 2), np.uint8)
    want = np.zeros((16, 20), bool)
    for r in range(15):
        masks[0, r, 0] = 1 << (r % 8)
        masks[1, r, 0] = 1 << (r % 4)
        want[r, r % 8] = want[r, 16 + r % 4] = True
    lay = Layout(q_len=16, kv_len=20, block_q=16, block_k=16, row_ptr=np.array([[0, 2]], np.int64),
                 col_idx=np.array([0, 1], np.int32), kind=np.array([PARTIAL, PARTIAL], np.int8),
                 partial_id=np.array([0, 1], np.int32), masks=masks)
    return lay.validate(), want


def test_every_backend_reads_partial_bits_little_endian_with_empty_row_and_gqa():
    lay, want = _hand_packed_layout()
    assert np.array_equal(lay.to_dense()[0], want)  # pins the reference's reading of the bits
    rep = mb.crosscheck(lay, heads=2, kv_heads=1, head_dim=16, scale=0.7)
    assert rep.passed, rep.table()
    ran = {r.backend for r in rep.rows if r.status == "pass"}
    assert {"reference", "scipy", "jax", "flex"} <= ran, rep.table()
    for r in rep.rows:  # nothing is skipped without a reason
        assert r.status != "skipped" or r.reason


def test_empty_row_has_zero_out_minus_inf_lse_and_zero_finite_grads():
    import torch

    lay, _ = _hand_packed_layout()
    names = ["reference"] + (["triton"] if mb.available()["triton"][0] else [])
    for name in names:
        q = torch.randn(1, 2, 16, 16, requires_grad=True)
        k, v = (torch.randn(1, 1, 20, 16, requires_grad=True) for _ in range(2))
        out, lse = mb.attention(q, k, v, lay, backend=name, return_lse=True)
        assert torch.all(out[:, :, 15] == 0) and torch.all(torch.isneginf(lse[:, :, 15])), name
        (out.sum() + torch.where(torch.isfinite(lse), lse, 0).sum()).backward()
        for t in (q, k, v):
            assert torch.isfinite(t.grad).all(), name
        assert torch.all(q.grad[:, :, 15] == 0), name


def test_sizes_the_truth_cannot_hold_are_refused_before_drawing_inputs(monkeypatch):
    import torch

    from maskc.backends import reference
    from maskc.errors import TooLargeError

    drawn = []
    real = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: drawn.append(a) or real(*a, **k))
    monkeypatch.setattr(reference, "MAX_SCORE_ELEMENTS", 1000)
    with pytest.raises(TooLargeError, match="MAX_SCORE_ELEMENTS"):
        mb.crosscheck(LAY, backends=["reference"])
    assert drawn == []
    with pytest.raises(ValueError, match="batch must be at least 1"):
        mb.crosscheck(LAY, backends=["reference"], batch=0)


def test_crosscheck_takes_a_diagonal_layout_and_skips_block_backends_with_the_reason():
    lay = mb.DiagonalLayout.from_offsets([0, 3, 7], q_len=40)
    rep = mb.crosscheck(lay, backends=["dia", "reference", "torch"], heads=4, kv_heads=2)
    assert rep.row("dia").status == "pass" and rep.row("reference").status == "pass"
    assert rep.row("torch").status == "skipped" and "takes blocks layouts" in rep.row("torch").reason
    assert rep.auto["torch"] == "dia"
