"""The Pareto front of configurations' means, and which others are within noise of it.

A configuration F *surely dominates* C when F is at least as good as C on both means and at least
one of the two differences F - C is resolved in F's favour (its 95% interval excludes 0:
dashboards.stats, the rule every output uses). A configuration off the front of the means is
*within noise of the front* when nothing surely dominates it: the data cannot yet tell it from
the configurations that beat it on the means.
"""

from collections.abc import Sequence

import numpy as np

from dashboards.pareto import pareto_mask
from dashboards.stats import Samples, differences


def _favourable(diffs, maximize: bool) -> np.ndarray:
    """Resolved with the better side first: the interval of better - worse lies on the good side of 0."""
    return diffs.resolved & ((diffs.mean > 0) if maximize else (diffs.mean < 0))


CHUNK = 1_000_000  # (configuration, rival) pairs compared at once: bounded memory at 10,000 configurations


def surely_dominated(means: np.ndarray, x: Samples, y: Samples, maximize: tuple[bool, bool], indexes) -> np.ndarray:
    """For each configuration of `indexes`: does any other surely dominate it?"""
    oriented = means * np.array([1.0 if m else -1.0 for m in maximize])
    found = np.zeros(len(indexes), dtype=bool)
    step = max(1, CHUNK // max(len(means), 1))
    for start in range(0, len(indexes), step):
        chunk = np.asarray(indexes[start : start + step], dtype=int)
        at_least_as_good = np.all(oriented[None, :, :] >= oriented[chunk][:, None, :], axis=2)
        at_least_as_good[np.arange(len(chunk)), chunk] = False  # not itself
        rows, better = np.nonzero(at_least_as_good)
        worse = chunk[rows]
        sure = _favourable(differences(x, better, worse), maximize[0]) | _favourable(differences(y, better, worse), maximize[1])
        found[start + np.unique(rows[sure])] = True
    return found


def front_and_noise(
    means: Sequence[tuple[float, float]], x: Samples, y: Samples, maximize: tuple[bool, bool] = (True, True)
) -> tuple[list[bool], list[bool]]:
    """(on the front of the means, within noise of the front) per configuration; the two exclude each other."""
    on_front = pareto_mask(means, maximize)
    off = [i for i, keep in enumerate(on_front) if not keep]
    dominated = surely_dominated(np.asarray(means, dtype=float).reshape(len(on_front), 2), x, y, maximize, off)
    within = [False] * len(on_front)
    for i, sure in zip(off, dominated):
        within[i] = not sure
    return on_front, within
