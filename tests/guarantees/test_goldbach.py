"""The number-theoretic guarantee of docs/testing.md, for every length up to 4,096.

With prime offsets and a window of 1 (causal), every earlier token is reachable within
3 layers (weak Goldbach), every even distance within 2 (Goldbach), and odd distances
such as 27 (27 - 2 = 25 is not prime) need 3. The offset engine answers a length in
milliseconds: reachability depends only on d = i - j, and the hop count of d does not
depend on N once d < N, so one sumset at 4,096 answers every shorter length too; the
test still checks a spread of lengths directly.
"""

import numpy as np
import pytest

import maskc as mc
from maskc.guarantees import hop_diameter, min_hops, offset_hops, reachability
from maskc.patterns.sequences import named_sequence

PATTERN = mc.causal() & (mc.window(1) | mc.offsets("primes"))


def test_every_distance_up_to_4096():
    n = 4096
    prof = offset_hops(np.r_[0, 1, named_sequence("primes", n - 1)], n)
    d = np.arange(n)
    hops = prof.at(d)
    assert hops.max() == 3 and hops.min() == 0          # every earlier token within 3 layers
    assert np.all(hops[2::2] <= 2)                      # every even distance within 2 (Goldbach)
    assert hops[27] == 3 and hops[28] == 2              # 27 = 2 + 25 is no sum of two primes or p + 1
    odd3 = np.flatnonzero(hops == 3)
    assert odd3.size and np.all(odd3 % 2 == 1)           # only odd distances need 3


@pytest.mark.parametrize("n", [2, 4, 5, 27, 28, 29, 100, 1000, 2049, 4096])
def test_pattern_lengths(n):
    rep = reachability(PATTERN, q_len=n)
    assert rep.methods == ["offsets/one-sided"]
    # distances 1..3 are 1 or prime; 4..26 are sums of two; 27 is the first that needs 3
    assert rep.diameter == (1 if n <= 4 else (2 if n <= 27 else 3))
    assert hop_diameter(PATTERN, q_len=n) == rep.diameter


def test_all_lengths_by_prefix():
    # the hop count of a distance is the same at every length that contains it
    big = offset_hops(np.r_[0, 1, named_sequence("primes", 4095)], 4096).at(np.arange(4096))
    for n in (5, 64, 513, 1777):
        small = offset_hops(np.r_[0, 1, named_sequence("primes", n - 1)], n).at(np.arange(n))
        assert np.array_equal(small, big[:n])
    expected = np.maximum.accumulate(big)  # diameter at length n = max hops of d < n
    assert expected[-1] == 3 and expected[27] == 3 and expected[26] == 2 and expected[3] == 1


def test_min_hops_pairs():
    assert min_hops(PATTERN, 27, 0, q_len=4096) == 3
    assert min_hops(PATTERN, 1027, 1000, q_len=4096) == 3
    assert min_hops(PATTERN, 28, 0, q_len=4096) == 2
    assert min_hops(PATTERN, 5, 5, q_len=4096) == 0


def test_docs_example():
    """The example of docs/testing.md, verbatim."""
    n = 4096
    hops = offset_hops(np.r_[0, 1, named_sequence("primes", n - 1)], n).at(np.arange(n))
    assert hops.max() == 3                    # every earlier token within 3 layers
    assert np.all(hops[2::2] <= 2)            # every even distance within 2 (Goldbach)
    assert hops[27] == 3                      # 27: neither prime, p + 1, nor p + q
    for length in (5, 28, 1000, 4096):        # the same through the pattern API
        p = mc.causal() & (mc.window(1) | mc.offsets("primes"))
        assert reachability(p, q_len=length).diameter == (2 if length <= 27 else 3)
