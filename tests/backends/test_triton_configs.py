"""The tile configuration table of the Triton kernels: every choice fits its layout block."""

from __future__ import annotations

import itertools

import pytest

from maskc.backends import triton_configs as tc

BLOCKS = (16, 32, 64, 128, 256)


@pytest.mark.parametrize("cc", [80, 86, 89, 90])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_every_choice_divides_the_layout_block(cc, dtype):
    for kernel, bd, bq, bk in itertools.product(tc.KERNELS, tc.BLOCK_DS, BLOCKS, BLOCKS):
        for cfg in tc.space(kernel, cc, dtype, bd, bq, bk) + [tc.exact(kernel, tc.pick(kernel, cc, dtype, bd, bq, bk))]:
            assert bq % cfg.block_m == 0 and bk % cfg.block_n == 0, (kernel, bd, bq, bk, cfg)
            assert cfg.block_m >= 16 and cfg.block_n >= 16 and cfg.num_warps >= 1 and cfg.num_stages >= 1
            rows = cfg.block_n if kernel == "dkdv" else cfg.block_m
            assert cfg.num_warps in (1, 2, 4, 8)
            assert rows < 64 or cfg.num_warps >= 4, "a 64-row matmul keeps a warpgroup (Hopper wgmma)"


def test_hopper_and_ampere_defaults():
    assert tc.pick("fwd", 90, "bfloat16", 128, 128, 128) == tc.TileConfig(128, 64, 8, 3)
    assert tc.pick("fwd", 80, "float16", 64, 128, 128).block_n == 64
    # a 64-row tile keeps its warpgroups (wgmma) when clamped from a larger one
    assert tc.pick("fwd", 90, "bfloat16", 128, 64, 64) == tc.TileConfig(64, 64, 8, 3)
    # the tile never exceeds a small layout block
    assert tc.pick("dkdv", 90, "bfloat16", 64, 16, 32) == tc.TileConfig(16, 32, 1, tc.pick(
        "dkdv", 90, "bfloat16", 64, 128, 128).num_stages)
    assert tc.arch_class(90) == "sm90" and tc.arch_class(80) == "sm80" and tc.arch_class(120) == "sm80"


def test_autotune_space_starts_with_the_default_and_is_opt_in(monkeypatch):
    sp = tc.space("fwd", 90, "bfloat16", 128, 128, 128)
    assert sp[0] == tc.pick("fwd", 90, "bfloat16", 128, 128, 128) and len(sp) == len(set(sp)) > 1
    monkeypatch.delenv("MASKC_TRITON_AUTOTUNE", raising=False)
    assert not tc.autotune_enabled()
    monkeypatch.setenv("MASKC_TRITON_AUTOTUNE", "1")
    assert tc.autotune_enabled()
