"""The text form: round trips, hostile or malformed text refused at the right line and character
column, and parse work that grows linearly with the text (counted in tokens and bytes)."""

import tracemalloc

import pytest

import maskc as mc
from maskc.errors import PatternSyntaxError
from maskc.limits import MAX_TEXT
from maskc.patterns.parse import _Parser


@pytest.mark.parametrize("text", [
    "causal()",
    "causal() & (window(3) | global_tokens(2) | offsets('primes'))",
    "~window(2, 1) - offsets([1, 2, 3], symmetric=True) & stride(3)",
    "heads([causal(), full(), ring_local(4)])",
    "batched([causal(), segments([3, 4])]) & window(8)",
    "block_level(offsets('primes') | window(0), 128) & causal()",
    "rows(range(3, 10)) | cols('primes', shift=1)",
    "cols(range(5, 8), period=8) | rows([1, range(10, 20), 40], shift=2, period=100)",
    "segments([5, 3, 8])",
    "segments(range(1, 1048576))",
    "offsets(range(-1099511627776, 1))",
    "block_level(window(1) | random_keys(3, seed=7, first=1, recent=1, symmetric=True), 64)",
    "prime_bird(cap=None, global_tokens=2, window=3)",
    "pi_attention_union(causal=False, m=None, period=16, r=8, variant='all')",
    "document_mask(causal=True, lengths=[[3, 5], range(1, 100)])",
    "key_padding(real=[[range(0, 300)], [], [1, 5]], width=300)",
    "causal()\n  & window(3)\n",
])
def test_round_trip(text):
    p = mc.parse(text)
    assert mc.parse(p.text()) == p
    assert p.text() == mc.parse(p.text()).text()


@pytest.mark.parametrize("text, message, column", [
    ("__import__('os')", "'__import__' is not a pattern constructor", 1),
    ("causal().__class__", "attribute access", 9),
    ("causal() | os.system('x')", "attribute access", 14),
    ("lambda i, j: True", "lambda is not allowed", 1),
    ("10**10**10", "operator '**' is not allowed", 3),
    ("window(10**10)", "operator '**' is not allowed", 10),
    ("window(3) + window(2)", "operator '+' is not allowed", 11),
    ("(window(3) | causal()) * 2", "operator '*' is not allowed", 24),
    ("window(99999999999999999)", "larger than the limit", 8),
    ("window(1.5)", "floats are not allowed", 8),
    ("causal()[0]", "subscripts are not allowed", 9),
    ("[x for x in range(3)]", "unknown name 'x'", 2),
    ("[causal() for x in y]", "comprehensions are not allowed", 11),
    ("window(3", "the text ends too early: '(' at line 1, column 7 is never closed", 7),
    ("causal() &", "ends too early", 11),
    ("causal() & & window(2)", "invalid syntax", 12),
    ("causal() and window(2)", "use & (intersection)", 10),
    ("causal())", "unmatched ')'", 9),
    ("causal", "must be called", 1),
    ("foo()", "'foo' is not a pattern constructor", 1),
    ("window('a')", "window left must be an integer", 1),
    ("causal() | window(x=1, 2)", "positional argument follows a keyword", 24),
    ("window(*[3])", "*args is not allowed", 8),
    ("offsets('nope')", "unknown sequence 'nope'", 1),
    ("offsets('a\\'')", "unexpected character", 9),
    ("3", "must describe a pattern", 1),
    ("  causal() & bad()", "'bad' is not a pattern constructor", 14),
    ("causal() & ~3", "operand of '~' must be a pattern", 12),
    ("-causal()", "unary minus applies to integers only", 1),
    ("window(3) | 4", "operand of '|' must be a pattern", 13),
])
def test_hostile_and_malformed_text(text, message, column):
    with pytest.raises(PatternSyntaxError) as e:
        mc.parse(text)
    assert message in str(e.value)
    assert e.value.column == column and e.value.line == 1


def test_columns_count_characters_and_lines():
    """Columns are character offsets (not UTF-8 bytes) on the offending line."""
    text = "segments([1, 2]) | 'πππ∑' + window(3)"
    with pytest.raises(PatternSyntaxError, match="operator '\\+'") as e:
        mc.parse(text)
    assert e.value.column == text.index("+") + 1 == 27 and e.value.token == "+"
    text = "causal()\n  & window(3)\n  | 'ééé' ** 2"
    with pytest.raises(PatternSyntaxError) as e:
        mc.parse(text)
    assert (e.value.line, e.value.column) == (3, 11)
    assert "line 3, column 11" in str(e.value)
    with pytest.raises(PatternSyntaxError) as e:
        mc.parse("causal() |\n  block_level(window(3), 0)")
    assert (e.value.line, e.value.column) == (2, 3)


def test_huge_text_refused_before_parsing():
    with pytest.raises(PatternSyntaxError, match=f"above the limit of {MAX_TEXT:,}"):
        mc.parse("causal() | " * 200_000 + "causal()")


def test_deep_nesting_refused():
    with pytest.raises(PatternSyntaxError, match="nest deeper than the limit of 64") as e:
        mc.parse("(" * 500 + "causal()" + ")" * 500)
    assert e.value.column == 65


def test_long_chains_do_not_nest():
    """Unions of many operands and runs of ~ parse flat (no recursion per operand)."""
    n = 5000
    p = mc.parse(" | ".join(f"window({k})" for k in range(n)))
    assert len(p.parts) == n and mc.parse(p.text()) == p
    assert mc.parse("~" * 50_001 + "causal()") == ~mc.causal()
    assert mc.parse("~" * 50_000 + "causal()") == mc.causal()
    assert mc.parse("window(" + "-" * 1000 + "3)") == mc.window(3)


def test_bad_range_names_the_call():
    with pytest.raises(PatternSyntaxError, match="range.*must not be zero") as e:
        mc.parse("offsets(range(0, 10, 0))")
    assert e.value.column == 9


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        mc.parse(42)


def _parse_cost(text: str) -> tuple[int, int]:
    """(tokens, peak traced bytes) of parsing ``text``."""
    tracemalloc.start()
    try:
        p = _Parser(text)
        p.union()
        return len(p.toks), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("make", [
    lambda n: " | ".join(["window(3)"] * n),
    lambda n: "offsets([" + ", ".join(str(7 * k % 99991) for k in range(n)) + "])",
    lambda n: "heads([" + ", ".join(f"offsets(range({k}, {10 ** 12}))" for k in range(n)) + "])",
    lambda n: "~" * n + "causal()",
])
def test_parse_work_grows_linearly_with_the_text(make):
    small, big = make(400), make(1600)
    t1, m1 = _parse_cost(small)
    t2, m2 = _parse_cost(big)
    assert t1 <= len(small) + 1 and t2 <= len(big) + 1  # at most one token per character
    assert m2 <= 6 * max(m1, 1 << 16)  # 4x the text: memory grows ~4x, not 16x
    assert m2 <= 400 * len(big) + (1 << 20)


@pytest.mark.parametrize("text", [
    "document_mask(range(1, 1073741824))",
    "longformer(1, range(0, 1073741824))",
    "sparse_transformer_fixed(block=1048576, c=1048575)",
    "segments(range(1, 1099511627776))",
    "offsets(range(-1099511627776, 1))",
    "rows(1099511627776, shift=1099511627776)",
    "cols(range(0, 1099511627776, 3), period=1099511627776)",
])
def test_huge_values_in_short_texts_cost_nothing(text):
    """Ranges stay ranges: constructing these allocates kilobytes, whatever the numbers."""
    tracemalloc.start()
    try:
        p = mc.parse(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{text}: {peak:,} bytes"
    assert mc.parse(p.text()) == p and len(p.text()) < 200


@pytest.mark.parametrize("text, match", [
    ("riemann_zeros(K=100000)", "K must be at most 1,000"),
    ("heads(range(0, 1099511627776))", "at most 65,536 patterns"),
    ("segments(range(0, 10))", "entry must be >= 1"),
])
def test_hostile_constructor_calls_are_refused_up_front(text, match, monkeypatch):
    import mpmath

    monkeypatch.setattr(mpmath, "zetazero", lambda *a: pytest.fail("parse computed a zeta zero"))
    with pytest.raises(PatternSyntaxError, match=match):
        mc.parse(text)
