"""The 95% interval of a median over repeats: distribution-free, from order statistics.

With r independent repeats x(1) <= ... <= x(r), the number below the true median is Binomial(r, 1/2),
so [x(k), x(r+1-k)] covers the median with probability 1 - 2 P(Bin(r, 1/2) <= k-1), whatever the
distribution of the figures. We take the largest k whose coverage is still >= 95%. From 6 repeats on
such a k exists (6: [min, max], 96.9%; 7: 98.4%; 9: [x(2), x(8)], 96.1%); with fewer repeats the
interval is [min, max] and its coverage, below 95%, is reported with it. No randomness: the same
figures give the same interval.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
METHOD = "order statistics of the median over repeats (binomial)"


@dataclass(frozen=True)
class MedianInterval:
    median: float
    low: float
    high: float
    coverage: float  # the interval's exact coverage of the median (>= 0.95 from 6 repeats on)
    n: int


def coverage(r: int, k: int) -> float:
    """P(x(k) <= median <= x(r+1-k)) for r repeats: 1 - 2 P(Bin(r, 1/2) <= k - 1)."""
    below = sum(math.comb(r, i) for i in range(k))
    return 1.0 - 2.0 * below / 2**r


def order_index(r: int, confidence: float = CONFIDENCE) -> int:
    """The largest k >= 1 with coverage(r, k) >= confidence (1 when none reaches it)."""
    k = 1
    while k + 1 <= (r + 1) // 2 and coverage(r, k + 1) >= confidence:
        k += 1
    return k


def median_interval(values, confidence: float = CONFIDENCE) -> MedianInterval:
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("no values")
    r = len(xs)
    k = order_index(r, confidence)
    return MedianInterval(statistics.median(xs), xs[k - 1], xs[r - k], coverage(r, k), r)
