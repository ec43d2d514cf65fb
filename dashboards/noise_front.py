"""The Pareto front of configurations' means, and which others are within noise of it.

A configuration is within noise of the front when it is not on the front but its intervals overlap
those of some front configuration on both axes (closed intervals: touching counts). A configuration
without an interval (a single seed) is its mean, a point. Pure functions on numbers.
"""

from bisect import bisect_right
from collections.abc import Sequence

from dashboards.pareto import pareto_mask

Interval = tuple[float, float]


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def front_and_noise(
    means: Sequence[tuple[float, float]],
    x_intervals: Sequence[Interval],
    y_intervals: Sequence[Interval],
    maximize: tuple[bool, bool] = (True, True),
) -> tuple[list[bool], list[bool]]:
    """(on the front of the means, within noise of the front) per configuration; the two exclude each other."""
    on_front = pareto_mask(means, maximize)
    front = sorted((i for i, keep in enumerate(on_front) if keep), key=lambda i: x_intervals[i][0])
    front_lows = [x_intervals[i][0] for i in front]
    within = []
    for i, keep in enumerate(on_front):
        if keep:
            within.append(False)
            continue
        # Front configurations whose x interval starts at or before this one's end; of those, any
        # that also reaches this one's start and overlaps it on y.
        candidates = front[: bisect_right(front_lows, x_intervals[i][1])]
        within.append(
            any(x_intervals[j][1] >= x_intervals[i][0] and overlaps(y_intervals[i], y_intervals[j]) for j in candidates)
        )
    return on_front, within
