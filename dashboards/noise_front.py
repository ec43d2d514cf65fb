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
    bound = diffs.low if maximize else -diffs.high
    return np.nan_to_num(bound, nan=0.0) > 0


def surely_dominated(means: np.ndarray, x: Samples, y: Samples, maximize: tuple[bool, bool], i: int) -> bool:
    """Whether any configuration surely dominates configuration i."""
    signs = np.array([1.0 if m else -1.0 for m in maximize])
    oriented = means * signs
    better = np.flatnonzero(np.all(oriented >= oriented[i], axis=1))
    better = better[better != i]
    if not len(better):
        return False
    worse = np.full(len(better), i)
    return bool(np.any(_favourable(differences(x, better, worse), maximize[0])
                       | _favourable(differences(y, better, worse), maximize[1])))  # fmt: skip


def front_and_noise(
    means: Sequence[tuple[float, float]], x: Samples, y: Samples, maximize: tuple[bool, bool] = (True, True)
) -> tuple[list[bool], list[bool]]:
    """(on the front of the means, within noise of the front) per configuration; the two exclude each other."""
    on_front = pareto_mask(means, maximize)
    array = np.asarray(means, dtype=float).reshape(len(on_front), 2)
    within = [not keep and not surely_dominated(array, x, y, maximize, i) for i, keep in enumerate(on_front)]
    return on_front, within
