"""The text form: round trips, and hostile or malformed text refused with the position."""

import pytest

import maskc as mc
from maskc.errors import PatternSyntaxError


@pytest.mark.parametrize("text", [
    "causal()",
    "causal() & (window(3) | global_tokens(2) | offsets('primes'))",
    "~window(2, 1) - offsets([1, 2, 3], symmetric=True) & stride(3)",
    "heads([causal(), full(), ring_local(4)])",
    "block_level(offsets('primes') | window(0), 128) & causal()",
    "rows(range(3, 10)) | cols('primes', shift=1)",
    "segments([5, 3, 8])",
    "prime_bird(cap=None, global_tokens=2, window=3)",
    "pi_attention_union(causal=False, m=None, period=16, r=8, variant='all')",
])
def test_round_trip(text):
    p = mc.parse(text)
    assert mc.parse(p.text()) == p
    assert p.text() == mc.parse(p.text()).text()


@pytest.mark.parametrize("text, message, column", [
    ("__import__('os')", "'__import__' is not a pattern constructor", 1),
    ("causal().__class__", "attribute access", 1),
    ("causal() | os.system('x')", "only calls of constructor names", 12),
    ("lambda i, j: True", "lambda is not allowed", 1),
    ("10**10**10", "operator '**' is not allowed", 1),
    ("window(10**10)", "operator '**' is not allowed", 8),
    ("window(3) + window(2)", "operator '+' is not allowed", 1),
    ("window(99999999999999999)", "larger than the limit", 8),
    ("causal()[0]", "Subscript", 1),
    ("[x for x in range(3)]", "ListComp", 1),
    ("window(3", "invalid syntax", 7),
    ("causal() &", "ends too early", 11),
    ("causal() & & window(2)", "invalid syntax", 12),
    ("causal", "must be called", 1),
    ("foo()", "'foo' is not a pattern constructor", 1),
    ("window('a')", "window left must be an integer", 1),
    ("offsets('nope')", "unknown sequence 'nope'", 1),
    ("3", "must describe a pattern", 1),
    ("  causal() & bad()", "'bad' is not a pattern constructor", 14),
])
def test_hostile_and_malformed_text(text, message, column):
    with pytest.raises(PatternSyntaxError) as e:
        mc.parse(text)
    assert message in str(e.value)
    assert e.value.column == column


def test_huge_text_refused_before_parsing():
    with pytest.raises(PatternSyntaxError, match="above the limit of 100,000"):
        mc.parse("causal() | " * 200_000 + "causal()")


def test_deep_nesting_refused():
    with pytest.raises(PatternSyntaxError, match="nests brackets"):
        mc.parse("(" * 500 + "causal()" + ")" * 500)


def test_bad_range_names_the_call():
    with pytest.raises(PatternSyntaxError, match="range.*must not be zero") as e:
        mc.parse("offsets(range(0, 10, 0))")
    assert e.value.column == 9


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        mc.parse(42)
