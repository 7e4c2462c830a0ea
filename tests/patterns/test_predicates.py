"""``mc.predicate``: (i, j) and FlexAttention's (b, h, q_idx, kv_idx) signatures, lambdas with
stable names, clear errors at decoration time, and data passed as content-hashed arguments so
changed data can never come back as a stale layout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import maskc as mc
from maskc.patterns.core import Predicate
from _pattern_helpers import lowered_dense  # noqa: E402


def test_flex_signature_sees_batch_and_head_inside_heads_and_batched():
    @mc.predicate
    def per_head(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx) % (h + 2) == 0 and (b == 0 or kv_idx <= q_idx)

    assert per_head.arity == 4 and per_head.uses_batch_head
    p = mc.batched([mc.heads([per_head] * 3)] * 2)
    got = p.dense(9)
    want = np.array([[[[(i - j) % (h + 2) == 0 and (b == 0 or j <= i) for j in range(9)] for i in range(9)]
                      for h in range(3)] for b in range(2)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(lowered_dense(p, 9), want)
    # outside heads([...]) the pattern is one mask for every head: h = b = 0, and asking for heads is refused
    np.testing.assert_array_equal(per_head.dense(9)[0], want[0, 0])
    with pytest.raises(ValueError, match="no heads"):
        per_head.dense(9, heads=3)


def test_lambdas_get_stable_generated_names():
    a = mc.predicate(lambda q_idx, kv_idx: q_idx >= kv_idx)
    b = mc.predicate(lambda q_idx, kv_idx: q_idx >= kv_idx)
    c = mc.predicate(lambda q_idx, kv_idx: q_idx > kv_idx)
    assert a.name.startswith("lambda_") and a.name == b.name != c.name
    assert a == b and hash(a) == hash(b) and a != c
    assert mc.parse(a.text()) == a
    np.testing.assert_array_equal(a.dense(5), mc.causal().dense(5))
    code = textwrap.dedent("""
        import maskc as mc
        print(mc.predicate(lambda q_idx, kv_idx: q_idx >= kv_idx).name)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == a.name  # the same name in another process


@pytest.mark.parametrize("fn, match", [
    (lambda i, j: object(), "numba cannot compile it in nopython mode"),
    (lambda i, j: [i][j] if i else {}, "numba cannot compile it"),
    (lambda i, j: 1.5, "must return a bool"),
    (lambda i: True, r"takes \(i, j\) or FlexAttention's \(b, h, q_idx, kv_idx\)"),
    (lambda i, j, k: True, "has 3 parameters and 0 args"),
    (lambda *ij: True, "plain positional parameters"),
])
def test_uncompilable_or_misshapen_functions_fail_at_decoration(fn, match):
    with pytest.raises(TypeError, match=match) as e:
        mc.predicate(fn)
    assert type(e.value) is TypeError  # not numba's TypingError


def test_torch_rule_gets_a_clear_error():
    torch = pytest.importorskip("torch", reason="torch is optional; checks the message for torch mask_mods")
    ids = torch.tensor([0, 0, 1, 1])

    def doc(b, h, q_idx, kv_idx):
        return ids[q_idx] == ids[kv_idx]

    with pytest.raises(TypeError, match="reads the array 'ids' from its enclosing scope"):
        mc.predicate(doc)


def test_captured_numpy_arrays_are_refused_with_the_fix():
    ids = np.zeros(64, dtype=np.int64)

    def same_doc(i, j):
        return ids[i] == ids[j]

    with pytest.raises(TypeError, match=r"Pass it explicitly: mc.predicate\(fn, args="):
        mc.predicate(same_doc)


def test_data_is_an_explicit_argument_and_part_of_the_identity():
    """The stale-layout case of the issue: after ids[32:] = 1 the old pattern keeps its own data
    (it is a value) and the pattern built from the new data is a different pattern."""
    ids = np.zeros(64, dtype=np.int64)
    rule = mc.predicate(lambda i, j, ids: ids[i] == ids[j], args=(ids,), name="same_doc_test")
    before = rule.dense(64)
    assert before.all()
    ids[32:] = 1
    assert rule.args[0].flags.writeable is False and (rule.args[0] == 0).all()
    assert (rule.dense(64) == before).all()  # the value did not change under the user's feet
    fresh = rule.with_args(ids)
    assert fresh != rule and hash(fresh) != hash(rule) and fresh.text() != rule.text()
    after = fresh.dense(64)
    assert after[0, 0, 40] == False and after[0, 40, 33] == True  # noqa: E712
    assert mc.parse(fresh.text()) == fresh and mc.parse(rule.text()) == rule
    np.testing.assert_array_equal(lowered_dense(fresh, 64), after)
    with pytest.raises(mc.PatternSyntaxError, match="no predicate 'same_doc_test' with args"):
        mc.parse("predicate('same_doc_test', args='0000000000000000')")


def test_recompile_after_changed_data_gives_the_new_layout():
    ids = np.zeros(64, dtype=np.int64)
    rule = mc.predicate(lambda i, j, ids: ids[i] == ids[j], args=(ids,), name="same_doc_compile")
    old = mc.compile(rule, 64, block=16)
    ids[32:] = 1
    new = mc.compile(rule.with_args(ids), 64, block=16, cache=False)
    assert old.nnz == 64 * 64 and new.nnz == 2 * 32 * 32
    np.testing.assert_array_equal(new.to_dense(), rule.with_args(ids).dense(64))


def test_same_name_redefined_warns_and_keeps_old_values_apart():
    a = mc.predicate(lambda i, j: i >= j, name="redefined_rule")
    with pytest.warns(UserWarning, match="redefined"):
        b = mc.predicate(lambda i, j: i > j, name="redefined_rule")
    assert a != b and mc.parse("predicate('redefined_rule')") == b
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mc.predicate(lambda i, j: i > j, name="redefined_rule") == b  # the same rule again: silent


def test_predicate_fingerprint_sees_closure_scalars():
    def make(k):
        return Predicate(lambda i, j: (i - j) % k == 0, name="mod_k_test")

    assert make(2) != make(3) and make(2) == make(2)
    np.testing.assert_array_equal(make(3).dense(7), mc.stride(3).dense(7))


def test_bad_names_and_args():
    with pytest.raises(ValueError, match="ASCII identifier"):
        mc.predicate(lambda i, j: True, name="not ok")
    with pytest.raises(TypeError, match="numeric or boolean array"):
        mc.predicate(lambda i, j, x: True, args=(np.array(["a"]),))
    with pytest.raises(mc.PatternSyntaxError, match="no predicate named 'never_defined'"):
        mc.parse("predicate('never_defined')")
