"""A small persistent gloo "cluster" of spawned processes for the distributed tests.

Starting processes that import torch costs seconds on the 2-core CI machine, so a test
session starts one cluster per world size and sends it many cases. Ranks rendezvous
through a ``FileStore`` in a fresh temporary directory: no port is chosen, so no port can
collide. Every call waits with a timeout and re-raises a worker's exception with its
traceback; a dead worker fails the call instead of hanging it.
"""

from __future__ import annotations

import os
import queue
import tempfile
import traceback

import numpy as np
import torch.multiprocessing as mp

TIMEOUT_S = 120.0


def run_attention_case(rank: int, world: int, c: dict, strategy: str = "auto", subgroup: list | None = None,
                       odd_rank_strategy: str | None = None) -> dict:
    """One rank's share of a case: local out / lse / grads, the bytes counted, the plan's figures."""
    import torch
    import torch.distributed as dist

    import maskc.distributed as md
    from dist_cases import inputs, layout_of, loss

    group = dist.new_group(subgroup) if subgroup else None
    if subgroup and rank not in subgroup:
        return {}
    P = len(subgroup) if subgroup else world
    r = subgroup.index(rank) if subgroup else rank
    dtype = getattr(torch, c["dtype"])
    if odd_rank_strategy and r % 2:  # a rank that built its plan differently
        strategy = odd_rank_strategy
    dp = md.plan(layout_of(c), P, strategy=strategy, head_dim=c["D"], dtype=dtype, batch=c["B"], kv_heads=c["Hkv"])
    x = {k: torch.from_numpy(dp.shard(v, r)).to(dtype) for k, v in inputs(c).items()}
    q, k, v = (x[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
    md.reset_comm_counters()
    out, lse = md.attention(q, k, v, dp, group=group, return_lse=True)
    fwd = md.comm_counters()
    loss(out, lse, x["dout"], x["dlse"]).backward()
    rep = dp.report()
    return {"out": out.detach().double().numpy(), "lse": lse.detach().double().numpy(), "dq": q.grad.double().numpy(),
            "dk": k.grad.double().numpy(), "dv": v.grad.double().numpy(), "forward": fwd, "total": md.comm_counters(),
            "plan_received": rep["bytes_received"][r], "plan_sent": rep["bytes_sent"][r], "rank": r}


TASKS = {"attention_case": run_attention_case}


def _worker(rank: int, world: int, store_path: str, inbox, outbox, path: list) -> None:
    import sys

    sys.path[:0] = path
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", store=dist.FileStore(store_path, world), rank=rank, world_size=world)
    except Exception:  # report, then exit
        outbox.put((1, rank, "error", traceback.format_exc()))
        return
    while True:
        task = inbox.get()
        if task is None:
            break
        seq, name, kwargs = task
        try:
            outbox.put((seq, rank, "ok", TASKS[name](rank, world, **kwargs)))
        except Exception:
            outbox.put((seq, rank, "error", traceback.format_exc()))
    dist.destroy_process_group()
    outbox.close()
    outbox.join_thread()
    os._exit(0)  # skip the slow interpreter teardown of torch; nothing is left to flush


class Cluster:
    """``world_size`` spawned ranks in one gloo process group, fed tasks one at a time."""

    def __init__(self, world_size: int):
        ctx = mp.get_context("spawn")
        self.world_size = world_size
        self._seq = 0
        self._dir = tempfile.TemporaryDirectory(prefix="maskc-gloo-")
        store = os.path.join(self._dir.name, "store")
        self._inboxes = [ctx.Queue() for _ in range(world_size)]
        self._outbox = ctx.Queue()
        here = [os.path.dirname(os.path.abspath(__file__))]
        self._procs = [ctx.Process(target=_worker, args=(r, world_size, store, self._inboxes[r], self._outbox, here),
                                   daemon=True) for r in range(world_size)]
        for p in self._procs:
            p.start()

    def run(self, task: str, **kwargs) -> list[dict]:
        """Run ``TASKS[task](rank, world, **kwargs)`` on every rank; the results by rank."""
        self._seq += 1
        for box in self._inboxes:
            box.put((self._seq, task, kwargs))
        results: dict[int, tuple[str, object]] = {}
        while len(results) < self.world_size:  # every rank answers before anything is raised
            try:
                seq, rank, status, value = self._outbox.get(timeout=TIMEOUT_S)
            except queue.Empty:
                dead = [r for r, p in enumerate(self._procs) if not p.is_alive()]
                raise TimeoutError(f"distributed task {task!r} timed out after {TIMEOUT_S}s (dead ranks: {dead})")
            if seq == self._seq:
                results[rank] = (status, value)
        errors = [f"rank {r} failed:\n{v}" for r, (s, v) in sorted(results.items()) if s == "error"]
        if errors:
            raise RuntimeError("\n".join(errors))
        return [results[r][1] for r in range(self.world_size)]

    def close(self) -> None:
        for box in self._inboxes:
            box.put(None)
        for p in self._procs:
            p.join(timeout=20)
            if p.is_alive():
                p.terminate()
        self._dir.cleanup()


def gather(results: list[dict], key: str) -> list[np.ndarray]:
    """``[result[key] for each rank]`` in the plan's rank order (subgroup results reordered)."""
    rs = sorted((r for r in results if r), key=lambda r: r["rank"])
    return [r[key] for r in rs]
