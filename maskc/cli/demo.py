"""``maskc demo``: the main job (compile the library at 4K tokens, cross-check every
backend against the float64 reference, draw pictures)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import maskc as mc
from maskc import viz
from maskc.cli.core import INFO_COLUMNS, info_rows, print_table
from maskc.compiler import warmup


def register(subparsers) -> None:
    """Add the ``demo`` sub-command to the ``maskc`` parser."""
    d = subparsers.add_parser("demo", help="the main job: compile the library at 4K tokens, cross-check every "
                              "backend, draw pictures")
    d.add_argument("--out", default="demo_out", help="folder for pictures and layout files (default demo_out)")
    d.add_argument("--len", dest="q_len", type=int, default=4096, help="sequence length (default 4096)")
    d.add_argument("--block", type=int, default=128, help="block size (default 128)")
    d.add_argument("--check-len", type=int, default=192, help="sequence length of the cross-check (default 192)")
    d.set_defaults(func=run_demo)


def demo_patterns() -> dict:
    """The patterns the demo compiles: the seeds' patterns and the classical ones."""
    return {
        "prime_bird (token level)": mc.prime_bird(),
        "prime_bird (block level)": mc.causal() & (mc.window(0) | mc.offsets("primes")).at_block_level(128)
        | mc.global_tokens(2) & mc.causal(),
        "square_bird": mc.square_bird(),
        "mian_chowla_bird": mc.mian_chowla_bird(),
        "pi_attention_union": mc.pi_attention_union(r=32, period=16),
        "primeformer_heads(9)": mc.primeformer_heads(9),
        "sliding_window(256)": mc.sliding_window(256),
        "longformer(128, 16)": mc.longformer(128, 16),
        "bigbird": mc.bigbird(window=3, global_tokens=128, random_blocks=2, block=128),
        "sparse_transformer_strided(64)": mc.sparse_transformer_strided(64),
        "chunked_causal(512)": mc.chunked_causal(512),
        "document_mask": mc.document_mask([1000, 600, 1500, 996]),
        "attention_sinks(4, 256)": mc.attention_sinks(4, 256),
    }


def run_demo(args: argparse.Namespace) -> int:
    """Compile the library, cross-check every backend, draw pictures into ``args.out``."""
    try:
        import torch

        on_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is installed by `make demo`
        on_cuda = False
    if not on_cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton's CPU interpreter, before triton loads
    from rich.progress import Progress

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warmup(out=sys.stdout)
    pats = demo_patterns()
    rows, layouts = [], {}
    print(f"maskc demo: compiling {len(pats)} patterns at {args.q_len} tokens, block {args.block}")
    with Progress(transient=True) as prog:
        task = prog.add_task("compiling", total=len(pats))
        for name, p in pats.items():
            prog.update(task, description=f"compiling {name}")
            t0 = time.perf_counter()
            lay = mc.compile(p, args.q_len, block=args.block, cache=False)
            dt = time.perf_counter() - t0
            layouts[name] = lay
            rows.append(info_rows(name, lay, dt))
            prog.advance(task)
    print_table(f"compiled layouts ({args.q_len} tokens)", INFO_COLUMNS, rows)

    print("\nbackends available here:")
    print(mc.backends.format_available())
    check_pats = {k: pats[k] for k in ("prime_bird (token level)", "pi_attention_union", "bigbird")}
    check_pats["pi_attention_union"] = mc.pi_attention_union(r=8, period=16)
    check_pats["bigbird"] = mc.bigbird(window=3, global_tokens=16, random_blocks=1, block=32)
    all_passed = True
    for name, p in check_pats.items():
        print(f"\ncross-check: {name} at {args.check_len} tokens, block 32, float32, forward + gradients")
        rep = mc.crosscheck(p, q_len=args.check_len, block=32, dtype="float32", grads=True, heads=2)
        print(rep.table())
        all_passed &= rep.passed

    print(f"\nwriting pictures to {out}/")
    with Progress(transient=True) as prog:
        task = prog.add_task("drawing", total=len(layouts))
        for name, lay in layouts.items():
            stem = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
            viz.save_png(lay, out / f"{stem}.png", head=None if lay.heads > 1 else 0)
            prog.advance(task)
    lay = layouts["prime_bird (token level)"]
    saved = out / f"prime_bird_{args.q_len}.npz"
    lay.save(saved)
    print(viz.terminal_picture(mc.compile(mc.prime_bird(), 1024, block=64), max_width=16))
    print(f"\n{len(layouts)} pictures and {saved.name} in {out.resolve()}")
    print("cross-check verdict:", "every backend agrees with the float64 reference" if all_passed else "FAILURES above")
    return 0 if all_passed else 1
