"""Exporter speed on long layouts: every exporter on a packed-documents layout, against the previous
FlexAttention exporter in the same run.

The layout is the packed-sequence workload: 32 causal documents of 16K-32K tokens (seeded
lengths, about 800K tokens), compiled once with block 128 (not timed here; see
compile_speed.py). Each export runs on a *fresh copy* of the layout (nothing cached from a
previous call, as when the mask is rebuilt every training step); min and median of ``--reps``
runs, plus the first FlexAttention export in a fresh process (where first-touch page faults of
the padded lists dominate). The block-list algorithm maskc used before this change (kept
below as ``previous_to_flex_block_mask``) runs on the same layout as the reference, and the
BlockMask lists are compared with it for identity.

Usage: python benchmarks/export_speed.py [--reps 7] [--docs 32] [--seed 0] [--tokens-min 16384] [--save PATH | --layout PATH]
       [--against FLEX_PY]
``--against`` takes an older ``maskc/export/flex.py`` (``git show ab45346:maskc/export/flex.py > old_flex.py``)
and times its ``to_flex_block_mask`` alternately with the current one on the same fresh copies, checking that
the eight index tensors are identical.
Prints a markdown table (and the machine's load average, which matters on a shared machine).
``--save`` writes the compiled layout to a file, ``--layout`` loads one instead of compiling.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np


def previous_to_flex_block_mask(layout):
    """The FlexAttention exporter as it was before this change (block lists only, no mask_mod):
    per-row lists from a 2-D scatter, q side from an argsort of the blocks. The reference."""
    import torch

    H, n_qb, n_kb = layout.n_slices, layout.n_qb, layout.n_kb
    tail = np.zeros(layout.nnz_blocks, bool)
    if layout.q_len % layout.block_q:
        tail |= layout.block_row == n_qb - 1
    if layout.kv_len % layout.block_k:
        tail |= layout.col_idx == n_kb - 1
    full = (layout.kind == 2) & ~tail

    def lists(ptr, idx, select, width):
        R = ptr.shape[1] - 1
        row_of = np.repeat(np.arange(H * R), np.diff(ptr, axis=1).reshape(-1))
        sel_rows = row_of[select]
        num = np.bincount(sel_rows, minlength=H * R).astype(np.int32)
        out = np.zeros((H * R, width), dtype=np.int32)
        starts = np.zeros(H * R, dtype=np.int64)
        starts[1:] = np.cumsum(num)[:-1]
        out[sel_rows, np.arange(sel_rows.size) - starts[sel_rows]] = idx[select]
        return torch.from_numpy(num.reshape(1, H, R)), torch.from_numpy(out.reshape(1, H, R, width))

    key = layout.block_head.astype(np.int64) * n_kb + layout.col_idx
    perm = np.argsort(key, kind="stable")
    col_ptr = np.zeros((H, n_kb + 1), np.int64)
    col_ptr[:, 1:] = np.cumsum(np.bincount(key, minlength=H * n_kb).reshape(H, n_kb), axis=1)
    col_ptr += layout.row_ptr[:, :1]
    row_idx = layout.block_row[perm]
    lut = np.zeros((H, n_qb, n_kb), np.int32)  # the mask_mod's lookup table
    lut[layout.block_head, layout.block_row, layout.col_idx] = np.where(full, 1, 2)
    return {"kv": lists(layout.row_ptr, layout.col_idx, ~full, n_kb),
            "full_kv": lists(layout.row_ptr, layout.col_idx, full, n_kb),
            "q": lists(col_ptr, row_idx, ~full[perm], n_qb), "full_q": lists(col_ptr, row_idx, full[perm], n_qb)}


def fresh(lay):
    import maskc as mc

    return mc.Layout(**{k: getattr(lay, k) for k in ("q_len", "kv_len", "block_q", "block_k", "row_ptr", "col_idx",
                                                     "kind", "partial_id", "masks", "pattern_text", "q_offset",
                                                     "batch")})


def timed(fn, lay, reps):
    """(min, median) seconds of ``fn`` on fresh copies of ``lay``, and its last result (or refusal)."""
    times, out = [], None
    for _ in range(reps):
        copy = fresh(lay)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = fn(copy)
            except ValueError as e:  # TooLargeError and other refusals are results too
                out = e
        times.append(time.perf_counter() - t)
        del copy
    return (min(times), statistics.median(times)), out


def against(path: str, lay, reps: int, current) -> list:
    """Rows timing the ``to_flex_block_mask`` of an older flex.py file and the current one, alternately."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("older_flex", path)
    older = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(older)
    runs = {"older": [], "current": []}
    for _ in range(2):
        for name, fn in (("older", older.to_flex_block_mask), ("current", current)):
            runs[name].append(timed(fn, lay, reps))
    keys = [f"{a}_{b}" for a in ("kv", "full_kv", "q", "full_q") for b in ("num_blocks", "indices")]
    same = all(torch.equal(getattr(runs["older"][-1][1], k), getattr(runs["current"][-1][1], k)) for k in keys)
    out = []
    for name in ("older", "current"):
        lo = min(r[0][0] for r in runs[name])
        med = " / ".join(f"{r[0][1]:.3f}" for r in runs[name])
        out.append((f"to_flex_block_mask ({name}: {path if name == 'older' else 'this tree'})", (lo, runs[name][0][0][1]),
                    f"alternating, 2 x {reps} runs, medians {med}" + (f"; index tensors identical: {same}"
                                                                       if name == "current" else "")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--save", default=None)
    ap.add_argument("--layout", default=None)
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--tokens-min", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--against", default=None, help="an older maskc/export/flex.py to compare with")
    args = ap.parse_args()

    import torch  # noqa: F401  (imported before timing: its import is not the exporter's cost)

    import maskc as mc
    import maskc.export as ex

    rng = np.random.default_rng(args.seed)
    lens = rng.integers(args.tokens_min, 2 * args.tokens_min + 1, size=args.docs).tolist()
    N = int(sum(lens))
    t = time.perf_counter()
    lay = mc.load(args.layout) if args.layout else mc.compile(mc.document_mask(lens), q_len=N, block=128)
    t_compile = time.perf_counter() - t
    if args.save:
        lay.save(args.save)
    print(f"layout: {args.docs} causal documents, {N:,} tokens, block 128: {lay.nnz_blocks:,} blocks "
          f"({lay.n_full:,} full, {lay.n_partial:,} partial), grid {lay.n_qb:,} x {lay.n_kb:,}; "
          f"{'loaded' if args.layout else 'compiled'} in {t_compile:.1f} s; load average {os.getloadavg()[0]:.1f}")
    prev_s, prev = timed(previous_to_flex_block_mask, lay, args.reps)
    new_s, bm = timed(ex.to_flex_block_mask, lay, args.reps)
    same = all(torch.equal(getattr(bm, f"{k}_num_blocks"), prev[k][0])
               and torch.equal(getattr(bm, f"{k}_indices"), prev[k][1]) for k in prev)
    with tempfile.TemporaryDirectory() as tmp:  # the first export in a fresh process (first-touch memory)
        path = args.layout or os.path.join(tmp, "layout.npz")
        if not args.layout:
            lay.save(path)
        code = ("import time, torch, maskc as mc; from maskc.export import to_flex_block_mask; "
                f"lay = mc.load({path!r}); t = time.perf_counter(); to_flex_block_mask(lay); "
                "print(time.perf_counter() - t)")
        first = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     env=dict(os.environ)).stdout.split()[-1])
    rows = [("to_flex_block_mask (previous block-list algorithm)", prev_s, "reference")]
    if args.against:
        rows += against(args.against, lay, args.reps, ex.to_flex_block_mask)
    rows.append(("to_flex_block_mask", new_s, f"lists identical to the reference: {same}; "
                                               f"first call in a fresh process {first:.3f} s"))
    others = [
        ("to_flashinfer_bsr", lambda x: ex.to_flashinfer_bsr(x)),
        ("to_flashinfer_variable", lambda x: ex.to_flashinfer_variable(x)),
        ("to_deepspeed", lambda x: ex.to_deepspeed(x)),
        ("to_block_sparse_attn", lambda x: ex.to_block_sparse_attn(x)),
        ("to_splash_info", lambda x: ex.to_splash_info(x)),
        ("to_magi", lambda x: ex.to_magi(x)),
        ("to_flashmask", lambda x: ex.to_flashmask(x)),
        ("to_scipy", lambda x: ex.to_scipy(x)),
    ]
    magi, fm = ex.to_magi(lay), ex.to_flashmask(lay)
    others += [  # the importers rebuild the layout from what the interval exporters gave
        ("from_magi (its slices)", lambda x: ex.from_magi(**magi, block=(lay.block_q, lay.block_k))),
        ("from_flashmask (its indices)", lambda x: ex.from_flashmask(fm["startend_row_indices"], fm["causal"],
                                                                     block=(lay.block_q, lay.block_k))),
    ]
    for name, fn in others:
        s, out = timed(fn, lay, args.reps)
        if isinstance(out, Exception):
            what = f"refused: {type(out).__name__}: {str(out)[:90]}..."
        elif name == "to_magi":
            what = f"{len(out['attn_type_map'])} slices"
        elif name == "to_flashmask":
            what = f"startend_row_indices {list(out['startend_row_indices'].shape)}, causal={out['causal']}"
        elif name.startswith("from_"):
            what = f"equals the layout: {out == lay}"
        else:
            what = "ok"
        rows.append((name, s, what))
    print()
    print(f"load average after the runs: {os.getloadavg()[0]:.1f}")
    print()
    print("| export | min s | median s | ns per stored block (min) | result |")
    print("|---|---:|---:|---:|---|")
    for name, (lo, med), what in rows:
        print(f"| {name} | {lo:.3f} | {med:.3f} | {1e9 * lo / lay.nnz_blocks:.0f} | {what} |")


if __name__ == "__main__":
    main()
