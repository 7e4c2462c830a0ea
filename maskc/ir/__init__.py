"""The block-sparse IR (:class:`Layout`), its validation, files and conversions.

Modules, lowest first: ``kinds`` (block kinds, sizes) and ``masks`` (bitmask packing,
dedupe); ``assemble`` (block lists -> BSR arrays), ``kernels`` (numba), ``checks``
(field validation), ``schema`` / ``containers`` (the file format); ``views``,
``tokens``, ``subsets`` (the operations of a layout) and ``layout`` (the class);
``io``, ``validate``, ``convert`` on top; ``cache`` for other modules' per-layout caches.
"""

from maskc.ir.io import load
from maskc.ir.layout import EMPTY, FORMAT_VERSION, FULL, PARTIAL, CSCView, Layout

__all__ = ["Layout", "CSCView", "EMPTY", "PARTIAL", "FULL", "FORMAT_VERSION", "load"]
