"""Deprecated location of the Triton DIA kernels: they are a backend, now :mod:`maskc.backends.dia_triton`.

``from maskc.planner.dia_triton import dia_attention_triton`` keeps working with a
:class:`DeprecationWarning` naming the new module.

Example:
    >>> import warnings
    >>> from maskc.planner import dia_triton
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     fn = dia_triton.is_available
    >>> "maskc.backends.dia_triton" in str(w[0].message)
    True
"""

from __future__ import annotations

import warnings
from typing import Any

from maskc.backends import dia_triton as _moved


def __getattr__(name: str) -> Any:
    value = getattr(_moved, name)  # AttributeError for names the new module lacks either
    warnings.warn(f"maskc.planner.dia_triton moved: import {name} from maskc.backends.dia_triton",
                  DeprecationWarning, stacklevel=2)
    return value
