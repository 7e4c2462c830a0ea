"""One registry of the names the text form may call, and of the library's patterns.

Each DSL constructor is registered once with :func:`constructor`; each library pattern
once with :func:`library_pattern`, which also records its family and the arguments of
its gallery picture. The parser, ``scripts/make_pattern_gallery.py`` and the pattern
table of ``docs/patterns.md`` all read this registry, so adding a pattern is one
decorated function.

Example:
    >>> from maskc.patterns import registry
    >>> "window" in registry.constructor_names(), registry.library_entry("prime_bird").family
    (True, 'bird')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CONSTRUCTORS: dict[str, Callable[..., Any]] = {}
_LIBRARY: dict[str, "LibraryEntry"] = {}
#: Library families in the order the docs present them.
FAMILIES = ("bird", "pi", "primeformer", "classical", "documents")


@dataclass(frozen=True)
class LibraryEntry:
    """A library pattern: its constructor, family, gallery arguments and one-line summary."""

    name: str
    fn: Callable[..., Any]
    family: str
    gallery: dict = field(default_factory=dict)
    summary: str = ""

    def example(self) -> Any:
        """The instance drawn in the gallery (``fn(**gallery)``)."""
        return self.fn(**self.gallery)


def register_constructor(name: str, fn: Callable[..., Any]) -> None:
    """Make ``name(...)`` callable from the text form."""
    if not (isinstance(name, str) and name.isidentifier() and name.isascii()) or name.startswith("_"):
        raise ValueError(f"constructor name must be a public ASCII identifier, got {name!r}")
    _CONSTRUCTORS[name] = fn


def constructor(fn: F) -> F:
    """Decorator: register a DSL constructor under its function name."""
    register_constructor(fn.__name__, fn)
    return fn


def library_pattern(family: str, gallery: dict | None = None, aliases: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: register a library constructor (text form, gallery, docs) under its name.

    ``gallery``: keyword arguments of the instance drawn at 128 tokens; ``aliases``:
    other names the text form accepts (they print as the main name).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown library family {family!r}; known: {', '.join(FAMILIES)}")

    def deco(fn: F) -> F:
        doc = (fn.__doc__ or "").strip().splitlines()
        _LIBRARY[fn.__name__] = LibraryEntry(fn.__name__, fn, family, dict(gallery or {}), doc[0] if doc else "")
        register_constructor(fn.__name__, fn)
        for alias in aliases:
            register_constructor(alias, fn)
        return fn

    return deco


def lookup_constructor(name: str) -> Callable[..., Any] | None:
    """The constructor the text form calls for ``name`` (None if unknown)."""
    return _CONSTRUCTORS.get(name)


def constructor_names() -> list[str]:
    """Names the text form accepts as calls."""
    return sorted(_CONSTRUCTORS)


def library_entries() -> list[LibraryEntry]:
    """Every library pattern, by family (in :data:`FAMILIES` order), then by name."""
    return sorted(_LIBRARY.values(), key=lambda e: (FAMILIES.index(e.family), e.name))


def library_entry(name: str) -> LibraryEntry:
    """The library entry called ``name``."""
    if name not in _LIBRARY:
        raise ValueError(f"no library pattern named {name!r}; known: {', '.join(sorted(_LIBRARY))}")
    return _LIBRARY[name]
