#!/usr/bin/env python
"""Draw one picture per library pattern into docs/images/patterns/<name>.png.

Each picture shows the token-level mask at N = 128 (black = allowed) next to its block
view at block 16 as compiled by ``mc.compile`` (black = FULL block, grey = PARTIAL,
white = empty), with keys per row and block fraction in the title. Multi-head patterns
(``primeformer_heads``) get one small token-level panel per head.

Usage:
    python scripts/make_pattern_gallery.py [--n 128] [--block 16] [--out docs/images/patterns]
                                           [--only NAME ...]

The drawing is plain matplotlib (Agg backend, runs headless) so the gallery does not
depend on ``maskc.viz``; pictures are about 8-25 KB each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

import maskc as mc  # noqa: E402
from maskc.patterns import library as L  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "patterns"
_BLOCK_CMAP = ListedColormap(["white", "0.6", "black"])


def block_view(layout: mc.Layout, head: int = 0) -> np.ndarray:
    """int8 [n_qb, n_kb]: 0 empty, 1 PARTIAL, 2 FULL, from the layout's BSR arrays."""
    out = np.zeros((layout.n_qb, layout.n_kb), dtype=np.int8)
    h = min(head, layout.heads - 1)
    rp = np.asarray(layout.row_ptr)[h]
    for qb in range(layout.n_qb):
        for t in range(rp[qb], rp[qb + 1]):
            out[qb, layout.col_idx[t]] = layout.kind[t]
    return out


def _style(ax, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(name: str, pattern: mc.Pattern, n: int, block: int, out: Path) -> Path:
    dense = pattern.dense(n)
    layout = mc.compile(pattern, n, block=block)
    H = dense.shape[0]
    path = out / f"{name}.png"
    if H == 1:
        m = dense[0]
        bv = block_view(layout)
        fig, axes = plt.subplots(1, 2, figsize=(5.6, 3.0), dpi=72)
        axes[0].imshow(~m, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        _style(axes[0], f"tokens N={n}: {m.sum(1).mean():.1f} keys/row, density {m.mean():.2f}")
        axes[1].imshow(bv, cmap=_BLOCK_CMAP, interpolation="nearest", vmin=0, vmax=2)
        _style(axes[1], f"blocks of {block}: {np.count_nonzero(bv)}/{bv.size} non-empty")
    else:
        cols = 3
        rows = -(-H // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.6, 1.95 * rows), dpi=72, squeeze=False)
        for h in range(rows * cols):
            ax = axes[h // cols][h % cols]
            if h >= H:
                ax.axis("off")
                continue
            ax.imshow(~dense[h], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
            sub = pattern.for_head(h).text()
            _style(ax, f"h{h}: {sub if len(sub) < 28 else sub.split('(')[0]}")
    text = pattern.text()
    fig.suptitle(text if len(text) < 70 else text[:67] + "...", fontsize=9, family="monospace")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=72, pil_kwargs={"optimize": True})
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="sequence length (default 128)")
    ap.add_argument("--block", type=int, default=16, help="block size of the block view (default 16)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--only", nargs="*", default=None, help="pattern names to draw (default: all)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pats = L.gallery_patterns()
    unknown = set(args.only or ()) - set(pats)
    if unknown:
        ap.error(f"unknown pattern(s) {sorted(unknown)}; known: {', '.join(sorted(pats))}")
    for name, p in pats.items():
        if args.only and name not in args.only:
            continue
        path = draw(name, p, args.n, args.block, args.out)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size / 1024:.1f} KB",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
