"""Noise calibration against the PLD accountant's certified upper bound, in a few compositions.

The generic search (:func:`accounting.calibration.calibrate`) walks out from ``sigma = 1`` and
runs a full automatic-grid query at every trial noise. Here RDP's calibrated noise ``sigma_R``
starts the search: it is safe for the PLD too (the PLD's certified upper bound is capped by
RDP's epsilon), and the PLD answer lies a few per cent below it. In ``u = log sigma``, on
``log(eps / target)`` (smooth, and nearer linear than epsilon where epsilon is steep):

1. Trials compose on a set grid (upper bound only: one composition each, no grid search;
   only the removal direction, whose bound is the larger one nearly everywhere, since step 4
   certifies every direction), of
   the spacing the automatic search starts from, ``h = sqrt(c W s / sqrt(T))`` (bracket width
   ``W``, per-step loss spread ``s = q sqrt(exp(1 / sigma^2) - 1)``, the width growing like
   ``sqrt(T) h^2 / s``; ``c`` is :data:`accounting._tuning.PLD_INITIAL_STEP_FACTOR`) at the
   typical answer, made 3% coarser so that the automatic accountant's bound at the answer lies
   below the trial grid's. Below noise 0.5 (heavy per-step tails, where that rule asks for
   needlessly fine and costly grids) the first trial composes on 2x and 4x coarser grids
   instead, and the trial grid is coarsened as far as the measured ``h^2`` growth of the bound
   allows.
2. The first trial, at ``sigma_R``, gives two guesses: a Newton step with RDP's slope (two
   cheap RDP evaluations), and the Gaussian-DP curve (Dong, Roth, Su 2022) scaled to the PLD's
   epsilon at ``sigma_R`` (RDP's slope misleads where its conversion is loose); the lower is
   taken.
3. Illinois-safeguarded secant steps, inverse quadratic interpolation once three trials
   bracket the root; each trial aims a third of the tolerance past the estimated root, so that
   once the estimate has converged the next trial brackets it within ``tolerance``.
4. The automatic accountant (``PldAccountant(tolerance=pld_tolerance)``, what
   :func:`accounting.compute_epsilon` runs) certifies the answer. Its first grid's upper bound
   alone is tried first: the automatic bound, the least over the grids it visits, is at most
   that, so where it meets the target and leaves little of the width unspent nothing more is
   composed (no lower laws, no finer grids). Otherwise, where the full bound lies above the
   target the noise steps up by the trials' local slope; where it leaves much of the bracket
   width unspent (squaring on long runs is tighter than one FFT; or the trial grid's bound
   failed near the answer) up to three steps down on the automatic bound itself are tried,
   each kept only if certified.

Every returned noise is certified by the automatic accountant's upper bound; the
interpolation only chooses where to look. Where the set grids cannot bracket the answer (the
FFT's rounding swamping a tiny delta under heavy tails, say), ``None`` sends the caller to the
generic search.
"""

from __future__ import annotations

import math
import warnings

from accounting import _scipy
from accounting._tuning import PLD_INITIAL_STEP_FACTOR

__all__ = ["pld_noise_multiplier"]

#: Most trials on the set grid (each one composition) before the shortcut gives up.
_MAX_TRIALS = 40
#: The trial grid's spacing over the automatic grid predicted at the answer: a little coarser,
#: so that the automatic bound at the answer is below the trial grid's (no extra step up).
_TRIAL_COARSENING = 1.03
#: The PLD's calibrated noise over RDP's, typically (0.94-0.96 on settings A-D): the first
#: trial grid is the one at that noise.
_TYPICAL_SHARE = 0.955
#: Relative change of the predicted answer's grid spacing beyond which the trials move to it.
_GRID_SLACK = 0.02
#: Most steps up where the automatic accountant's check misses (each an automatic query).
_MAX_CHECKS = 6
#: Budget left unspent by the automatic accountant's bound at the answer, as a share of the
#: target bracket width, beyond which steps down are tried.
_SLACK_SHARE = 0.3
#: Reach in ``log sigma`` of the trials that give the local slope at the answer.
_SLOPE_REACH = 0.02
#: Below ``_PROBE_BELOW`` the first trial composes on grids this much and its square coarser,
#: to measure the grid's share of the upper bound.
_PROBE = 2.0
#: Noise multipliers (RDP's) below which that is done: per-step losses of slope ``1/sigma^2``
#: have heavy tails there, and grids that are costly yet finer than the width needs.
_PROBE_BELOW = 0.5
#: Share of the target bracket width the trial grid's upper bound may exceed the true epsilon.
_EXCESS_SHARE = 0.15
#: Coarsening of the trial grid: not below this (not worth a grid change), at most that.
_MIN_ROOM, _MAX_ROOM = 1.25, 2.5
#: A bound above this share of RDP's epsilon is taken to be RDP's cap.
_CAPPED = 0.999
#: Floor of the epsilons whose logarithms are taken (a certified 0 is below any target).
_TINY = 1e-300
#: Most steps down on the automatic bound where it leaves budget unspent (each an automatic
#: query).
_MAX_DOWN = 3
#: Relative change of the noise for RDP's finite-difference slope.
_SLOPE_STEP = 0.01
#: The neighbouring direction the trials compose: removing an example (the subsampled mixture
#: against the bare Gaussian) gives the larger epsilon bound of the two directions of
#: add/remove Poisson subsampling nearly everywhere (tests/test_pld_calibration.py compares
#: them); the automatic check certifies both, and steps the noise up where adding dominates.
_STEERING = "remove"


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
        ``target``, at most ``tolerance`` above a noise that misses the target on the trial
        grid (or below it, after a certified step down); ``None`` where this shortcut cannot
        bracket the answer (the caller then searches generically).

    Notes
    -----
    The trial grid's bracket is about ``pld_tolerance`` wide, so the answer leaves at most about
    that much of the target unspent (tested against the exact ``q = 1`` profile and
    dp_accounting); a ``tolerance`` far below the noise that width corresponds to costs one or
    two more trials (the secant converges superlinearly), not precision the bounds can show.
    """
    from accounting.pld.accountant import PldAccountant
    from accounting.rdp.accountant import RdpAccountant

    def automatic(sigma: float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PldAccountant(tolerance=pld_tolerance).compose(sample_rate, sigma, steps) \
                .get_epsilon_bounds(delta)

    def first_grid(sigma: float) -> float:
        """The automatic search's first-grid upper bound: at least what the automatic
        accountant reports (its least upper bound over grids), at a fraction of the work."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return PldAccountant(tolerance=pld_tolerance).compose(sample_rate, sigma, steps) \
                ._first_grid_epsilon(delta)

    # the grid spacing the automatic search starts from (one FFT): its bracket is about the
    # target width; a little coarser, so that the automatic accountant's bound at the answer is
    # below the trial grid's
    width = min(pld_tolerance, pld_tolerance * max(target, min(pld_tolerance, 1.0)))

    def spacing(sigma: float) -> float:
        scale = PLD_INITIAL_STEP_FACTOR * width * _spread(sample_rate, sigma)
        return _TRIAL_COARSENING * min(math.sqrt(scale / math.sqrt(float(steps))), 0.05)

    cache: dict[tuple[float, float], float] = {}

    def direction_epsilon(grid: float, sigma: float, direction: str) -> float:
        return PldAccountant(value_discretization=grid)._restricted_to(direction) \
            .compose(sample_rate, sigma, steps).get_epsilon(delta)

    def excess_on(grid: float, u: float) -> float:
        """``log(epsilon / target)`` of a set grid's upper bound for the removal direction
        (``inf`` where the grid cannot be composed): nearer linear in ``log sigma`` than
        epsilon itself over wide ranges (epsilon grows steeply as the noise drops)."""
        if (grid, u) not in cache:
            sigma = math.exp(u)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    epsilon = direction_epsilon(grid, sigma, _STEERING)
                cache[grid, u] = math.log(max(epsilon, _TINY) / target)
            except ValueError:  # the grid does not fit this noise: count it as missing
                cache[grid, u] = math.inf
        return cache[grid, u]

    high = math.log(safe)
    # the first grid is the one at the typical answer (see _TYPICAL_SHARE), kept where the
    # guess confirms it: all trials then see one function (exact secants)
    grid = spacing(safe * _TYPICAL_SHARE)
    slope, rdp_epsilon = _rdp_slope(RdpAccountant, sample_rate, safe, steps, delta)
    # The upper bound's excess over the true epsilon grows like the spacing squared (Koskela,
    # Jalko, Honkela 2020, Sec. 5). The first-grid rule assumes a Gaussian-like composed loss;
    # the heavy per-step tails of small noise leave room, so there the first trial composes on
    # two coarser grids (2x and 4x: cheap) instead, and the trials on the coarsest spacing whose
    # excess stays within _EXCESS_SHARE of the width. Not where a bound is RDP's cap (the
    # difference then says nothing).
    room = 1.0
    if safe < _PROBE_BELOW:
        near, far = excess_on(_PROBE * grid, high), excess_on(_PROBE ** 2 * grid, high)
        upper_near, upper_far = target * math.exp(near), target * math.exp(far)
        if upper_near < upper_far < _CAPPED * rdp_epsilon:
            bias = (upper_far - upper_near) / (_PROBE ** 2 * (_PROBE ** 2 - 1.0))  # a h^2
            room = min(math.sqrt(_EXCESS_SHARE * width / bias), _MAX_ROOM)
    if room >= _MIN_ROOM:
        # the first trial's bound on the trial grid, from the fit (a stand-in)
        first = math.log(max(upper_near + bias * (room * room - _PROBE ** 2), _TINY) / target)
        grid *= room
    else:
        room = 1.0
        first = excess_on(grid, high)
    if not first <= 0.0:  # no grid of this kind meets the target here: the generic search
        return None
    # Newton's step from the safe end with RDP's slope (of log epsilon): close to the answer
    # where PLD and RDP curves are nearly parallel; clamped to the safe end's side of a 2x range
    guess = high + max(-first / slope, -math.log(2.0))
    # Where RDP's conversion is loose (tiny epsilon or delta) its slope is no guide: the
    # Gaussian-DP curve scaled to the PLD's epsilon at the safe end is; the lower of the two
    # guesses is taken (a miss close below the root brackets it)
    guess = min(guess, _gdp_guess(target, delta, sample_rate, steps, safe,
                                  target * math.exp(first)))
    exact_safe = room == 1.0 and abs(math.log(spacing(math.exp(guess)) / grid)) <= _GRID_SLACK
    if abs(math.log(room * spacing(math.exp(guess)) / grid)) > _GRID_SLACK:
        grid = room * spacing(math.exp(guess))

    def excess(u: float) -> float:
        return excess_on(grid, u)

    u_tolerance = -math.log1p(-min(tolerance / safe, 0.5))
    answer = _root(excess, guess, high, first, slope, u_tolerance, exact_safe)
    if answer is None or answer >= high:
        return None
    slope = _local_slope([(u, value) for (on, u), value in cache.items() if on == grid],
                         answer, slope)
    # The automatic accountant (what compute_epsilon runs at this tolerance) certifies the
    # answer itself; where its grid's bound lies above the trial grid's, step the noise up by
    # the excess over the trials' local slope, a little more each time (RDP's noise ends it:
    # always safe).
    # The first grid's upper bound alone certifies the answer where it meets the target and
    # leaves little of the width unspent (the automatic bound, the least over its grids, is at
    # most it): the lower laws and finer grids are composed only where it does not.
    allowance = _SLACK_SHARE * width * (2.0 if room > 1.0 else 1.0)
    if answer < high and target - allowance <= first_grid(math.exp(answer)) <= target:
        return math.exp(answer)
    for attempt in range(_MAX_CHECKS):
        if answer >= high:
            return safe
        check = automatic(math.exp(answer))
        epsilon = check.upper
        over = math.log(max(epsilon, _TINY) / target)
        if over <= 0.0:
            break
        answer += (1.5 ** attempt) * 1.1 * over / -slope + u_tolerance
    else:
        return None
    # Where the automatic bound at the answer leaves much of the bracket width unspent (its
    # grids, squaring on long runs say, beat the trial grid's; or the trial grid's bound failed
    # near the answer and RDP's capped it), steps down on the automatic bound itself: the
    # Gaussian-DP curve scaled to it predicts the noise (its slope, unlike the trials', is not
    # misled by a failed grid), each step kept only where the automatic accountant certifies
    # it. Not where the automatic bracket itself misses its width (its grids then limit). A
    # coarsened trial grid leaves more unspent by design: twice the allowance there.
    goal = math.log1p(-0.5 * allowance / target)
    checked = [(answer, over)]  # automatic log(eps / target) by u; secants once two are in
    for _ in range(_MAX_DOWN):
        if target - epsilon <= allowance or not check.tolerance_met:
            break
        (u0, f0), (u1, f1) = checked[-2:] if len(checked) > 1 else (checked[0], checked[0])
        if len(checked) > 1 and f0 != f1:
            lower = u1 + (goal - f1) * (u1 - u0) / (f1 - f0)
        else:
            lower = _gdp_guess(target * math.exp(goal), delta, sample_rate, steps,
                               math.exp(answer), epsilon)
        if not lower < answer:
            lower = answer + 0.9 * (over - goal) / -slope
        if not lower < answer:
            break
        check = automatic(math.exp(lower))
        checked.append((lower, math.log(max(check.upper, _TINY) / target)))
        if check.upper <= target:
            answer, epsilon, over = lower, check.upper, checked[-1][1]
    return math.exp(answer)


def _root(excess, guess: float, safe_u: float, safe_excess: float, slope: float,
          u_tolerance: float, exact_safe: bool = False) -> float | None:
    """A ``u`` at or just above the root of ``excess`` (decreasing in ``u``), within
    ``u_tolerance`` above a trial with ``excess > 0``, by Illinois-safeguarded secant steps from
    ``guess``, inverse quadratic interpolation once three trials bracket the root (Brent 1973,
    "Algorithms for minimization without derivatives", ch. 4).

    ``safe_u`` meets the target whatever the grid; ``safe_excess`` is its excess on the trials'
    grid where ``exact_safe``, else a stand-in from another grid (steering the first step only).
    Once the estimated root lies within half of ``u_tolerance`` of the last trial, it is taken as
    converged (the interpolation's error is then far smaller): a trial a third of the tolerance
    below it that misses closes the bracket, and the point a third above it is returned (for the
    caller to certify), or the lowest trial that met the target where that is closer. ``None``
    where nothing closes within ``_MAX_TRIALS`` trials.
    """
    # excess(low) > 0 >= excess(high)
    low, high = -math.inf, safe_u
    f_low, f_high = math.nan, safe_excess
    previous = (safe_u, safe_excess)
    # finite trials, latest last (the safe end's only where it is on the trials' grid)
    points = [(safe_u, safe_excess)] if exact_safe else []
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
        points.append((u, value))
        if math.isfinite(low):
            root = high - f_high * (high - low) / (f_high - f_low) \
                if math.isfinite(f_low) else 0.5 * (low + high)
            # inverse quadratic interpolation through the last three trials where it stays
            # inside the bracket (Brent's method's faster step: epsilon is smooth in u)
            quadratic = _inverse_quadratic(points[-3:]) if len(points) >= 3 else math.nan
            if low < quadratic < high:
                root = quadratic
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


def _gdp_guess(target: float, delta: float, sample_rate: float, steps: int, safe: float,
               safe_epsilon: float) -> float:
    """``log sigma`` where the Gaussian-DP (CLT) epsilon (Dong, Roth, Su 2022, Cor. 5.4) times
    ``safe_epsilon / eps_GDP(safe)`` reaches ``target`` (``inf`` where it cannot be had).

    Solved on the closed-form GDP delta (no epsilon inversions inside the search)."""
    from accounting.gdp import gdp_delta

    optimize = _scipy.optimize
    try:
        def delta_excess(epsilon, sigma):
            return gdp_delta(sample_rate, sigma, steps, epsilon) - delta

        if not delta_excess(0.0, safe) > 0.0:
            return math.inf
        top = 2.0 * safe_epsilon + 1.0
        while delta_excess(top, safe) > 0.0 and top < 1e6:
            top *= 4.0
        scale = safe_epsilon / optimize.brentq(delta_excess, 0.0, top, args=(safe,), xtol=1e-9,
                                               rtol=1e-9)
        level = target / scale
        high, low = math.log(safe), math.log(safe) - math.log(8.0)
        if not delta_excess(level, math.exp(low)) > 0.0 >= delta_excess(level, safe):
            return math.inf
        return float(optimize.brentq(lambda u: delta_excess(level, math.exp(u)), low, high,
                                     xtol=1e-7))
    except (ArithmeticError, ValueError):
        return math.inf


def _local_slope(points, at: float, fallback: float) -> float:
    """``d excess / d u`` near ``at`` from the trials: through the trial nearest ``at`` and the
    farthest within ``_SLOPE_REACH`` of it (``fallback`` where none is decreasing)."""
    finite = sorted((abs(u - at), u, f) for u, f in points if math.isfinite(f))
    near = [item for item in finite if item[0] <= _SLOPE_REACH]
    if len(near) >= 2:
        (_, u0, f0), (_, u1, f1) = near[0], near[-1]
        if u1 != u0 and (f1 - f0) / (u1 - u0) < 0.0:
            return (f1 - f0) / (u1 - u0)
    return fallback


def _inverse_quadratic(points) -> float:
    """Root of the quadratic in ``f`` through three ``(u, f)`` points (``nan`` where two ``f``
    coincide)."""
    (u0, f0), (u1, f1), (u2, f2) = points
    if f0 == f1 or f0 == f2 or f1 == f2:
        return math.nan
    return (u0 * f1 * f2 / ((f0 - f1) * (f0 - f2)) + u1 * f0 * f2 / ((f1 - f0) * (f1 - f2))
            + u2 * f0 * f1 / ((f2 - f0) * (f2 - f1)))


def _spread(sample_rate: float, sigma: float) -> float:
    """Per-step loss spread ``q sqrt(exp(1/sigma^2) - 1)`` (saturating for tiny noise)."""
    return sample_rate * math.sqrt(math.expm1(min(sigma ** -2.0, 700.0)))


def _rdp_slope(rdp_class, sample_rate: float, sigma: float, steps: int,
               delta: float) -> tuple[float, float]:
    """``d log eps / d log sigma`` of RDP's epsilon at ``sigma`` (negative; a finite
    difference; -1 where that fails) and that epsilon (``inf`` where it fails)."""
    def epsilon(s):
        return rdp_class().compose(sample_rate, s, steps).get_epsilon(delta)

    try:
        here = epsilon(sigma)
        slope = math.log(here / epsilon(sigma * math.exp(-_SLOPE_STEP))) / _SLOPE_STEP
    except (ArithmeticError, ValueError, ZeroDivisionError):
        here, slope = math.inf, math.nan
    return (slope if slope < 0.0 and math.isfinite(slope) else -1.0), here

