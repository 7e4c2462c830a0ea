"""The key/value exchange on ``torch.distributed``, and its transpose for the backward pass.

Forward: every rank posts, in one ``batch_isend_irecv``, one message per peer holding the
rows (keys and values side by side) of exactly the units the plan lists, then computes its
local part while the messages travel; :meth:`Exchange.finish_forward` waits and scatters the
rows into the remote key/value buffers. Backward (the transpose): the gradients of those
buffers go back to the owners, who add them into dK / dV.

Two autograd functions carry this through ``torch.autograd``: :class:`_Post` (posts the
forward messages; its backward waits for the returning gradients) and :class:`_Collect`
(waits for the forward messages and passes the local part's result through, so that its
backward, which posts the returning gradients, runs before the local part's backward and
the transfer overlaps with it).

Every message is counted where it is posted (:func:`comm_counters`), so tests compare
the bytes that were really handed to ``torch.distributed`` with the plan's figure. The
only metadata is a one-time all-gather of an 8-byte plan fingerprint per (plan, group).

Example:
    >>> reset_comm_counters(); comm_counters()["forward_received"]
    0
"""

from __future__ import annotations

import weakref

import torch
import torch.distributed as dist

from maskc.distributed.views import RankView, group_rows, ungroup_rows

_COUNTERS = dict.fromkeys(("forward_sent", "forward_received", "backward_sent", "backward_received",
                           "metadata_sent", "metadata_received", "messages"), 0)
_VERIFIED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def comm_counters() -> dict[str, int]:
    """Bytes posted to ``torch.distributed`` by this process since the last reset, by phase."""
    return dict(_COUNTERS)


def reset_comm_counters() -> None:
    """Set every counter of :func:`comm_counters` to 0."""
    for k in _COUNTERS:
        _COUNTERS[k] = 0


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def verify_plan(dp, group, device) -> None:
    """Check once per (plan, group) that every rank holds the same plan (8 bytes per rank)."""
    seen = _VERIFIED.setdefault(dp, set())
    if id(group) in seen:
        return
    P = dist.get_world_size(group)
    mine = torch.tensor([dp.fingerprint()], dtype=torch.int64, device=device)
    every = [torch.empty_like(mine) for _ in range(P)]
    dist.all_gather(every, mine, group=group)
    _COUNTERS["metadata_sent"] += _nbytes(mine) * (P - 1)
    _COUNTERS["metadata_received"] += _nbytes(mine) * (P - 1)
    fps = [int(t.item()) for t in every]
    if len(set(fps)) != 1:
        raise RuntimeError(f"ranks hold different dispatch plans (fingerprints {fps}); build the plan from the "
                           "same layout and world size, with the same options, on every rank")
    seen.add(id(group))


class Exchange:
    """The messages of one distributed attention call on one rank (see the module docstring)."""

    def __init__(self, view: RankView, group, groups: tuple[int, int], shape: tuple[int, int]):
        self.view, self.group, self.groups, self.shape = view, group, groups, shape
        self._pending: list = []
        self._bufs: list[torch.Tensor] = []
        self.needs_backward = False

    def post(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Post the forward messages (through autograd); compute the local part after this."""
        self.token = _Post.apply(k, v, self)

    def collect(self, out_local: torch.Tensor, lse_local: torch.Tensor):
        """``(k_remote, v_remote, out_local, lse_local)``: waits for the messages; autograd-aware.

        The local result passes through so that the backward posts the returning gradients
        before the local part's backward runs.
        """
        return _Collect.apply(self.token, out_local, lse_local, self)

    def _peer(self, r: int) -> int:
        return r if self.group is None else dist.get_global_rank(self.group, r)

    def _post(self, sends, recv_shapes, like: torch.Tensor, phase: str) -> None:
        ops, self._bufs = [], []
        for peer, n in recv_shapes:
            buf = like.new_empty((n, like.shape[1]))
            self._bufs.append(buf)
            ops.append(dist.P2POp(dist.irecv, buf, self._peer(peer), self.group))
            _COUNTERS[phase + "_received"] += _nbytes(buf)
        for peer, buf in sends:
            ops.append(dist.P2POp(dist.isend, buf, self._peer(peer), self.group))
            _COUNTERS[phase + "_sent"] += _nbytes(buf)
        _COUNTERS["messages"] += len(ops)
        self._pending = dist.batch_isend_irecv(ops) if ops else []

    def _wait(self) -> torch.Tensor | None:
        for w in self._pending:
            w.wait()
        self._pending = []
        return torch.cat(self._bufs, 0) if self._bufs else None

    def _rows(self, which: str) -> list[torch.Tensor]:
        return [torch.as_tensor(r) for _, r in getattr(self.view, which)]

    def start_forward(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Post the key/value rows this rank sends and the receives it expects."""
        gb, gh = self.groups
        k_rows = group_rows(k, gb, gh)
        self.dk_width, self.d_k, self.d_v = k_rows.shape[1], k.shape[-1], v.shape[-1]
        rows = torch.cat([k_rows, group_rows(v, gb, gh)], 1)
        self.width, self.dtype, self.device = rows.shape[1], rows.dtype, rows.device
        self.send_idx = [i.to(rows.device) for i in self._rows("send")]
        self.recv_idx = [i.to(rows.device) for i in self._rows("recv")]
        sends = [(p, rows.index_select(0, i)) for (p, _), i in zip(self.view.send, self.send_idx)]
        recvs = [(p, len(r)) for p, r in self.view.recv]
        self._post(sends, recvs, rows, "forward")

    def _unpack(self, n_tokens: int, idx: list[torch.Tensor], add: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Wait; scatter (or add) the received rows at ``idx`` into ``[B, Hkv, n_tokens, D]`` keys and values."""
        got = self._wait()
        gb, gh = self.groups
        B, H = self.shape
        rows = torch.zeros((gb * gh * n_tokens, self.width), dtype=self.dtype, device=self.device)
        if got is not None:
            (rows.index_add_ if add else rows.index_copy_)(0, torch.cat(idx), got)
        return (ungroup_rows(rows[:, : self.dk_width], B, H, gb, gh),
                ungroup_rows(rows[:, self.dk_width:], B, H, gb, gh))

    def finish_forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Wait for the forward messages; the remote keys and values ``[B, Hkv, remote_tokens, D]``."""
        return self._unpack(self.view.remote_tokens, self.recv_idx, add=False)

    def start_backward(self, dk_remote: torch.Tensor | None, dv_remote: torch.Tensor | None) -> None:
        """Post the gradients of the received rows back to their owners."""
        gb, gh = self.groups
        B, H = self.shape
        if dk_remote is None:
            dk_remote = torch.zeros((B, H, self.view.remote_tokens, self.d_k), dtype=self.dtype, device=self.device)
        if dv_remote is None:
            dv_remote = torch.zeros((B, H, self.view.remote_tokens, self.d_v), dtype=self.dtype, device=self.device)
        rows = torch.cat([group_rows(dk_remote, gb, gh), group_rows(dv_remote, gb, gh)], 1).to(self.dtype)
        sends = [(p, rows.index_select(0, i)) for (p, _), i in zip(self.view.recv, self.recv_idx)]
        recvs = [(p, len(r)) for p, r in self.view.send]
        self._post(sends, recvs, rows, "backward")

    def finish_backward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Wait for the returning gradients; dK / dV contributions ``[B, Hkv, n_tokens, D]`` (summed)."""
        return self._unpack(self.view.n_tokens, self.send_idx, add=True)


class _Post(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k, v, ex: Exchange):
        ex.start_forward(k, v)
        ex.needs_backward = k.requires_grad or v.requires_grad
        ctx.ex = ex
        return k.new_zeros(())

    @staticmethod
    def backward(ctx, _dtoken):
        dk, dv = ctx.ex.finish_backward()
        return dk, dv, None


class _Collect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, out_local, lse_local, ex: Exchange):
        ctx.ex = ex
        k_remote, v_remote = ex.finish_forward()
        return k_remote, v_remote, out_local.clone(), lse_local.clone()

    @staticmethod
    def backward(ctx, dk_remote, dv_remote, dout, dlse):
        if ctx.ex.needs_backward:
            ctx.ex.start_backward(dk_remote, dv_remote)
        return torch.zeros((), dtype=ctx.ex.dtype, device=ctx.ex.device), dout, dlse, None
