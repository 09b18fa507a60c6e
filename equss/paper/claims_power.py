"""How the power of each claim's test depends on the effect and on the runs: the designs behind the
``power``, ``mde`` and ``n_needed`` columns of :mod:`equss.paper.claims` (split off from it: one concept).

Each design knows its test's power at an effect, a number of replication units ``n`` and a level
(``power(effect, n, alpha)``); :meth:`_Design.power_now` is the power of the design as it ran (the
same as ``power(effect, self.n, alpha)`` except where the runs were unbalanced), :meth:`_Design.mde`
the smallest effect detected with 80 % power as it ran, :meth:`_Design.n_needed` the smallest ``n``
reaching 80 % for a given effect.  The power functions are statsmodels' (``statsmodels.stats.power``:
one-sample / two-sample t, ``FTestPowerF2`` with one numerator df for a model coefficient,
``NormalIndPower`` for Fisher's z); where statsmodels returns NaN (scipy's non-central t at small df with
a large non-centrality and a small alpha) the same probability is integrated over the variance estimate.

* :class:`BlockContrast` is a contrast of a mixed model's arm means (arm fixed, seed random) whose arms
  ran different numbers of seeds (Table 3 in the study: M1 and Q3 share Table 1's 10 seeds, the other
  arms 6).  As it ran: the fitted standard error and the between-within df ``N - arms - (seeds - 1)``.
  For ``n`` seeds per arm (the question "how many seeds would it need"): the balanced randomised-block
  design, whose contrast has variance ``sigma_e^2 sum(w^2) / n`` (the seed effect cancels in a contrast,
  ``sum(w) = 0``) on ``(arms - 1)(n - 1)`` df.  tests/test_claims.py checks both against simulated
  unbalanced studies (type I error at the null, power at an effect).
* :class:`Intersection` is an intersection-union claim ("EQUSS beats STEGO on its own recipe *and* M1,
  STEGO's head on EQUSS's recipe"): it holds only where every part's test rejects, so its power is the
  probability that all do.  The parts share the EQUSS runs (positively correlated tests), so the product
  of the parts' powers is a lower bound (Slepian's inequality for positively correlated normal
  statistics; checked by simulation in the tests) and the smallest part's power an upper bound; the
  design reports the product, and ``n_needed`` is the smallest ``n`` at which the product reaches 80 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from scipy import optimize, stats

POWER = 0.8
N_MAX = 100_000  # search bound for the runs needed
_QUAD_POINTS = (1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.9999)


def _over_variance(g: Callable[[float], float], df: float) -> float:
    """E[g(S)] with S^2 ~ chi2(df) / df, integrated over the chi-square's quantile u in (0, 1)."""
    from scipy import integrate

    h = lambda u: g(math.sqrt(stats.chi2.ppf(u, df) / df))  # noqa: E731
    return float(integrate.quad(h, 0, 1, limit=400, epsabs=1e-13, points=_QUAD_POINTS)[0])


def _t_power_quad(ncp: float, df: float, alpha: float) -> float:
    """Two-sided t-test power P(|Z + ncp| > t_crit * S): the fallback where statsmodels (scipy's
    non-central t) returns NaN (small df with large non-centrality at small alpha)."""
    tc = stats.t.ppf(1 - alpha / 2, df)
    return _over_variance(lambda s: stats.norm.sf(tc * s - ncp) + stats.norm.cdf(-tc * s - ncp), df)


def _finite_or(value, fallback: Callable[[], float]) -> float:
    value = float(value)
    return value if math.isfinite(value) else fallback()


class _Design:
    """How the test's power depends on the effect and on ``n`` (its replication units)."""

    n: int
    n_min: int = 2

    def power(self, effect: float, n: int, alpha: float) -> float:
        raise NotImplementedError

    def scale(self) -> float:
        """A natural unit of the effect (sd or se), where the search for the MDE starts."""
        return getattr(self, "sd", None) or getattr(self, "se", 1.0)

    def power_now(self, effect: float, alpha: float) -> float:
        """The power of the design as it ran (:class:`BlockContrast` overrides it: unbalanced runs)."""
        return self.power(effect, self.n, alpha)

    def mde(self, alpha: float, power: float = POWER) -> float:
        """Smallest |effect| detected with ``power`` as it ran (NaN when none is)."""
        f = lambda e: self.power_now(e, alpha) - power  # noqa: E731
        lo, hi = 0.0, 0.25 * self.scale()
        for _ in range(80):
            if f(hi) > 0:
                return float(optimize.brentq(f, lo, hi, xtol=1e-9 * hi))
            lo, hi = hi, 2 * hi
        return math.nan

    def n_needed(self, effect: float, alpha: float, power: float = POWER) -> float:
        """Smallest n (integer, >= n_min) with the target power for ``effect`` (power rises with n:
        doubling, then bisection); NaN past N_MAX."""
        if not (math.isfinite(effect) and effect > 0):
            return math.nan
        ok = lambda k: self.power(effect, k, alpha) >= power  # noqa: E731
        lo = hi = self.n_min
        while not ok(hi):
            if hi >= N_MAX:
                return math.nan
            lo, hi = hi + 1, min(2 * hi, N_MAX)
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid + 1
        return float(lo)


@dataclass
class OneSample(_Design):
    """t-test of a mean of per-unit values (paired differences, per-seed contrasts): Cohen's d = effect / sd."""
    sd: float
    n: int

    def power(self, effect, n, alpha):
        from statsmodels.stats.power import TTestPower

        if not (self.sd > 0) or n < 2:
            return math.nan
        d = abs(effect) / self.sd
        return _finite_or(TTestPower().power(effect_size=d, nobs=n, alpha=alpha),
                          lambda: _t_power_quad(d * math.sqrt(n), n - 1, alpha))


@dataclass
class TwoSample(_Design):
    """Two independent arms (Welch's test; power with the pooled sd, statsmodels' two-sample t)."""
    sd: float
    n: int            # runs in the first arm
    ratio: float = 1.0

    def power(self, effect, n, alpha):
        from statsmodels.stats.power import TTestIndPower

        if not (self.sd > 0) or n < 2 or n * self.ratio < 2:
            return math.nan
        d, n2 = abs(effect) / self.sd, n * self.ratio
        return _finite_or(TTestIndPower().power(effect_size=d, nobs1=n, ratio=self.ratio, alpha=alpha),
                          lambda: _t_power_quad(d * math.sqrt(n * n2 / (n + n2)), n + n2 - 2, alpha))


@dataclass
class Coefficient(_Design):
    """t-test of one linear coefficient (mixed-model contrast, OLS slope): standard error ``se`` at ``n``
    units, scaling as 1/sqrt(n); ``df(n)`` its degrees of freedom.  statsmodels' F-test power with one
    numerator df (the two-sided t): f2 = (effect / se)^2 / (df + 2)."""
    se: float
    n: int
    df: Callable[[int], float]
    n_min: int = 2

    def power(self, effect, n, alpha):
        from statsmodels.stats.power import FTestPowerF2

        df = self.df(n)
        if not (self.se > 0) or df < 1:
            return math.nan
        ncp = abs(effect) / (self.se * math.sqrt(self.n / n))
        return _finite_or(FTestPowerF2().power(effect_size=ncp ** 2 / (df + 2), df_num=1, df_denom=df, alpha=alpha),
                          lambda: _t_power_quad(ncp, df, alpha))


@dataclass
class Correlation(_Design):
    """Spearman's rho by Fisher's z with the Fieller-Hartley-Pearson variance 1.06 / (n - 3): a
    one-sample normal test (statsmodels ``NormalIndPower``, ``ratio=0``); effects in rho units."""
    n: int
    n_min: int = 4

    def power(self, effect, n, alpha):
        from statsmodels.stats.power import NormalIndPower

        if n < 4 or not abs(effect) < 1:
            return math.nan
        d = math.atanh(abs(effect)) / math.sqrt(1.06)
        return float(NormalIndPower().power(effect_size=d, nobs1=n - 3, alpha=alpha, ratio=0))

    def mde(self, alpha, power=POWER):
        f = lambda r: self.power(r, self.n, alpha) - power  # noqa: E731
        top = 1 - 1e-12
        return float(optimize.brentq(f, 0.0, top)) if self.n >= 4 and f(top) > 0 else math.nan


@dataclass
class Equivalence(_Design):
    """TOST of an estimate with standard error ``se`` (df ``df(n)``) against the margin +-``effect``
    when the true effect is 0: P(both one-sided tests reject) = P(|Z| < m - t_crit * S) with
    m = margin / se and S^2 ~ chi2(df) / df, integrated exactly over S (statsmodels has no TOST power
    for a regression coefficient).  ``mde``: the smallest margin shown with the target power."""
    se: float
    n: int
    df: Callable[[int], float]
    n_min: int = 3

    def power(self, effect, n, alpha):
        df = self.df(n)
        if not (self.se > 0) or df < 1:
            return math.nan
        m = abs(effect) / (self.se * math.sqrt(self.n / n))
        tc = stats.t.ppf(1 - alpha, df)
        return _over_variance(lambda s: max(0.0, 2 * stats.norm.cdf(m - tc * s) - 1), df)


@dataclass
class BlockContrast(_Design):
    """A contrast (weights ``w``, ``sum(w) = 0``) of a mixed model's arm means with unbalanced seeds
    (module docstring).  As it ran: standard error ``se`` on ``df_now`` df; ``n`` is the smallest number
    of seeds of the contrast's arms.  At ``n`` seeds per arm: the balanced block design,
    ``se(n) = sqrt(resid_var * sum_w2 / n)`` on ``(arms - 1)(n - 1)`` df."""
    se: float
    n: int
    df_now: float
    resid_var: float
    sum_w2: float
    arms: int

    def _power(self, effect: float, se: float, df: float, alpha: float) -> float:
        from statsmodels.stats.power import FTestPowerF2

        if not (se > 0) or df < 1:
            return math.nan
        ncp = abs(effect) / se
        return _finite_or(FTestPowerF2().power(effect_size=ncp ** 2 / (df + 2), df_num=1, df_denom=df, alpha=alpha),
                          lambda: _t_power_quad(ncp, df, alpha))

    def power(self, effect, n, alpha):
        if n < 2 or not (self.resid_var > 0):
            return math.nan
        return self._power(effect, math.sqrt(self.resid_var * self.sum_w2 / n), (self.arms - 1) * (n - 1), alpha)

    def power_now(self, effect, alpha):
        return self._power(effect, self.se, self.df_now, alpha)

    def scale(self) -> float:
        return self.se


@dataclass
class Intersection(_Design):
    """An intersection-union claim over ``parts`` (each a design): the product of the parts' powers at
    the same effect, a lower bound for positively correlated parts (module docstring)."""
    parts: Sequence[_Design]
    n: int

    def __post_init__(self):
        self.n_min = max(d.n_min for d in self.parts)

    def power(self, effect, n, alpha):
        return math.prod(d.power(effect, n, alpha) for d in self.parts)

    def power_now(self, effect, alpha):
        return math.prod(d.power_now(effect, alpha) for d in self.parts)

    def scale(self) -> float:
        return max(d.scale() for d in self.parts)
