"""The CI-sized fuzz run (~2 minutes on 2 cores): every family under its per-call deadline and
traced-memory cap, failing on any crash (undocumented exception), hang, slow or memory-hungry
call, or disagreement; the counts show that every kind of outcome was exercised."""

from __future__ import annotations

import pytest

from fuzz_families import run_family


def _run(family: str, n: int, seed: int):
    tally = run_family(family, n, seed)
    print(tally.as_dict())
    tally.check()
    assert tally.calls == n
    return tally


@pytest.mark.xdist_group("fuzz-dsl")
@pytest.mark.parametrize("seed", [1, 2])
def test_dsl_texts(seed):
    t = _run("dsl", 1500, seed)
    assert t.outcomes["ok"] > 300 and t.outcomes["PatternSyntaxError"] > 300, t.outcomes
    assert t.extra["compiled"] > 80, t.extra


@pytest.mark.xdist_group("fuzz-files")
def test_corrupted_layout_files():
    t = _run("files", 1500, 1)
    assert t.outcomes["LayoutFormatError"] > 1000 and t.extra["checked"] > 20, (t.outcomes, t.extra)


@pytest.mark.xdist_group("fuzz-files")
def test_importer_calls():
    t = _run("importers", 3000, 1)
    assert t.outcomes["ok"] > 100 and t.outcomes["ValueError"] > 1000, t.outcomes


@pytest.mark.xdist_group("fuzz-attention")
def test_attention_cases_on_every_cpu_backend():
    t = _run("attention", 40, 1)
    for name in ("reference", "reference-torch", "scipy", "torch"):
        assert t.extra[name] == 40, t.extra
    assert t.extra["flex"] + t.extra["jax"] >= 2, t.extra  # the slow backends run a share of the cases


@pytest.mark.xdist_group("fuzz-importers")
def test_malformed_attention_inputs():
    t = _run("bad_inputs", 600, 1)
    assert t.outcomes["ok"] == 0 and t.outcomes["ValueError"] + t.outcomes["TypeError"] == 600, t.outcomes
