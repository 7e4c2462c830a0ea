"""Claims the docs make in prose, checked against the code (each names the doc that states it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import maskc as mc
from maskc.errors import TooLargeError

ROOT = Path(__file__).resolve().parents[2]


def test_attention_sinks_defaults_give_1025_keys() -> None:
    assert "**1,025**" in (ROOT / "docs/patterns.md").read_text()
    counts = mc.compile(mc.attention_sinks(), q_len=4096, block=128).row_counts()[0]
    assert counts[-1] == 1025 and counts.max() == 1025


def test_explicit_flex_over_its_cap_raises_too_large(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    from maskc.backends import flex

    assert "with TooLargeError" in (ROOT / "docs/backends.md").read_text()
    monkeypatch.setattr(flex, "MAX_EAGER_SCORE_ELEMENTS", 1000)
    q = torch.randn(1, 1, 64, 8)
    with pytest.raises(TooLargeError, match="MAX_EAGER_SCORE_ELEMENTS"):
        mc.attention(q, q, q, mc.compile(mc.causal(), 64, block=16), backend="flex")


def test_exporters_return_what_export_md_says() -> None:
    text = (ROOT / "docs/export.md").read_text()
    assert "`to_deepspeed` / `to_xformers` return the int64 layout array" in text
    lay = mc.compile(mc.causal() & mc.window(16), q_len=128, block=32)
    with pytest.warns(Warning):
        ds = mc.export.to_deepspeed(lay)
    assert isinstance(ds, np.ndarray) and ds.dtype == np.int64 and ds.shape == (1, 4, 4)
    assert isinstance(mc.export.to_flashmask(lay), dict)
    assert isinstance(mc.export.to_flashinfer_bsr(lay), dict)


def test_flashinfer_variable_minimum_version_is_0_2_7() -> None:
    assert "**0.2.7** (first release with the variable-block wrapper)" in (ROOT / "docs/export.md").read_text()
    assert "0.2.5" not in (ROOT / "docs/export.md").read_text()
