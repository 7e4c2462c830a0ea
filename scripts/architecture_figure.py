#!/usr/bin/env python
"""Draw maskc's import layers (the ``[tool.importlinter]`` layers contract) as a text figure.

The contract in pyproject.toml is the single source: ``lint-imports`` enforces it on the
real import graph, this script draws it, and tests/ir/test_layers.py checks that the
figure in docs/architecture.md is exactly what this script draws.

Usage:
    python scripts/architecture_figure.py            # print the figure
    python scripts/architecture_figure.py --write    # replace it in docs/architecture.md
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers figure: begin (scripts/architecture_figure.py) -->", "<!-- layers figure: end -->"


def contract_layers(pyproject: Path = ROOT / "pyproject.toml") -> list[list[str]]:
    """The layers of the "maskc layers" contract, top first; each a list of package names
    (optional ones keep their parentheses)."""
    cfg = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in layer.replace(":", "|").split("|")] for layer in contract["layers"]]


def _boxes(names: list[str], width: int) -> list[str]:
    """Three lines: the boxes of one layer side by side, centred in ``width``."""
    tops, mids, bots = [], [], []
    for n in names:
        bar = "─" * (len(n) + 2)
        tops.append(f"┌{bar}┐")
        mids.append(f"│ {n} │")
        bots.append(f"└{bar}┘")
    return [" ".join(row).center(width).rstrip() for row in (tops, mids, bots)]


def figure(layers: list[list[str]]) -> str:
    """The layers as stacked boxes joined by arrows ("imports from"), top layer first."""
    width = max(sum(len(n) + 5 for n in layer) for layer in layers)
    lines: list[str] = []
    for k, layer in enumerate(layers):
        if k:
            lines.append("▼".center(width).rstrip())
        lines.extend(_boxes(layer, width))
    return "\n".join(lines)


def doc_block(layers: list[list[str]]) -> str:
    """The fenced figure as it stands in docs/architecture.md, with its markers."""
    return f"{BEGIN}\n```text\n{figure(layers)}\n```\n{END}"


def figure_in_doc(doc: Path = DOC) -> str:
    """The figure block currently in ``doc`` (markers included); ValueError if it has none."""
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc} has no layers figure between {BEGIN!r} and {END!r}")
    return text[text.index(BEGIN): text.index(END) + len(END)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the figure in docs/architecture.md")
    args = ap.parse_args(argv)
    block = doc_block(contract_layers())
    if not args.write:
        print(figure(contract_layers()))
        return 0
    DOC.write_text(DOC.read_text().replace(figure_in_doc(), block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
