"""Pattern -> Layout compilation (numba), without materialising the N x N mask."""

from maskc.compiler.compile import compile, clear_cache

__all__ = ["compile", "clear_cache"]
