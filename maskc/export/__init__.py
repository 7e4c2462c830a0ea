"""Exports of maskc layouts to (and imports from) other frameworks' layout formats.

Every exporter is ``to_X(layout, ...)``: it returns the keyword arguments of the target's
call as a dict of numpy arrays (torch tensors with ``device=``), the target's own object
(``to_flex_block_mask``: a ``BlockMask``; ``to_splash_mask``: a ``MultiHeadMask``;
``to_scipy``: matrices), or the array the target takes (``to_deepspeed`` / ``to_xformers``:
the int64 layout; ``to_dense``: the bool mask). Every importer ``from_X(...)`` checks its
arguments first and returns a validated :class:`~maskc.Layout`. See docs/export.md for the
table of formats, the library versions each was checked against, what each loses and when
each refuses.
Importing this package needs numpy only: torch (FlexAttention) and jax (splash) are
imported when their functions are called.

Example:
    >>> import numpy as np, maskc as mc
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((8, 8), bool)), block=4)
    >>> mc.export.to_deepspeed(mc.Layout.from_dense(np.ones((8, 8), bool), block=4)).shape
    (1, 2, 2)
    >>> mc.export.from_scipy(mc.export.to_scipy(lay), block=4) == lay
    True
"""

from __future__ import annotations

from maskc.export._common import LossyExportWarning
from maskc.export.blocklayout import (
    from_block_sparse_attn, from_deepspeed, from_xformers, to_block_sparse_attn, to_deepspeed, to_xformers,
)
from maskc.export.flashinfer import (
    from_flashinfer_bsr, from_flashinfer_variable, to_flashinfer_bsr, to_flashinfer_variable,
)
from maskc.export.flashmask import from_flashmask, to_flashmask
from maskc.export.flex import from_flex_block_mask, to_flex_block_mask
from maskc.export.magi import MAGI_MASK_TYPES, from_magi, to_magi
from maskc.export.sparse import from_dense, from_scipy, to_dense, to_scipy
from maskc.export.splash import from_splash_info, to_splash_info, to_splash_mask

__all__ = [
    "to_flashinfer_bsr", "from_flashinfer_bsr", "to_flashinfer_variable", "from_flashinfer_variable",
    "to_deepspeed", "from_deepspeed", "to_xformers", "from_xformers",
    "to_block_sparse_attn", "from_block_sparse_attn",
    "to_splash_mask", "to_splash_info", "from_splash_info",
    "to_flashmask", "from_flashmask", "to_magi", "from_magi", "MAGI_MASK_TYPES",
    "to_scipy", "from_scipy", "to_dense", "from_dense",
    "to_flex_block_mask", "from_flex_block_mask",
    "LossyExportWarning",
]
