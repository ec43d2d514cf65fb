"""Statistics of configurations: 95% intervals of a mean and of a difference, and the one rule for
when a difference is *resolved*: the 95% interval of the difference excludes 0.

Two configurations' own intervals may overlap while the interval of their difference excludes 0, so
overlap never decides. The interval of a difference a - b comes from the values each side was
estimated from (its `sample`):
  - seeds (top-1, in-trial throughput): Welch's interval, unequal variances, with
    Welch-Satterthwaite's fractional degrees of freedom (as scipy and R's t.test use them);
  - bench repeats: the bench alternates its architectures step by step inside each repeat, so
    repeat i of two architectures of one bench saw the same machine: a *paired* Student t interval
    over the repeats' differences (n - 1 degrees of freedom). Repeats of two different benches are
    independent: Welch.
Intervals are unadjusted for multiple comparisons unless Holm's adjustment is asked for
(`holm_confidences`). Distributions from scipy.special (what scipy.stats calls). `differences` is vectorised: the front's
"surely dominates" test compares one configuration with thousands at once, by the same code.
"""

import math
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from scipy import special  # the distribution functions alone: scipy.stats costs ~1 s more to import, in every command

CONFIDENCE = 0.95
Z_95 = float(special.ndtri(0.975))  # the standard normal's 97.5% quantile (what scipy.stats.norm.ppf computes)
Z_80_POWER = float(special.ndtri(0.80))  # the extra margin for an 80% chance to resolve
STUDENT = "Student t over seeds"
SINGLE = "single seed: no interval"
WELCH = "Welch over seeds"
PAIRED = "paired t over the bench's repeats"
WELCH_REPEATS = "Welch over repeats of two benches"
NO_INTERVAL = "no interval: a side has fewer than 2 values"
UNADJUSTED = "unadjusted for multiple comparisons"
HOLM = "Holm-adjusted for the family of differences shown"
ADJUSTMENTS = ("none", "holm")


@dataclass(frozen=True)
class Summary:
    """n values' mean, standard deviation and 95% interval (None without one: n = 1).

    `sample`: the values a difference with another configuration is computed from (the seeds, or
    the bench's repeats; None: no interval of a difference). `pairing`: samples with the same
    pairing (a bench id) and length were measured side by side, value i beside value i.
    """

    n: int
    mean: float
    sd: float | None = None
    low: float | None = None
    high: float | None = None
    method: str = STUDENT  # how the interval was computed, for the page
    sample: tuple[float, ...] | None = None
    pairing: str | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def bounds(self) -> tuple[float, float]:
        """The interval, or the mean itself when there is none (n = 1: no spread is known)."""
        return (self.low, self.high) if self.has_interval else (self.mean, self.mean)

    @property
    def half_width(self) -> float | None:
        return (self.high - self.low) / 2 if self.has_interval else None


def t_quantile(df, confidence=CONFIDENCE):
    """The t with P(|T| <= t) = confidence for `df` degrees of freedom (fractional ones too; arrays).

    scipy.stats.t's own quantile function (special.stdtrit) without its per-call argument handling,
    which costs more than the quantile itself when the front compares millions of pairs.
    """
    return special.stdtrit(df, (1 + np.asarray(confidence)) / 2)


@cache
def seeds_t_quantile(df: int) -> float:
    """The 95% t quantile for n - 1 degrees of freedom: one per seed count, whatever the number of configurations."""
    return float(t_quantile(df))


def summarize(values) -> Summary | None:
    """Mean, sample standard deviation and the Student t 95% interval of the mean; None for no values."""
    values = tuple(float(v) for v in values)
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Summary(1, mean, sample=values)
    # Two-pass, like statistics.stdev but in floats (statistics' exact fractions cost 10x at 10,000 runs)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = seeds_t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return Summary(len(values), mean, sd, mean - half, mean + half, sample=values)


@dataclass(frozen=True)
class Difference:
    """a - b with the 95% interval of the difference (None: no interval) and how it was computed."""

    mean: float | None  # None: a side has no value
    low: float | None
    high: float | None
    df: float | None
    method: str
    p: float | None = None  # two-sided p-value of "no difference" (what Holm's adjustment ranks)
    resolved: bool | None = None  # the interval excludes 0 (Differences.resolved); None without an interval


class Samples:
    """Many configurations' samples of one metric as arrays: what `differences` compares.

    Samples of different lengths are padded with NaN; a pair is paired only with equal pairing
    keys and lengths, so its padding lines up.
    """

    def __init__(self, summaries):
        samples = [s.sample if s is not None and s.sample else () for s in summaries]
        width = max((len(s) for s in samples), default=0)
        self.values = np.full((len(samples), max(width, 1)), np.nan)
        for i, sample in enumerate(samples):
            self.values[i, : len(sample)] = sample
        self.n = np.array([len(s) for s in samples], dtype=float)
        self.mean = np.array([s.mean if s is not None else np.nan for s in summaries], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.sample_mean = np.nansum(self.values, axis=1) / self.n  # NaN without a sample
            self.var = np.nansum((self.values - self.sample_mean[:, None]) ** 2, axis=1) / (self.n - 1)
        keys = [(s.pairing if s is not None else None) for s in summaries]
        codes = {key: code for code, key in enumerate(dict.fromkeys(k for k in keys if k), start=1)}
        self.pairing = np.array([codes.get(k, 0) for k in keys], dtype=int)  # 0: not paired with anything


@dataclass(frozen=True)
class Differences:
    """Arrays of a - b: the difference's estimate, standard error and degrees of freedom, and from them
    its interval at `confidence` (NaN: none) and verdict. The interval is computed only when asked for:
    the front needs the verdicts of millions of pairs, and a pair within 1.96 standard errors of 0
    is unresolved whatever its degrees of freedom."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray
    confidence: np.ndarray
    paired: np.ndarray  # bool: paired on the bench's repeats
    welch_repeats: np.ndarray  # bool: repeats of two benches

    @cached_property
    def half(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.where(self.se == 0, 0.0, t_quantile(self.df, self.confidence) * self.se)

    @property
    def low(self) -> np.ndarray:
        return self.mean - self.half

    @property
    def high(self) -> np.ndarray:
        return self.mean + self.half

    @cached_property
    def resolved(self) -> np.ndarray:
        """The one rule: resolved when the interval excludes 0, |estimate| > half-width (False without an interval)."""
        with np.errstate(invalid="ignore"):
            maybe = np.flatnonzero(np.abs(self.mean) > Z_95 * self.se)  # t >= 1.96 at 95% and above: the rest fail
        out = np.zeros(len(self.mean), dtype=bool)
        se, df, confidence = self.se[maybe], self.df[maybe], np.broadcast_to(self.confidence, self.mean.shape)[maybe]
        with np.errstate(invalid="ignore"):
            out[maybe] = np.abs(self.mean[maybe]) > np.where(se == 0, 0.0, t_quantile(df, confidence) * se)
        return out

    @property
    def p(self) -> np.ndarray:
        """Two-sided p-values of "no difference" (NaN without an interval); an exact difference: 0, or 1 if it is 0."""
        exact = self.se == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            p = 2 * special.stdtr(np.where(exact, 1.0, self.df), -np.abs(self.mean) / np.where(exact, 1.0, self.se))
        return np.where(np.isnan(self.se), np.nan, np.where(exact, (self.mean == 0).astype(float), p))

    def at(self, i: int) -> Difference:
        if np.isnan(self.se[i]):
            return Difference(None if np.isnan(self.mean[i]) else float(self.mean[i]), None, None, None, NO_INTERVAL)
        method = PAIRED if self.paired[i] else WELCH_REPEATS if self.welch_repeats[i] else WELCH
        one = self.one(i)
        return Difference(float(one.mean[0]), float(one.low[0]), float(one.high[0]), float(one.df[0]), method,
                          float(one.p[0]), bool(one.resolved[0]))  # fmt: skip

    def one(self, i: int) -> "Differences":
        return Differences(*(np.asarray(np.broadcast_to(getattr(self, f), self.mean.shape)[i : i + 1])
                             for f in ("mean", "se", "df", "confidence", "paired", "welch_repeats")))  # fmt: skip


def differences(samples: Samples, a, b, confidence=CONFIDENCE) -> Differences:
    """mean[a] - mean[b] for index arrays a and b, each with the 95% interval of the difference:
    paired t where a and b were benched side by side, Welch otherwise; none when a side has < 2 values.
    `confidence` may be an array (Holm's levels)."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    na, nb = samples.n[a], samples.n[b]
    known = (na >= 2) & (nb >= 2)
    paired = known & (samples.pairing[a] > 0) & (samples.pairing[a] == samples.pairing[b]) & (na == nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        # The estimate is the difference of the samples' means (a bench figure, a median, may differ from it)
        estimate = np.where(known, samples.sample_mean[a] - samples.sample_mean[b], samples.mean[a] - samples.mean[b])
        va, vb = samples.var[a] / na, samples.var[b] / nb
        se2 = va + vb
        df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    if paired.any():
        d = samples.values[a[paired]] - samples.values[b[paired]]
        n = na[paired]
        se2[paired] = np.nansum((d - estimate[paired][:, None]) ** 2, axis=1) / (n - 1) / n
        df[paired] = n - 1
    se = np.where(known, np.sqrt(se2), np.nan)
    df = np.where(known, np.where(se == 0, na + nb - 2, df), np.nan)  # se 0: no spread, the difference is exact
    welch_repeats = known & ~paired & (samples.pairing[a] > 0) & (samples.pairing[b] > 0)
    return Differences(estimate, se, df, np.asarray(confidence, dtype=float), paired, welch_repeats)


def difference(a: Summary, b: Summary, confidence: float = CONFIDENCE) -> Difference:
    """a - b with the 95% interval of the difference: the same `differences` as every other output."""
    return differences(Samples([a, b]), [0], [1], confidence).at(0)


def holm_confidences(p_values) -> np.ndarray:
    """Per difference, the confidence at which Holm's step-down procedure tests it: the i-th
    smallest of m p-values at 1 - 0.05/(m - i + 1), and from the first it cannot reject on, every
    later one at that same level. An interval at its level excludes 0 exactly when Holm resolves it.
    Differences without a p-value (NaN) are outside the family."""
    p = np.asarray(p_values, dtype=float)
    levels = np.full(len(p), CONFIDENCE)
    tested = np.flatnonzero(~np.isnan(p))
    alpha, m = 1 - CONFIDENCE, len(tested)
    stopped = None
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        level = alpha / (m - rank) if stopped is None else stopped
        if stopped is None and p[i] > level:
            stopped = level
        levels[i] = 1 - level
    return levels


def pooled_sd(summaries) -> float | None:
    """The within-group standard deviation pooled over groups with n >= 2 (None without one)."""
    groups = [s for s in summaries if s is not None and s.sd is not None]
    dof = sum(s.n - 1 for s in groups)
    if dof == 0:
        return None
    return math.sqrt(sum((s.n - 1) * s.sd**2 for s in groups) / dof)


def seeds_to_resolve(sd: float, difference: float, power_z: float = 0.0) -> int:
    """Seeds per configuration for a 95% interval of a two-mean difference to exclude 0 (normal approximation).

    With n seeds on each side the interval's half-width is z * sd * sqrt(2 / n); it is below
    `difference` from n = 2 (z sd / difference)^2. That resolves a true difference of that size
    half the time; power_z = Z_80_POWER asks for an 80% chance: (z + 0.84)^2 in place of z^2.
    """
    if difference <= 0:
        raise ValueError(f"difference must be positive, got {difference}")
    return max(2, math.ceil(2 * ((Z_95 + power_z) * sd / difference) ** 2))
