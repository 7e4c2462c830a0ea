#!/usr/bin/env python
"""Classic pre-LN attention blocks vs SympFormer momentum blocks on the same task and budget.

Task: next-token prediction on a synthetic "copy with noise" language: sequences made of
a random prefix of length N/2 followed by its copy (the second half is predictable only
through attention reaching N/2 tokens back). Loss is measured on the second half.

Models (same width, depth, MLPs, optimiser, data order, pattern):
  * classic:  x = x + Attn(LN(x)); x = x + MLP(LN(x))
  * momentum: (x, y, t) = MomentumAttentionBlock(x, y, t); x = x + MLP(LN(x))
    (SPEC D, conformal-symplectic Euler, one attention evaluation per block)
  * nesterov: (x, v) = NesterovAttentionBlock(x, v); x = x + MLP(LN(x))

Outputs a PNG with validation loss vs step (equal steps) and vs wall-clock seconds
(equal time), and prints both comparisons. The momentum block's force needs a backward
through the attention scores, so its step costs more: the source reports equal *steps*.

Usage:
    python examples/sympformer_vs_classic.py           # full (~5 min on 2 cores)
    python examples/sympformer_vs_classic.py --smoke   # seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import maskc as mc
from maskc.nn import MomentumAttentionBlock, NesterovAttentionBlock, SparseSelfAttention

ROOT = Path(__file__).resolve().parents[1]


class Net(nn.Module):
    def __init__(self, kind: str, vocab: int, n: int, d: int, heads: int, layers: int, pattern) -> None:
        super().__init__()
        self.kind = kind
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)
        if kind == "classic":
            self.attn = nn.ModuleList([SparseSelfAttention(d, heads, pattern, backend="reference") for _ in range(layers)])
            self.ln_a = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        elif kind == "momentum":
            self.attn = nn.ModuleList([MomentumAttentionBlock(d, heads, pattern, backend="reference", h_x=0.5, h_y=0.5)
                                       for _ in range(layers)])
        else:
            self.attn = nn.ModuleList([NesterovAttentionBlock(d, heads, pattern, backend="reference")
                                       for _ in range(layers)])
        self.ln_m = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.mlp = nn.ModuleList([nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
                                  for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tok):
        x = self.emb(tok) + self.pos[: tok.shape[1]]
        y, t = None, None
        for li, attn in enumerate(self.attn):
            if self.kind == "classic":
                x = x + attn(self.ln_a[li](x))[0]
            elif self.kind == "momentum":
                x, y, t = attn(x, y, t)
            else:
                x, y = attn(x, y)
            x = x + self.mlp[li](self.ln_m[li](x))
        return self.head(self.ln(x))


def batch(rng, b, n, vocab):
    half = n // 2
    pre = rng.integers(0, vocab, size=(b, half))
    seq = np.concatenate([pre, pre], axis=1)[:, :n]
    return torch.from_numpy(seq)


def loss_fn(model, seq):
    logits = model(seq[:, :-1])
    n = seq.shape[1]
    tgt = seq[:, 1:]
    h = n // 2 - 1  # predict the copied half
    return nn.functional.cross_entropy(logits[:, h:].reshape(-1, logits.shape[-1]), tgt[:, h:].reshape(-1))


def warm_up(kinds, args, pattern) -> None:
    """One untimed forward/backward per kind: the first model to run would otherwise pay the
    one-off pattern compile and JIT warm-up inside its timed steps (measured: ~2-3x its
    per-step time over 12 steps, still +150% over 300)."""
    seq = batch(np.random.default_rng(0), 2, args.seq + 1, args.vocab)
    for kind in kinds:
        loss_fn(Net(kind, args.vocab, args.seq, args.dim, args.heads, args.layers, pattern), seq).backward()


def train(kind, args, pattern):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vrng = np.random.default_rng(999)
    val = batch(vrng, 128, args.seq + 1, args.vocab)
    model = Net(kind, args.vocab, args.seq, args.dim, args.heads, args.layers, pattern)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    hist = {"step": [], "time": [], "val": [], "train": [], "step_s": []}
    elapsed = 0.0
    for step in range(1, args.steps + 1):
        seq = batch(rng, args.batch, args.seq + 1, args.vocab)
        t0 = time.process_time()
        model.train()
        loss = loss_fn(model, seq)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist["step_s"].append(time.process_time() - t0)
        elapsed += hist["step_s"][-1]
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                v = float(loss_fn(model, val))
            hist["step"].append(step)
            hist["time"].append(elapsed)
            hist["val"].append(v)
            hist["train"].append(float(loss.detach()))
    return hist


def at_time(hist, t):
    """Validation loss of the last evaluation at or before wall-clock t."""
    idx = [i for i, s in enumerate(hist["time"]) if s <= t]
    return hist["val"][idx[-1]] if idx else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pattern", default="causal()", help="maskc pattern text for every block")
    ap.add_argument("--kinds", default="classic,momentum,nesterov")
    ap.add_argument("--plot", default=str(ROOT / "docs/images/examples/sympformer_vs_classic.png"))
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.seq, args.dim, args.steps, args.eval_every = 12, 8, 4, 2
        if args.plot == ap.get_default("plot"):
            args.plot = ""
    pattern = mc.parse(args.pattern)
    hists = {}
    warm_up(args.kinds.split(","), args, pattern)
    for kind in args.kinds.split(","):
        hists[kind] = train(kind, args, pattern)
        h = hists[kind]
        print(f"{kind:<9} final val {h['val'][-1]:.4f}  median {1000 * float(np.median(h['step_s'])):.0f} ms/step "
              f"(mean {1000 * h['time'][-1] / args.steps:.0f})", flush=True)
    t_eq = min(h["time"][-1] for h in hists.values())
    print(f"\nequal steps ({args.steps}):  " + "  ".join(f"{k} {h['val'][-1]:.4f}" for k, h in hists.items()))
    print(f"equal wall-clock ({t_eq:.1f} s): " + "  ".join(f"{k} {at_time(h, t_eq):.4f}" for k, h in hists.items()))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for k, h in hists.items():
            axes[0].plot(h["step"], h["val"], label=k)
            axes[1].plot(h["time"], h["val"], label=k)
        axes[0].set_xlabel("step")
        axes[1].set_xlabel("training wall-clock (s, 1 CPU thread)")
        for ax in axes:
            ax.set_ylabel("validation loss (copied half)")
            ax.legend()
        fig.suptitle(f"classic vs momentum blocks, N={args.seq}, {args.layers} layers, d={args.dim}, "
                     f"pattern {args.pattern}")
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        plt.close(fig)
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "hist": hists}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
