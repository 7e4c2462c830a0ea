"""The results of k-hop reachability: per-slice hop counts and the report :func:`reachability` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskc.guarantees.reach_offsets import HopProfile


@dataclass
class HeadReach:
    """Reachability of one stored head.

    ``unreached[k]``: target pairs not reachable within k hops (k = 0..len-1; the
    last value holds for every larger k when ``complete``). For the graph engine
    ``first[k]`` is the smallest such (query, key); the offset engine derives it
    from its per-offset hop counts on demand.
    """

    method: str
    unreached: np.ndarray
    complete: bool
    profile: HopProfile | None = None
    first: list = field(default_factory=list, repr=False)
    csr: object = field(default=None, repr=False)
    causal: bool = True

    @property
    def diameter(self) -> int | None:
        if not self.complete or self.unreached[-1] > 0:
            return None
        return int(np.argmax(self.unreached == 0))

    def unreached_at(self, k: int) -> int:
        return int(self.unreached[min(k, len(self.unreached) - 1)])

    def first_at(self, k: int) -> tuple[int, int] | None:
        if self.profile is None:
            return self.first[min(k, len(self.first) - 1)]
        n = self.profile.n
        d = np.arange(0 if self.causal else -(n - 1), n, dtype=np.int64)
        h = self.profile.at(d)
        bad = (h < 0) | (h > k)
        if not bad.any():
            return None
        # pair with offset d and the smallest query: d >= 0 -> (d, 0), d < 0 -> (0, -d)
        dd = d[bad]
        i = np.where(dd >= 0, dd, 0)
        j = np.where(dd >= 0, 0, -dd)
        t = np.lexsort((j, i))[0]
        return (int(i[t]), int(j[t]))


@dataclass
class ReachReport:
    """Result of :func:`reachability`: per-head results and the overall diameter.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import reachability
        >>> r = reachability(mc.causal() & mc.window(4), q_len=100)
        >>> r.diameter, r.methods, r.unreachable_count(24), r.first_unreachable(24)
        (25, ['offsets/one-sided'], 6, (0, 97, 0))
    """

    n: int
    causal: bool
    heads: list[HeadReach]

    @property
    def methods(self) -> list[str]:
        """Engine used per head (``offsets/<kind>`` or ``graph``)."""
        return [h.method for h in self.heads]

    @property
    def diameter(self) -> int | None:
        """Smallest k that reaches every target pair in every head; None if never."""
        ds = [h.diameter for h in self.heads]
        return None if any(d is None for d in ds) else max(ds, default=0)

    @property
    def head_diameters(self) -> list[int | None]:
        return [h.diameter for h in self.heads]

    def unreachable_count(self, k: int) -> int:
        """Target (head, query, key) triples not reachable within k layers."""
        return int(sum(h.unreached_at(k) for h in self.heads))

    def reachable_within(self, k: int) -> bool:
        """True when every target pair of every head is reachable within k layers."""
        return self.unreachable_count(k) == 0

    def first_unreachable(self, k: int) -> tuple[int, int, int] | None:
        """The smallest (head, query, key) not reachable within k layers, or None."""
        for h, hr in enumerate(self.heads):
            f = hr.first_at(k)
            if f is not None:
                return (h, f[0], f[1])
        return None


