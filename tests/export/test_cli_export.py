"""``maskc export``: files written for each format read back to the same layout."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import maskc as mc
import maskc.export as ex
from maskc.cli import main


def test_export_flashinfer_expr_roundtrip(tmp_path, capsys):
    out = tmp_path / "fi.npz"
    assert main(["export", "causal() & window(40)", "--len", "200", "--block", "32", "--to", "flashinfer",
                 "-o", str(out)]) == 0
    assert "indptr" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    lay = mc.compile(mc.parse("causal() & window(40)"), q_len=200, block=32)
    back = ex.from_flashinfer_bsr(d["indptr"], d["indices"], int(d["M"]), int(d["N"]), int(d["R"]), int(d["C"]),
                                  d.get("mask"))
    assert np.array_equal(back.to_dense(), lay.to_dense())


def test_export_from_file_to_safetensors_and_npy(tmp_path):
    src = tmp_path / "c.safetensors"
    assert main(["export", "causal()", "--len", "96", "--block", "32", "--to", "maskc", "-o", str(src)]) == 0
    lay = mc.load(src)
    st = tmp_path / "magi.safetensors"
    assert main(["export", str(src), "--to", "magi", "-o", str(st)]) == 0
    raw = st.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["attn_type_map"]["dtype"] == "I32" and header["q_ranges"]["shape"] == [1, 2]
    npy = tmp_path / "dense.npy"
    assert main(["export", str(src), "--to", "dense", "-o", str(npy)]) == 0
    assert np.array_equal(np.load(npy, allow_pickle=False), lay.to_dense())


def test_export_strict_and_errors(tmp_path, capsys):
    args = ["export", "causal()", "--len", "100", "--block", "32", "--to", "deepspeed", "-o", str(tmp_path / "d.npy")]
    assert main(args) == 0
    assert "partial block" in capsys.readouterr().err
    assert main(args + ["--strict"]) == 2
    assert "strict=True" in capsys.readouterr().err
    assert main(["export", "causal()", "--to", "csr", "-o", str(tmp_path / "x.npz")]) == 2
    assert "--len" in capsys.readouterr().err
    assert main(["export", "missing.npz", "--to", "csr", "-o", str(tmp_path / "x.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "causal()", "--len", "64", "--to", "flashmask", "-o", str(tmp_path / "x.npy")]) == 2
    assert "use .npz or .safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csr", "coo", "bsr", "splash", "block-sparse-attn", "flashinfer-variable",
                                 "xformers", "flashmask"])
def test_every_format_writes(tmp_path, fmt):
    out = tmp_path / "o.npz"
    block = "128" if fmt == "block-sparse-attn" else "16"  # its kernels read 128 x 128 blocks only
    assert main(["export", "causal() & window(20)", "--len", "300", "--block", block, "--to", fmt,
                 "-o", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert len(z.files) >= 1
