"""Run one fuzz case under a deadline and a memory cap, and count what happened.

A case is a zero-argument callable. Its outcome is ``ok``, the name of a *documented*
error type (ValueError, TypeError and maskc's subclasses: PatternSyntaxError,
LayoutFormatError, TooLargeError), or a failure: ``crash`` (any other exception, e.g.
MemoryError, IndexError, SystemError), ``disagreement`` (the case's own AssertionError:
two answers differ), ``slow`` (over the deadline) or ``memory`` (peak traced allocation
over the cap; tracemalloc sees numpy's allocations). Tracing slows Python code about
fivefold, so a traced call over its deadline is timed again untraced and judged by that
time (counted as ``retimed untraced``). A watchdog (``faulthandler``) ends
the process with a traceback when one call runs far past its deadline, so a real hang
cannot stall CI.

Example:
    >>> tally = Tally("demo")
    >>> run_case(tally, "int", lambda: int("7"))
    >>> run_case(tally, "bad int", lambda: int("x"))
    >>> tally.outcomes["ok"], tally.outcomes["ValueError"], tally.failures
    (1, 1, [])
"""

from __future__ import annotations

import faulthandler
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from maskc.errors import LayoutFormatError, PatternSyntaxError, TooLargeError

#: The error types maskc documents for bad input (most specific first).
DOCUMENTED: tuple[type[BaseException], ...] = (PatternSyntaxError, LayoutFormatError, TooLargeError,
                                               ValueError, TypeError)
#: Per-call wall-clock limit (seconds) and traced-memory limit (bytes) of the issue.
DEADLINE_S: float = 2.0
MAX_BYTES: int = 256 << 20
#: A call this many times over its deadline is a hang: the watchdog ends the process.
HANG_FACTOR: float = 30.0
FAILURES = ("crash", "disagreement", "slow", "memory")


@dataclass
class Tally:
    """Outcome counts of one fuzz family, with the slowest and most memory-hungry call."""

    family: str
    outcomes: Counter = field(default_factory=Counter)
    max_seconds: float = 0.0
    slowest: str = ""
    max_bytes: int = 0
    hungriest: str = ""
    failures: list[str] = field(default_factory=list)
    #: What passing cases returned (e.g. "parsed" / "compiled"), and per-backend comparisons.
    extra: Counter = field(default_factory=Counter)

    @property
    def calls(self) -> int:
        """How many cases ran (a slow or memory-hungry case is also counted under its outcome)."""
        return sum(v for k, v in self.outcomes.items() if k not in ("slow", "memory", "retimed untraced"))

    def merge(self, other: "Tally") -> "Tally":
        """Add ``other``'s counts into this tally (for parallel runs); returns self."""
        self.outcomes.update(other.outcomes)
        self.extra.update(other.extra)
        if other.max_seconds > self.max_seconds:
            self.max_seconds, self.slowest = other.max_seconds, other.slowest
        if other.max_bytes > self.max_bytes:
            self.max_bytes, self.hungriest = other.max_bytes, other.hungriest
        self.failures.extend(other.failures)
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"family": self.family, "calls": self.calls, "outcomes": dict(sorted(self.outcomes.items())),
                "max_seconds": round(self.max_seconds, 4), "slowest": self.slowest[:200],
                "max_bytes": self.max_bytes, "hungriest": self.hungriest[:200],
                "extra": dict(sorted(self.extra.items())), "failures": len(self.failures), "first_failures": [f[:2000] for f in self.failures[:20]]}

    def check(self) -> None:
        """Raise AssertionError listing the first failures, if any."""
        assert not self.failures, f"{self.family}: {len(self.failures)} failures, first:\n" + "\n".join(
            f[:3000] for f in self.failures[:5])


def classify(exc: BaseException) -> str:
    """The outcome name of an exception raised by a case."""
    if isinstance(exc, AssertionError):
        return "disagreement"
    for t in DOCUMENTED:
        if isinstance(exc, t):
            return t.__name__
    return "crash"


def run_case(tally: Tally, label: Any, fn: Callable[[], Any], deadline_s: float = DEADLINE_S,
             max_bytes: int = MAX_BYTES, trace: bool = True) -> None:
    """Run ``fn()`` once, record its outcome, time and peak traced memory in ``tally``.

    ``label`` (anything with a ``repr``, e.g. the DSL text) names the case in failures.
    """
    started_here = trace and not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    if trace:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    faulthandler.dump_traceback_later(max(10.0, deadline_s * HANG_FACTOR), exit=True)
    t0 = time.perf_counter()
    try:
        result = fn()
        outcome, detail = "ok", ""
        if isinstance(result, str):
            tally.extra[result] += 1
    except BaseException as e:  # noqa: BLE001 - classifying every exception is the point
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        outcome, detail = classify(e), f"{type(e).__name__}: {e}"
    finally:
        seconds = time.perf_counter() - t0
        faulthandler.cancel_dump_traceback_later()
        peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
        if started_here:
            tracemalloc.stop()
    tally.outcomes[outcome] += 1
    if seconds > tally.max_seconds:
        tally.max_seconds, tally.slowest = seconds, repr(label)
    if peak > tally.max_bytes:
        tally.max_bytes, tally.hungriest = peak, repr(label)
    if outcome in FAILURES:
        tally.failures.append(f"{outcome} {label!r}: {detail}")
    if seconds > deadline_s and trace:  # tracemalloc slows Python code ~5x: time the call again untraced
        t0 = time.perf_counter()
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - the outcome was recorded above
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
        seconds = time.perf_counter() - t0
        tally.outcomes["retimed untraced"] += 1
    if seconds > deadline_s:
        tally.outcomes["slow"] += 1
        tally.failures.append(f"slow ({seconds:.2f} s > {deadline_s} s, {outcome}) {label!r}")
    if peak > max_bytes:
        tally.outcomes["memory"] += 1
        tally.failures.append(f"memory ({peak:,} bytes > {max_bytes:,}, {outcome}) {label!r}")
