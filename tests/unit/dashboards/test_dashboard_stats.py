"""Statistics where results are read: intervals against a direct computation, the front of
the means with its noise against a brute force, configurations in pareto.json and the export."""

import itertools
import json
import math
import random
import statistics
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from dashboards.analysis import analyse
from dashboards.build import DEFAULT_X, DEFAULT_Y, build_dashboard
from dashboards.configurations import configurations_table
from dashboards.demo import DEMO_SCHEMA, demo_runs
from dashboards.noise_front import front_and_noise
from dashboards.references import reference_marks
from dashboards.stats import (PAIRED, WELCH, Samples, Summary, difference, holm_confidences, seeds_to_resolve,
                              summarize, t_quantile)  # fmt: skip
from helpers import dominates

# Two-sided 95% t quantiles as printed in statistics tables (3 decimals): the reference the
# computed ones are checked against, and the direct computation of the intervals below.
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
           10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("df, t", sorted(T_TABLE.items()))
def test_t_quantiles_match_the_printed_table(df, t):
    assert t_quantile(df) == pytest.approx(t, abs=5e-4)  # the table rounds to 3 decimals


def test_intervals_against_a_direct_computation():
    rng = random.Random(11)
    for n in (2, 3, 4, 5, 6, 10, 31):
        for _ in range(20):
            values = [rng.gauss(70, 5) for _ in range(n)]
            s = summarize(values)
            half = T_TABLE[n - 1] * statistics.stdev(values) / math.sqrt(n)
            assert s.n == n and s.mean == pytest.approx(statistics.mean(values), rel=1e-12)
            assert s.sd == pytest.approx(statistics.stdev(values), rel=1e-12)
            # 5e-4 in t (the table's rounding) times sd / sqrt(n): the widest the two can differ
            tolerance = 5e-4 * s.sd / math.sqrt(n) + 1e-9
            assert s.low == pytest.approx(s.mean - half, abs=tolerance)
            assert s.high == pytest.approx(s.mean + half, abs=tolerance)
    single = summarize([83.5])
    assert single.n == 1 and single.sd is None and not single.has_interval and single.bounds == (83.5, 83.5)
    assert summarize([]) is None


def test_welch_has_fractional_degrees_of_freedom_as_scipy_and_r():
    a, b = [50.0, 52.0, 51.0, 55.0], [48.0, 47.0, 49.5]
    va, vb = statistics.variance(a) / 4, statistics.variance(b) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)  # Welch-Satterthwaite: 4.84, not rounded down to 4
    diff = difference(summarize(a), summarize(b))
    assert diff.df == pytest.approx(df, rel=1e-12) and 4.8 < diff.df < 4.9
    gap, se = statistics.mean(a) - statistics.mean(b), math.sqrt(va + vb)
    # between the printed t of 4 and 5 degrees of freedom: wider than df 5 gives, narrower than df 4
    assert gap - T_TABLE[4] * se < diff.low < gap - T_TABLE[5] * se and gap + T_TABLE[5] * se < diff.high < gap + T_TABLE[4] * se
    assert diff.method == WELCH and diff.resolved is True
    assert difference(summarize([1.0, 3.0]), summarize([2.0, 2.5])).resolved is False
    assert difference(summarize([1.0]), summarize([2.0, 2.5])).resolved is None  # single seed: no interval


def test_differences_match_scipys_tests_welch_and_paired():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    for _ in range(30):
        a = [rng.gauss(70, 3) for _ in range(rng.randint(2, 6))]
        b = [rng.gauss(71, 1) for _ in range(rng.randint(2, 6))]
        ours, theirs = difference(summarize(a), summarize(b)), scipy_stats.ttest_ind(a, b, equal_var=False)
        ci = theirs.confidence_interval(0.95)
        assert (ours.low, ours.high, ours.p) == pytest.approx((ci.low, ci.high, theirs.pvalue), rel=1e-9)
        repeats = rng.randint(2, 9)  # one bench: value i of each architecture measured side by side
        slow = [rng.uniform(0.8, 1.0) for _ in range(repeats)]  # the machine's pace, shared by both
        a = [1000 * s + rng.gauss(0, 5) for s in slow]
        b = [990 * s + rng.gauss(0, 5) for s in slow]
        bench = lambda xs: Summary(len(xs), statistics.median(xs), sample=tuple(xs), pairing="1-ab")  # noqa: E731
        ours, theirs = difference(bench(a), bench(b)), scipy_stats.ttest_rel(a, b)
        ci = theirs.confidence_interval(0.95)
        assert ours.method == PAIRED and ours.df == repeats - 1
        assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_holm_levels_follow_the_step_down_procedure():
    # p sorted: 0.001 (<= 0.05/4), 0.01 (<= 0.05/3), 0.03 (> 0.05/2: stop), 0.04 (tested at the stopping level)
    levels = holm_confidences([0.01, 0.04, 0.03, float("nan"), 0.001])
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 0.95, 1 - 0.05 / 4])


def test_seeds_to_resolve_a_difference():
    # n = 2 (1.96 sd / d)^2: sd 2, d 2.38 -> 5.4 -> 6; sd 10 -> 135.6 -> 136; a tiny spread still needs 2
    assert seeds_to_resolve(2.0, 2.38) == 6 and seeds_to_resolve(10.0, 2.38) == 136 and seeds_to_resolve(0.1, 2.38) == 2


def surely_dominates(f, c, maximize) -> bool:
    """The definition, one pair at a time: at least as good on both means, one difference resolved F's way."""
    if not all((x >= y) if up else (x <= y) for x, y, up in zip((f[0].mean, f[1].mean), (c[0].mean, c[1].mean), maximize)):
        return False
    for k, up in enumerate(maximize):
        d = difference(f[k], c[k])
        if d.resolved and (d.low > 0 if up else d.high < 0):
            return True
    return False


def brute_force(configs, maximize):
    means = [(x.mean, y.mean) for x, y in configs]
    front = [not any(dominates(q, p, maximize) for q in means) for p in means]
    within = [not front[i] and not any(surely_dominates(configs[j], configs[i], maximize)
                                       for j in range(len(configs)) if j != i)
              for i in range(len(configs))]  # fmt: skip
    return front, within


def random_configurations(rng, n):
    """Few distinct values: equal means, single seeds (no interval) and exact ties are common."""
    configs = []
    for _ in range(n):
        x, y = rng.randint(0, 8), rng.randint(0, 8)
        seeds = rng.choice((1, 2, 3))
        spread = rng.choice((0.0, 0.5, 2.0))
        configs.append(tuple(summarize([v + spread * rng.choice((-1, 1)) for _ in range(seeds)]) for v in (x, y)))
    return configs


@pytest.mark.parametrize("maximize", list(itertools.product((True, False), repeat=2)))
def test_front_and_noise_match_the_definitions_pair_by_pair(maximize):
    rng = random.Random(2024)
    for n in list(range(0, 9)) + [25, 60]:
        for _ in range(30 if n < 25 else 4):
            configs = random_configurations(rng, n)
            means = [(x.mean, y.mean) for x, y in configs]
            got = front_and_noise(means, Samples([x for x, _ in configs]), Samples([y for _, y in configs]), maximize)
            assert got == brute_force(configs, maximize), configs


def replicated_table(*configs: tuple, bench: bool = False) -> pa.Table:
    """configs: (config_id, embedding, [(top1, images_per_sec), ...]), one tuple per seed."""
    rows = []
    for config_id, embedding, seeds in configs:
        for seed, (top1, speed) in enumerate(seeds):
            row = dict(run_id=f"r{len(rows):02d}", run_name=f"{config_id}-s{seed}", status="FINISHED", seed=seed,
                       start_time=T0 + timedelta(minutes=len(rows)), config_id=config_id, embedding=embedding,
                       model=f"vit_tiny_{embedding}", top1=top1, images_per_sec=speed)  # fmt: skip
            if bench:
                row.update(bench_images_per_sec=1000.0 * len(config_id), bench_images_per_sec_ci_low=990.0 * len(config_id),
                           bench_images_per_sec_ci_high=1010.0 * len(config_id))  # fmt: skip
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=DEMO_SCHEMA)


def test_pareto_json_lists_configurations_with_their_intervals(tmp_path):
    runs = replicated_table(
        ("fast", "patch", [(60.0, 3000.0), (62.0, 3100.0), (61.0, 2900.0)]),
        ("close", "conv", [(60.0, 2800.0), (62.0, 2950.0), (60.5, 2850.0)]),  # below "fast", overlapping it
        ("slow", "supertoken", [(80.0, 1000.0), (81.0, 1010.0)]),
        ("bad", "supertoken", [(40.0, 900.0), (41.0, 905.0)]),
        ("one", "supertoken", [(50.0, 950.0)]),  # a single seed
    )
    front = json.loads(build_dashboard(runs, tmp_path)["pareto.json"].read_text())
    configs = {c["config_id"]: c for c in front["configurations"]}
    assert set(configs) == {"fast", "close", "slow", "bad", "one"}
    fast = configs["fast"]
    direct = summarize([60.0, 62.0, 61.0])
    assert fast["n"] == 3 and fast["top1_mean"] == pytest.approx(61.0) and fast["name"] == "fast"
    assert (fast["top1_ci_low"], fast["top1_ci_high"]) == pytest.approx((direct.low, direct.high))
    assert fast["images_per_sec"] == pytest.approx(3000.0) and fast["images_per_sec_figure"] == "images_per_sec"
    states = {k: (c["on_front"], c["within_noise_of_front"]) for k, c in configs.items()}
    # "one" is below "slow" on both means, but a single seed gives no interval of a difference: nothing
    # surely dominates it; "bad" has two seeds, and its top-1 difference to "slow" is resolved
    assert states == {"fast": (True, False), "slow": (True, False), "close": (False, True), "bad": (False, False),
                      "one": (False, True)}  # fmt: skip
    assert configs["one"]["top1_ci_low"] is None and configs["one"]["x"]["method"] == "single seed: no interval"
    assert len(front["front"]) >= 2 and front["runs"] == 11  # the runs' own front is kept


def test_the_bench_figure_stands_in_for_throughput_with_its_own_interval(tmp_path):
    runs = replicated_table(("aa", "patch", [(60.0, 3000.0), (62.0, 100.0)]), ("b", "conv", [(70.0, 50.0)]), bench=True)
    analysis = analyse(runs, DEFAULT_X, DEFAULT_Y)
    assert analysis.x_figure == "bench_images_per_sec"
    config = next(c for c in analysis.configurations if c.key == "aa")
    assert (config.x.mean, config.x.low, config.x.high) == (2000.0, 1980.0, 2020.0)  # the bench's, not the seeds'
    paths = build_dashboard(runs, tmp_path)
    front = json.loads(paths["pareto.json"].read_text())
    assert front["x_figure"] == "bench_images_per_sec"
    aa = next(c for c in front["configurations"] if c["config_id"] == "aa")
    assert aa["images_per_sec"] == 2000.0 and aa["images_per_sec_figure"] == "bench_images_per_sec"
    assert "benched alone" in paths["pareto.html"].read_text()  # the axis says which figure it shows


def test_the_page_says_single_seed_without_replicates(tmp_path):
    runs = replicated_table(("a", "patch", [(60.0, 3000.0)]), ("b", "conv", [(70.0, 2000.0)]))
    html = build_dashboard(runs, tmp_path)["pareto.html"].read_text()
    assert "single seed: no interval" in html and '"configs":{"columns"' in html
    replicated = build_dashboard(demo_runs(), tmp_path / "r")["pareto.html"].read_text()
    assert "Student t over seeds" in replicated and "excludes 0" in replicated


def test_paper_marks_outside_the_sweeps_range_are_listed_not_drawn():
    """A CPU sweep at ~30,000 img/s and the paper's GPU ~750 img/s: the paper's points would squeeze it."""
    runs = replicated_table(("a", "patch", [(40.0, 30000.0), (41.0, 31000.0)]), ("b", "conv", [(45.0, 25000.0)]))
    marks = reference_marks(analyse(runs, DEFAULT_X, DEFAULT_Y, paper_requested=True))
    assert marks.points == [] and marks.lines == []  # Table 8 (x 737-766) and Table 6 (y 78-84) are outside
    assert {r.table for r in marks.outside} == {6, 8} and "T8" in marks.outside_text(analyse(runs, DEFAULT_X, DEFAULT_Y, paper_requested=True))
    inside = replicated_table(("a", "supertoken", [(82.0, 700.0), (84.0, 800.0)]))
    assert len(reference_marks(analyse(inside, DEFAULT_X, DEFAULT_Y, paper_requested=True)).points) == 3  # all of Table 8's


def test_configurations_table_for_the_export():
    runs = replicated_table(("fast", "patch", [(60.0, 3000.0), (62.0, 3100.0)]), ("one", "conv", [(50.0, 950.0)]))
    table = configurations_table(runs)
    rows = {r["config_id"]: r for r in table.to_pylist()}
    fast = rows["fast"]
    assert fast["n"] == 2 and fast["run_ids"] == ["r00", "r01"] and fast["embedding"] == "patch" and "seed" not in fast
    direct = summarize([60.0, 62.0])
    assert (fast["top1_mean"], fast["top1_sd"]) == pytest.approx((61.0, statistics.stdev([60.0, 62.0])))
    assert (fast["top1_ci_low"], fast["top1_ci_high"]) == pytest.approx((direct.low, direct.high))
    assert rows["one"]["top1_sd"] is None and rows["one"]["top1_ci_low"] is None and rows["one"]["top1_mean"] == 50.0
    assert table.schema.field("top1_mean").metadata[b"metric"] == b"top1"
