"""Pareto fronts and hypervolume of two objectives: pure functions on numbers.

Dominance is the usual one: a dominates b when a is at least as good in both objectives and
strictly better in one. So exact duplicates never dominate each other: when a point is on the front,
every exact copy of it is too (each copy is a separate run, and dropping one would hide a run).
That rule makes the result independent of input order.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence


def _oriented(points: Sequence[tuple[float, float]], maximize: tuple[bool, bool]) -> list[tuple[float, float]]:
    """Flip minimised objectives so that bigger is better on both axes."""
    sx = 1.0 if maximize[0] else -1.0
    sy = 1.0 if maximize[1] else -1.0
    return [(sx * x, sy * y) for x, y in points]


def pareto_mask(points: Sequence[tuple[float, float]], maximize: tuple[bool, bool] = (True, True)) -> list[bool]:
    """For each (x, y) point, True when no other point dominates it. O(n log n).

    Points must be finite; the caller decides what to do with runs lacking a value.
    """
    oriented = _oriented(points, maximize)
    order = sorted(range(len(oriented)), key=lambda i: (-oriented[i][0], -oriented[i][1]))
    mask = [False] * len(oriented)
    best_y_at_larger_x = -math.inf
    start = 0
    while start < len(order):
        # One group of equal x; within it, the first has the largest y.
        x = oriented[order[start]][0]
        end = start
        while end < len(order) and oriented[order[end]][0] == x:
            end += 1
        group_best_y = oriented[order[start]][1]
        for i in order[start:end]:
            y = oriented[i][1]
            # Not beaten within its x (ties with the group's best stay) nor by any larger x.
            mask[i] = y == group_best_y and y > best_y_at_larger_x
        best_y_at_larger_x = max(best_y_at_larger_x, group_best_y)
        start = end
    return mask


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float], maximize=(True, True)) -> float:
    """Area dominated by `points` and bounded by `reference` (a point worse than all of them)."""
    oriented = _oriented(points, maximize)
    rx, ry = _oriented([reference], maximize)[0]
    inside = [(x, y) for x, y in oriented if x > rx and y > ry]
    if not inside:
        return 0.0
    front = [p for p, keep in zip(inside, pareto_mask(inside)) if keep]
    # Sorted by x ascending, the front's y descends: sum vertical slabs from the reference.
    area, previous_x = 0.0, rx
    for x, y in sorted(set(front)):
        area += (x - previous_x) * (y - ry)
        previous_x = x
    return area


def hypervolume_history(
    points: Sequence[tuple[float, float] | None], maximize: tuple[bool, bool] = (True, True)
) -> list[float]:
    """Hypervolume after each trial, in trial order; None marks a trial with no valid result.

    Both objectives are scaled to [0, 1] over all valid points, with the reference point at the
    worst observed value of each: the hypervolume is then the fraction of that box the front covers,
    comparable between sweeps whatever the metrics' units. Incremental (see _Staircase): 10,000
    trials cost about as much as one hypervolume of them, not 10,000.
    """
    valid = [p for p in points if p is not None]
    if not valid:
        return [0.0] * len(points)
    oriented = _oriented(valid, maximize)
    lows = [min(p[k] for p in oriented) for k in (0, 1)]
    spans = [(max(p[k] for p in oriented) - lows[k]) or 1.0 for k in (0, 1)]
    front = _Staircase()
    history = []
    for p in points:
        if p is not None:
            o = _oriented([p], maximize)[0]
            front.add((o[0] - lows[0]) / spans[0], (o[1] - lows[1]) / spans[1])
        history.append(front.area)
    return history


class _Staircase:
    """A 2-D front (both maximised, reference (0, 0)) and the area it dominates, one point at a time.

    The front is kept sorted by x ascending, so its y descends. A new point p adds the area of its
    box [0, px] x [0, py] that the front does not dominate yet: between consecutive front x's, the
    height already covered is the y of the first front point at or right of that x.
    """

    def __init__(self):
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def add(self, px: float, py: float) -> None:
        if px <= 0 or py <= 0:
            return
        xs, ys = self.xs, self.ys
        right = bisect_left(xs, px)  # first front point with x >= px: the highest of those
        if right < len(xs) and ys[right] >= py:
            return  # dominated (or equal): no new area
        end = bisect_right(xs, px)  # points with x <= px are xs[:end]
        start = end  # the dominated ones, xs[start:end], are those with y <= py
        while start > 0 and ys[start - 1] <= py:
            start -= 1
        covered_right = ys[end] if end < len(xs) else 0.0
        left = xs[start - 1] if start > 0 else 0.0
        added = 0.0
        for i in range(start, end):
            added += (xs[i] - left) * (py - ys[i])
            left = xs[i]
        added += (px - left) * (py - covered_right)
        self.area += added
        xs[start:end] = [px]
        ys[start:end] = [py]
