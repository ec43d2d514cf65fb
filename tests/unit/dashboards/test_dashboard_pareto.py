"""Pareto front and hypervolume: the fast algorithm against the definition, on random inputs."""

import itertools
import random

import pytest

from dashboards.pareto import hypervolume, hypervolume_history, pareto_mask
from helpers import dominates

DIRECTIONS = list(itertools.product((True, False), repeat=2))


def brute_force_mask(points, maximize):
    return [not any(dominates(q, p, maximize) for q in points) for p in points]


def random_points(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Few distinct values, so that ties in x, ties in y and exact duplicates are common."""
    points = [(float(rng.randint(0, 6)), float(rng.randint(0, 6))) for _ in range(n)]
    points += rng.sample(points, k=min(3, n))  # exact duplicates
    return points


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_mask_matches_brute_force_on_random_points_with_ties(maximize):
    rng = random.Random(1234)
    for n in list(range(0, 8)) + [20, 50, 200]:
        for _ in range(30 if n < 20 else 5):
            points = random_points(rng, n)
            assert pareto_mask(points, maximize) == brute_force_mask(points, maximize), (points, maximize)


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_mask_matches_brute_force_on_continuous_values(maximize):
    rng = random.Random(7)
    points = [(rng.lognormvariate(7, 1), rng.uniform(20, 85)) for _ in range(300)]
    assert pareto_mask(points, maximize) == brute_force_mask(points, maximize)


def test_mask_does_not_depend_on_input_order():
    rng = random.Random(99)
    points = random_points(rng, 40)
    mask = dict(zip(range(len(points)), pareto_mask(points)))
    order = list(range(len(points)))
    rng.shuffle(order)
    shuffled = pareto_mask([points[i] for i in order])
    assert all(shuffled[k] == mask[i] for k, i in enumerate(order))


def test_duplicates_of_a_front_point_are_all_on_the_front():
    points = [(3.0, 1.0), (1.0, 3.0), (3.0, 1.0), (2.0, 2.0), (1.0, 1.0)]
    assert pareto_mask(points) == [True, True, True, True, False]


def test_equal_x_keeps_only_the_better_y_and_directions_flip():
    points = [(1.0, 5.0), (1.0, 4.0), (2.0, 4.0)]
    assert pareto_mask(points, (True, True)) == [True, False, True]
    assert pareto_mask(points, (False, True)) == [True, False, False]
    assert pareto_mask(points, (False, False)) == [False, True, False]
    assert pareto_mask(points, (True, False)) == [False, False, True]


def test_hypervolume_of_a_staircase():
    # Front (1,3), (2,2), (3,1) over reference (0,0): 1*3 + 1*2 + 1*1.
    assert hypervolume([(1, 3), (2, 2), (3, 1), (1, 1)], (0, 0)) == pytest.approx(6.0)
    # Minimising both: the mirror image, same area.
    assert hypervolume([(-1, -3), (-2, -2), (-3, -1)], (0, 0), (False, False)) == pytest.approx(6.0)
    assert hypervolume([], (0, 0)) == 0.0


def test_hypervolume_matches_a_grid_count():
    rng = random.Random(3)
    points = [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(12)]
    cells = sum(1 for i in range(9) for j in range(9) if any(x > i and y > j for x, y in points))
    assert hypervolume(points, (0, 0)) == pytest.approx(cells)


def test_hypervolume_history_never_decreases_and_skips_failed_trials():
    history = hypervolume_history([(1.0, 1.0), None, (3.0, 2.0), (2.0, 3.0), (1.5, 1.5), None])
    assert len(history) == 6
    assert all(b >= a for a, b in zip(history, history[1:]))
    assert history[0] == 0.0  # the worst point is the reference: no area yet
    assert history[1] == history[0] and history[-1] == history[-2]
    assert 0.0 < history[-1] <= 1.0


def direct_history(points, maximize):
    """The definition: scale every valid point to [0, 1] with the worst value as reference, then the
    hypervolume of each prefix computed afresh (quadratic: what the incremental one replaces)."""
    valid = [p for p in points if p is not None]
    sign = [1 if up else -1 for up in maximize]
    oriented = [(sign[0] * x, sign[1] * y) for x, y in valid]
    lows = [min(p[k] for p in oriented) for k in (0, 1)]
    spans = [(max(p[k] for p in oriented) - lows[k]) or 1.0 for k in (0, 1)]
    seen, history = [], []
    for p in points:
        if p is not None:
            seen.append(((sign[0] * p[0] - lows[0]) / spans[0], (sign[1] * p[1] - lows[1]) / spans[1]))
        history.append(hypervolume(seen, (0.0, 0.0)))
    return history


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_incremental_hypervolume_history_matches_the_direct_one(maximize):
    rng = random.Random(42)
    for n in list(range(1, 10)) + [40, 150]:
        for _ in range(30 if n < 40 else 5):
            points = [None if rng.random() < 0.15 else p for p in random_points(rng, n)]
            if all(p is None for p in points):
                continue
            expected = direct_history(points, maximize)
            assert hypervolume_history(points, maximize) == pytest.approx(expected, abs=1e-12), points
