#!/usr/bin/env python
"""Which sparse patterns carry information far? Needle retrieval at every distance.

Task: a sequence of N tokens is random filler (vocabulary F) except one *needle* token
drawn from a separate value vocabulary V at a random position p; the last token is a
query marker and the model must name the needle at the last position. The needle's
distance is d = N - 1 - p, uniformly in [1, N - 1]. A model with L attention layers can
only solve distance d if its pattern connects the last token to position p within L hops,
so accuracy vs distance is measured next to the pattern's hop reach (computed exactly
from the compiled layout).

Patterns (all causal; d = i - j is the distance from query i back to key j): dense, sliding
window, prime_bird (token level: d <= window, d prime, or j < global_tokens), block-level
primes (prime_bird's rule on 16-token blocks), πAttention (two attentions, ring-local
d <= r and π-step d a multiple of the period, whose softmax outputs a learned gate mixes)
and Mian-Chowla bird (prime_bird's rule with d a Mian-Chowla number 1, 2, 4, 8, 13, 21, ...).

Speed note: on CPU the modules train through the differentiable float64 *reference*
backend, which is dense-masked, so time per step here measures the module's work at
this size (πAttention runs two attentions), not a sparse kernel's speed.

Usage:
    python examples/long_range_retrieval.py            # full: N=64, 2 layers, 300 steps (~3-8 min on a 2-core CPU)
    python examples/long_range_retrieval.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import maskc as mc
from maskc.nn import PiAttention, SparseSelfAttention
from maskc.patterns import library as lib

ROOT = Path(__file__).resolve().parents[1]


def patterns(n: int, window: int, block: int, period: int, radius: int) -> dict[str, object]:
    """name -> Pattern (or ("pi", period, radius) for πAttention)."""
    return {
        "dense": mc.causal(),
        f"sliding_window({window})": mc.causal() & mc.window(window),
        "prime_bird": lib.prime_bird(),
        f"block_primes(b={block})": mc.causal() & (mc.window(1) | mc.offsets("primes")).at_block_level(block),
        f"pi_attention(pi={period},r={radius})": ("pi", period, radius),
        "mian_chowla_bird": lib.mian_chowla_bird(),
    }


def union_pattern(p, n: int):
    if isinstance(p, tuple):
        _, period, radius = p
        return lib.pi_attention_union(r=radius, period=period, causal=True)
    return p


def hop_reach(pattern, n: int, layers: int) -> tuple[np.ndarray, int | None]:
    """(reachable[d] for d in 0..n-1 from the last token within `layers` hops, hop diameter)."""
    m = mc.compile(pattern, n, block=min(64, n)).to_dense().any(axis=0).astype(np.int64)
    reach = m.copy()
    reach_at_l = None
    diam = None
    for hop in range(1, n + 1):
        if hop == layers:
            reach_at_l = reach[n - 1, ::-1] > 0  # index = distance
        if diam is None and (reach > 0)[np.tril_indices(n)].all():
            diam = hop
        if hop >= layers and diam is not None:
            break
        reach = np.minimum(reach @ m, 1)
    if reach_at_l is None:
        reach_at_l = reach[n - 1, ::-1] > 0
    return reach_at_l, diam


class Block(nn.Module):
    def __init__(self, d: int, heads: int, pat) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        if isinstance(pat, tuple):
            _, period, radius = pat
            self.attn = PiAttention(d, heads, period=period, radius=radius, backend="reference", block=64)
            self.pi = True
        else:
            self.attn = SparseSelfAttention(d, heads, pat, backend="reference", block=64)
            self.pi = False
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        a = self.attn(self.ln1(x))
        x = x + (a if self.pi else a[0])
        return x + self.mlp(self.ln2(x))


class Model(nn.Module):
    def __init__(self, vocab: int, n_values: int, n: int, d: int, heads: int, layers: int, pat) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads, pat) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_values)

    def forward(self, tok):
        x = self.emb(tok) + self.pos[: tok.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x[:, -1]))


def make_batch(rng: np.random.Generator, batch: int, n: int, n_filler: int, n_values: int):
    """tokens [batch, n] (fillers 0..F-1, values F..F+V-1, query marker F+V), target, distance."""
    tok = rng.integers(0, n_filler, size=(batch, n))
    dist = rng.integers(1, n, size=batch)  # distance from the last token
    pos = n - 1 - dist
    val = rng.integers(0, n_values, size=batch)
    tok[np.arange(batch), pos] = n_filler + val
    tok[:, -1] = n_filler + n_values
    return torch.from_numpy(tok), torch.from_numpy(val), dist


def run(args) -> dict:
    torch.set_num_threads(max(1, args.threads))
    n, L = args.seq, args.layers
    pats = patterns(n, args.window, args.block_level, args.period, args.radius)
    if args.only:
        pats = {k: v for k, v in pats.items() if any(s in k for s in args.only.split(","))}
    erng = np.random.default_rng(1234)
    eval_tok, eval_val, eval_dist = make_batch(erng, args.eval, n, args.filler, args.values)
    edges = np.unique(np.linspace(1, n, args.buckets + 1).astype(int))
    results = {}
    for name, pat in pats.items():
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        model = Model(args.filler + args.values + 1, args.values, n, args.dim, args.heads, L, pat)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
        lay = mc.compile(union_pattern(pat, n), n, block=min(64, n))
        keys = float(lay.row_counts().max(axis=0).mean())
        reach, diam = hop_reach(union_pattern(pat, n), n, L)
        t_steps = []
        for step in range(args.steps):
            tok, val, _ = make_batch(rng, args.batch, n, args.filler, args.values)
            t0 = time.process_time()
            loss = nn.functional.cross_entropy(model(tok), val)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t_steps.append(time.process_time() - t0)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(eval_tok[i : i + 256]).argmax(-1) for i in range(0, args.eval, 256)])
        ok = (pred == eval_val).numpy()
        acc_b, reach_b = [], []
        for a, b in zip(edges[:-1], edges[1:]):
            sel = (eval_dist >= a) & (eval_dist < b) if b < n else (eval_dist >= a)
            acc_b.append(float(ok[sel].mean()) if sel.any() else float("nan"))
            reach_b.append(float(reach[a:b].mean()) if b > a else float("nan"))
        results[name] = {
            "acc": float(ok.mean()), "acc_by_distance": acc_b, "reach_by_distance": reach_b,
            "reach_fraction": float(reach[1:].mean()), "hop_diameter": diam, "keys_per_row": keys,
            "ms_per_step": 1000 * float(np.median(t_steps[1:] if len(t_steps) > 1 else t_steps)),
            "final_loss": float(loss.detach()),
        }
        print(f"  {name:<28} acc {ok.mean():.3f}  reach({L} hops) {reach[1:].mean():.2f}  "
              f"{results[name]['ms_per_step']:.0f} ms/step", flush=True)
    return {"edges": edges.tolist(), "results": results, "config": vars(args)}


def table(out: dict) -> str:
    edges, res, cfg = out["edges"], out["results"], out["config"]
    heads = [f"d {a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])]
    lines = [f"needle retrieval, N={cfg['seq']}, {cfg['layers']} layers, d={cfg['dim']}, {cfg['steps']} steps, "
             f"chance {1 / cfg['values']:.3f}",
             "| pattern | keys/row | reach in L hops | hop diameter | accuracy | " + " | ".join(heads) + " | ms/step |",
             "|---" * (6 + len(heads)) + "|"]
    for name, r in res.items():
        cells = [f"{a:.2f} ({h:.0%})" for a, h in zip(r["acc_by_distance"], r["reach_by_distance"])]
        lines.append(f"| {name} | {r['keys_per_row']:.1f} | {r['reach_fraction']:.0%} | {r['hop_diameter']} | "
                     f"{r['acc']:.3f} | " + " | ".join(cells) + f" | {r['ms_per_step']:.0f} |")
    lines.append("cells: accuracy (fraction of the bucket's distances reachable within L hops)")
    return "\n".join(lines)


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.array(out["edges"])
    mids = (edges[:-1] + edges[1:] - 1) / 2
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in out["results"].items():
        line, = ax.plot(mids, r["acc_by_distance"], marker="o", label=f"{name} (acc {r['acc']:.2f})")
        ax.plot(mids, r["reach_by_distance"], ls=":", color=line.get_color(), alpha=0.6)
    ax.axhline(1 / out["config"]["values"], color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("needle distance from the query token")
    ax.set_ylabel("accuracy (solid) / reachable in L hops (dotted)")
    ax.set_title(f"needle retrieval, N={out['config']['seq']}, {out['config']['layers']} layers")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval", type=int, default=1024)
    ap.add_argument("--buckets", type=int, default=8)
    ap.add_argument("--filler", type=int, default=32)
    ap.add_argument("--values", type=int, default=16)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--block-level", type=int, default=16)
    ap.add_argument("--period", type=int, default=16)
    ap.add_argument("--radius", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest at these sizes on a shared CPU)")
    ap.add_argument("--only", default="", help="comma-separated substrings of pattern names to run")
    ap.add_argument("--plot", default=str(Path(tempfile.gettempdir()) / "maskc_examples" / "long_range_retrieval.png"),
                    help="where the plot goes (the figure in the docs: docs/images/examples/long_range_retrieval.png)")
    ap.add_argument("--json", default="", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seq, args.steps, args.eval, args.dim, args.buckets = 24, 3, 64, 16, 4
        args.window, args.block_level, args.period, args.radius = 4, 4, 4, 4
        if args.plot == ap.get_default("plot"):
            args.plot = ""
    out = run(args)
    print(table(out))
    if args.plot:
        plot(out, Path(args.plot))
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
