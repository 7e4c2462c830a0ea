"""Per-rank figures of a dispatch plan, and their table.

``bytes_received[r]`` / ``bytes_sent[r]``: keys and values the forward pass moves (the
backward's transposed exchange moves the same bytes of dK / dV the other way); no
metadata travels, since every rank derives the message sizes from the plan. For the same
sharding, ``allgather_bytes_received[r]`` is what all-gather context parallelism receives
(every other rank's keys and values) and ``ring_bytes_received[r]`` what ring attention
receives (``P - 1`` steps of one fixed-size shard buffer, sized to the largest shard).
The two coincide when shards are equal: they differ in peak memory and in how well the
transfer hides behind compute, not in forward bytes.

Example:
    >>> import maskc as mc
    >>> from maskc.distributed import plan
    >>> rep = plan(mc.compile(mc.causal() & mc.window(128), q_len=4096, block=128), 4).report()
    >>> rep["bytes_received"][1], rep["allgather_bytes_received"][1]
    (65536, 1572864)
    >>> print(rep.table().splitlines()[0])
    rank | tokens | computed blocks | peers | received | sent | all-gather recv | ring recv | recv / all-gather
"""

from __future__ import annotations

import numpy as np

from maskc.distributed.assign import sorted_unique

_KEYS = ("tokens", "computed_blocks", "peers", "bytes_received", "bytes_sent", "allgather_bytes_received",
         "ring_bytes_received")


def _human(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


class PlanReport(dict):
    """The figures of :meth:`DispatchPlan.report`: a dict of per-rank lists plus scalars.

    ``str(report)`` (and ``print``) gives :meth:`table`.
    """

    def table(self, max_rows: int = 16) -> str:
        """The per-rank table; with more than ``max_rows`` ranks, min / mean / max rows instead."""
        head = ("rank | tokens | computed blocks | peers | received | sent | all-gather recv | ring recv | "
                "recv / all-gather")
        cols = [np.asarray(self[k], dtype=np.float64) for k in _KEYS]
        ag = cols[5]
        frac = np.divide(cols[3], ag, out=np.zeros_like(ag), where=ag > 0)

        def line(label, vals, f):
            t, c, p, r, s, a, g = vals
            return (f"{label} | {t:,.0f} | {c:,.0f} | {p:,.3g} | {_human(r)} | {_human(s)} | {_human(a)} | "
                    f"{_human(g)} | {100 * f:.2f}%")

        P = len(cols[0])
        if P <= max_rows:
            rows = [line(str(r), [c[r] for c in cols], frac[r]) for r in range(P)]
        else:
            rows = [line(name, [fn(c) for c in cols], fn(frac)) for name, fn in
                    (("min", np.min), ("mean", np.mean), ("max", np.max))]
        foot = (f"{self['strategy']} over {P} ranks: imbalance {self['imbalance']:.3f} (max / mean computed "
                f"blocks); max received {_human(self['max_bytes_received'])} = "
                f"{100 * self['max_received_vs_allgather']:.3f}% of all-gather's")
        return "\n".join([head] + rows + [foot])

    def __str__(self) -> str:
        return self.table()


def make_report(dp) -> PlanReport:
    """The :class:`PlanReport` of a :class:`~maskc.distributed.plan.DispatchPlan`."""
    P = dp.world_size
    ub = dp.unit_bytes().astype(np.float64)
    dst = np.repeat(np.arange(P), np.diff(dp.recv_ptr))
    recv = np.rint(np.bincount(dst, weights=ub, minlength=P)).astype(np.int64)
    sent = np.rint(np.bincount(dp.recv_src, weights=ub, minlength=P)).astype(np.int64)
    pairs = sorted_unique(dst * P + dp.recv_src)
    peers = np.bincount(pairs // P, minlength=P)
    tokens = dp.tokens_per_rank
    full_row = dp.row_bytes * dp.n_groups
    allgather = (int(tokens.sum()) - tokens) * full_row
    ring = np.full(P, (P - 1) * int(tokens.max()) * full_row, np.int64)
    cb = dp.computed_blocks
    mean = cb.mean()
    rep = PlanReport(
        tokens=tokens.tolist(), computed_blocks=cb.tolist(), peers=peers.tolist(), bytes_received=recv.tolist(),
        bytes_sent=sent.tolist(), allgather_bytes_received=allgather.tolist(), ring_bytes_received=ring.tolist(),
    )
    rep["strategy"] = dp.strategy
    rep["imbalance"] = float(cb.max() / mean) if mean > 0 else 1.0
    rep["max_bytes_received"] = int(recv.max())
    top = int(allgather.max())
    rep["max_received_vs_allgather"] = float(recv.max() / top) if top else 0.0
    return rep
