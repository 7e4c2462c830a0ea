#!/usr/bin/env python
"""Classic attention blocks vs SympFormer momentum and Nesterov blocks, at equal steps and equal time.

Tasks (no downloads):
  * copy:  a random prefix of N/2 tokens (vocabulary 16) followed by its copy; loss on the
           copied half, which only attention reaching N/2 tokens back can predict (chance ln 16).
  * chars: character-level language modelling of the English help texts that ship with
           Python (``pydoc_data.topics``: the text of ``help("assert")`` etc.); the last 10%
           of the text is held out; loss on every position.

Models (same width, depth, MLPs, optimiser, initial seed and data order; one pattern):
  * classic:  x = x + Attn(LN x);                       x = x + MLP(LN x)
  * momentum: (x, u, t) = MomentumAttentionBlock(x, u, t); x = x + MLP(LN x)
    (``momentum`` is the default velocity form, damp-then-kick; ``momentum-<scheme>`` picks a
    scheme, ``hamiltonian`` the literal autograd form)
  * nesterov: (x, v) = NesterovAttentionBlock(x, v);    x = x + MLP(LN x)

Fairness: per seed, all models see the same batches and are trained in lockstep (one step of
each in turn), so load from other processes on a shared machine hits them alike. Time is the
CPU time of the training steps (one torch thread; evaluations excluded), i.e. wall-clock on
an idle core. Equal steps: validation loss after the last step. Equal time: each model's
validation loss at its last evaluation within the training time of that seed's fastest model.
Paired differences are taken per seed against the classic model.

Usage:
    python examples/sympformer_vs_classic.py                  # 5 seeds, both tasks
    python examples/sympformer_vs_classic.py --tasks copy --seeds 0,1
    python examples/sympformer_vs_classic.py --smoke          # seconds
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import maskc as mc
from maskc.nn import MomentumAttentionBlock, NesterovAttentionBlock, SparseSelfAttention

ROOT = Path(__file__).resolve().parents[1]
TASKS = {  # per-task defaults; command-line values override them
    "copy": dict(seq=48, dim=32, heads=2, layers=2, vocab=16, steps=300, batch=32, lr=3e-3, eval_every=20),
    "chars": dict(seq=64, dim=64, heads=4, layers=2, vocab=0, steps=1500, batch=32, lr=3e-3, eval_every=50),
}


# ----------------------------------------------------------------------------- data
class CopyTask:
    """N tokens: a random prefix of N/2 and its copy; the model reads N − 1 and predicts the copy."""

    def __init__(self, cfg):
        self.half, self.vocab = cfg["seq"] // 2, cfg["vocab"]
        self.val = self.batch(np.random.default_rng(999), 128)  # the same for every seed

    def batch(self, rng, b):
        pre = rng.integers(0, self.vocab, size=(b, self.half))
        return torch.from_numpy(np.concatenate([pre, pre], axis=1))

    def first_scored(self):
        return self.half - 1  # logits from here on predict the copied half


def python_help_text() -> str:
    """The English help texts of the running Python (``pydoc_data.topics``), in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


class CharTask:
    ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # anything else is one "other" symbol

    def __init__(self, cfg, n_val: int = 64):
        table = {c: i for i, c in enumerate(self.ALPHABET)}
        text = python_help_text()
        ids = np.array([table.get(c, len(self.ALPHABET)) for c in text], dtype=np.int64)
        cut = int(0.9 * len(ids))
        self.train_ids, val_ids = ids[:cut], ids[cut:]
        self.n, self.vocab, self.chars = cfg["seq"] + 1, len(self.ALPHABET) + 1, len(text)
        starts = np.linspace(0, len(val_ids) - self.n, n_val).astype(np.int64)
        self.val = torch.from_numpy(np.stack([val_ids[s: s + self.n] for s in starts]))

    def batch(self, rng, b):
        starts = rng.integers(0, len(self.train_ids) - self.n, size=b)
        return torch.from_numpy(np.stack([self.train_ids[s: s + self.n] for s in starts]))

    def first_scored(self):
        return 0


# ---------------------------------------------------------------------------- models
class Net(nn.Module):
    def __init__(self, kind: str, vocab: int, cfg, pattern, backend: str) -> None:
        super().__init__()
        d, heads, layers = cfg["dim"], cfg["heads"], cfg["layers"]
        self.kind = kind.split("-")[0]
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(cfg["seq"], d) * 0.02)
        if self.kind == "classic":
            self.attn = nn.ModuleList([SparseSelfAttention(d, heads, pattern, backend=backend) for _ in range(layers)])
            self.ln_a = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        elif self.kind in ("momentum", "hamiltonian"):
            scheme = kind.split("-", 1)[1] if "-" in kind else "damp_kick"
            form = "velocity" if self.kind == "momentum" else "hamiltonian"
            self.attn = nn.ModuleList([MomentumAttentionBlock(d, heads, pattern, scheme=scheme, form=form,
                                                              backend=backend) for _ in range(layers)])
        elif self.kind == "nesterov":
            self.attn = nn.ModuleList([NesterovAttentionBlock(d, heads, pattern, backend=backend)
                                       for _ in range(layers)])
        else:
            raise ValueError(f"unknown model kind {kind!r}: classic, momentum[-scheme], hamiltonian[-scheme], nesterov")
        self.ln_m = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.mlp = nn.ModuleList([nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
                                  for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tok):
        x = self.emb(tok) + self.pos[: tok.shape[1]]
        u, t = None, None
        for li, attn in enumerate(self.attn):
            if self.kind == "classic":
                x = x + attn(self.ln_a[li](x))[0]
            elif self.kind == "nesterov":
                x, u = attn(x, u)
            else:
                x, u, t = attn(x, u, t)
            x = x + self.mlp[li](self.ln_m[li](x))
        return self.head(self.ln(x))


def loss_fn(model, seq, first: int):
    logits = model(seq[:, :-1])[:, first:]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[:, 1 + first:].reshape(-1))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -------------------------------------------------------------------------- training
def run_seed(task, cfg, seed: int, kinds, pattern, backend: str):
    """Train every kind in lockstep on the same batches; return {kind: history}."""
    models, opts = {}, {}
    for kind in kinds:
        torch.manual_seed(seed)
        models[kind] = Net(kind, task.vocab, cfg, pattern, backend)
        opts[kind] = torch.optim.AdamW(models[kind].parameters(), lr=cfg["lr"])
    warm = task.batch(np.random.default_rng(10_000 + seed), 2)
    for kind, model in models.items():  # untimed: pattern compile and first-call costs
        loss_fn(model, warm, task.first_scored()).backward()
        model.zero_grad(set_to_none=True)
    hist = {k: {"step": [], "time": [], "wall": [], "val": [], "train": [], "step_s": [], "diverged_at": None}
            for k in kinds}
    clock = {k: [0.0, 0.0] for k in kinds}
    rng = np.random.default_rng(seed)
    for step in range(1, cfg["steps"] + 1):
        seq = task.batch(rng, cfg["batch"])
        for kind, model in models.items():
            h = hist[kind]
            if h["diverged_at"] is not None:
                continue
            c0, w0 = time.process_time(), time.perf_counter()
            model.train()
            loss = loss_fn(model, seq, task.first_scored())
            opts[kind].zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opts[kind].step()
            dc, dw = time.process_time() - c0, time.perf_counter() - w0
            clock[kind][0] += dc
            clock[kind][1] += dw
            h["step_s"].append(dc)
            if not math.isfinite(loss.item()):
                h["diverged_at"] = step
                continue
            if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
                model.eval()
                with torch.no_grad():
                    v = float(loss_fn(model, task.val, task.first_scored()))
                h["step"].append(step)
                h["time"].append(clock[kind][0])
                h["wall"].append(clock[kind][1])
                h["val"].append(v)
                h["train"].append(float(loss.detach()))
    return hist, {k: n_params(m) for k, m in models.items()}


def at_time(h, t):
    """Validation loss of the last evaluation at or before time t (NaN if none or diverged)."""
    idx = [i for i, s in enumerate(h["time"]) if s <= t * (1 + 1e-9)]
    return h["val"][idx[-1]] if idx and h["diverged_at"] is None else float("nan")


def final(h):
    return h["val"][-1] if h["val"] and h["diverged_at"] is None else float("nan")


def mean_sd(xs) -> str:
    xs = np.asarray(xs, float)
    if np.isnan(xs).any():
        return f"NaN at {int(np.isnan(xs).sum())} of {len(xs)} seeds"
    sd = xs.std(ddof=1) if len(xs) > 1 else float("nan")
    return f"{xs.mean():.3f} ± {sd:.3f}"


def summarise(runs, params, kinds):
    """Per-kind rows and paired differences against classic, at equal steps and at equal time."""
    seeds = list(runs)
    t_eq = {s: min(runs[s][k]["time"][-1] for k in kinds if runs[s][k]["time"]) for s in seeds}
    rows = {}
    for k in kinds:
        eq_steps = [final(runs[s][k]) for s in seeds]
        eq_time = [at_time(runs[s][k], t_eq[s]) for s in seeds]
        ms = [1000 * float(np.median(runs[s][k]["step_s"])) for s in seeds]
        rows[k] = {"params": params[k], "equal_steps": eq_steps, "equal_time": eq_time, "ms_per_step": ms,
                   "diverged": [runs[s][k]["diverged_at"] for s in seeds]}
        if k != "classic" and "classic" in kinds:
            for what in ("equal_steps", "equal_time"):
                d = np.subtract(rows[k][what], rows["classic"][what])
                rows[k][f"diff_{what}"] = d.tolist()
    return {"seeds": seeds, "t_eq": t_eq, "rows": rows}


def print_table(name, summ, steps):
    print(f"\n### {name}: {len(summ['seeds'])} seeds, equal steps = {steps}, "
          f"equal wall-clock = the fastest model's time per seed "
          f"({', '.join(f'{t:.1f}' for t in summ['t_eq'].values())} s)")
    print("| model | params | val @ equal steps | Δ vs classic (lower at) | val @ equal time | Δ vs classic "
          "(lower at) | median ms/step |")
    print("|---|---|---|---|---|---|---|")
    for k, r in summ["rows"].items():
        cells = [k, f"{r['params']:,}", mean_sd(r["equal_steps"])]
        for what in ("equal_steps", "equal_time"):
            if what == "equal_time":
                cells.append(mean_sd(r["equal_time"]))
            d = r.get(f"diff_{what}")
            cells.append("—" if d is None else f"{mean_sd(d)} ({int(np.sum(np.asarray(d) < 0))}/{len(d)})")
        cells.append(f"{np.mean(r['ms_per_step']):.1f}")
        print("| " + " | ".join(cells) + " |")
    for k, r in summ["rows"].items():
        print(f"  {k:<26} per seed: steps " + " ".join(f"{v:.3f}" for v in r["equal_steps"]) +
              " | time " + " ".join(f"{v:.3f}" for v in r["equal_time"]))


def plot(results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(len(results), 2, figsize=(9, 3.2 * len(results)), squeeze=False)
    for row, (task, res) in enumerate(results.items()):
        runs = res["runs"]
        for k in res["kinds"]:
            hs = [runs[s][k] for s in runs if runs[s][k]["diverged_at"] is None]
            if not hs:
                continue
            n = min(len(h["val"]) for h in hs)
            val = np.array([h["val"][:n] for h in hs])
            for col, x in enumerate((np.array(hs[0]["step"][:n]), np.mean([h["time"][:n] for h in hs], 0))):
                ax = axes[row, col]
                ax.plot(x, val.mean(0), label=k)
                ax.fill_between(x, val.mean(0) - val.std(0), val.mean(0) + val.std(0), alpha=0.2)
        axes[row, 0].set_xlabel("training step")
        axes[row, 1].set_xlabel("training CPU time, 1 thread (s)")
        for ax in axes[row]:
            ax.set_ylabel(f"{task}: validation loss (nats)")
            ax.grid(alpha=0.3)
        if task == "chars":  # the curves differ by hundredths of a nat: show the last stretch
            lo = min(min(runs[s][k]["val"]) for s in runs for k in res["kinds"] if runs[s][k]["val"])
            for ax in axes[row]:
                ax.set_ylim(lo - 0.05, lo + 0.8)
        axes[row, 0].legend(fontsize=8)
    fig.suptitle(f"mean ± sd over seeds {','.join(map(str, next(iter(results.values()))['runs']))}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.open(buf).convert("RGB").quantize(colors=48).save(path, optimize=True)  # palette PNG: small
    print(f"plot: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 4 steps, seeds 0,1 (seconds)")
    ap.add_argument("--tasks", default="copy,chars")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--kinds", default="classic,momentum,nesterov")
    for key in ("seq", "dim", "heads", "layers", "steps", "batch", "eval_every"):
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=None, help="override the task default")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--pattern", default="causal()", help="maskc pattern text for every block")
    ap.add_argument("--backend", default="reference", help="maskc backend for every model")
    ap.add_argument("--plot", default=str(Path(tempfile.gettempdir()) / "maskc_examples" / "sympformer_vs_classic.png"),
                    help="where the plot goes (the figure in the docs: docs/images/examples/sympformer_vs_classic.png)")
    ap.add_argument("--json", default="")
    ap.add_argument("--from-json", default="", help="re-print the tables and re-plot a saved --json run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())["tasks"]
        for name, res in results.items():
            print_table(name, res["summary"], res["config"]["steps"])
        if args.plot:
            plot(results, args.plot)
        return 0
    if args.smoke:
        args.seq, args.dim, args.heads, args.steps, args.eval_every, args.seeds = 12, 8, 2, 4, 2, "0,1"
        if args.plot == ap.get_default("plot"):
            args.plot = ""
    pattern = mc.parse(args.pattern)
    kinds = args.kinds.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for name in args.tasks.split(","):
        if name not in TASKS:
            raise SystemExit(f"unknown task {name!r}; choose from {sorted(TASKS)}")
        cfg = dict(TASKS[name])
        cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
        task = CopyTask(cfg) if name == "copy" else CharTask(cfg)
        if name == "chars":
            print(f"chars: {task.chars:,} characters of pydoc_data.topics, vocabulary {task.vocab}")
        runs, params = {}, {}
        for seed in seeds:
            t0 = time.perf_counter()
            runs[seed], params = run_seed(task, cfg, seed, kinds, pattern, args.backend)
            print(f"{name} seed {seed} ({time.perf_counter() - t0:.0f} s): " + "  ".join(
                f"{k} {final(h):.4f} ({1000 * np.median(h['step_s']):.1f} ms/step)" for k, h in runs[seed].items()),
                flush=True)
        summ = summarise(runs, params, kinds)
        print_table(name, summ, cfg["steps"])
        results[name] = {"config": cfg, "kinds": kinds, "runs": runs, "summary": summ}
    if args.plot:
        plot(results, args.plot)
    if args.json:
        meta = {"argv": argv, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
        Path(args.json).write_text(json.dumps({"meta": meta, "tasks": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
