"""Small torch helpers shared by the torch attention kernels: safe log-sum-exp and non-finite inputs.

Two rules every maskc backend keeps, written once here for the torch kernels:

* **Empty rows are exact.** A query row with no allowed key gives out = 0 and
  lse = -inf, and no NaN in the forward or the backward (:func:`safe_lse`,
  :func:`finite_or_zero`).
* **Unattended values never reach a row.** A score matrix multiplied with V computes
  ``0 * v[j]`` for keys j a row may not attend, which is NaN when ``v[j]`` is NaN or
  inf. :func:`split_nonfinite` replaces such entries by 0 (only when there are any:
  the all-finite path costs one ``isfinite`` pass) and returns where they were, so a
  kernel can mark exactly the outputs that did attend them (:func:`poison`): "non-finite
  in, non-finite out" for rows that read the bad value, exact results for every other
  row.

Example:
    >>> import torch
    >>> from maskc.backends.softmax import safe_lse, split_nonfinite
    >>> safe_lse(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])).tolist()
    [0.0, -inf]
    >>> clean, bad = split_nonfinite(torch.tensor([1.0, float("nan")]))
    >>> clean.tolist(), bad.tolist()
    ([1.0, 0.0], [False, True])
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def safe_lse(m: Tensor, z: Tensor) -> Tensor:
    """``m + log(z)`` where ``z > 0`` and ``-inf`` where ``z == 0``, with finite gradients.

    ``m`` is a (detached, finite) row maximum, ``z`` the sum of ``exp(s - m)``.

    Example:
        >>> import torch
        >>> safe_lse(torch.tensor([1.0]), torch.tensor([1.0])).tolist()
        [1.0]
    """
    pos = z > 0
    return torch.where(pos, m + torch.log(torch.where(pos, z, torch.ones_like(z))), torch.full_like(z, float("-inf")))


def finite_or_zero(x: Tensor) -> Tensor:
    """``x`` where finite, else 0 (the row maximum of an all-masked row becomes 0).

    Example:
        >>> import torch
        >>> finite_or_zero(torch.tensor([2.0, float("-inf")])).tolist()
        [2.0, 0.0]
    """
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise (half precisions accumulate in float32).

    Example:
        >>> import torch
        >>> accumulation_dtype(torch.bfloat16)
        torch.float32
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def split_nonfinite(x: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(x with NaN / inf replaced by 0, bool mask of those entries)``; ``(x, None)`` when all finite.

    Example:
        >>> import torch
        >>> split_nonfinite(torch.ones(2))[1] is None
        True
    """
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):
        return x, None
    return torch.where(bad, torch.zeros((), dtype=x.dtype, device=x.device), x), bad


def poison(out: Tensor, weights: Tensor, bad: Tensor) -> Tensor:
    """Set ``out[.., i, d]`` to NaN where row i gives positive weight to a key j with ``bad[.., j, d]``.

    ``weights`` ``[..., L, M]`` (probabilities or unnormalised exponentials), ``bad``
    bool ``[..., M, D]``, ``out`` ``[..., L, D]``: the rows that really read a
    non-finite value become NaN instead of the finite result computed with it zeroed.

    Example:
        >>> import torch
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> bad = torch.tensor([[False], [True]])
        >>> poison(torch.zeros(2, 1), w, bad)[:, 0].tolist()
        [0.0, nan]
    """
    hit = torch.matmul((weights > 0).to(out.dtype), bad.to(out.dtype)) > 0
    return out.masked_fill(hit, float("nan"))
