"""One registry feeds the parser, the gallery and the docs: the library table of
docs/patterns.md is the one the gallery script generates, and every pattern has a picture."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import maskc as mc
from maskc.patterns import library as L
from maskc.patterns.registry import constructor_names, library_entries

ROOT = Path(__file__).resolve().parents[2]


def _gallery_script():
    spec = importlib.util.spec_from_file_location("make_pattern_gallery", ROOT / "scripts" / "make_pattern_gallery.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_table_is_the_generated_one():
    script = _gallery_script()
    text = (ROOT / "docs" / "patterns.md").read_text()
    a = text.index(script.TABLE_START) + len(script.TABLE_START)
    b = text.index(script.TABLE_END)
    assert text[a:b].strip() == script.library_table(), \
        "docs/patterns.md is out of date: run python scripts/make_pattern_gallery.py --table-only"


def test_every_library_pattern_is_registered_once_and_pictured():
    names = [e.name for e in library_entries()]
    assert len(names) == len(set(names)) == len(L.library_names()) == 27
    assert sorted(names) == L.library_names() == sorted(L.gallery_patterns())
    for e in library_entries():
        assert e.name in constructor_names() and e.summary
        assert (ROOT / "docs" / "images" / "patterns" / f"{e.name}.png").is_file(), e.name
        p = e.example()
        assert mc.parse(p.text()) == p and p.text().startswith(e.name + "(")
        assert getattr(mc, e.name) is e.fn  # the public mc.<name> API
