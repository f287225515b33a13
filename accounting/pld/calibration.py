"""Noise calibration against the PLD accountant's certified upper bound, in a few compositions.

The generic search (:func:`accounting.calibration.calibrate`) walks out from ``sigma = 1`` and
runs a full automatic-grid query at every trial noise. Here the bracket comes from cheaper
bounds first: RDP's calibrated noise is safe for the PLD too (the PLD's certified upper bound
never exceeds RDP's epsilon, which caps it), and the Gaussian-DP central-limit estimate (Dong,
Roth, Su 2022, Thm 6) lands close below the answer. Inside that bracket every trial composes
on the one grid the automatic search chose at the safe end, so each costs one composition, and
the epsilon it gives (a certified upper bound on that grid) varies smoothly with the noise for
Brent's method. The answer is checked once more with the automatic grid, so that
``PldAccountant(tolerance=pld_tolerance)`` itself certifies it.
"""

from __future__ import annotations

import math

from accounting import _scipy
from accounting.gdp import gdp_epsilon

__all__ = ["pld_noise_multiplier"]

#: Trials below the Gaussian-DP estimate before giving up on a bracket (each a factor 0.97).
_LOWER_WALK = 12


def pld_noise_multiplier(target: float, delta: float, sample_rate: float, steps: int,
                         safe: float, tolerance: float, pld_tolerance: float) -> float | None:
    """Smallest noise multiplier (to ``tolerance``) whose PLD upper bound is within ``target``,
    searched below ``safe`` (a noise known to meet it); ``None`` where this shortcut cannot
    bracket the answer (the caller then searches generically)."""
    from accounting.pld.accountant import PldAccountant

    def automatic(sigma):
        return PldAccountant(tolerance=pld_tolerance).compose(sample_rate, sigma, steps) \
            .get_epsilon_bounds(delta)

    first = automatic(safe)
    grid = first.value_discretization
    if not (first.upper <= target and grid > 0):
        return None
    cache: dict[float, float] = {}

    def on_grid(log_sigma: float) -> float:
        if log_sigma not in cache:
            try:
                accountant = PldAccountant(value_discretization=grid)
                cache[log_sigma] = accountant.compose(sample_rate, math.exp(log_sigma), steps) \
                    .get_epsilon(delta) - target
            except ValueError:  # the grid does not fit this noise: count it as missing
                cache[log_sigma] = math.inf
        return cache[log_sigma]

    high = math.log(safe)
    low = math.log(_gdp_noise(target, delta, sample_rate, steps, safe))
    for _ in range(_LOWER_WALK):
        if low < high and on_grid(low) > 0.0:
            break
        high = min(high, low) if low < high else high
        low = min(low, high) + math.log(0.97)
    else:
        return None
    if on_grid(high) > 0.0:  # the grid's bound at the safe end misses: not this shortcut
        return None
    u_tolerance = -math.log1p(-min(tolerance / math.exp(high), 0.5))
    if high - low > u_tolerance:
        root = _scipy.optimize.brentq(on_grid, low, high, xtol=u_tolerance / 4.0)
        high = min(high, root + u_tolerance / 2.0)
        while on_grid(high) > 0.0:
            high += u_tolerance / 2.0
    # The automatic grid certifies the answer itself. Its bound may lie above this grid's by up
    # to its bracket width: step the noise up by that excess over the local slope of epsilon
    # in log sigma (from the bracket), a little more each time.
    slope = max((on_grid(low) - on_grid(high)) / max(high - low, 1e-12), 1e-12) \
        if math.isfinite(on_grid(low)) else math.inf
    for attempt in range(6):
        excess = automatic(math.exp(high)).upper - target
        if excess <= 0.0:
            return math.exp(high)
        if not math.isfinite(slope):
            return None
        high += (1.5 ** attempt) * 1.1 * excess / slope + u_tolerance
    return None


def _gdp_noise(target: float, delta: float, sample_rate: float, steps: int,
               safe: float) -> float:
    """The noise at which the Gaussian-DP estimate spends ``target`` (searched below ``safe``;
    ``safe`` itself where the estimate does not cross)."""
    def excess(log_sigma):
        return gdp_epsilon(sample_rate, math.exp(log_sigma), steps, delta) - target

    high, low = math.log(safe), math.log(safe) - math.log(4.0)
    try:
        if excess(high) > 0.0 or excess(low) <= 0.0:
            return safe
        return math.exp(_scipy.optimize.brentq(excess, low, high, xtol=1e-4))
    except (ArithmeticError, ValueError):
        return safe
