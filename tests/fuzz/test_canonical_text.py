"""Canonical text: every grammar-generated pattern's ``text()`` is compact and parses back to an
equal pattern, and every compiled layout validates and saves/loads unchanged in both containers."""

from __future__ import annotations

import random

import numpy as np
import pytest

import maskc as mc
from maskc.ir.io import dumps, loads

from fuzz_dsl import dsl_text

pytestmark = pytest.mark.xdist_group("fuzz-canonical")


def test_generated_patterns_round_trip_through_text_and_files():
    rng = random.Random(20261201)
    parsed = compiled = 0
    for _ in range(400):
        text = dsl_text(rng)
        try:
            p = mc.parse(text)
        except (ValueError, TypeError):
            continue
        parsed += 1
        canon = p.text()
        assert len(canon) <= 8 * len(text) + 256, (text, canon)
        assert mc.parse(canon) == p and mc.parse(canon).text() == canon, canon
        q = rng.randint(1, 64)
        try:
            lay = mc.compile(p, q_len=q, block=rng.choice([4, 16, (8, 32)]))
        except (ValueError, TypeError):
            continue
        lay.validate()
        for fmt in ("npz", "safetensors"):
            back = loads(dumps(lay, fmt))
            assert back == lay and back.pattern_text == lay.pattern_text
        assert mc.parse(lay.pattern_text) == p
        np.testing.assert_array_equal(lay.to_dense(), p.dense(q))
        compiled += 1
    assert parsed > 150 and compiled > 120, (parsed, compiled)
