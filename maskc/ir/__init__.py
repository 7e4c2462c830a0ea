"""The block-sparse IR (:class:`Layout`), its validation, files and conversions."""

from maskc.ir.layout import EMPTY, FORMAT_VERSION, FULL, PARTIAL, CSCView, Layout
from maskc.ir.io import load

__all__ = ["Layout", "CSCView", "EMPTY", "PARTIAL", "FULL", "FORMAT_VERSION", "load"]
