"""Every ```python block of README.md and docs/*.md runs (blocks of one file share a namespace, in order).

A block written as a doctest (``>>>`` prompts) runs as one, so its printed outputs are
checked too. A block that needs what CI does not have starts with a marker line
``# doc-test: skip (<reason>)``; such blocks are counted and their reasons reported (the
test of a file with skipped blocks says so in its output), never silently dropped.
"""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
#: Optional dependencies: a block that imports a missing one is skipped (and reported), not failed.
OPTIONAL = {"transformers", "jax", "triton", "flashinfer"}
SKIP = re.compile(r"^\s*#\s*doc-test:\s*skip\s*\((?P<why>[^)]+)\)", re.M)


def blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def skip_reason(code: str) -> str | None:
    m = SKIP.search(code.split("\n", 1)[0])
    return m.group("why") if m else None


def run_doctest(code: str, ns: dict, name: str) -> None:
    """Run a ``>>>`` block with doctest in ``ns``; a differing output raises AssertionError."""
    test = doctest.DocTestParser().get_doctest(code, ns, name, name, 0)
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.append, clear_globs=False)
    ns.update(test.globs)  # DocTest works on a copy: later blocks see this block's names
    if runner.failures:
        raise AssertionError("".join(out))


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    monkeypatch.syspath_prepend(str(ROOT))
    ns: dict = {"__name__": f"doc_{path.stem}"}
    skipped = []
    for line, code in blocks(path):
        why = skip_reason(code)
        if why is not None:
            skipped.append(f"{path.name}:{line}: {why}")
            continue
        try:
            if code.lstrip().startswith(">>>"):
                run_doctest(code, ns, f"{path.name}:{line}")
            else:
                exec(compile(code, f"{path.name}:{line}", "exec"), ns)
        except ModuleNotFoundError as e:
            if e.name not in OPTIONAL:
                raise AssertionError(f"{path.relative_to(ROOT)} block at line {line} failed: {e}") from e
            skipped.append(f"{path.name}:{line}: needs the optional {e.name} (not installed)")
        except Exception as e:
            raise AssertionError(f"{path.relative_to(ROOT)} block at line {line} failed: {type(e).__name__}: {e}") from e
    with capsys.disabled():
        for s in skipped:
            print(f"\n  doc-test skip {s}")


def test_skip_markers_have_reasons() -> None:
    """A marker without a reason in parentheses is an error, not a skip."""
    bad = [f"{p.name}:{line}" for p in FILES for line, code in blocks(p)
           if "doc-test" in code.split("\n", 1)[0] and skip_reason(code) is None]
    assert not bad, f"malformed doc-test markers (write `# doc-test: skip (reason)`): {bad}"


#: Blocks allowed to carry a skip marker (each needs CUDA, several devices or minutes of CPU).
MAX_SKIPPED = 6


def test_skipped_blocks_are_counted() -> None:
    skipped = [f"{p.name}:{line}: {skip_reason(code)}" for p in FILES for line, code in blocks(p)
               if skip_reason(code) is not None]
    total = sum(len(blocks(p)) for p in FILES)
    print(f"\n{len(skipped)} of {total} doc blocks skipped:\n  " + "\n  ".join(skipped))
    assert len(skipped) <= MAX_SKIPPED, skipped


def test_extractor_sees_blocks() -> None:
    assert sum(len(blocks(p)) for p in FILES) > 10
    assert skip_reason("# doc-test: skip (needs CUDA)\nx = 1") == "needs CUDA"
    assert os.path.exists(ROOT / "docs")
