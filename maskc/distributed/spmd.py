"""The same dispatch plan executed in JAX: ``shard_map`` over one mesh axis, ``ppermute`` rounds.

Inside ``shard_map`` every device runs one program, so everything that differs per rank is
data: each rank's block lists (local and remote parts, padded to the largest rank's), its
message rows and its mask table are stacked ``[P, ...]`` and sharded along the mesh axis.
Every rank holds ``T`` token slots (the largest rank's tokens; shorter ranks are padded).

The exchange is a sequence of *shift rounds*: for every distance ``delta`` at which some
rank sends to rank ``(r + delta) % P``, one ``jax.lax.ppermute`` moves a buffer of
``R_delta`` rows (the largest such pair's traffic; the others are padded), so JAX moves
:func:`spmd_schedule`'s ``bytes_received`` per rank: the plan's exact need plus padding to
equal shapes, which ``ppermute`` requires. Local patterns (windows, documents) need one or
two rounds. The backward pass is JAX's own transpose of the rounds (dK / dV return to
their owners). XLA may overlap the rounds with the local part, which does not depend on
them.

The local compute is maskc's jax backend kernel (padded block lists, gather-then-softmax),
called through :func:`_block_attention`; the two parts are merged by log-sum-exp.

Example:
    >>> import maskc as mc
    >>> from maskc.distributed import plan
    >>> dp = plan(mc.compile(mc.causal() & mc.window(64), q_len=1024, block=64), 4, head_dim=64, dtype="float32")
    >>> sch = spmd_schedule(dp)
    >>> [delta for delta, _ in sch["rounds"]], sch["bytes_received"] == dp.report()["bytes_received"][1]
    ([1], True)
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from maskc.distributed.plan import DispatchPlan
from maskc.distributed.views import group_rows, rank_view, ungroup_rows
from maskc.ir.layout import FULL

_COUNTERS = {"ppermute_calls": 0, "bytes_received": 0}


def spmd_counters() -> dict[str, int]:
    """``ppermute`` calls and the bytes one device receives in them (forward), since the last reset.

    Sizes are those of the buffers handed to ``jax.lax.ppermute`` when the program was
    traced, counted once per execution.
    """
    return dict(_COUNTERS)


def reset_spmd_counters() -> None:
    """Set the counters of :func:`spmd_counters` to 0."""
    for k in _COUNTERS:
        _COUNTERS[k] = 0


def spmd_schedule(dp: DispatchPlan) -> dict[str, Any]:
    """The shift rounds ``[(delta, rows), ...]`` and the bytes each device receives in them.

    ``rows`` counts token rows of one KV group (each ``dp.row_bytes`` bytes of keys and values).
    """
    P = dp.world_size
    dst = np.repeat(np.arange(P), np.diff(dp.recv_ptr))
    shift = (dst - dp.recv_src) % P
    tok = dp.block_tokens[dp.recv_kb]
    rounds = []
    for delta in np.unique(shift).tolist():
        per_src = np.bincount(dp.recv_src[shift == delta], weights=tok[shift == delta], minlength=P)
        rounds.append((int(delta), int(per_src.max())))
    return {"rounds": rounds, "bytes_received": sum(r for _, r in rounds) * dp.row_bytes}


def _lists(lay, n_rows: int, tail_block: int, tail_cols: int):
    """cols / mids ``[S, n_rows, K]`` and the mask table of one rank's sub-layout (None: no blocks)."""
    S = lay.n_slices
    counts = np.diff(lay.row_ptr, axis=1)
    K = max(int(counts.max(initial=0)), 1)
    cols = np.zeros((S, n_rows, K), np.int32)
    mids = np.zeros((S, n_rows, K), np.int32)
    slot = np.arange(lay.nnz_blocks) - np.repeat(lay.row_ptr[:, :-1].reshape(-1), counts.reshape(-1))
    full = lay.kind == FULL
    ids = np.where(full, 1, lay.partial_id + 3)
    ids[full & (lay.col_idx == tail_block)] = 2
    cols[lay.block_head, lay.block_row, slot] = lay.col_idx
    mids[lay.block_head, lay.block_row, slot] = ids
    return cols, mids, lay.mask_bits, tail_cols


def _stack(parts: list, n_rows: int, bs: int):
    """Stack per-rank (cols, mids, bits, tail) into padded ``[P, ...]`` arrays."""
    K = max([p[0].shape[2] for p in parts if p is not None] + [1])
    U = max([len(p[2]) for p in parts if p is not None] + [0])
    S = next(p[0].shape[0] for p in parts if p is not None)
    P = len(parts)
    cols = np.zeros((P, S, n_rows, K), np.int32)
    mids = np.zeros((P, S, n_rows, K), np.int32)
    table = np.zeros((P, 3 + U, bs, bs), bool)
    table[:, 1] = True
    for r, p in enumerate(parts):
        if p is None:
            continue
        c, m, bits, tail = p
        cols[r, :, :, : c.shape[2]] = c
        mids[r, :, :, : m.shape[2]] = m
        table[r, 2, :, :tail] = True
        table[r, 3: 3 + len(bits)] = bits
    return cols, mids, table


def _tables(dp: DispatchPlan) -> dict[str, Any]:
    """Every per-rank array the SPMD program reads, stacked over ranks (numpy)."""
    P, bs = dp.world_size, dp.block
    views = [rank_view(dp, r) for r in range(P)]
    nb = int(np.diff(dp.rank_ptr).max())
    T = nb * bs
    mb = max(len(v.remote_blocks) for v in views)
    M = mb * bs
    tail_b, tail_c = dp.n_blocks - 1, int(dp.block_tokens[-1])
    loc, rem = [], []
    for r, v in enumerate(views):
        tail_here = dp.owner[tail_b] == r
        loc.append(None if v.local_layout is None else _lists(
            v.local_layout, nb, dp.local_index[tail_b] if tail_here else -1, tail_c))
        has_tail = len(v.remote_blocks) and v.remote_blocks[-1] == tail_b
        rem.append(None if v.remote_layout is None else _lists(
            v.remote_layout, nb, len(v.remote_blocks) - 1 if has_tail else -1, tail_c))
    G = dp.n_groups
    rounds = []
    for delta, R in spmd_schedule(dp)["rounds"]:
        send = np.full((P, R), G * T, np.int64)  # out of range: reads 0
        recv = np.full((P, R), G * M, np.int64)  # out of range: dropped
        for r, v in enumerate(views):
            for dst, rows in v.send:
                if (dst - r) % P == delta:
                    g, t = np.divmod(rows, v.n_tokens)
                    send[r, : len(rows)] = g * T + t
            for src, rows in v.recv:
                if (r - src) % P == delta:
                    g, t = np.divmod(rows, max(v.remote_tokens, 1))
                    recv[r, : len(rows)] = g * M + t
        rounds.append((delta, send, recv))
    slots = np.full((P, T), dp.layout.q_len, np.int64)  # token index of every slot (q_len: padding)
    for r in range(P):
        tok = dp.tokens_of(r)
        slots[r, : len(tok)] = tok
    local = _stack(loc, nb, bs) if any(p is not None for p in loc) else None
    remote = _stack(rem, nb, bs) if any(p is not None for p in rem) else None
    return {"T": T, "M": M, "local": local, "remote": remote, "rounds": rounds, "slots": slots}


def _block_attention(q, k, v, cols, mids, table, scale, slices_batch: int):
    """The jax backend's kernel on one rank's padded block lists (every slice of the layout)."""
    import jax.numpy as jnp

    from maskc.backends.jax_backend import block_list_attention  # jax: a heavy optional dependency

    S = cols.shape[0]
    hl = S // slices_batch
    B, Hq = q.shape[0], q.shape[1]
    kw = dict(q_len=q.shape[2], kv_len=k.shape[2], block_q=table.shape[1], block_k=table.shape[2])
    # the stored slice each (batch element, head) reads: batch-major, heads == 1 broadcasts
    b = np.arange(B)[:, None] if slices_batch > 1 else np.zeros((B, 1), np.int64)
    h = np.arange(Hq)[None, :] if hl > 1 else np.zeros((1, Hq), np.int64)
    sidx = jnp.asarray((b * hl + h).astype(np.int32))
    return block_list_attention(q, k, v, cols, mids, table, sidx, scale, **kw)


def _merge(o1, l1, o2, l2):
    """Log-sum-exp merge of two disjoint parts; zeros and -inf where both are empty."""
    import jax
    import jax.numpy as jnp

    m = jax.lax.stop_gradient(jnp.maximum(l1, l2))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    w1, w2 = jnp.exp(l1 - m), jnp.exp(l2 - m)
    z = w1 + w2
    zs = jnp.where(z > 0, z, 1.0)
    out = (o1 * w1[..., None] + o2 * w2[..., None]) / zs[..., None]
    return out.astype(o1.dtype), jnp.where(z > 0, m + jnp.log(zs), -jnp.inf)


def _program(dp: DispatchPlan, mesh: Any, axis: str, B: int, Hkv: int, scale: float):
    """The jitted SPMD function ``f(q, k, v, tables) -> (out, lse)`` and its device-placed tables."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as Spec

    if "spmd" not in dp._derived:
        dp._derived["spmd"] = _tables(dp)
    tb = dp._derived["spmd"]
    P, lay = dp.world_size, dp.layout
    gb, gh = lay.batch, (1 if lay.heads == 1 else Hkv)
    M, rounds = tb["M"], tb["rounds"]
    seq, per_rank = Spec(None, None, axis, None), Spec(axis)
    traced = {"bytes_received": 0, "ppermute_calls": 0}

    def put(x, spec):
        return jax.device_put(x, NamedSharding(mesh, spec))

    def body(q, k, v, local, remote, sends, recvs):
        rows = jnp.concatenate([group_rows(k, gb, gh), group_rows(v, gb, gh)], 1)
        wk = rows.shape[1] - group_rows(v, gb, gh).shape[1]
        out, lse = jnp.zeros(q.shape[:3] + (v.shape[-1],), q.dtype), jnp.full(q.shape[:3], -jnp.inf)
        if local is not None:
            out, lse = _block_attention(q, k, v, *(a[0] for a in local), scale, gb)
        if remote is not None:
            buf = jnp.zeros((gb * gh * M, rows.shape[1]), rows.dtype)
            traced.update(bytes_received=0, ppermute_calls=0)
            for (delta, _, _), si, ri in zip(rounds, sends, recvs):
                msg = jnp.take(rows, si[0], axis=0, mode="fill", fill_value=0)
                traced["ppermute_calls"] += 1
                traced["bytes_received"] += int(msg.size) * msg.dtype.itemsize
                got = jax.lax.ppermute(msg, axis, perm=[(r, (r + delta) % P) for r in range(P)])
                buf = buf.at[ri[0]].set(got, mode="drop")
            kr, vr = ungroup_rows(buf[:, :wk], B, Hkv, gb, gh), ungroup_rows(buf[:, wk:], B, Hkv, gb, gh)
            o2, l2 = _block_attention(q, kr, vr, *(a[0] for a in remote), scale, gb)
            out, lse = _merge(out, lse, o2, l2)
        return out.astype(q.dtype), lse

    smap = jax.shard_map(body, mesh=mesh, in_specs=(seq, seq, seq, per_rank, per_rank, per_rank, per_rank),
                         out_specs=(seq, Spec(None, None, axis)), check_vma=False)
    slots = jnp.asarray(tb["slots"].reshape(-1))
    inv = jnp.asarray(_unpack_index(tb["slots"], lay.q_len))

    @jax.jit
    def run(q, k, v, tables):
        packed = (put(jnp.take(x, slots, axis=2, mode="fill", fill_value=0), seq) for x in (q, k, v))
        out, lse = smap(*packed, *tables)
        return jnp.take(put(out, Spec()), inv, axis=2), jnp.take(put(lse, Spec()), inv, axis=2)

    has_remote = tb["remote"] is not None
    tables = (
        None if tb["local"] is None else tuple(put(a, per_rank) for a in tb["local"]),
        tuple(put(a, per_rank) for a in tb["remote"]) if has_remote else None,
        tuple(put(r[1], per_rank) for r in rounds) if has_remote else (),
        tuple(put(r[2], per_rank) for r in rounds) if has_remote else (),
    )
    return run, tables, traced


def spmd_attention(q: Any, k: Any, v: Any, dp: DispatchPlan, mesh: Any, axis_name: str | None = None, *,
                   scale: float | None = None, return_lse: bool = False):
    """Attention over the whole sequence with the plan executed by ``shard_map`` on ``mesh``.

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, N, D]`` (jax arrays, sequence in natural order);
    the mesh axis ``axis_name`` (default: the mesh's only axis) must have ``dp.world_size``
    devices. The inputs are placed into the plan's token order and sharded along the axis;
    the result comes back replicated, in natural order. Differentiable with ``jax.grad``.
    The program is compiled once per (plan, mesh, shapes, scale).
    """
    import jax

    axis = axis_name or (mesh.axis_names[0] if len(mesh.axis_names) == 1 else None)
    if axis is None or axis not in mesh.axis_names:
        raise ValueError(f"name the mesh axis to shard over (axis_name=); the mesh has axes {mesh.axis_names}")
    P = dp.world_size
    if mesh.shape[axis] != P:
        raise ValueError(f"mesh axis {axis!r} has {mesh.shape[axis]} devices, the plan {P} ranks; "
                         f"build plan(layout, {mesh.shape[axis]})")
    B, Hq, N, D = q.shape
    Hkv = k.shape[1]
    lay = dp.layout
    if N != lay.q_len or k.shape[2] != N or lay.heads not in (1, Hq) or lay.batch not in (1, B) or Hq % Hkv:
        raise ValueError(f"q {tuple(q.shape)} / k {tuple(k.shape)} do not fit the plan's layout ({lay.q_len} tokens, "
                         f"{lay.heads} heads, batch {lay.batch}; q heads a multiple of kv heads)")
    if lay.heads > 1 and Hkv != dp.kv_heads:
        raise ValueError(f"k / v have {Hkv} heads but the plan was made for kv_heads={dp.kv_heads}; "
                         f"build it with plan(layout, world_size, kv_heads={Hkv})")
    s = 1.0 / math.sqrt(D) if scale is None else float(scale)
    key = ("spmd_program", id(mesh), axis, B, Hkv, s)
    if key not in dp._derived:
        dp._derived[key] = (_program(dp, mesh, axis, B, Hkv, s), mesh)
    (run, tables, traced), _ = dp._derived[key]
    # set_mesh is refused under a trace (jax.grad / jit): there the caller's mesh context applies
    with contextlib.nullcontext() if isinstance(q, jax.core.Tracer) else jax.set_mesh(mesh):
        out, lse = run(q, k, v, tables)
    for name in _COUNTERS:
        _COUNTERS[name] += traced[name]
    return (out, lse) if return_lse else out


def _unpack_index(slots: np.ndarray, n: int) -> np.ndarray:
    """Position in the packed ``[P * T]`` sequence of every token ``0 .. n-1``."""
    flat = slots.reshape(-1)
    inv = np.empty(n, np.int64)
    real = flat < n
    inv[flat[real]] = np.flatnonzero(real)
    return inv
