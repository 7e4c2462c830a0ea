"""The `maskc` command: compile, info, patterns, demo (reduced size), and its errors."""

import os

import pytest

import maskc as mc
from maskc.cli import main


def test_compile_then_info_from_file(tmp_path, capsys):
    out = tmp_path / "pb.npz"
    assert main(["compile", "causal() & (window(3) | offsets('primes'))", "--len", "1000", "--block", "64",
                 "-o", str(out)]) == 0
    lay = mc.load(out)
    assert lay == mc.compile(mc.causal() & (mc.window(3) | mc.offsets("primes")), 1000, block=64)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{lay.nnz_blocks:,}/{lay.n_qb * lay.n_kb:,}" in text
    assert "unique masks" in text


def test_info_expression(capsys):
    assert main(["info", "prime_bird()", "--len", "4096"]) == 0
    out = capsys.readouterr().out
    lay = mc.compile(mc.prime_bird(), 4096)
    assert "prime_bird(cap=None, global_tokens=2, window=3)" in out
    assert f"{lay.nnz_blocks:,}/1,024" in out


def test_patterns_lists_library_and_sequences(capsys):
    assert main(["patterns"]) == 0
    out = capsys.readouterr().out
    for name in ("prime_bird", "goldbach", "bigbird", "mian_chowla", "twin_primes"):
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["info", "window(3", "--len", "10"], "invalid syntax"),
    (["info", "missing.npz"], "does not exist"),
    (["info", "causal()", "--len", "0"], "q_len must be >= 1"),
])
def test_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_demo_reduced(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    rc = main(["demo", "--out", str(tmp_path), "--len", "512", "--block", "64", "--check-len", "64"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "every backend agrees with the float64 reference" in out
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    assert len(pngs) == len(__import__("maskc.cli.core", fromlist=["x"]).demo_patterns())
    assert all(os.path.getsize(tmp_path / f) > 5000 for f in pngs)
    assert mc.load(tmp_path / "prime_bird_512.npz").q_len == 512


def test_layout_from_arrays_inverts_layout_to_arrays():
    from maskc.errors import LayoutFormatError
    from maskc.ir.io import layout_from_arrays, layout_to_arrays

    lay = mc.compile(mc.heads([mc.prime_bird(), mc.window(5, 5)]), 300, block=32)
    arrs = layout_to_arrays(lay)
    assert layout_from_arrays(arrs) == lay
    arrs["col_idx"] = arrs["col_idx"] + 1000  # out of range: refused, naming the field
    with pytest.raises(LayoutFormatError, match="col_idx"):
        layout_from_arrays(arrs)
