"""Statistics over seeds: mean, standard deviation, 95% Student t intervals, without scipy.

The t quantiles are computed, not tabulated: for an integer number of degrees of freedom the
two-sided t distribution function has a closed form (Abramowitz & Stegun 26.7.3 and 26.7.4), and
the quantile is found by bisection on it. Seeds give n - 1 degrees of freedom, always an integer;
Welch's difference of two means gets its Welch-Satterthwaite degrees of freedom rounded down
(conservative: fewer degrees of freedom, a wider interval).
"""

import math
from dataclasses import dataclass
from functools import cache

CONFIDENCE = 0.95
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
Z_80_POWER = 0.8416212335729143  # its 80% quantile: the extra margin for an 80% chance to resolve
STUDENT = "Student t over seeds"
SINGLE = "single seed: no interval"


def t_two_sided_cdf(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer `df` >= 1 (Abramowitz & Stegun 26.7.3-4)."""
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:
        # (2/pi) (theta + sin cos (1 + 2/3 cos^2 + (2*4)/(3*5) cos^4 + ... up to cos^(df-3)))
        term = total = c if df > 1 else 0.0
        for k in range(3, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return 2.0 / math.pi * (theta + s * total)
    # sin (1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ... up to cos^(df-2))
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


@cache
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The t with P(|T| <= t) = confidence: 12.71 for df 1, 2.78 for df 4, 1.96 as df grows."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    low, high = 0.0, 2.0
    while t_two_sided_cdf(high, df) < confidence:
        low, high = high, high * 2
    for _ in range(100):  # 2^-100 of the bracket: far below float precision
        middle = (low + high) / 2
        low, high = (middle, high) if t_two_sided_cdf(middle, df) < confidence else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Summary:
    """n values' mean, standard deviation and 95% interval (None without one: n = 1)."""

    n: int
    mean: float
    sd: float | None = None
    low: float | None = None
    high: float | None = None
    method: str = STUDENT  # how the interval was computed, for the page

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


def summarize(values) -> Summary | None:
    """Mean, sample standard deviation and the Student t 95% interval of the mean; None for no values."""
    values = [float(v) for v in values]
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Summary(1, mean)
    # Two-pass, like statistics.stdev but in floats (statistics' exact fractions cost 10x at 10,000 runs)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return Summary(len(values), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Difference:
    """a - b with Welch's 95% interval (None when either side has a single value)."""

    mean: float
    low: float | None
    high: float | None
    df: int | None

    @property
    def distinguishable(self) -> bool | None:
        """True when the interval excludes 0; None without an interval."""
        if self.low is None or self.high is None:
            return None
        return not (self.low <= 0.0 <= self.high)


def welch_difference(a: Summary, b: Summary) -> Difference:
    """a.mean - b.mean with Welch's interval: unequal variances, df by Welch-Satterthwaite, rounded down."""
    mean = a.mean - b.mean
    if a.sd is None or b.sd is None:
        return Difference(mean, None, None, None)
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    if va + vb == 0.0:  # no spread on either side: the difference is exact
        return Difference(mean, mean, mean, a.n + b.n - 2)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    df = max(1, math.floor(df + 1e-9))  # the tolerance keeps an exact integer from rounding down
    half = t_quantile(df) * math.sqrt(va + vb)
    return Difference(mean, mean - half, mean + half, df)


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
