"""Seeded DSL texts for fuzzing: grammar-based patterns (small and hostile arguments) and
character-level mutations of them, plus the checks one text must pass.

``check_text(text, rng)`` parses the text; when it parses, the canonical text must parse
back to an equal pattern and stay compact, and (for a share of texts) the compiled layout
must validate, save/load unchanged and equal the pattern's own dense evaluation at a small
random size (optionally with ``q_offset``). Any disagreement is an AssertionError.

Example:
    >>> import random
    >>> rng = random.Random(0)
    >>> texts = [dsl_text(rng) for _ in range(3)]
    >>> all(isinstance(t, str) and t for t in texts)
    True
    >>> check_text("causal() & window(2)", random.Random(1), compile_share=1.0)
    'compiled'
"""

from __future__ import annotations

import random

import numpy as np

import maskc as mc
from maskc.ir.io import dumps, loads
from maskc.limits import MAX_TEXT
from maskc.patterns.sequences import sequence_names

SEQUENCES = sequence_names()
HUGE = [2**31 - 1, 2**31, 2**40, 2**40 + 1, 2**62, 10**30, 1073741824, 1099511627776, 1048575, 1048576]
STRINGS = ["all", "even", "odd", "", "x" * 201, "é", "primes", "maskc_value_divides", "__import__('os')"]


def _int(rng: random.Random, lo: int = 0, hi: int = 12) -> str:
    """A small integer mostly; sometimes negative or huge (a hostile size)."""
    r = rng.random()
    if r < 0.8:
        return str(rng.randint(lo, hi))
    if r < 0.9:
        return str(-rng.randint(0, 2**40 if rng.random() < 0.3 else 5))
    return str(rng.choice(HUGE))


def _seq(rng: random.Random) -> str:
    """A sequence argument: a named sequence, a list, or a range (possibly enormous)."""
    r = rng.random()
    if r < 0.4:
        return repr(rng.choice(SEQUENCES))
    if r < 0.75:
        return "[" + ", ".join(_int(rng, -20, 40) for _ in range(rng.randint(0, 6))) + "]"
    a, b = sorted((int(_int(rng, -40, 40)), int(_int(rng, -40, 60))))
    step = f", {_int(rng, 1, 5)}" if rng.random() < 0.3 else ""
    return f"range({a}, {b}{step})"


def _bool(rng: random.Random) -> str:
    return rng.choice(["True", "False"])


def _kw(rng: random.Random, name: str, value: str) -> str:
    return f"{name}={value}" if rng.random() < 0.5 else value


LEAVES = {
    "full": lambda r: "", "causal": lambda r: "",
    "window": lambda r: f"{_int(r)}, {_int(r)}" if r.random() < 0.7 else _int(r),
    "ring_local": lambda r: _int(r),
    "stride": lambda r: f"{_int(r, 1, 9)}, {_int(r, 0, 8)}",
    "offsets": lambda r: f"{_seq(r)}" + (f", symmetric={_bool(r)}" if r.random() < 0.4 else ""),
    "sums": lambda r: _seq(r),
    "global_tokens": lambda r: _int(r, 0, 5) if r.random() < 0.7 else _seq(r),
    "rows": lambda r: _seq(r) + (f", shift={_int(r, 0, 3)}" if r.random() < 0.3 else "")
    + (f", period={_int(r, 1, 40)}" if r.random() < 0.2 else ""),
    "cols": lambda r: _seq(r) + (f", shift={_int(r, 0, 3)}" if r.random() < 0.3 else "")
    + (f", period={_int(r, 1, 40)}" if r.random() < 0.2 else ""),
    "segments": lambda r: ("[" + ", ".join(_int(r, 1, 40) for _ in range(r.randint(1, 5))) + "]")
    if r.random() < 0.7 else f"range(1, {_int(r, 2, 20)})",
    "document_mask": lambda r: ("[" + ", ".join(_int(r, 1, 30) for _ in range(r.randint(1, 5))) + "]"
                                if r.random() < 0.7 else f"range(1, {_int(r, 2, 20)})")
    + (f", causal={_bool(r)}" if r.random() < 0.4 else ""),
    "sliding_window": lambda r: _int(r) + (f", symmetric={_bool(r)}" if r.random() < 0.3 else ""),
    "dilated_window": lambda r: f"{_int(r)}, {_int(r, 1, 4)}",
    "chunked_causal": lambda r: _int(r, 1, 20), "prefix_lm": lambda r: _int(r, 0, 20),
    "longformer": lambda r: f"{_int(r)}, {_int(r, 0, 4) if r.random() < 0.6 else _seq(r)}",
    "bigbird": lambda r: f"window={_int(r, 0, 3)}, global_tokens={_int(r, 0, 3)}, random_blocks={_int(r, 0, 3)}, "
    f"block={_int(r, 1, 16)}, seed={_int(r, 0, 5)}",
    "attention_sinks": lambda r: f"{_int(r, 0, 4)}, {_int(r, 0, 16)}",
    "sparse_transformer_fixed": lambda r: f"block={_int(r, 1, 16)}, c={_int(r, 0, 16)}",
    "sparse_transformer_strided": lambda r: _int(r, 1, 16),
    "arithmetic_progression": lambda r: f"{_int(r, 1, 8)}, {_int(r, 0, 8)}",
    "random_keys": lambda r: f"{_int(r, 0, 8)}, seed={_int(r, 0, 9)}",
    "riemann_zeros": lambda r: _kw(r, "K", _int(r, 0, 80)),
    "primeformer_heads": lambda r: _int(r, 1, 9),
    "pi_ring": lambda r: f"{_int(r, 1, 40)}", "ring_local_pattern": lambda r: f"{_int(r, 1, 40)}",
    "pi_step": lambda r: f"{_int(r, 1, 20)}, {r.choice(STRINGS[:3])!r}",
    "pi_attention_union": lambda r: f"{_int(r, 1, 20)}, {_int(r, 1, 20)}",
    "prime_bird": lambda r: f"{_int(r, 0, 3)}, {_int(r, 0, 3)}", "square_bird": lambda r: f"{_int(r, 0, 3)}",
    "mian_chowla_bird": lambda r: "", "goldbach": lambda r: "", "mersenne": lambda r: "",
    "prime_gaps": lambda r: "", "prime_powers": lambda r: "", "quadratic_residue": lambda r: "",
    "sieve": lambda r: "", "twin_primes": lambda r: "",
    "predicate": lambda r: repr("maskc_value_divides" if r.random() < 0.7 else r.choice(STRINGS)),
}
LEAF_NAMES = sorted(LEAVES)


def leaf_text(rng: random.Random) -> str:
    """One constructor call with random arguments."""
    name = rng.choice(LEAF_NAMES)
    return f"{name}({LEAVES[name](rng)})"


def dsl_text(rng: random.Random, depth: int = 0) -> str:
    """A random pattern expression of the DSL grammar (unions, intersections, differences,
    complements, parentheses, ``heads([...])`` and ``block_level(...)``)."""
    r = rng.random()
    if depth >= 3 or r < 0.35:
        return leaf_text(rng)
    if r < 0.55:
        op = rng.choice([" | ", " & ", " - "])
        return op.join(dsl_text(rng, depth + 1) for _ in range(rng.randint(2, 4)))
    if r < 0.65:
        return "~" + f"({dsl_text(rng, depth + 1)})"
    if r < 0.8:
        return f"({dsl_text(rng, depth + 1)})"
    if r < 0.9:
        return f"heads([{', '.join(dsl_text(rng, depth + 1) for _ in range(rng.randint(1, 3)))}])"
    return f"block_level({dsl_text(rng, depth + 1)}, {_int(rng, 1, 16)})"


TOKENS = ["(", ")", "[", "]", ",", "|", "&", "-", "~", "~~", "+", "*", "**", "=", ".", ":", "'", '"', "\n",
          "lambda", "__import__", "os", "é", "ü", "\u200b", "1e9", "0x10", "1.5", "2**40", "1099511627776",
          "'primes'", "range(", "K=", "None", "True", "x" * 300, "(" * 70, ")" * 70, "[" * 70, "\\"]


def mutate(text: str, rng: random.Random) -> str:
    """1-3 character-level edits of ``text`` (delete, duplicate, insert a token, swap a number)."""
    s = text
    for _ in range(rng.randint(1, 3)):
        if not s:
            s = rng.choice(TOKENS)
            continue
        i = rng.randrange(len(s) + 1)
        j = min(len(s), i + rng.randint(1, 12))
        op = rng.randrange(5)
        if op == 0:
            s = s[:i] + s[j:]
        elif op == 1:
            s = s[:j] + s[i:j] * rng.randint(1, 40) + s[j:]
        elif op == 2:
            s = s[:i] + rng.choice(TOKENS) + s[i:]
        elif op == 3:
            s = s[:i] + str(rng.choice(HUGE + [-1, 0, 1])) + s[j:]
        else:
            s = s[:i] + chr(rng.randrange(32, 0x2FF)) + s[i:]
    return s[: MAX_TEXT + 10]


def hostile_text(rng: random.Random) -> str:
    """Long or deep texts near the limits: long unions, long lists, deep brackets."""
    n = rng.choice([65, 200, 2000, 5000])
    r = rng.randrange(5)
    if r == 0:
        return " | ".join(f"window({k % 50})" for k in range(n))
    if r == 1:
        return "offsets([" + ", ".join(str(rng.randint(-5000, 5000)) for _ in range(n)) + "])"
    if r == 2:
        d = rng.choice([10, 63, 64, 65, 500])
        return "(" * d + "causal()" + ")" * d
    if r == 3:
        return "~" * n + "causal()"
    return "segments([" + ", ".join(str(rng.randint(1, 9)) for _ in range(n)) + "])"


def text_case(rng: random.Random) -> str:
    """One fuzz text: 45% grammar, 50% mutated grammar, 5% hostile."""
    r = rng.random()
    if r < 0.45:
        return dsl_text(rng)
    if r < 0.95:
        return mutate(dsl_text(rng), rng)
    return hostile_text(rng)


def check_text(text: str, rng: random.Random, compile_share: float = 0.3, max_tokens: int = 96) -> str:
    """Parse ``text``; check canonical text, and for ``compile_share`` of texts the compiled layout."""
    p = mc.parse(text)
    canon = p.text()
    assert len(canon) <= min(MAX_TEXT, 8 * len(text) + 256), f"text() not compact: {len(canon)} chars"
    back = mc.parse(canon)
    assert back == p and back.text() == canon, f"text() does not parse back: {canon[:300]}"
    if rng.random() >= compile_share:
        return "parsed"
    q = rng.randint(1, max_tokens)
    kv = rng.randint(1, max_tokens) if rng.random() < 0.3 else None
    off = rng.randint(0, max_tokens) if rng.random() < 0.2 else 0
    block = rng.choice([1, 3, 8, 16, 32, (8, 16), (16, 4)])
    lay = mc.compile(p, q_len=q, kv_len=kv, block=block, q_offset=off)
    lay.validate()
    assert loads(dumps(lay)) == lay, "layout changed through save/load"
    want = p.dense(q, kv, q_offset=off)
    got = lay.to_dense()
    assert got.shape == want.shape, (got.shape, want.shape)
    bad = np.argwhere(got != want)
    assert not bad.size, f"compile != dense at q={q} kv={kv} q_offset={off} block={block}: {bad[:4].tolist()}"
    return "compiled"
