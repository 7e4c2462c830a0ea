"""Pictures of layouts: a compact terminal picture and a matplotlib PNG.

Both read the block-sparse arrays directly and never allocate the dense mask: the
block picture is drawn from the BSR arrays (downsampled when the grid is large), the
token-level view only for a bounded zoom window, from the partial-block tiles. ``head``
arguments name a stored slice: the head, or ``b * heads + h`` for a batched layout.

Example:
    >>> import maskc as mc
    >>> from maskc.viz import terminal_picture
    >>> print(terminal_picture(mc.compile(mc.causal(), q_len=64, block=16)))
    causal()  q_len=64 kv_len=64 block=(16, 16) head 0/1  blocks 10/16
    ▒···
    █▒··
    ██▒·
    ███▒
    █ full  ▒ partial  · empty
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from maskc.ir.layout import FULL, Layout
from maskc.limits import check_int, refuse_above

CHARS = {0: "·", 1: "▒", 2: "█"}
#: Colours of empty / partial / full blocks in PNGs.
COLOURS = ("#ffffff", "#f4a259", "#1f4e79")


#: Largest zoom window (elements) :func:`token_window` builds.
MAX_WINDOW_ELEMENTS = 1 << 24


def _check_head(layout: Layout, head: int) -> int:
    if not isinstance(layout, Layout):
        raise TypeError(f"expected a maskc Layout, got {type(layout).__name__}")
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < layout.n_slices:
        raise ValueError(f"head must be an int in [0, {layout.n_slices}) (a stored slice), got {head!r}"[:200])
    return int(head)


def _text(layout: Layout, limit: int = 200) -> str:
    text = layout.pattern_text or "<layout>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _slice_label(layout: Layout, s: int) -> str:
    if layout.batch == 1:
        return f"head {s}/{layout.heads}"
    return f"batch {s // layout.heads}/{layout.batch} head {s % layout.heads}/{layout.heads}"


def block_grid(layout: Layout, head: int = 0, max_cells: int = 512) -> tuple[np.ndarray, int]:
    """Block classes of one head as uint8 [rows, cols] (0 empty, 1 partial/mixed, 2 full).

    When the grid is wider or taller than ``max_cells``, ``f x f`` blocks are merged
    into one cell (f returned): the cell is full when all its blocks are full, empty
    when none is stored, else partial. Cost O(stored blocks of the head).

    Example:
        >>> import maskc as mc
        >>> from maskc.viz import block_grid
        >>> g, f = block_grid(mc.compile(mc.causal(), q_len=64, block=16), max_cells=2)
        >>> g.tolist(), f
        ([[1, 0], [2, 1]], 2)
    """
    head = _check_head(layout, head)
    max_cells = check_int(max_cells, "max_cells", 1, 1 << 14)
    f = max(1, math.ceil(max(layout.n_qb, layout.n_kb) / max_cells))
    R, C = math.ceil(layout.n_qb / f), math.ceil(layout.n_kb / f)
    lo, hi = layout.row_ptr[head, 0], layout.row_ptr[head, -1]
    r = layout.block_row[lo:hi].astype(np.int64) // f
    c = layout.col_idx[lo:hi].astype(np.int64) // f
    cell = r * C + c
    stored = np.bincount(cell, minlength=R * C).reshape(R, C)
    full = np.bincount(cell, weights=(layout.kind[lo:hi] == FULL), minlength=R * C).reshape(R, C)
    rows_in = np.minimum(f, layout.n_qb - np.arange(R) * f)
    cols_in = np.minimum(f, layout.n_kb - np.arange(C) * f)
    geom = rows_in[:, None] * cols_in[None, :]
    out = np.where(stored == 0, 0, np.where(full == geom, 2, 1)).astype(np.uint8)
    return out, f


def terminal_picture(layout: Layout, head: int = 0, max_width: int = 64, legend: bool = True) -> str:
    """A compact block picture: '█' full, '▒' partial (or mixed), '·' empty.

    One character per block, or per f x f blocks when the grid is wider than
    ``max_width`` (the header then says ``1 char = f x f blocks``).

    Example:
        >>> import maskc as mc
        >>> from maskc.viz import terminal_picture
        >>> print(terminal_picture(mc.compile(mc.window(16), q_len=64, block=16), legend=False))
        window(16)  q_len=64 kv_len=64 block=(16, 16) head 0/1  blocks 7/16
        ▒···
        ▒▒··
        ·▒▒·
        ··▒▒
    """
    max_width = check_int(max_width, "max_width", 1, 1 << 12)
    grid, f = block_grid(layout, head, max_width)
    lo, hi = layout.slice_range(head)
    head_line = (
        f"{_text(layout)}  q_len={layout.q_len} kv_len={layout.kv_len} "
        f"block=({layout.block_q}, {layout.block_k}) {_slice_label(layout, head)}  "
        f"blocks {hi - lo}/{layout.n_qb * layout.n_kb}"
    )
    if f > 1:
        head_line += f"  (1 char = {f}x{f} blocks)"
    lut = np.array([CHARS[0], CHARS[1], CHARS[2]])
    lines = [head_line] + ["".join(row) for row in lut[grid]]
    if legend:
        lines.append("█ full  ▒ partial" + (" or mixed" if f > 1 else "") + "  · empty")
    return "\n".join(lines)


def token_window(layout: Layout, head: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
    """Token-level mask of ``[q0, q1) x [k0, k1)`` in one head (bool), from the blocks
    that intersect the window only.

    Example:
        >>> import maskc as mc
        >>> from maskc.viz import token_window
        >>> token_window(mc.compile(mc.causal(), q_len=8, block=4), 0, 2, 4, 1, 4).astype(int).tolist()
        [[1, 1, 0], [1, 1, 1]]
    """
    head = _check_head(layout, head)
    q0, q1, k0, k1 = (check_int(v, n) for v, n in ((q0, "q0"), (q1, "q1"), (k0, "k0"), (k1, "k1")))
    if not (0 <= q0 < q1 <= layout.q_len and 0 <= k0 < k1 <= layout.kv_len):
        raise ValueError(
            f"zoom window ({q0}, {q1}, {k0}, {k1}) must satisfy 0 <= q0 < q1 <= {layout.q_len} and "
            f"0 <= k0 < k1 <= {layout.kv_len}"
        )
    refuse_above((q1 - q0) * (k1 - k0), MAX_WINDOW_ELEMENTS, "the zoom window", "pick a smaller window",
                 unit="elements")
    Bq, Bk = layout.block_q, layout.block_k
    out = np.zeros((q1 - q0, k1 - k0), dtype=bool)
    lo, hi = int(layout.row_ptr[head, q0 // Bq]), int(layout.row_ptr[head, (q1 - 1) // Bq + 1])
    idx = np.arange(lo, hi)
    cols = layout.col_idx[lo:hi]
    idx = idx[(cols >= k0 // Bk) & (cols <= (k1 - 1) // Bk)]
    for s in range(0, idx.size, 1024):
        sel = idx[s : s + 1024]
        el = layout.block_tiles(sel)
        for b, blk in zip(sel, el):
            qs, ks = int(layout.block_row[b]) * Bq, int(layout.col_idx[b]) * Bk
            a0, a1 = max(qs, q0), min(qs + Bq, q1)
            c0, c1 = max(ks, k0), min(ks + Bk, k1)
            out[a0 - q0 : a1 - q0, c0 - k0 : c1 - k0] = blk[a0 - qs : a1 - qs, c0 - ks : c1 - ks]
    return out


def degree_bins(lo: int, hi: int, max_bins: int = 60) -> np.ndarray:
    """Histogram edges for integer counts in ``[lo, hi]``: every bin holds the same number of integers.

    Float-width bins over integer data alias (some bins catch one more integer than their
    neighbours), which draws spikes that are not in the data.

    Example:
        >>> from maskc.viz import degree_bins
        >>> degree_bins(1, 568).tolist()[:3], len(degree_bins(1, 568)) - 1
        ([0.5, 10.5, 20.5], 57)
        >>> degree_bins(3, 3).tolist()
        [2.5, 3.5]
    """
    width = max(1, -(-(hi - lo + 1) // max_bins))
    n = -(-(hi - lo + 1) // width)
    return lo - 0.5 + width * np.arange(n + 1, dtype=np.float64)


def save_png(layout: Layout, path, head: int | None = None, zoom: tuple[int, int, int, int] | None = None,
             max_tokens: int = 256, max_cells: int = 512, max_heads: int = 8, dpi: int = 100) -> Path:
    """Write a PNG: block layout, zoomed token view and row-degree histogram per head.

    Args:
        head: one head, or None for every head (a grid: one row of three panels per
            head, at most ``max_heads`` rows).
        zoom: ``(q0, q1, k0, k1)`` token window; default the top-left
            ``max_tokens x max_tokens`` corner. Windows larger than
            ``max_tokens**2`` elements are refused.
        max_cells: block panels merge f x f blocks beyond this many per side.

    Returns the path written. The figure is ``15 x 4.6 * rows`` inches at ``dpi``.

    Example:
        >>> import maskc as mc, tempfile, os
        >>> from maskc.viz import save_png
        >>> lay = mc.compile(mc.causal() & mc.window(40), q_len=300, block=32)
        >>> p = save_png(lay, os.path.join(tempfile.mkdtemp(), "w.png"))
        >>> p.stat().st_size > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if head is None:
        heads = list(range(min(layout.n_slices, check_int(max_heads, "max_heads", 1, 64))))
    else:
        heads = [_check_head(layout, head)]
    if zoom is None:
        zq, zk = min(layout.q_len, max_tokens), min(layout.kv_len, max_tokens)
        zoom = (0, zq, 0, zk)
    q0, q1, k0, k1 = (int(v) for v in zoom)
    if (q1 - q0) * (k1 - k0) > max_tokens * max_tokens:
        raise ValueError(
            f"zoom window {q1 - q0} x {k1 - k0} is larger than max_tokens**2 = {max_tokens ** 2:,} elements; "
            "pass a smaller zoom or a larger max_tokens"
        )
    rows = len(heads)
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.6 * rows), dpi=dpi, squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.1]})
    cmap = ListedColormap(list(COLOURS))
    counts = layout.row_counts().reshape(layout.n_slices, layout.q_len)
    for r, h in enumerate(heads):
        ax = axes[r, 0]
        grid, f = block_grid(layout, h, max_cells)
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=2, interpolation="nearest", aspect="auto")
        lo, hi = layout.row_ptr[h, 0], layout.row_ptr[h, -1]
        n_full = int(np.count_nonzero(layout.kind[lo:hi] == FULL))
        ax.set_title(f"{_slice_label(layout, h)}: blocks {layout.block_q}x{layout.block_k}"
                     + (f" ({f}x{f} per cell)" if f > 1 else "")
                     + f"\n{n_full} full, {hi - lo - n_full} partial of {layout.n_qb * layout.n_kb}", fontsize=10)
        ax.set_xlabel("key block")
        ax.set_ylabel("query block")
        if r == 0:
            ax.legend(handles=[Patch(facecolor=COLOURS[2], label="full"),
                               Patch(facecolor=COLOURS[1], label="partial" + (" / mixed" if f > 1 else "")),
                               Patch(facecolor=COLOURS[0], edgecolor="#999999", label="empty")],
                      loc="upper right", fontsize=8, framealpha=0.9)
        ax = axes[r, 1]
        win = token_window(layout, h, q0, q1, k0, k1)
        ax.imshow(win, cmap=ListedColormap(["#ffffff", "#1f4e79"]), vmin=0, vmax=1, interpolation="nearest",
                  extent=(k0 - 0.5, k1 - 0.5, q1 - 0.5, q0 - 0.5), aspect="auto")
        # block boundaries inside the window
        for x in range((k0 // layout.block_k + 1) * layout.block_k, k1, layout.block_k):
            ax.axvline(x - 0.5, color="#f4a259", lw=0.6)
        for y in range((q0 // layout.block_q + 1) * layout.block_q, q1, layout.block_q):
            ax.axhline(y - 0.5, color="#f4a259", lw=0.6)
        ax.set_title(f"tokens [{q0}:{q1}) x [{k0}:{k1}): {int(win.sum()):,} allowed", fontsize=10)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
        ax = axes[r, 2]
        rc = counts[h]
        ax.hist(rc, bins=degree_bins(int(rc.min()), int(rc.max())), color="#1f4e79")
        ax.set_title(f"keys per query: min {int(rc.min())}, mean {rc.mean():.1f}, max {int(rc.max())}", fontsize=10)
        ax.set_xlabel("allowed keys")
        ax.set_ylabel("queries")
    more = (f" (first {len(heads)} of {layout.n_slices} slices)" if head is None and layout.n_slices > len(heads)
            else "")
    fig.suptitle(f"{_text(layout, 120)}   q_len={layout.q_len} kv_len={layout.kv_len}   "
                 f"density {100 * layout.density:.3f}%   block density {100 * layout.block_density:.2f}%{more}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
