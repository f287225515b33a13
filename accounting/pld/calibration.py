"""Noise calibration against the PLD accountant's certified upper bound, in a few compositions.

The generic search (:func:`accounting.calibration.calibrate`) walks out from ``sigma = 1`` and
runs a full automatic-grid query at every trial noise. Here the search starts from cheaper
bounds: RDP's calibrated noise ``sigma_R`` is safe for the PLD too (the PLD's certified upper
bound never exceeds RDP's epsilon, which caps it), and the PLD answer lies a few per cent below
it. The steps, in ``u = log sigma`` where epsilon is smooth and nearly linear near the answer:

1. One automatic query at ``sigma_R`` gives the PLD's epsilon there and the grid it needs.
2. A Newton step with RDP's slope ``d eps / d u`` (cheap) predicts the answer ``sigma_1``.
3. Every further trial composes on one set grid (upper bound only: one composition each): the
   automatic grid at ``sigma_R`` widened by ``sqrt(s(sigma_1) / s(sigma_R))``, with
   ``s = q sqrt(exp(1 / sigma^2) - 1)`` the per-step loss spread, since the automatic grid
   spacing grows like ``sqrt(s)`` (a bracket width ``~ sqrt(T) step^2 / s``; Koskela, Jälkö,
   Honkela 2020) and a slightly coarser trial grid than the one the accountant picks at the
   answer keeps the final check from missing. Secant steps (Illinois-safeguarded regula falsi,
   bisection where an interpolant leaves the bracket) converge superlinearly on the smooth
   ``eps(u)``; the search ends once a noise that meets the target and one that misses it on the
   trial grid are within ``tolerance``.
4. The automatic accountant (``PldAccountant(tolerance=pld_tolerance)``, the one
   :func:`accounting.compute_epsilon` runs) certifies the answer; where its bound lies above
   the trial grid's, the noise is stepped up by the excess over the slope.

Every bound used for the answer is a certified upper bound; the interpolation only chooses
where to look.
"""

from __future__ import annotations

import math
import warnings

__all__ = ["pld_noise_multiplier"]

#: Most trials on the set grid (each one composition) before the shortcut gives up.
_MAX_TRIALS = 40
#: The trial grid's spacing over the automatic grid predicted at the answer: a little coarser,
#: so that the automatic bound at the answer is below the trial grid's (no extra step up).
_TRIAL_COARSENING = 1.03
#: Most steps up where the automatic accountant's check misses (each an automatic query).
_MAX_CHECKS = 6
#: Share of the target bracket width the trial grid's bracket may take (see the coarsening).
_WIDTH_SHARE = 0.8
#: Relative change of the noise for RDP's finite-difference slope.
_SLOPE_STEP = 0.01


def pld_noise_multiplier(target: float, delta: float, sample_rate: float, steps: int,
                         safe: float, tolerance: float, pld_tolerance: float) -> float | None:
    """Smallest noise multiplier (to ``tolerance``) whose PLD upper bound is within ``target``.

    Parameters
    ----------
    target, delta : float
        Target epsilon (``> 0``) and delta (in ``(0, 1)``).
    sample_rate : float
        Poisson sampling rate ``q`` in ``(0, 1]``.
    steps : int
        Number of composed steps (``> 0``).
    safe : float
        A noise known to meet the target (RDP's calibrated noise: RDP's epsilon caps the PLD's
        certified upper bound).
    tolerance : float
        Absolute tolerance on the noise multiplier.
    pld_tolerance : float
        Target width of the automatic PLD accountant's epsilon bracket.

    Returns
    -------
    float or None
        ``sigma`` with ``PldAccountant(tolerance=pld_tolerance)``'s certified epsilon at most
        ``target``, within ``tolerance`` of a noise that misses the target on the trial grid;
        ``None`` where this shortcut cannot bracket the answer (the caller then searches
        generically).
    """
    from accounting.pld.accountant import PldAccountant
    from accounting.rdp.accountant import RdpAccountant

    def automatic(sigma: float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PldAccountant(tolerance=pld_tolerance).compose(sample_rate, sigma, steps) \
                .get_epsilon_bounds(delta)

    first = automatic(safe)
    if not (first.upper <= target and first.value_discretization > 0):
        return None
    high = math.log(safe)
    slope = _rdp_slope(RdpAccountant, sample_rate, safe, steps, delta)
    # Newton's step from the safe end with RDP's slope: close to the answer (PLD and RDP curves
    # are nearly parallel in log sigma); clamped to the safe end's side of a 2x range
    guess = high + max((target - first.upper) / slope, -math.log(2.0))
    # the grid the automatic search would pick near the guess, a little coarser; coarser
    # still where its bracket was well within the target width (the width grows like the
    # square of the spacing): the upper bound then stays within the PLD's requested resolution
    width = first.upper - first.lower
    room = math.sqrt(_WIDTH_SHARE * first.target_width / width) if width > 0 else 1.0
    grid = first.value_discretization * _TRIAL_COARSENING * min(max(room, 1.0), 2.0) \
        * math.sqrt(_spread(sample_rate, math.exp(guess)) / _spread(sample_rate, safe))
    cache: dict[float, float] = {}

    def excess(u: float) -> float:
        """Trial grid's certified upper bound minus the target (``inf`` where the grid cannot
        be composed)."""
        if u not in cache:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    accountant = PldAccountant(value_discretization=grid)
                    cache[u] = accountant.compose(sample_rate, math.exp(u), steps) \
                        .get_epsilon(delta) - target
            except ValueError:  # the grid does not fit this noise: count it as missing
                cache[u] = math.inf
        return cache[u]

    u_tolerance = -math.log1p(-min(tolerance / safe, 0.5))
    answer = _root(excess, guess, high, first.upper - target, slope, u_tolerance)
    if answer is None:
        return None
    # The automatic accountant (what compute_epsilon runs at this tolerance) certifies the
    # answer itself; where its grid's bound lies above the trial grid's, step the noise up by
    # the excess over the slope, a little more each time (RDP's noise ends it: always safe).
    for attempt in range(_MAX_CHECKS):
        if answer >= high:
            return safe
        over = automatic(math.exp(answer)).upper - target
        if over <= 0.0:
            return math.exp(answer)
        answer += (1.5 ** attempt) * 1.1 * over / -slope + u_tolerance
    return None


def _root(excess, guess: float, safe_u: float, safe_excess: float, slope: float,
          u_tolerance: float) -> float | None:
    """A ``u`` at or just above the root of ``excess`` (decreasing in ``u``), within
    ``u_tolerance`` above a trial with ``excess > 0``, by Illinois-safeguarded secant steps
    from ``guess``.

    ``safe_u`` meets the target whatever the grid (``safe_excess``, from another grid, stands
    in for its excess). Once the estimated root lies within half of ``u_tolerance`` of the last
    trial, it is taken as converged (the secant's error is then far smaller): a trial a third
    of the tolerance below it that misses closes the bracket, and the point a third above it is
    returned (for the caller to certify), or the lowest trial that met the target where that
    is closer. ``None`` where nothing closes within ``_MAX_TRIALS`` trials.
    """
    # excess(low) > 0 >= excess(high)
    low, high = -math.inf, safe_u
    f_low, f_high = math.nan, safe_excess
    previous = (safe_u, safe_excess)
    margin = u_tolerance / 3.0
    u, pending = guess, None
    side = 0  # +1 / -1: which end the last trial replaced (for Illinois' halving)
    for _ in range(_MAX_TRIALS):
        value = excess(u)
        if value > 0.0:
            low, f_low = u, value
            if side == -1:
                f_high *= 0.5
            side = -1
        else:
            high, f_high = u, value
            if side == 1:
                f_low *= 0.5
            side = 1
        if pending is not None and pending - low <= u_tolerance:
            return min(pending, high)
        pending = None
        if high - low <= u_tolerance:
            return high
        u_prev, f_prev = previous
        previous = (u, value)
        if not math.isfinite(value):  # the grid cannot compose here: back towards safety
            u = 0.5 * (u + high)
            continue
        if math.isfinite(low):
            root = high - f_high * (high - low) / (f_high - f_low) \
                if math.isfinite(f_low) else 0.5 * (low + high)
        else:
            # no miss yet: a secant through the previous point (RDP's slope where that is not
            # decreasing), moving at most twice as far as the last step
            secant = (value - f_prev) / (u - u_prev) if u != u_prev else slope
            if not (secant < 0.0 and math.isfinite(secant)):
                secant = slope
            limit = max(2.0 * abs(u - u_prev), 0.05)
            root = u + min(max(-value / secant, -limit), limit)
        if abs(root - u) <= 0.5 * u_tolerance:
            candidate = min(root + margin, high)
            if candidate - low <= u_tolerance:
                return candidate
            pending, u = candidate, root - margin
        else:  # aim just below the root: a miss there is what closes the bracket
            u = root - margin
        if not low < u < high:
            u = 0.5 * (low + high) if math.isfinite(low) else high - 2.0 * (high - u_prev)
    return None


def _spread(sample_rate: float, sigma: float) -> float:
    """Per-step loss spread ``q sqrt(exp(1/sigma^2) - 1)`` (saturating for tiny noise)."""
    return sample_rate * math.sqrt(math.expm1(min(sigma ** -2.0, 700.0)))


def _rdp_slope(rdp_class, sample_rate: float, sigma: float, steps: int, delta: float) -> float:
    """``d eps / d log sigma`` of RDP's epsilon at ``sigma`` (negative; a finite difference)."""
    def epsilon(s):
        return rdp_class().compose(sample_rate, s, steps).get_epsilon(delta)

    try:
        slope = (epsilon(sigma) - epsilon(sigma * math.exp(-_SLOPE_STEP))) / _SLOPE_STEP
    except (ArithmeticError, ValueError):
        slope = math.nan
    return slope if slope < 0.0 and math.isfinite(slope) else -1.0

