"""Rank views without processes: every rank emulated in one process, messages paired by hand.

Checks that the sub-layouts of all ranks cover exactly the layout's pairs, and that the
send rows of the source and the receive rows of the destination pair up, by running each
rank's local and remote parts through the local adapter and merging them.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dist_cases import inputs, layout_of, loss, named_cases, random_cases, reference, rel_err
from maskc.distributed import plan
from maskc.distributed.local import local_attention
from maskc.distributed.views import group_rows, rank_view, ungroup_rows
from maskc.planner.merge import merge_lse


def emulate(dp, x: dict[str, torch.Tensor], scale: float):
    """Run every rank of the plan in this process; the messages are copied row by row."""
    P, lay = dp.world_size, dp.layout
    B, Hkv = x["k"].shape[:2]
    gb, gh = lay.batch, (1 if lay.heads == 1 else Hkv)
    shards = {n: [dp.shard(x[n], r) for r in range(P)] for n in ("q", "k", "v")}
    outs, lses = [], []
    for r in range(P):
        view = rank_view(dp, r)
        q, k, v = (shards[n][r] for n in ("q", "k", "v"))
        out, lse = local_attention(q, k, v, view.local_layout, scale=scale)
        if view.remote_layout is not None:
            W = k.shape[-1]
            buf = torch.zeros(gb * gh * view.remote_tokens, 2 * W * (B // gb) * (Hkv // gh), dtype=k.dtype)
            for src, rows in view.recv:
                sent = dict(rank_view(dp, src).send)[r]
                assert len(sent) == len(rows)
                src_rows = torch.cat([group_rows(shards["k"][src], gb, gh), group_rows(shards["v"][src], gb, gh)], 1)
                buf[torch.as_tensor(rows)] = src_rows[torch.as_tensor(sent)]
            half = buf.shape[1] // 2
            kr, vr = (ungroup_rows(b, B, Hkv, gb, gh) for b in (buf[:, :half], buf[:, half:]))
            out, lse = merge_lse([(out, lse), local_attention(q, kr, vr, view.remote_layout, scale=scale)])
        outs.append(out)
        lses.append(lse)
    return dp.unshard(outs), dp.unshard(lses)


def check(c, world):
    dp = plan(layout_of(c), world, kv_heads=c["Hkv"])
    x = {k: torch.from_numpy(v) for k, v in inputs(c).items()}
    for n in ("q", "k", "v"):
        x[n].requires_grad_(True)
    out, lse = emulate(dp, x, scale=c["D"] ** -0.5)
    loss(out, lse, x["dout"], x["dlse"]).backward()
    ref = reference(c)
    for name, got in (("out", out), ("lse", lse), ("dq", x["q"].grad), ("dk", x["k"].grad), ("dv", x["v"].grad)):
        assert rel_err(got.detach().numpy(), ref[name]) <= 1e-12, name


@settings(max_examples=12)
@given(random_cases(), st.sampled_from([2, 3, 4]))
def test_emulated_ranks_match_reference(c, world):
    check(dict(c, D=4), world)


def test_emulated_named_cases():
    for name, c in named_cases().items():
        check(dict(c, D=4), 4)


def test_sub_layouts_cover_the_layout_exactly():
    c = named_cases()["pi_attention"]
    lay = layout_of(c)
    dp = plan(lay, 4, kv_heads=1)
    dense = lay.to_dense()  # [heads, N, N]
    rebuilt = np.zeros_like(dense)
    for r in range(4):
        v = rank_view(dp, r)
        rows = dp.tokens_of(r)
        rebuilt[:, rows[:, None], rows[None, :]] |= v.local_layout.to_dense()
        if v.remote_layout is not None:
            keys = np.concatenate([np.arange(kb * dp.block, min((kb + 1) * dp.block, lay.kv_len))
                                   for kb in v.remote_blocks])
            rebuilt[:, rows[:, None], keys[None, :]] |= v.remote_layout.to_dense()
    assert np.array_equal(rebuilt, dense)
