"""Calibration: the noise, number of steps or sample rate that meets an epsilon budget.

Epsilon is monotone in each parameter (decreasing in the noise multiplier, increasing in the
sample rate and the number of steps), so each calibration brackets the boundary and then finds it
with Brent's method (Brent 1973, "Algorithms for Minimization without Derivatives", Ch. 4). The
value returned always lies on the safe side: its epsilon is at most the target, never above.

With ``accountant="pld"`` the epsilon is the PLD accountant's certified upper bound, computed
with an epsilon bracket at most ``pld_tolerance`` wide (default ``1e-2``): any width is safe, a
narrower one buys slightly less noise for more time.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq

from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_sample_rate,
    check_steps,
)
from accounting.budget import compute_epsilon
from accounting.conversions import Conversion

__all__ = ["calibrate_noise_multiplier", "calibrate_sample_rate", "calibrate_steps"]

_MAX_NOISE = 1e8
_MIN_NOISE = 1e-6
_MAX_STEPS = 10**15


def _check_target(target_epsilon) -> float:
    if isinstance(target_epsilon, bool) or not isinstance(target_epsilon, (int, float)):
        raise TypeError(f"target_epsilon must be a real number, got {target_epsilon!r}")
    if not 0.0 < float(target_epsilon) < math.inf:
        raise ValueError(f"target_epsilon must be a finite number > 0, got {target_epsilon!r}")
    return float(target_epsilon)


def _check_tolerance(tolerance) -> float:
    if not isinstance(tolerance, (int, float)) or not 0.0 < float(tolerance) < math.inf:
        raise ValueError(f"tolerance must be a finite number > 0, got {tolerance!r}")
    return float(tolerance)


def _boundary_on_safe_side(spend, low, high, tolerance, safe_is_high):
    """The point within ``tolerance`` of the root of the monotone ``spend`` on the safe side.

    ``spend(x) <= 0`` means x meets the budget; ``spend(low)`` and ``spend(high)`` bracket it.
    """
    if high - low > tolerance:
        root = brentq(spend, low, high, xtol=tolerance / 4.0, rtol=4.0 * 2.0**-52)
        low, high = max(low, root - tolerance / 2.0), min(high, root + tolerance / 2.0)
        # Brent's bracket is guaranteed; confirm the safe end and fall back to bisection if a
        # rounding error put it on the wrong side.
        while (spend(high) > 0.0) if safe_is_high else (spend(low) > 0.0):
            low, high = (high, high + tolerance / 2.0) if safe_is_high else (
                low - tolerance / 2.0, low)
    return high if safe_is_high else low


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 1e-6,
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> float:
    """Smallest noise multiplier (to ``tolerance``) whose epsilon is at most ``target_epsilon``.

    Returns
    -------
    float
        ``sigma`` with ``epsilon(sigma) <= target_epsilon`` and ``sigma - sigma* <= tolerance``,
        where ``sigma*`` is the exact boundary.

    Raises
    ------
    ValueError
        For out-of-range arguments, when ``sample_rate`` or ``steps`` is 0 (no privacy is spent,
        so no noise is needed), or when even ``sigma = 1e8`` misses the target.

    Notes
    -----
    If a noise multiplier below ``1e-6`` already meets the target, that value is returned.
    """
    target = _check_target(target_epsilon)
    delta = check_delta(delta)
    sample_rate = float(check_sample_rate(sample_rate))
    steps = check_steps(steps)
    tolerance = _check_tolerance(tolerance)
    if sample_rate == 0.0 or steps == 0:
        raise ValueError(
            "sample_rate and steps must both be > 0: with no step or no sampling no privacy is "
            "spent and any noise multiplier meets the target"
        )

    def spend(sigma):
        return compute_epsilon(
            sample_rate, sigma, steps, delta, accountant, conversion, pld_tolerance=pld_tolerance
        ) - target

    high = 1.0
    while spend(high) > 0.0:
        if high >= _MAX_NOISE:
            floor = compute_epsilon(
                sample_rate, high, steps, delta, accountant, conversion,
                pld_tolerance=pld_tolerance,
            )
            raise ValueError(
                f"target_epsilon={target_epsilon!r} is out of reach: even noise_multiplier="
                f"{high:g} spends epsilon {floor:.6g} with the {accountant!r} accountant (its "
                "conversion alone costs that much at this delta; the moments accountant's "
                "floor is log(1/delta)/max_lambda)"
            )
        high *= 2.0
    low = high / 2.0
    while spend(low) <= 0.0:
        if low <= _MIN_NOISE:
            return low  # even a negligible noise meets the target
        high, low = low, low / 2.0
    return _boundary_on_safe_side(spend, low, high, tolerance, safe_is_high=True)


def calibrate_sample_rate(
    target_epsilon: float,
    delta: float,
    noise_multiplier: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 1e-6,
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> float:
    """Largest sample rate (to ``tolerance``) whose epsilon is at most ``target_epsilon``.

    Returns 1.0 when even full-batch steps meet the target.
    """
    target = _check_target(target_epsilon)
    delta = check_delta(delta)
    noise_multiplier = float(check_noise_multiplier(noise_multiplier))
    steps = check_steps(steps)
    tolerance = _check_tolerance(tolerance)

    def spend(rate):
        epsilon = compute_epsilon(
            rate, noise_multiplier, steps, delta, accountant, conversion,
            pld_tolerance=pld_tolerance,
        )
        return epsilon - target

    if spend(1.0) <= 0.0:
        return 1.0
    return _boundary_on_safe_side(spend, 0.0, 1.0, tolerance, safe_is_high=False)


def calibrate_steps(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    noise_multiplier: float,
    accountant: str = "rdp",
    conversion: Conversion = "improved",
    pld_tolerance: float = 1e-2,
) -> int:
    """Largest number of steps whose epsilon is at most ``target_epsilon`` (0 if none).

    Raises
    ------
    ValueError
        When ``sample_rate`` is 0 (steps then spend nothing and there is no largest number).
    """
    target = _check_target(target_epsilon)
    delta = check_delta(delta)
    sample_rate = float(check_sample_rate(sample_rate))
    noise_multiplier = float(check_noise_multiplier(noise_multiplier))
    if sample_rate == 0.0:
        raise ValueError("sample_rate must be > 0: steps at sample rate 0 spend no privacy")

    def meets(steps):
        epsilon = compute_epsilon(
            sample_rate, noise_multiplier, steps, delta, accountant, conversion,
            pld_tolerance=pld_tolerance,
        )
        return epsilon <= target

    if not meets(1):
        return 0
    low, high = 1, 2
    while meets(high):
        if high >= _MAX_STEPS:
            raise ValueError(f"more than {_MAX_STEPS:g} steps meet {target_epsilon=}")
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    return low
