"""Each example runs at its --smoke size and prints what it promises."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

def test_quickstart(capsys):
    assert load("quickstart").main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "grad finite: True" in out and "attention out: (1, 4, 64, 32)" in out

def test_custom_pattern(capsys):
    assert load("custom_pattern").main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "triangular up to 50: [1, 3, 6, 10, 15, 21, 28, 36, 45]" in out
    assert "layout matches the direct rule" in out

def test_export_to_flex(capsys):
    assert load("export_to_flex").main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "relative error" in out or "skipping" in out

def test_property_test_a_pattern(capsys):
    assert load("property_test_a_pattern").main(["--smoke"]) == 0
    assert "property test passed" in capsys.readouterr().out

def test_long_range_retrieval(tmp_path, capsys):
    mod = load("long_range_retrieval")
    js = tmp_path / "r.json"
    png = tmp_path / "r.png"
    assert mod.main(["--smoke", "--json", str(js), "--plot", str(png)]) == 0
    res = json.loads(js.read_text())["results"]
    assert set(res) >= {"dense", "prime_bird", "mian_chowla_bird"} and png.stat().st_size > 1000
    assert res["dense"]["reach_fraction"] == 1.0 and res["dense"]["hop_diameter"] == 1
    assert res["sliding_window(4)"]["reach_fraction"] < 1.0
    assert "| pattern | keys/row" in capsys.readouterr().out

def test_hop_reach_is_exact_for_a_window():
    import maskc as mc

    mod = load("long_range_retrieval")
    reach, diam = mod.hop_reach(mc.causal() & mc.window(3), 20, 2)
    assert np.flatnonzero(reach).tolist() == list(range(7)) and diam == 7  # 2 hops of <= 3; 19 / 3 -> 7 hops

def test_sympformer_vs_classic(tmp_path, capsys):
    mod = load("sympformer_vs_classic")
    js = tmp_path / "s.json"
    assert mod.main(["--smoke", "--json", str(js)]) == 0
    tasks = json.loads(js.read_text())["tasks"]
    assert set(tasks) == {"copy", "chars"}
    for task in tasks.values():
        assert len(task["runs"]) == 2  # seeds
        for hist in task["runs"].values():
            assert set(hist) == {"classic", "momentum", "nesterov"}
            assert all(np.isfinite(h["val"]).all() and len(h["val"]) == 2 for h in hist.values())
    assert "equal wall-clock" in capsys.readouterr().out

