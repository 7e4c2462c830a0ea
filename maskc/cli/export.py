"""``maskc export``: write a layout (from a file or a pattern expression) in another framework's format.

Examples::

    maskc export "causal() & window(256)" --len 4096 --block 128 --to flashinfer -o fi.npz
    maskc export layout.npz --to deepspeed -o ds.npy --strict
    maskc export "causal()" --len 1024 --to maskc -o causal.safetensors

The output holds plain arrays (``.npz`` written with numpy, read back with
``np.load(path, allow_pickle=False)``; ``.safetensors``; or ``.npy`` for formats that are a
single array). Scalars are 0-d arrays. See docs/export.md for each format's keys.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import warnings
from typing import Any, Callable

import numpy as np

import maskc.export as ex
from maskc.cli.common import add_source_args, load_source

#: format name -> one-line description (the choices of --to)
FORMATS: dict[str, str] = {
    "maskc": "the maskc layout file itself (.npz or .safetensors)",
    "dense": "bool [heads, q_len, kv_len] token mask (key 'mask')",
    "csr": "scipy CSR arrays per head: indptr, indices, shape",
    "coo": "scipy COO arrays per head: row, col, shape",
    "bsr": "scipy BSR arrays per head: indptr, indices, data [nnzb, R, C], shape, blocksize",
    "flashinfer": "FlashInfer BlockSparseAttentionWrapper.plan: indptr, indices, M, N, R, C, mask",
    "flashinfer-variable": "FlashInfer VariableBlockSparseAttentionWrapper.plan: block_mask_map, block_row_sz, block_col_sz",
    "deepspeed": "DeepSpeed sparsity layout int64 [heads, n_qb, n_kb] (key 'layout')",
    "xformers": "xformers BlockSparseAttention layout int64 [heads, n_qb, n_kb] (key 'layout')",
    "block-sparse-attn": "MIT Block-Sparse-Attention: base_blockmask, head_mask_type",
    "splash": "JAX splash MaskInfo-like arrays: block_mask, data_next, mask_next, partial_mask_blocks",
    "flashmask": "PaddlePaddle FlashMask: startend_row_indices, causal",
    "magi": "MagiAttention slices: q_ranges, k_ranges, attn_type_map, total_seqlen_q, total_seqlen_k",
    "flex": "torch FlexAttention BlockMask tensors (kv_num_blocks, kv_indices, full_kv_*, q_*; needs torch)",
}

_ST_DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64",
              "float32": "F32", "float64": "F64"}


def register(subparsers) -> None:
    """Add the ``export`` sub-command to the ``maskc`` parser."""
    p = subparsers.add_parser(
        "export",
        help="export a layout to another framework's format (FlashInfer, DeepSpeed, splash, FlashMask, ...)",
        description="Compile a pattern expression (or load a layout file) and write it in the format of "
        "--to, as arrays in .npz / .safetensors / .npy. Formats: "
        + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    add_source_args(p)
    p.add_argument("--to", required=True, choices=sorted(FORMATS), help="target format")
    p.add_argument("-o", "--output", required=True, help="output file: .npz, .safetensors, or .npy (single-array formats)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (repeats a one-head layout where the format stores heads)")
    p.add_argument("--head", type=int, default=None, help="stored head to export, for formats with one mask for all heads")
    p.add_argument("--batch", type=int, default=1, help="batch size for formats with a batch axis (default 1)")
    p.add_argument("--strict", action="store_true", help="refuse lossy exports (block-level formats and partial blocks)")
    p.set_defaults(func=run_export)


def _scipy_arrays(layout, fmt: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for h, m in enumerate(ex.to_scipy(layout, fmt, head=None)):
        pre = "" if layout.heads == 1 else f"head{h}."
        if fmt == "coo":
            out[pre + "row"], out[pre + "col"] = m.row.astype(np.int64), m.col.astype(np.int64)
        else:
            out[pre + "indptr"], out[pre + "indices"] = m.indptr.astype(np.int64), m.indices.astype(np.int64)
        if fmt == "bsr":
            out[pre + "data"] = np.asarray(m.data, bool)
            out[pre + "blocksize"] = np.array(m.blocksize, np.int64)
        out[pre + "shape"] = np.array(m.shape, np.int64)
    return out


def _flex_arrays(layout) -> dict[str, np.ndarray]:
    bm = ex.to_flex_block_mask(layout)
    out: dict[str, np.ndarray] = {}
    for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
                 "q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices"):
        t = getattr(bm, name, None)
        if t is not None:
            out[name] = t.detach().cpu().numpy()
    out["BLOCK_SIZE"] = np.array(bm.BLOCK_SIZE, np.int64)
    out["seq_lengths"] = np.array(getattr(bm, "seq_lengths", (layout.q_len, layout.kv_len)), np.int64)
    warnings.warn("flex: the BlockMask's mask_mod is code and is not saved; partial blocks need it. "
                  "Save --to maskc and call mc.export.to_flex_block_mask(mc.load(path)) to rebuild it",
                  stacklevel=2)
    return out


def export_arrays(layout, to: str, *, strict: bool = False, head: int | None = None, heads: int | None = None,
                  batch: int = 1) -> dict[str, np.ndarray]:
    """The arrays ``maskc export --to <to>`` writes, as a flat dict of numpy arrays (0-d for scalars)."""
    fns: dict[str, Callable[[], dict[str, Any]]] = {
        "dense": lambda: {"mask": ex.to_dense(layout)},
        "csr": lambda: _scipy_arrays(layout, "csr"),
        "coo": lambda: _scipy_arrays(layout, "coo"),
        "bsr": lambda: _scipy_arrays(layout, "bsr"),
        "flashinfer": lambda: ex.to_flashinfer_bsr(layout, head=head),
        "flashinfer-variable": lambda: ex.to_flashinfer_variable(layout, strict=strict, num_kv_heads=heads),
        "deepspeed": lambda: {"layout": ex.to_deepspeed(layout, heads=heads, strict=strict)},
        "xformers": lambda: {"layout": ex.to_xformers(layout, heads=heads, strict=strict)},
        "block-sparse-attn": lambda: ex.to_block_sparse_attn(layout, batch=batch, heads=heads, strict=strict),
        "splash": lambda: ex.to_splash_info(layout),
        "flashmask": lambda: ex.to_flashmask(layout, batch=batch),
        "magi": lambda: ex.to_magi(layout, head=head),
        "flex": lambda: _flex_arrays(layout),
    }
    if to not in fns:
        raise ValueError(f"unknown export format {to!r}; known: {sorted(FORMATS)}")
    out = {}
    for k, v in fns[to]().items():
        a = np.asarray(v)
        if a.dtype == object:
            raise ValueError(f"export {to}: field {k!r} is not an array")  # never write pickles
        out[k] = a
    return out


def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file of ``arrays`` (bool / int / float numpy arrays), without the safetensors package."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {})}
    blobs, off = [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        code = _ST_DTYPES.get(a.dtype.name)
        if code is None:
            raise ValueError(f"field {name!r} has dtype {a.dtype}, which safetensors output does not support")
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_arrays(arrays: dict[str, np.ndarray], path: str, fmt_name: str) -> None:
    """Write ``arrays`` to ``path`` by its suffix: .npz, .safetensors, or .npy (one array only)."""
    if path.endswith(".safetensors"):
        data = safetensors_bytes(arrays, {"format": f"maskc-export-{fmt_name}"})
        with open(path, "wb") as f:
            f.write(data)
    elif path.endswith(".npy"):
        if len(arrays) != 1:
            raise ValueError(f"--to {fmt_name} writes {len(arrays)} arrays ({', '.join(sorted(arrays))}); "
                             "a .npy file holds one: use .npz or .safetensors")
        np.save(path, next(iter(arrays.values())), allow_pickle=False)
    elif path.endswith(".npz"):
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
    else:
        raise ValueError(f"output {path!r} must end in .npz, .safetensors or .npy")


def run_export(args: argparse.Namespace) -> int:
    """Export and write; prints one line per written array."""
    layout = load_source(args)[0]
    if args.to == "maskc":
        if not args.output.endswith((".npz", ".safetensors")):
            raise ValueError("--to maskc writes a layout file: the output must end in .npz or .safetensors")
        layout.save(args.output)
        print(f"wrote {args.output}: maskc layout, {layout.nnz_blocks} blocks ({layout.n_partial} partial)")
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = export_arrays(layout, args.to, strict=args.strict, head=args.head, heads=args.heads,
                               batch=args.batch)
    for w in caught:
        print(f"maskc export: warning: {w.message}", file=sys.stderr)
    write_arrays(arrays, args.output, args.to)
    print(f"wrote {args.output} ({args.to}):")
    for k in sorted(arrays):
        a = arrays[k]
        print(f"  {k:24s} {str(a.dtype):8s} {list(a.shape)}" + (f" = {a.item()}" if a.ndim == 0 else ""))
    return 0
