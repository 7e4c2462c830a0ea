"""The Program is the sink of ``Pattern.lower``: leaves record their data, ``op`` builds
the tree, and the instruction stream narrows each operand to where it still matters."""

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import as_layout, codes
from maskc.compiler.program import Program, build_program
from standins import Cells, FlexPredicate, SegmentIds  # noqa: E402  (tests/compiler/standins.py)


class _Lowered(mc.Pattern):
    """A node that drives the sink by hand: (window(2) & segments) | ~cols([1])."""

    __slots__ = ()
    _AXIS = "G"

    def __init__(self):
        self._init()

    def _make_text(self):
        return "lowered_by_hand()"

    def _key_fields(self):
        return ()

    def _eval(self, i, j, s):
        return ((mc.window(2) & mc.segments([4, 4])) | ~mc.cols([1]))._eval(i, j, s)

    def _lower(self, sink):
        sink.leaf_axis(mc.window(2))
        sink.leaf_segments(mc.segments([4, 4]))
        sink.op("and", 2)
        sink.leaf_axis(mc.cols([1]))
        sink.op("not", 1)
        sink.op("or", 2)


def test_leaves_record_their_data_at_the_compiled_sizes():
    prog = Program(q_total=12, kv_len=10)
    prog.leaf_axis(mc.window(1))
    prog.leaf_axis(mc.rows([3]))
    prog.leaf_segments(mc.segments([5]))
    prog.leaf_cells(Cells([(0, 1), (11, 9), (12, 0)]))
    prog.leaf_predicate(FlexPredicate([1, 0]))
    prog.leaf_block_level(mc.causal().at_block_level(4))
    prog.op("and", 3)
    prog.op("or", 4)
    kinds = [leaf.kind for leaf in prog.leaves]
    assert kinds == [codes.T_D, codes.T_R, codes.T_SEG, codes.T_CELLS, codes.T_PRED, codes.T_BLOCK]
    assert prog.leaves[0].data.shape == (12 + 10 - 1,)  # offsets -(kv_len - 1) .. q_total - 1
    assert prog.leaves[1].data.shape == (12,)
    assert prog.leaves[2].data.shape == (12,)
    i, j = prog.leaves[3].data
    assert i.tolist() == [0, 11] and j.tolist() == [1, 9]  # pairs outside the sizes are dropped
    call = prog.leaves[4].data
    assert call.arity == 4 and len(call.args) == 1
    assert prog.leaves[5].data[1] == 4
    assert prog.root == ("or", (("leaf", 0), ("leaf", 1), ("leaf", 2),
                                ("and", (("leaf", 3), ("leaf", 4), ("leaf", 5)))))


def test_op_flattens_and_cancels_double_negation():
    prog = Program(8, 8)
    for p in (mc.window(1), mc.rows([1]), mc.cols([2])):
        prog.leaf_axis(p)
    prog.op("and", 2)
    prog.op("and", 2)
    assert prog.root == ("and", (("leaf", 0), ("leaf", 1), ("leaf", 2)))
    prog.op("not", 1)
    prog.op("not", 1)
    assert prog.root[0] == "and"


@pytest.mark.parametrize("name, n", [("xor", 2), ("not", 2), ("and", 1), ("and", 5)])
def test_bad_ops_are_refused(name, n):
    prog = Program(8, 8)
    prog.leaf_axis(mc.window(1))
    prog.leaf_axis(mc.causal())
    with pytest.raises(ValueError, match="bad program op"):
        prog.op(name, n)


def test_a_program_needs_exactly_one_result():
    prog = Program(8, 8)
    prog.leaf_axis(mc.window(1))
    prog.leaf_axis(mc.causal())
    with pytest.raises(ValueError, match="2 results"):
        prog.root


def test_predicate_arity_is_checked():
    bad = FlexPredicate([1])
    object.__setattr__(bad, "arity", 3)
    with pytest.raises(ValueError, match="arity must be 2"):
        Program(8, 8).leaf_predicate(bad)


def test_instructions_narrow_each_later_operand_and_jump_to_its_combine():
    prog = build_program(mc.causal() & (mc.window(3) | mc.global_tokens(2)), 256, 256)
    ops, args, depth, interests = prog.instructions()
    assert ops.tolist().count(codes.OP_LEAF) == 4
    for k in np.flatnonzero((ops == codes.OP_NARROW_AND) | (ops == codes.OP_NARROW_OR)):
        target = args[k]
        assert ops[target] == (codes.OP_AND if ops[k] == codes.OP_NARROW_AND else codes.OP_OR)
    assert depth >= 2 and interests >= 1


def test_predicates_are_evaluated_last():
    rule = mc.predicate(lambda i, j: (i + j) % 2 == 0, name="sink_test_parity")
    prog = build_program(rule & mc.window(3) & mc.causal(), 64, 64)
    ops, args, _, _ = prog.instructions()
    leaves = [args[k] for k in np.flatnonzero(ops == codes.OP_LEAF)]
    assert prog.leaves[leaves[-1]].kind == codes.T_PRED


def test_a_node_lowering_itself_compiles_like_its_definition():
    p = _Lowered()
    for block in (3, 4, (2, 5)):
        lay = mc.compile(p, 11, 9, block=block, cache=False)
        assert np.array_equal(lay.to_dense(), p.dense(11, 9))


def test_as_layout_is_the_one_pattern_or_layout_coercion():
    lay = as_layout(mc.causal() & SegmentIds([1, 1, 2]), q_len=50, block=16)
    assert as_layout(lay) is lay and as_layout(lay, q_len=50) is lay
    with pytest.raises(ValueError, match="kv_len=7 given with a Layout"):
        as_layout(lay, kv_len=7)
    with pytest.raises(ValueError, match="needs q_len="):
        as_layout(mc.causal())
    with pytest.raises(TypeError, match="Layout or Pattern"):
        as_layout("causal()")
    assert as_layout(mc.causal(), 10, 30, q_offset=20).q_offset == 20


def test_same_axis_operands_of_one_union_or_intersection_become_one_leaf():
    """window | offsets | cols | rows | cols: the D leaves merge, the C leaves merge; the layout is unchanged."""
    p = mc.causal() & (mc.window(3) | mc.offsets([10, 20]) | mc.cols([1]) | mc.rows([5]) | mc.cols([7])) & ~mc.window(1)
    prog = build_program(p, q_total=90, kv_len=90)
    kinds = sorted(leaf.kind for leaf in prog.leaves)
    # the outer & merges causal with ~window(1) (both D); the union keeps one D, one C and one R leaf
    assert kinds.count(codes.T_D) == 2 and kinds.count(codes.T_C) == 1 and kinds.count(codes.T_R) == 1, kinds
    for q, k in ((90, 90), (37, 61)):
        np.testing.assert_array_equal(as_layout(p, q_len=q, kv_len=k, block=16).to_dense(), p.dense(q, k))
    inter = mc.window(5) & mc.offsets(range(0, 40, 2)) & mc.cols(range(0, 90, 3))
    assert len(build_program(inter, 90, 90).leaves) == 2
    np.testing.assert_array_equal(as_layout(inter, q_len=90, block=16).to_dense(), inter.dense(90))
