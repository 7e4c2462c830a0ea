"""Pictures: terminal characters for a known layout, PNG files of the right size."""

import struct

import numpy as np
import pytest

import maskc as mc
from maskc.viz import block_grid, save_png, terminal_picture, token_window


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_terminal_picture_causal():
    lay = mc.compile(mc.causal(), q_len=64, block=16)
    lines = terminal_picture(lay).splitlines()
    assert lines[1:5] == ["▒···", "█▒··", "██▒·", "███▒"]
    assert "blocks 10/16" in lines[0] and lines[-1].startswith("█ full")


def test_terminal_picture_downsampled():
    lay = mc.compile(mc.causal() & mc.window(3), q_len=640, block=8)  # 80 x 80 blocks
    pic = terminal_picture(lay, max_width=20, legend=False).splitlines()
    assert "1 char = 4x4 blocks" in pic[0]
    rows = pic[1:]
    assert len(rows) == 20 and all(len(r) == 20 for r in rows)
    assert all(r[i] == "▒" for i, r in enumerate(rows))  # diagonal cells: mixed
    assert set("".join(rows)) <= {"▒", "·"}
    with pytest.raises(ValueError):
        terminal_picture(lay, head=1)


def test_block_grid_and_window_match_dense():
    p = mc.causal() & (mc.window(5) | mc.offsets("squares"))
    lay = mc.compile(p, q_len=150, block=16)
    dense = lay.to_dense()[0]
    g, f = block_grid(lay)
    assert f == 1 and g.shape == (10, 10)
    assert np.array_equal(token_window(lay, 0, 20, 90, 7, 150), dense[20:90, 7:150])
    with pytest.raises(ValueError, match="zoom window"):
        token_window(lay, 0, 0, 151, 0, 10)


def test_save_png_single_head(tmp_path):
    lay = mc.compile(mc.causal() & (mc.window(3) | mc.offsets("primes")), q_len=500, block=32)
    out = save_png(lay, tmp_path / "one.png", head=0, dpi=50)
    assert out.stat().st_size > 5000
    assert png_size(out) == (750, 230)  # 15 x 4.6 inches at 50 dpi


def test_save_png_grid_of_heads(tmp_path):
    p = mc.heads([mc.causal() & mc.window(20), mc.stride(8) | mc.ring_local(2), mc.causal()])
    lay = mc.compile(p, q_len=200, block=16)
    out = save_png(lay, tmp_path / "grid.png", zoom=(50, 120, 0, 100), dpi=40)
    assert png_size(out) == (600, 552)  # 3 rows of 4.6 inches
    with pytest.raises(ValueError, match="max_tokens"):
        save_png(lay, tmp_path / "x.png", zoom=(0, 200, 0, 200), max_tokens=64)


def test_cli_show(tmp_path, capsys):
    from maskc.cli import main

    png = tmp_path / "s.png"
    rc = main(["show", "causal() & window(3)", "--len", "256", "--block", "64", "--png", str(png)])
    assert rc == 0 and png.exists() and png.stat().st_size > 1000
    out = capsys.readouterr().out
    assert "▒···" in out and "wrote" in out
    lay_path = tmp_path / "lay.npz"
    mc.compile(mc.causal(), q_len=128, block=32).save(lay_path)
    assert main(["show", str(lay_path), "--width", "8"]) == 0
    assert "███▒" in capsys.readouterr().out
    assert main(["show", "causal()", "--len", "64", "--block", "16", "--head", "3"]) == 2


def test_degree_histogram_bins_do_not_alias():
    """Regression: 60 float-width bins over integer degrees 1..568 drew spikes (bins of 9 or 10 integers)."""
    from maskc.viz import degree_bins

    for lo, hi in [(1, 568), (0, 0), (5, 64), (0, 59), (0, 60), (7, 1000)]:
        e = degree_bins(lo, hi)
        assert e[0] == lo - 0.5 and e[-1] >= hi + 0.5 and len(e) - 1 <= 60
        widths = np.diff(e)
        assert np.all(widths == widths[0]) and widths[0] == int(widths[0])
