"""Import layers. The package layers are the import-linter contract in pyproject.toml (also run by
`make test` as `lint-imports`); docs/architecture.md draws them (scripts/architecture_figure.py)
and the tests here keep the contract, the figure and the real packages equal. Inside the IR the
Layout class never imports the modules built on it, and no module outside the IR touches a
layout's private state."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp (import-linter's graph library) is not installed")

ROOT = Path(__file__).resolve().parents[2]
#: lowest first; a module may import only modules of its own layer or below
IR_LAYERS = [
    {"maskc.ir.kinds", "maskc.ir.masks", "maskc.ir.cache"},
    {"maskc.ir.assemble", "maskc.ir.kernels", "maskc.ir.runs"}, {"maskc.ir.checks"}, {"maskc.ir.schema"}, {"maskc.ir.containers"},
    {"maskc.ir.views"}, {"maskc.ir.tokens"}, {"maskc.ir.subsets"}, {"maskc.ir.layout"},
    {"maskc.ir.io", "maskc.ir.validate", "maskc.ir.convert"},
    {"maskc.ir"},
]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("maskc", include_external_packages=False)


def _figure_script():
    spec = importlib.util.spec_from_file_location("architecture_figure", ROOT / "scripts/architecture_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_architecture_figure_is_the_contract():
    fig = _figure_script()
    layers = fig.contract_layers()
    assert fig.figure_in_doc() == fig.doc_block(layers), (
        "docs/architecture.md's layers figure differs from pyproject.toml's contract: "
        "run python scripts/architecture_figure.py --write")
    drawn = re.findall(r"│ (\S+) │", fig.figure_in_doc())
    assert drawn == [n for layer in layers for n in layer]


def test_contract_names_every_package(graph):
    names = [n for layer in _figure_script().contract_layers() for n in layer]
    required = {n for n in names if not n.startswith("(")}
    optional = {n.strip("()") for n in names if n.startswith("(")}
    tops = {m.split(".")[1] for m in graph.modules if m.count(".") >= 1}
    assert required <= tops, f"the contract names packages that do not exist: {required - tops}"
    assert tops <= required | optional, f"packages outside the layers contract: {tops - required - optional}"


def test_lint_imports_passes():
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is not installed (pip install import-linter)")
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, "a contract is broken: run lint-imports to see which import"


def test_ir_layers_hold(graph):
    layer_of = {m: k for k, layer in enumerate(IR_LAYERS) for m in layer}
    ir_modules = {m for m in graph.modules if m == "maskc.ir" or m.startswith("maskc.ir.")}
    assert ir_modules == set(layer_of), "every IR module is in exactly one layer"
    bad = [(m, d) for m in ir_modules for d in graph.find_modules_directly_imported_by(m)
           if d in layer_of and m != "maskc.ir" and (layer_of[d] > layer_of[m]
                                                    or (layer_of[d] == layer_of[m] and d != m))]
    assert not bad, f"IR modules importing a higher layer or a sibling: {bad}"


def test_owned_packages_sit_above_the_compiler_and_the_ir(graph):
    for low in ("maskc.ir", "maskc.compiler", "maskc.limits", "maskc.errors"):
        for high in ("maskc.export", "maskc.guarantees", "maskc.viz"):
            assert not graph.chain_exists(importer=low, imported=high, as_packages=True), (low, high)


def test_layout_does_not_reach_io_validate_or_convert(graph):
    for upper in ("maskc.ir.io", "maskc.ir.validate", "maskc.ir.convert"):
        assert not graph.chain_exists(importer="maskc.ir.layout", imported=upper), upper


def test_export_guarantees_viz_never_write_layout_private_state():
    files = [*ROOT.glob("maskc/export/*.py"), *ROOT.glob("maskc/guarantees/*.py"), ROOT / "maskc/viz.py",
             *[p for p in ROOT.glob("maskc/ir/*.py") if p.name != "layout.py"]]
    offenders = [str(p.relative_to(ROOT)) for p in files if re.search(r"\._cache\b", p.read_text())]
    assert not offenders, offenders


def test_old_entry_points_keep_working():
    import warnings

    import numpy as np

    from maskc.ir import convert, validate
    from maskc.ir.layout import Layout

    m = np.tril(np.ones((9, 9), bool))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        old = convert.layout_from_dense(Layout, m, 4)
    assert any(issubclass(x.category, DeprecationWarning) and "Layout.from_dense" in str(x.message) for x in w)
    lay = Layout.from_dense(m, 4)
    assert old == lay
    indptr, indices = convert.csr_arrays(lay)
    assert indptr[-1] == m.sum() and convert.layout_to_scipy(lay, "csr", 0).nnz == m.sum()
    masks, ids = convert.dedupe_masks(lay.mask_bits[[0, 0]])
    assert masks.shape[0] == 1 and ids.tolist() == [0, 0]
    validate.validate_layout(lay)
    assert validate.MAX_TEXT_CHARS == validate.MAX_TEXT_BYTES
