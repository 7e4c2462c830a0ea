"""The fuzz families, each a seeded loop of cases under the harness's deadline and memory cap:
``dsl`` (texts), ``files`` (corrupted layout files), ``importers`` (mutated importer calls),
``attention`` (valid inputs on every CPU backend vs float64) and ``bad_inputs`` (malformed
attention calls). The CI tests and the long-run runner (tools/fuzz.py) both call
:func:`run_family`.

Example:
    >>> tally = run_family("importers", 20, seed=1)
    >>> tally.calls, tally.failures
    (20, [])
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from typing import Callable

import fuzz_attention as fa
import fuzz_dsl as fd
import fuzz_files as ff
import fuzz_importers as fi
from fuzz_harness import DEADLINE_S, Tally, run_case

#: Per-call deadline of each family (seconds). Texts, files and importer calls have the issue's
#: 2 s; an attention case runs up to seven backends, two of which (jax, flex) compile per layout.
DEADLINES = {"dsl": DEADLINE_S, "files": DEADLINE_S, "importers": DEADLINE_S, "attention": 30.0,
             "bad_inputs": DEADLINE_S}


def _warm_dsl(rng: random.Random) -> None:
    """Compile every leaf once (numba kernels load from the disk cache on first use)."""
    for name in fd.LEAF_NAMES:
        for _ in range(3):
            try:
                fd.check_text(fd.leaf_text(rng), rng, compile_share=1.0)
            except (ValueError, TypeError):
                pass


def _dsl(n: int, rng: random.Random, tally: Tally, trace: bool) -> None:
    _warm_dsl(random.Random(0))
    for _ in range(n):
        text, seed = fd.text_case(rng), rng.random()  # a rerun (untraced timing) repeats the same checks
        run_case(tally, text, lambda: fd.check_text(text, random.Random(seed)), DEADLINES["dsl"], trace=trace)


def _files(n: int, rng: random.Random, tally: Tally, trace: bool) -> None:
    blobs = ff.base_blobs()
    for lay, blob in blobs:  # the uncorrupted files load back unchanged
        assert ff.loads(blob) == lay
        ff.check_file(blob, rng)
    for k in range(n):
        lay, blob = blobs[rng.randrange(len(blobs))]
        bad = ff.corrupt(blob, rng, lay)
        run_case(tally, f"file #{k} ({len(bad)} bytes, from {lay!r})", lambda: ff.check_file(bad, rng),
                 DEADLINES["files"], trace=trace)


def _importers(n: int, rng: random.Random, tally: Tally, trace: bool) -> None:
    calls = fi.base_calls()
    for _, fn, kw in calls:  # the unmutated calls work
        fi.check_call(fn, kw)
    for _ in range(n):
        name, fn, kw = fi.mutated_call(calls, rng)
        label = (name, {k: getattr(v, "shape", type(v).__name__) for k, v in kw.items()})
        run_case(tally, label, lambda: fi.check_call(fn, kw), DEADLINES["importers"], trace=trace)


def _attention(n: int, rng: random.Random, tally: Tally, trace: bool) -> None:
    seen: Counter = Counter()
    warm = random.Random(0)
    for _ in range(3):
        fa.check_attention(warm, Counter())
    for k in range(n):
        run_case(tally, f"attention case #{k}", lambda: fa.check_attention(rng, seen), DEADLINES["attention"],
                 trace=trace)
    tally.extra.update(seen)


def _bad_inputs(n: int, rng: random.Random, tally: Tally, trace: bool) -> None:
    for k in range(n):
        run_case(tally, f"bad input #{k}", lambda: fa.bad_input_case(rng), DEADLINES["bad_inputs"], trace=trace)


FAMILIES: dict[str, Callable[[int, random.Random, Tally, bool], None]] = {
    "dsl": _dsl, "files": _files, "importers": _importers, "attention": _attention, "bad_inputs": _bad_inputs}


def run_family(family: str, n: int, seed: int, trace: bool = True) -> Tally:
    """Run ``n`` seeded cases of ``family``; the returned tally holds counts and failures."""
    tally = Tally(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FAMILIES[family](n, random.Random(f"{family}-{seed}"), tally, trace)
    return tally
