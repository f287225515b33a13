"""Calibration: the parameter value - noise, number of steps, sample rate, any other - that meets
an epsilon budget.

Epsilon is monotone in each parameter (decreasing in the noise multiplier, increasing in the
sample rate and the number of steps), so each calibration brackets the boundary and then finds it
with Brent's method (Brent 1973, "Algorithms for Minimization without Derivatives", Ch. 4), or by
bisection for whole numbers. The value returned always lies on the safe side: its epsilon is at
most the target, never above.

:func:`calibrate` does this for any parameter of any event (:mod:`accounting.events`) with any
accountant; :func:`calibrate_noise_multiplier`, :func:`calibrate_steps` and
:func:`calibrate_sample_rate` are it for the three DP-SGD hyper-parameters.

With ``accountant="pld"`` the epsilon is the PLD accountant's certified upper bound, computed
with an epsilon bracket at most ``pld_tolerance`` wide (default ``1e-2`` in the three DP-SGD
functions): any width is safe, a narrower one buys slightly less noise for more time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from accounting import _scipy
from accounting._validation import (
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_positive,
    check_positive_int,
    check_sample_rate,
    check_steps,
    count_as_float,
)
from accounting.accountant import Accountant
from accounting.events import Event, Gaussian, PoissonSampled, SelfComposed
from accounting.pld.calibration import pld_noise_multiplier
from accounting.rdp.conversions import Conversion
from accounting.registry import make_accountant

__all__ = [
    "MAX_NOISE_MULTIPLIER",
    "MAX_STEPS",
    "MIN_NOISE_MULTIPLIER",
    "MIN_SAMPLE_RATE",
    "calibrate",
    "calibrate_noise_multiplier",
    "calibrate_sample_rate",
    "calibrate_steps",
]

#: :func:`calibrate_noise_multiplier` gives up (ValueError) once a noise multiplier this large
#: (the first power of 2 above it, 2**27) still misses the target.
MAX_NOISE_MULTIPLIER = 1e8
#: :func:`calibrate_noise_multiplier` searches no lower: once a noise multiplier at or below this
#: (the first power of 2 below it, 2**-20) meets the target, it is returned as is.
MIN_NOISE_MULTIPLIER = 1e-6
#: :func:`calibrate_steps` raises ValueError when more steps than this (the first power of 2
#: above it, 2**50) meet the target.
MAX_STEPS = 10**15
#: :func:`calibrate_sample_rate` returns 0.0 only when no rate at or above this (the smallest
#: normal float, 2**-1022) meets the target.
MIN_SAMPLE_RATE = 2.0**-1022

_LOG_2 = math.log(2.0)
#: Default ``tolerance`` of :func:`calibrate` for real parameters (absolute, or relative).
_DEFAULT_TOLERANCE = 1e-6


class _OutOfReach(ValueError):
    """Even the safe end of the bounds misses the target: ``parameter`` spends ``epsilon``."""

    def __init__(self, message: str, parameter, epsilon: float):
        super().__init__(message)
        self.parameter = parameter
        self.epsilon = epsilon


def _boundary_on_safe_side(spend, low, high, tolerance, safe_is_high):
    """The point within ``tolerance`` of the root of the monotone ``spend`` on the safe side.

    ``spend(x) <= 0`` means x meets the budget; ``spend(low)`` and ``spend(high)`` bracket it.
    A tolerance below the floating-point resolution of the bracket is raised to it.
    """
    safe_end = high if safe_is_high else low
    tolerance = max(tolerance, 8.0 * 2.0**-52 * max(abs(low), abs(high)), 1e-300)
    if high - low > tolerance:
        root = _scipy.optimize.brentq(spend, low, high, xtol=tolerance / 4.0, rtol=4.0 * 2.0**-52)
        low, high = max(low, root - tolerance / 2.0), min(high, root + tolerance / 2.0)
        # Brent's bracket is guaranteed; confirm the safe end and step outwards if a rounding
        # error put it on the wrong side (the bracket's own safe end is the last resort)
        for _ in range(64):
            if not ((spend(high) > 0.0) if safe_is_high else (spend(low) > 0.0)):
                return high if safe_is_high else low
            low, high = (high, high + tolerance / 2.0) if safe_is_high else (
                low - tolerance / 2.0, low)
        return safe_end
    return high if safe_is_high else low


def calibrate(
    make_event: Callable[[Any], Event],
    target_epsilon: float,
    delta: float,
    *,
    bounds: tuple[float, float],
    accountant: str | Callable[[], Accountant] = "rdp",
    tolerance: float | None = None,
    integer: bool = False,
    relative: bool = False,
    increasing: bool | None = None,
    **accountant_options: Any,
) -> float:
    """The value of a parameter, within ``bounds``, at the edge of an epsilon budget, on the safe
    side.

    ``make_event(x)`` describes the run for the parameter value ``x`` (a noise multiplier, a
    number of steps or epochs, a sample rate...) and epsilon, ``accountant``'s ``get_epsilon`` of
    that event at ``delta`` (a certified upper bound for every built-in accountant), is monotone
    in ``x``. The search brackets the boundary by doubling and halving from 1 (or the nearer
    bound) and refines it with Brent's method, or by bisection for whole numbers; each ``x`` is
    composed on a fresh accountant.

    Parameters
    ----------
    make_event : callable
        ``x -> accounting.events.Event``.
    target_epsilon : float
        Finite number ``> 0``.
    delta : float
        In ``(0, 1)``.
    bounds : (low, high)
        The range searched, ``0 <= low < high``, finite (``low > 0`` with ``relative=True``;
        whole numbers with ``integer=True``); ``make_event`` must accept both ends.
    accountant : str or callable
        A registered accountant's name (:func:`accounting.accountants`), built with
        ``**accountant_options`` (:func:`accounting.make_accountant`'s, e.g. ``conversion``,
        ``orders``, ``pld_tolerance``), or a zero-argument factory returning a new
        :class:`accounting.Accountant` each call (then no options): a class such as
        ``accounting.RdpAccountant``, or ``acc.copy`` to calibrate what is left of a budget
        after what the accountant ``acc`` has composed already.
    tolerance : float or int, optional
        How close to the boundary the answer is: absolute by default (``1e-6``); relative, in
        ``(0, 1)``, with ``relative=True`` (``1e-6``); a whole number ``>= 1`` with
        ``integer=True`` (``1``). A tolerance below the floating-point resolution of the
        bracket is raised to it.
    integer : bool
        ``x`` is a whole number (steps, epochs, a count): ``make_event`` gets Python ints and
        the answer is one.
    relative : bool
        Search on ``log x`` with a relative tolerance (sample rates: tiny boundaries are found
        as precisely as large ones, in a few dozen evaluations however small).
    increasing : bool, optional
        Whether epsilon increases with ``x`` (steps, sample rate, count) or decreases (noise).
        By default it is detected from epsilon at the two ends of ``bounds`` (two evaluations
        more; a ``ValueError`` if they are equal and both meet the target).

    Returns
    -------
    float or int
        ``x`` with ``epsilon(x) <= target_epsilon`` such that the neighbour on the unsafe side
        misses the target (``epsilon > target_epsilon``) or ``x`` is the unsafe end of
        ``bounds`` (then every ``x`` in ``bounds`` meets it). The neighbour is ``x - tolerance``
        for decreasing epsilon and ``x + tolerance`` for increasing; with ``relative=True``,
        ``x (1 - tolerance)`` and ``x / (1 - tolerance)``. That ``x`` meets the target is
        checked by evaluation; that the neighbour misses it assumes epsilon monotone.

    Raises
    ------
    ValueError
        For out-of-range arguments, an unknown accountant or option, or when even the safe end
        of ``bounds`` misses the target (the message gives its epsilon).
    TypeError
        When ``make_event`` is not callable or returns something other than an event, or for
        arguments of the wrong kind.

    Examples
    --------
    >>> from accounting.events import Gaussian, PoissonSampled, SelfComposed
    >>> def training(sigma):
    ...     return SelfComposed(PoissonSampled(256 / 60000, Gaussian(sigma)), 14063)
    >>> sigma = calibrate(training, 2.59666, 1e-5, bounds=(0.1, 100.0))
    >>> round(sigma, 4)
    1.1
    """
    if not callable(make_event):
        raise TypeError(f"make_event must be callable (x -> Event), got "
                        f"{type(make_event).__name__}")
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    integer = _check_flag(integer, "integer")
    relative = _check_flag(relative, "relative")
    if increasing is not None:
        increasing = _check_flag(increasing, "increasing")
    if integer and relative:
        raise ValueError("relative=True is for real parameters; a whole-number parameter "
                         "(integer=True) is searched by bisection with a tolerance in units")
    low, high = _check_bounds(bounds, integer, relative)
    tolerance = _check_tolerance(tolerance, integer, relative)
    new_accountant, label = _accountant_factory(accountant, accountant_options)

    cache: dict[Any, float] = {}

    def epsilon_at(x):
        if x not in cache:
            event = make_event(x)
            if not isinstance(event, Event):
                raise TypeError(f"make_event must return an accounting event, got "
                                f"{type(event).__name__} for x={x!r}")
            epsilon = float(new_accountant().compose(event).get_epsilon(delta))
            if math.isnan(epsilon):
                raise ValueError(f"the {label} accountant gave epsilon nan at x={x!r}")
            cache[x] = epsilon
        return cache[x]

    # the search coordinate u: x itself, or log x with a relative tolerance
    if relative:
        u_low, u_high = math.log(low), math.log(high)
        u_tolerance = -math.log1p(-tolerance)  # a step in log x of a factor (1 - tolerance)

        def to_x(u):  # the ends of the bounds exactly (exp(log(x)) may be a rounding off)
            if u <= u_low:
                return low
            return high if u >= u_high else min(high, max(low, math.exp(u)))
    else:
        u_low, u_high, u_tolerance = low, high, tolerance

        def to_x(u):
            return u

    def spend(u):
        return epsilon_at(to_x(u)) - target

    def out_of_reach(u, where="the safe end of bounds"):
        x = to_x(u)
        return _OutOfReach(
            f"target_epsilon={target_epsilon!r} is out of reach at delta={delta:g} with the "
            f"{label} accountant: even x={x!r}, {where}, spends epsilon {epsilon_at(x):.6g}",
            x, epsilon_at(x),
        )

    if increasing is None:
        # compare the epsilons themselves: next to a huge target their differences round away
        at_low, at_high = epsilon_at(to_x(u_low)), epsilon_at(to_x(u_high))
        if at_low == at_high:
            if at_low > target:
                raise out_of_reach(u_low, f"and x={to_x(u_high)!r} at the other end alike")
            raise ValueError(
                f"epsilon is {at_low:.6g} at both ends of bounds={bounds!r}, within "
                "the target: the direction cannot be detected; pass increasing=True (epsilon "
                "grows with x) or increasing=False"
            )
        increasing = at_low < at_high
    safe_is_high = not increasing

    # Bracket: from 1 (or the nearer bound), walk towards the boundary until epsilon crosses the
    # target; a walk that reaches the end of the bounds answers there.
    start = min(max(1 if integer else 1.0, low), high)
    u = math.log(start) if relative else start
    meets = spend(u) <= 0.0
    toward_high = meets != safe_is_high  # meeting: walk to the unsafe side; missing: the safe
    end = u_high if toward_high else u_low
    walked = 0
    while u != end:
        if relative:  # steps in log x doubling in size: ~log2(log(high / low)) of them
            gap = _LOG_2 * 2.0**walked
            following = min(end, u + gap) if toward_high else max(end, u - gap)
        elif integer:
            following = min(end, 2 * u) if toward_high else max(end, u // 2)
        elif toward_high:
            following = min(end, 2.0 * u)
        else:
            following = u / 2.0
            # below the tolerance, zero is as good an end (and spares ~1000 halvings)
            if following <= end or (end == 0.0 and following < tolerance):
                following = end
        walked += 1
        following_meets = spend(following) <= 0.0
        if following_meets != meets:
            lower, upper = (u, following) if toward_high else (following, u)
            break
        u = following
    else:
        if meets:
            return to_x(u)  # every x in bounds meets: the unsafe end is the answer
        raise out_of_reach(u)

    if integer:
        while upper - lower > tolerance:
            middle = (lower + upper) // 2
            if (spend(middle) <= 0.0) == increasing:
                lower = middle
            else:
                upper = middle
        return upper if safe_is_high else lower
    return to_x(_boundary_on_safe_side(spend, lower, upper, u_tolerance, safe_is_high))


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def _check_bounds(bounds, integer: bool, relative: bool):
    """``bounds`` as ``(low, high)``: ints with ``integer``, floats otherwise."""
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (low, high), got {bounds!r:.60}")
    values = []
    for index, value in enumerate(bounds):
        name = f"bounds[{index}]"
        if integer:
            value = check_steps(value, name)
            if math.isinf(count_as_float(value)):
                raise ValueError(f"{name} must lie within the float range (below 2**1024), "
                                 f"got a whole number of {value.bit_length()} bits")
        elif relative:
            value = check_positive(value, name)
        else:
            value = check_epsilon(value, name)
        values.append(value)
    low, high = values
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r:.120}")
    return low, high


def _check_tolerance(tolerance, integer: bool, relative: bool):
    if integer:
        return 1 if tolerance is None else check_positive_int(tolerance, "tolerance")
    if tolerance is None:
        return _DEFAULT_TOLERANCE
    tolerance = check_positive(tolerance, "tolerance")
    if relative and tolerance >= 1.0:
        raise ValueError(
            f"tolerance is relative (relative=True) and must lie in (0, 1), got {tolerance!r}"
        )
    return tolerance


def _accountant_factory(accountant, options) -> tuple[Callable[[], Accountant], str]:
    """A factory of fresh accountants for ``calibrate``'s ``accountant``, and its name."""
    if isinstance(accountant, str):
        make_accountant(accountant, **options)  # an unknown name or option fails here, once
        return (lambda: make_accountant(accountant, **options)), repr(accountant)
    if isinstance(accountant, Accountant):
        raise TypeError(
            "accountant must be a registry name or a zero-argument factory, got an "
            f"{type(accountant).__name__} instance (pass {type(accountant).__name__} for a "
            "fresh one, or its .copy to build on what it has composed)"
        )
    if not callable(accountant):
        raise TypeError(f"accountant must be a registry name or a zero-argument factory "
                        f"returning an Accountant, got {type(accountant).__name__}")
    if options:
        raise TypeError(f"accountant options {sorted(options)} apply to a registry name; "
                        "a factory takes none (bind them in the factory)")

    last: list[Accountant] = []  # the previous one, kept so that its id is not reused

    def fresh() -> Accountant:
        made = accountant()
        if not isinstance(made, Accountant):
            raise TypeError(f"the accountant factory must return an Accountant, got "
                            f"{type(made).__name__}")
        if last and made is last[0]:
            raise ValueError("the accountant factory must return a new accountant each call "
                             "(each x is composed on its own), got the same one twice")
        last[:] = [made]
        return made

    name = getattr(fresh(), "name", "") or getattr(accountant, "__name__", "")
    return fresh, repr(name) if name else "given"


def _power_of_two_at_or_above(value):
    """The first power of 2 (from 1 up) at or above ``value``: an int for an int ``value``."""
    power = 1 if isinstance(value, numbers.Integral) else 1.0
    while power < value:
        power *= 2
    return power


def _power_of_two_at_or_below(value: float) -> float:
    """The first power of 2 (from 1 down) at or below ``value``."""
    power = 1.0
    while power > value:
        power /= 2.0
    return power


def _dpsgd_run(sample_rate: float, noise_multiplier: float, steps: int) -> Event:
    """``steps`` Poisson-subsampled Gaussian steps: what ``compose(q, sigma, steps)`` composes."""
    return SelfComposed(PoissonSampled(sample_rate, Gaussian(noise_multiplier)), steps)


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

    :func:`calibrate` on ``SelfComposed(PoissonSampled(sample_rate, Gaussian(sigma)), steps)``
    over ``sigma`` in ``[2**-20, 2**27]``.

    Parameters
    ----------
    target_epsilon, tolerance : float
        Finite numbers ``> 0`` (NumPy scalars accepted); ``tolerance`` is absolute on sigma.

    Returns
    -------
    float
        ``sigma`` with ``epsilon(sigma) <= target_epsilon`` and ``sigma - sigma* <= tolerance``,
        where ``sigma*`` is the exact boundary.

    Raises
    ------
    ValueError
        For out-of-range arguments, when ``sample_rate`` or ``steps`` is 0 (no privacy is spent,
        so no noise is needed), or when even ``sigma = MAX_NOISE_MULTIPLIER`` (``1e8``) misses
        the target; the message names the accountant (the moments accountant's floor is
        ``log(1/delta) / 32``, however much noise).

    Notes
    -----
    If a noise multiplier at or below ``MIN_NOISE_MULTIPLIER`` (``1e-6``) already meets the
    target, that value (``2**-20``) is returned without searching further down.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    sample_rate = check_sample_rate(sample_rate, scalar=True)
    steps = check_steps(steps)
    tolerance = check_positive(tolerance, "tolerance")
    if sample_rate == 0.0 or steps == 0:
        raise ValueError(
            "sample_rate and steps must both be > 0: with no step or no sampling no privacy is "
            "spent and any noise multiplier meets the target"
        )
    bounds = (_power_of_two_at_or_below(MIN_NOISE_MULTIPLIER),
              _power_of_two_at_or_above(float(MAX_NOISE_MULTIPLIER)))
    if accountant == "pld":
        # RDP's noise is safe for the PLD too: bracket from it, then a few compositions
        try:
            safe = calibrate_noise_multiplier(target, delta, sample_rate, steps, "rdp",
                                              tolerance, conversion)
        except ValueError:
            safe = None
        if safe is not None and safe > bounds[0]:
            sigma = pld_noise_multiplier(target, delta, sample_rate, steps, safe, tolerance,
                                         check_positive(pld_tolerance, "pld_tolerance"))
            if sigma is not None:
                return sigma
    try:
        return calibrate(
            lambda sigma: _dpsgd_run(sample_rate, sigma, steps), target, delta,
            accountant=accountant, bounds=bounds, tolerance=tolerance, increasing=False,
            conversion=conversion, pld_tolerance=pld_tolerance,
        )
    except _OutOfReach as error:
        raise ValueError(
            f"target_epsilon={target_epsilon!r} is out of reach at delta={delta:g}, "
            f"sample_rate={sample_rate:g}, steps={steps}: even noise_multiplier="
            f"{error.parameter:g} spends epsilon {error.epsilon:.6g} with the {accountant!r} "
            "accountant (its conversion alone costs that much at this delta; the moments "
            "accountant's floor is log(1/delta)/max_lambda)"
        ) from None


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
    """Largest sample rate (to a relative ``tolerance``) whose epsilon is at most the target.

    :func:`calibrate` with ``relative=True`` on
    ``SelfComposed(PoissonSampled(q, Gaussian(noise_multiplier)), steps)`` over ``q`` in
    ``[MIN_SAMPLE_RATE, 1]``: the search runs on ``log q`` (bracketing with ever larger steps
    down from 1, then Brent's method), so tiny rates are found as precisely as large ones.

    Parameters
    ----------
    tolerance : float
        Relative tolerance on the rate, in ``(0, 1)``.

    Returns
    -------
    float
        ``q`` with ``epsilon(q) <= target_epsilon`` and ``q >= (1 - tolerance) q*``, where ``q*``
        is the exact boundary; 1.0 when even full-batch steps meet the target, and 0.0 only
        when no rate at or above ``MIN_SAMPLE_RATE`` (``2**-1022``) meets it.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
    steps = check_steps(steps)
    tolerance = check_positive(tolerance, "tolerance")
    if tolerance >= 1.0:
        raise ValueError(
            f"tolerance is relative for sample rates and must lie in (0, 1), got {tolerance!r}"
        )
    try:
        return calibrate(
            lambda rate: _dpsgd_run(rate, noise_multiplier, steps), target, delta,
            accountant=accountant, bounds=(MIN_SAMPLE_RATE, 1.0), tolerance=tolerance,
            relative=True, increasing=True, conversion=conversion, pld_tolerance=pld_tolerance,
        )
    except _OutOfReach:
        return 0.0


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

    :func:`calibrate` with ``integer=True`` on
    ``SelfComposed(PoissonSampled(sample_rate, Gaussian(noise_multiplier)), steps)``.

    Raises
    ------
    ValueError
        When ``sample_rate`` is 0 (steps then spend nothing and there is no largest number),
        or when more than ``MAX_STEPS`` (``10**15``) steps meet the target.
    """
    target = check_positive(target_epsilon, "target_epsilon")
    delta = check_delta(delta)
    sample_rate = check_sample_rate(sample_rate, scalar=True)
    noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
    if sample_rate == 0.0:
        raise ValueError("sample_rate must be > 0: steps at sample rate 0 spend no privacy")
    most = _power_of_two_at_or_above(MAX_STEPS)
    try:
        steps = int(calibrate(
            lambda count: _dpsgd_run(sample_rate, noise_multiplier, count), target, delta,
            accountant=accountant, bounds=(0, most), integer=True, increasing=True,
            conversion=conversion, pld_tolerance=pld_tolerance,
        ))
    except _OutOfReach:  # not even no step (epsilon 0) meets the target
        return 0
    if steps == most:
        raise ValueError(
            f"more than MAX_STEPS={MAX_STEPS:g} steps meet target_epsilon={target_epsilon!r} "
            f"at delta={delta:g}, sample_rate={sample_rate:g}, "
            f"noise_multiplier={noise_multiplier:g}"
        )
    return steps
