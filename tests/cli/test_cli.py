"""The `maskc` command: compile, info, patterns, demo (reduced size), and its errors."""

import os
import subprocess
import sys

import pytest

import maskc as mc
from maskc.cli import main
from maskc.cli.demo import demo_patterns


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
    assert len(pngs) == len(demo_patterns())
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


def test_warmup_prints_progress(capsys):
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert "[1/4] row walk" in out and "ready in" in out


def test_query_offset_and_key_length_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "decode.npz"
    assert main(["compile", "causal() & window(8)", "--len", "1", "--kv-len", "300", "--q-offset", "299",
                 "--block", "64", "-o", str(out)]) == 0
    lay = mc.load(out)
    assert (lay.q_len, lay.kv_len, lay.q_offset) == (1, 300, 299)
    assert lay.to_dense()[0, 0].nonzero()[0].tolist() == list(range(291, 300))
    assert main(["info", str(out), "--q-offset", "3"]) == 2
    assert "apply to a pattern expression" in capsys.readouterr().err


def test_every_command_declares_the_same_source_arguments():
    from maskc.cli import COMMANDS, build_parser

    for command in ("compile", "info", "show", "check", "export"):
        parser = build_parser([command])
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--len", "--kv-len", "--q-offset", "--block"} <= options, command
        assert COMMANDS[command]


def test_a_command_imports_only_its_own_module():
    code = ("import sys; from maskc.cli import main; main(['info', 'causal() & window(64)', '--len', '4096']); "
            "print(sorted(m for m in ('maskc.viz', 'maskc.export', 'maskc.backends', 'maskc.planner', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
