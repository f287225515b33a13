"""Checks of epsilon and delta functions: one job, holding the privacy spent to its properties.

The functions under test give the privacy spent by ``steps`` steps of the Poisson-subsampled
Gaussian mechanism: ``epsilon(q, sigma, steps, delta) -> float`` and ``delta(q, sigma, steps,
epsilon) -> float``. The properties checked and their sources:

* epsilon and delta are monotone in ``q``, ``sigma``, ``steps`` and in each other (a smaller
  rate, more noise or fewer steps is a post-processing): :func:`check_epsilon_monotone`,
  :func:`check_delta_monotone`; subsampling never increases epsilon, huge step counts and
  extreme ``q / sigma`` included: :func:`check_epsilon_subsampling_bound`;
* an RDP accountant agrees with the mpmath reference within ``rtol`` (:func:`reference_epsilon`:
  :func:`accounting.reference.rdp` at the accountant's orders, converted to epsilon in mpmath):
  :func:`check_epsilon_reference`, :func:`check_delta_reference`;
* ``delta(epsilon(delta)) = delta`` for an RDP accountant, since both are minima over the same
  orders of functions monotone in each other: :func:`check_round_trip`;
* a tight accountant (e.g. PLD) never reports more epsilon than the RDP accountant:
  :func:`check_pld_below_rdp`;
* any sound accountant (RDP, PLD, ...) reports, at one step, no less than the exact epsilon
  and the exact delta: the hockey-stick divergence
  (:func:`accounting.reference.hockey_stick_delta`) over the neighbouring relation's pairs:
  :func:`check_epsilon_hockey_stick`, :func:`check_delta_hockey_stick`.

How a check runs and reports is :mod:`accounting.testing._harness`'s job; the public entry
points are :mod:`accounting.testing.properties` and :mod:`accounting.testing`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import mpmath
import numpy as np
from hypothesis import strategies as st

from accounting import reference
from accounting.budget import compute_epsilon
from accounting.rdp import poisson_gaussian_rdp
from accounting.rdp.accountant import RdpAccountant
from accounting.rdp.conversions import CONVERSIONS, epsilon_from_rdp
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.testing import strategies as sts
from accounting.testing._harness import (
    _NO_RDP_REFERENCE,
    REFERENCE_RTOL,
    SHAPE_RTOL,
    CheckResult,
    _domain,
    _exceeds,
    _Falsified,
    _finish,
    _label,
    _relative_error,
    _run,
    _show,
    _skipped,
)
from accounting.testing.domain import Domain

__all__ = [
    "DeltaFunction",
    "EpsilonFunction",
    "check_delta_hockey_stick",
    "check_delta_monotone",
    "check_delta_reference",
    "check_epsilon_hockey_stick",
    "check_epsilon_monotone",
    "check_epsilon_reference",
    "check_epsilon_subsampling_bound",
    "check_pld_below_rdp",
    "check_round_trip",
    "reference_epsilon",
]

#: ``epsilon(q, sigma, steps, delta) -> float``: the epsilon spent by ``steps`` steps.
EpsilonFunction = Callable[[float, float, int, float], float]
#: ``delta(q, sigma, steps, epsilon) -> float``: the delta spent by ``steps`` steps.
DeltaFunction = Callable[[float, float, int, float], float]


# --------------------------------------------------------------------------------------------
# Calling the function under test
# --------------------------------------------------------------------------------------------


def _scalar(fn: Callable, what: str, upper: float, **arguments: Any) -> float:
    """Call ``fn(*arguments.values())`` expecting a number in ``[0, upper]``."""
    shown = ", ".join(f"{key}={_show(value)}" for key, value in arguments.items())
    call = f"{_label(fn)}({shown})"
    try:
        raw = fn(*arguments.values())
        value = float(raw)
    except Exception as error:
        raise _Falsified(f"{call} raised {type(error).__name__}: {error}") from error
    if math.isnan(value):
        raise _Falsified(f"{call} returned NaN")
    if not 0.0 <= value <= upper:
        raise _Falsified(f"{call} returned {what} = {_show(value)}, outside [0, {upper}]")
    return value


# --------------------------------------------------------------------------------------------
# Monotonicity and subsampling
# --------------------------------------------------------------------------------------------


def _epsilon_strategies(domain: Domain | None = None) -> dict[str, st.SearchStrategy]:
    return {
        "q": sts.sample_rates(-6.0, domain=domain),
        "sigma": sts.noise_multipliers(-0.5, 2.0, domain=domain),
        "steps": sts.step_counts(100_000, domain=domain),
        "delta": sts.deltas(domain=domain),
    }


_EPSILON_DIRECTIONS = {
    # argument: (strategy, +1 if epsilon grows with it, -1 if it shrinks)
    "q": (+1, "sample rate"),
    "sigma": (-1, "noise multiplier"),
    "steps": (+1, "number of steps"),
    "delta": (-1, "delta"),
}


def check_epsilon_monotone(
    epsilon: EpsilonFunction,
    argument: Literal["q", "sigma", "steps", "delta"],
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``epsilon(q, sigma, steps, delta)`` is monotone in one argument.

    Non-decreasing in ``q`` and ``steps``, non-increasing in ``sigma`` and ``delta``; the
    value must also be a number ``>= 0`` (``inf`` allowed) at every input drawn: ``q`` in
    ``{0, 1} U [1e-6, 1]``, ``sigma`` in ``[0.3, 100]``, ``steps`` in ``[1, 1e5]``, ``delta`` in
    ``[1e-12, 0.1]``.

    Parameters
    ----------
    epsilon : callable
        ``epsilon(q, sigma, steps, delta)``.
    argument : {"q", "sigma", "steps", "delta"}
        The argument varied.
    rtol, max_examples, seed, raise_on_failure, domain
        As in :func:`~accounting.testing.rdp_checks.check_rdp_monotone_in_sample_rate`.
    """
    return _check_monotone(epsilon, "epsilon", argument, _epsilon_strategies(_domain(domain)),
                           _EPSILON_DIRECTIONS, rtol, max_examples, seed, raise_on_failure)


_DELTA_DIRECTIONS = {
    "q": (+1, "sample rate"),
    "sigma": (-1, "noise multiplier"),
    "steps": (+1, "number of steps"),
    "epsilon": (-1, "epsilon"),
}


def _delta_strategies(domain: Domain | None = None) -> dict[str, st.SearchStrategy]:
    strategies = _epsilon_strategies(domain)
    del strategies["delta"]
    strategies["epsilon"] = sts.epsilons(domain=domain)
    return strategies


def check_delta_monotone(
    delta: DeltaFunction,
    argument: Literal["q", "sigma", "steps", "epsilon"],
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``delta(q, sigma, steps, epsilon)`` is monotone in one argument and in ``[0, 1]``.

    Non-decreasing in ``q`` and ``steps``, non-increasing in ``sigma`` and ``epsilon``.
    Parameters are those of :func:`check_epsilon_monotone`.
    """
    return _check_monotone(delta, "delta", argument, _delta_strategies(_domain(domain)),
                           _DELTA_DIRECTIONS, rtol, max_examples, seed, raise_on_failure)


def _check_monotone(fn, what, argument, strategies, directions, rtol, max_examples, seed,
                    raise_on_failure) -> CheckResult:
    if argument not in directions:
        raise ValueError(f"argument must be one of {tuple(directions)}, got {argument!r}")
    sign, words = directions[argument]
    upper = 1.0 if what == "delta" else math.inf
    strategies = dict(strategies)
    strategies["other"] = strategies[argument]

    names = [name for name in strategies if name != "other"]

    def body(other, **drawn):
        arguments = {name: drawn[name] for name in names}  # positional order of the call
        low, high = sorted((arguments[argument], other))
        at_low = _scalar(fn, what, upper, **{**arguments, argument: low})
        at_high = _scalar(fn, what, upper, **{**arguments, argument: high})
        smaller, larger = (at_low, at_high) if sign > 0 else (at_high, at_low)
        if _exceeds(larger, smaller, rtol):
            trend = "grew" if sign < 0 else "decreased"
            fixed = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items() if k != argument)
            raise _Falsified(
                f"{what} {trend} as the {words} grew: {what}({argument}={_show(low)}) = "
                f"{_show(at_low)}, {what}({argument}={_show(high)}) = {_show(at_high)} "
                f"at {fixed}"
            )

    trend = "non-decreasing" if sign > 0 else "non-increasing"
    result, _ = _run(f"{what} {trend} in {argument}", strategies, body,
                     max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_epsilon_subsampling_bound(
    epsilon: EpsilonFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``epsilon(q, sigma, steps, delta) <= epsilon(1, sigma, steps, delta)``.

    Half of the examples use huge step counts (``1e6`` to ``1e12``) or extreme ``q / sigma``.
    Parameters are those of
    :func:`~accounting.testing.rdp_checks.check_rdp_monotone_in_sample_rate`;
    skipped when ``q = 1`` lies outside ``domain``.
    """
    name = "subsampled epsilon <= unsubsampled (edges included)"
    domain = _domain(domain)
    if not domain.allows_q(1.0):
        return _skipped(name, "it compares with epsilon at q = 1, outside the domain")

    def body(point, delta):
        q, sigma, steps = point
        sampled = _scalar(epsilon, "epsilon", math.inf, q=q, sigma=sigma, steps=steps,
                          delta=delta)
        full = _scalar(epsilon, "epsilon", math.inf, q=1.0, sigma=sigma, steps=steps,
                       delta=delta)
        if _exceeds(full, sampled, rtol):
            raise _Falsified(
                f"subsampling increased epsilon: epsilon(q={_show(q)}) = {_show(sampled)} > "
                f"epsilon(q=1) = {_show(full)} at sigma={_show(sigma)}, steps={steps}, "
                f"delta={_show(delta)}",
                inputs={"q": q, "sigma": sigma, "steps": steps, "delta": delta},
            )

    regular = _epsilon_strategies(domain)
    edge = st.tuples(
        st.one_of(
            sts.extreme_noise_products(domain=domain),
            st.tuples(sts.edge_sample_rates(domain=domain),
                      sts.noise_multipliers(-0.5, 2.0, domain=domain)),
        ),
        st.one_of(sts.huge_step_counts(domain=domain), sts.step_counts(domain=domain)),
    ).map(lambda pair: (*pair[0], pair[1]))
    strategies = {
        "point": st.one_of(st.tuples(regular["q"], regular["sigma"], regular["steps"]), edge),
        "delta": regular["delta"],
    }
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


# --------------------------------------------------------------------------------------------
# Agreement with the references
# --------------------------------------------------------------------------------------------


def _positive_q(strategies: dict[str, st.SearchStrategy], domain: Domain) -> dict:
    """The reference checks draw no ``q = 0``: nothing is spent there, and an accountant may
    answer 0 (as :mod:`accounting` does) or its orders' minimum (an RDP accountant without that
    shortcut); the reference cannot prefer either."""
    return {**strategies, "q": sts.sample_rates(-6.0, include_zero=False, domain=domain)}


def _reference_skip(domain: Domain, orders: Sequence[float] | None) -> str | None:
    """Why the RDP-accountant reference cannot judge this domain (``None`` if it can)."""
    if domain.q[1] == 0.0:
        return "the domain holds only q = 0, where accountants may answer 0 or their bound"
    if domain.relation == "replace_one":
        return _NO_RDP_REFERENCE.replace("RDP reference", "RDP accountant reference")
    if orders is None and domain.orders == "integer":
        return ("epsilon depends on the accountant's own orders: declare them as "
                "Domain(orders=[...]) rather than 'integer'")
    return None


def reference_epsilon(
    q: float,
    sigma: float,
    steps: int,
    delta: float,
    orders: Sequence[float] | None = None,
    conversion: str = "improved",
    digits: int = 20,
    neighbours: int = 2,
) -> float:
    """Epsilon of ``steps`` steps by the RDP accountant, evaluated with mpmath.

    The RDP of the orders of ``orders`` (default :data:`accounting.DEFAULT_ORDERS`) within
    ``neighbours`` grid places of the fast path's optimal order, and of the smallest order, is
    computed with :func:`accounting.reference.rdp` and converted with
    :func:`accounting.reference.rdp_to_epsilon_improved` (or ``_classic``), with the
    Bretagnolle-Huber bound (``epsilon = 0`` when ``delta^2 >= 1 - exp(-RDP)``) of
    :mod:`accounting.rdp.conversions` for the improved conversion.
    """
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, got {conversion!r}")
    grid = np.sort(np.asarray(DEFAULT_ORDERS if orders is None else orders, dtype=float))
    curve = steps * poisson_gaussian_rdp(q, sigma, grid)
    _, best = epsilon_from_rdp(curve, grid, delta, conversion)
    where = int(np.searchsorted(grid, best))
    picked = sorted({0, *range(max(0, where - neighbours), min(grid.size, where + neighbours + 1))})
    alphas = [float(grid[i]) for i in picked]
    with mpmath.workdps(digits + 10):
        values = [steps * reference.rdp(q, sigma, alpha, digits=digits) for alpha in alphas]
        if conversion == "classic":
            return float(reference.rdp_to_epsilon_classic(values, alphas, delta, digits)[0])
        if mpmath.mpf(delta) ** 2 >= -mpmath.expm1(-values[0]):
            return 0.0
        return float(reference.rdp_to_epsilon_improved(values, alphas, delta, digits)[0])


def check_epsilon_reference(
    epsilon: EpsilonFunction,
    *,
    orders: Sequence[float] | None = None,
    conversion: str = "improved",
    rtol: float = REFERENCE_RTOL,
    exact: bool = False,
    digits: int = 20,
    max_examples: int = 20,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check an RDP-based ``epsilon`` agrees with :func:`reference_epsilon` within ``rtol``.

    ``q = 0`` is not drawn: nothing is spent there, and an accountant may answer 0 (as
    :func:`accounting.compute_epsilon` does) or the minimum over its orders.

    Parameters
    ----------
    epsilon : callable
        ``epsilon(q, sigma, steps, delta)``.
    orders : sequence of float, optional
        The Rényi orders the accountant minimises over (default
        :data:`accounting.DEFAULT_ORDERS`): pass the user's own grid, since epsilon depends on it.
    conversion : {"improved", "classic"}
        The RDP-to-DP conversion the accountant uses (:mod:`accounting.rdp.conversions`).
    rtol : float
        Largest relative error accepted (default ``1e-6``; absolute below epsilon ``1e-9``).
    exact : bool
        Decide every example with mpmath rather than with :func:`accounting.compute_epsilon`.
    digits, max_examples, seed, raise_on_failure
        As in :func:`~accounting.testing.rdp_checks.check_rdp_reference`.
    domain : Domain, optional
        The inputs to draw; its explicit grid stands in for ``orders`` when that is not given.
        Skipped under ``"replace_one"`` (the reference is an add/remove RDP accountant) and for
        ``orders="integer"`` without an explicit grid (the reference needs the accountant's).
    """
    name = f"epsilon agrees with the mpmath reference ({conversion} conversion, rtol={rtol:g})"
    domain = _domain(domain)
    skip = _reference_skip(domain, orders)
    if skip:
        return _skipped(name, skip)
    orders = orders if orders is not None else domain.order_grid
    grid = None if orders is None else [float(alpha) for alpha in orders]

    def expected_at(q, sigma, steps, delta, use_mpmath):
        if use_mpmath:
            return reference_epsilon(q, sigma, steps, delta, grid, conversion, digits)
        return compute_epsilon(q, sigma, steps, delta, conversion=conversion, orders=grid)

    def disagrees(value, expected):
        return abs(value - expected) > rtol * max(abs(expected), 1e-3) and (
            _relative_error(value, expected) > rtol
        )

    def body(q, sigma, steps, delta):
        value = _scalar(epsilon, "epsilon", math.inf, q=q, sigma=sigma, steps=steps, delta=delta)
        expected = expected_at(q, sigma, steps, delta, exact)
        if disagrees(value, expected):
            raise _Falsified(
                f"epsilon(q={_show(q)}, sigma={_show(sigma)}, steps={steps}, "
                f"delta={_show(delta)}) = {_show(value)}, but the reference gives "
                f"{_show(expected)} (relative error {_relative_error(value, expected):.3g})",
                {"value": value},
            )

    result, failure = _run(name, _positive_q(_epsilon_strategies(domain), domain), body,
                           max_examples=max_examples, seed=seed)
    if failure is not None and failure.example is not None and not exact:
        example = failure.example
        value = failure.details.get("value")
        if value is not None:
            exact_value = expected_at(*(example[k] for k in ("q", "sigma", "steps", "delta")),
                                      True)
            verdict = (
                f"epsilon(q={_show(example['q'])}, sigma={_show(example['sigma'])}, "
                f"steps={example['steps']}, delta={_show(example['delta'])}) = {_show(value)}, "
                f"but the mpmath reference ({digits} digits, same orders and conversion) gives "
                f"{_show(exact_value)} (relative error {_relative_error(value, exact_value):.3g})"
            )
            shown = result.message.split("\n", 1)[1]
            if disagrees(value, exact_value):
                result = CheckResult(name, False, f"{verdict}\n{shown}", result.counterexample)
            else:
                result = CheckResult(name, True, f"{verdict}; accounting's fast path disagrees "
                                     "with its own reference here: please report", None)
    return _finish(result, raise_on_failure)


def check_delta_reference(
    delta: DeltaFunction,
    *,
    orders: Sequence[float] | None = None,
    conversion: str = "improved",
    rtol: float = REFERENCE_RTOL,
    max_examples: int = 20,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check an RDP-based ``delta(q, sigma, steps, epsilon)`` agrees with this package.

    The expected value is ``RdpAccountant(orders, conversion).compose(q, sigma, steps)
    .get_delta(epsilon)``, whose RDP curve is held to ``1e-10`` of the mpmath reference; values
    below ``1e-300`` are compared absolutely. Parameters as in :func:`check_epsilon_reference`.
    """
    name = f"delta agrees with the reference ({conversion} conversion, rtol={rtol:g})"
    domain = _domain(domain)
    skip = _reference_skip(domain, orders)
    if skip:
        return _skipped(name, skip)
    orders = orders if orders is not None else domain.order_grid

    def body(q, sigma, steps, epsilon):
        value = _scalar(delta, "delta", 1.0, q=q, sigma=sigma, steps=steps, epsilon=epsilon)
        expected = RdpAccountant(orders, conversion).compose(q, sigma, steps).get_delta(epsilon)
        if abs(value - expected) > rtol * expected + 1e-300:
            raise _Falsified(
                f"delta(q={_show(q)}, sigma={_show(sigma)}, steps={steps}, "
                f"epsilon={_show(epsilon)}) = {_show(value)}, but accounting's RDP accountant "
                f"({conversion} conversion) gives {_show(expected)} "
                f"(relative error {_relative_error(value, expected):.3g} > rtol={rtol:g})"
            )

    result, _ = _run(name, _positive_q(_delta_strategies(domain), domain), body,
                     max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


# --------------------------------------------------------------------------------------------
# The round trip, and a tight accountant below RDP
# --------------------------------------------------------------------------------------------


def check_round_trip(
    epsilon: EpsilonFunction,
    delta: DeltaFunction,
    *,
    rtol: float = REFERENCE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``delta(epsilon(delta)) = delta`` (``<= delta`` where ``epsilon`` is 0).

    Holds for an accountant whose epsilon and delta are minima over the same family of
    bounds (e.g. the orders of an RDP accountant), since each bound's epsilon and delta are
    monotone functions of each other. Parameters as in :func:`check_epsilon_monotone`.
    """

    def body(q, sigma, steps, delta):
        eps = _scalar(epsilon, "epsilon", math.inf, q=q, sigma=sigma, steps=steps, delta=delta)
        if math.isinf(eps):
            return
        back = _scalar(delta_fn, "delta", 1.0, q=q, sigma=sigma, steps=steps, epsilon=eps)
        too_high = back > delta * (1.0 + rtol)
        too_low = eps > 0.0 and back < delta * (1.0 - rtol)
        if too_high or too_low:
            raise _Falsified(
                f"round trip failed: epsilon(delta={_show(delta)}) = {_show(eps)} but "
                f"delta(epsilon={_show(eps)}) = {_show(back)} at q={_show(q)}, "
                f"sigma={_show(sigma)}, steps={steps}"
            )

    delta_fn = delta
    result, _ = _run("delta(epsilon(delta)) == delta", _epsilon_strategies(_domain(domain)),
                     body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_pld_below_rdp(
    pld_epsilon: EpsilonFunction,
    rdp_epsilon: EpsilonFunction | None = None,
    *,
    rtol: float = 1e-6,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check a tight accountant never reports more epsilon than an RDP accountant.

    A privacy-loss-distribution (PLD) accountant computes the optimal epsilon of the
    composition up to its discretisation, while RDP gives an upper bound on it, so
    ``pld_epsilon <= rdp_epsilon * (1 + rtol)`` must hold; the same check applies to any pair
    of accountants of which the first is known to be the tighter.

    Parameters
    ----------
    pld_epsilon : callable
        The tighter accountant, ``pld_epsilon(q, sigma, steps, delta)``.
    rdp_epsilon : callable, optional
        The looser one; default :func:`accounting.compute_epsilon` (RDP, improved conversion).
    rtol, max_examples, seed, raise_on_failure
        As in :func:`~accounting.testing.rdp_checks.check_rdp_monotone_in_sample_rate`;
        ``rtol`` also absorbs the tight accountant's discretisation error.
    domain : Domain, optional
        The inputs to draw. Under ``"replace_one"`` pass the matching ``rdp_epsilon``: the
        default (an add/remove accountant) is not a bound there, and the check is skipped.
    """
    name = "eps(tight accountant) <= eps(RDP)"
    domain = _domain(domain)
    if rdp_epsilon is None and domain.relation == "replace_one":
        return _skipped(name, "the default RDP epsilon is add/remove, and "
                        + _NO_RDP_REFERENCE.replace("RDP reference", "RDP accountant"))
    looser = rdp_epsilon if rdp_epsilon is not None else compute_epsilon

    def body(q, sigma, steps, delta):
        tight = _scalar(pld_epsilon, "epsilon", math.inf, q=q, sigma=sigma, steps=steps,
                        delta=delta)
        loose = _scalar(looser, "epsilon", math.inf, q=q, sigma=sigma, steps=steps, delta=delta)
        if _exceeds(loose, tight, rtol):
            raise _Falsified(
                f"the tight accountant reports more than the RDP bound: "
                f"{_label(pld_epsilon)} = {_show(tight)} > {_label(looser)} = {_show(loose)} "
                f"at q={_show(q)}, sigma={_show(sigma)}, steps={steps}, delta={_show(delta)}"
            )

    result, _ = _run(name, _epsilon_strategies(domain), body, max_examples=max_examples,
                     seed=seed)
    return _finish(result, raise_on_failure)


# --------------------------------------------------------------------------------------------
# One step against the exact hockey-stick divergence
# --------------------------------------------------------------------------------------------


_DIRECTIONS = {"add_remove": ("remove", "add"), "replace_one": ("replace",)}


@functools.lru_cache(maxsize=4096)  # shrinking re-evaluates the same inputs many times
def _exact_delta(q: float, sigma: float, epsilon: float, relation: str, digits: int) -> float:
    """The exact delta of one step: the worst hockey-stick divergence over the relation's pairs."""
    if q == 0.0:  # identical outputs: the reference's root search would not terminate
        return 0.0
    if q == 1.0:  # the Gaussian mechanism: Balle and Wang's closed form needs no quadrature
        return _gaussian_delta(2.0 if relation == "replace_one" else 1.0, sigma, epsilon, digits)
    return max(float(reference.hockey_stick_delta(q, sigma, epsilon, direction, digits))
               for direction in _DIRECTIONS[relation])


def _gaussian_delta(sensitivity: float, sigma: float, epsilon: float, digits: int) -> float:
    """``Phi(s/2 - eps/s) - e^eps Phi(-s/2 - eps/s)``, ``s = sensitivity / sigma`` (Balle and
    Wang 2018, Theorem 8), in mpmath."""
    with mpmath.workdps(2 * digits + 10):  # the two terms cancel to many digits
        ratio = mpmath.mpf(sensitivity) / mpmath.mpf(sigma)
        eps = mpmath.mpf(epsilon)
        return float(mpmath.ncdf(ratio / 2 - eps / ratio)
                     - mpmath.exp(eps) * mpmath.ncdf(-ratio / 2 - eps / ratio))


def _one_step_hockey_stick(what: str, strategies_of, body, domain: Domain, max_examples: int,
                           seed: int | None, raise_on_failure: bool) -> CheckResult:
    """Run ``body`` over ``strategies_of(domain)`` at ``steps = 1`` (skipped where the domain
    excludes one step): the shared frame of the two hockey-stick checks."""
    name = f"{what} sound at one step: the {domain.relation} hockey-stick reference"
    if not domain.steps_range.contains(1):
        return _skipped(name, "it needs steps = 1, outside the domain")
    strategies = strategies_of(domain)
    del strategies["steps"]
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_epsilon_hockey_stick(
    epsilon: EpsilonFunction,
    *,
    rtol: float = REFERENCE_RTOL,
    digits: int = 15,
    max_examples: int = 10,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``epsilon(q, sigma, 1, delta)`` is never below the exact epsilon of one step.

    Any sound accountant (RDP, PLD, ...) must report at least the true epsilon: at its reported
    ``eps``, the exact ``delta(eps)`` of the step, :func:`accounting.reference.hockey_stick_delta`
    (the worse of ``"remove"`` and ``"add"`` for add/remove neighbours, ``"replace"`` for
    replace-one), must be ``<= delta * (1 + rtol)``. Each example costs an mpmath root search and
    quadrature per direction. Skipped when ``steps = 1`` lies outside ``domain``.

    Parameters
    ----------
    epsilon : callable
        ``epsilon(q, sigma, steps, delta)``.
    rtol : float
        Relative slack on ``delta``.
    digits : int
        Significant digits of the mpmath evaluation.
    max_examples, seed, raise_on_failure, domain
        As in :func:`~accounting.testing.rdp_checks.check_rdp_monotone_in_sample_rate`;
        ``domain.relation`` picks the pairs.
    """
    domain = _domain(domain)

    def body(q, sigma, delta):
        eps = _scalar(epsilon, "epsilon", math.inf, q=q, sigma=sigma, steps=1, delta=delta)
        if math.isinf(eps):
            return
        exact = _exact_delta(q, sigma, eps, domain.relation, digits)
        if exact > delta * (1.0 + rtol):
            raise _Falsified(
                f"epsilon(q={_show(q)}, sigma={_show(sigma)}, steps=1, delta={_show(delta)}) = "
                f"{_show(eps)} is below the exact epsilon: the {domain.relation} hockey-stick "
                f"delta at {_show(eps)} is {_show(exact)} > delta (rtol={rtol:g})",
                {"value": eps, "exact_delta": exact},
            )

    return _one_step_hockey_stick("epsilon", _epsilon_strategies, body, domain, max_examples,
                                  seed, raise_on_failure)


def check_delta_hockey_stick(
    delta: DeltaFunction,
    *,
    rtol: float = REFERENCE_RTOL,
    digits: int = 15,
    max_examples: int = 10,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``delta(q, sigma, 1, epsilon)`` is never below the exact delta of one step.

    The exact delta is :func:`accounting.reference.hockey_stick_delta` for the pairs of
    ``domain.relation`` (see :func:`check_epsilon_hockey_stick`); the reported delta must be
    ``>= exact * (1 - rtol)``. Parameters as in :func:`check_epsilon_hockey_stick`.
    """
    domain = _domain(domain)

    def body(q, sigma, epsilon):
        value = _scalar(delta, "delta", 1.0, q=q, sigma=sigma, steps=1, epsilon=epsilon)
        exact = _exact_delta(q, sigma, epsilon, domain.relation, digits)
        if value < exact * (1.0 - rtol):
            raise _Falsified(
                f"delta(q={_show(q)}, sigma={_show(sigma)}, steps=1, epsilon={_show(epsilon)}) "
                f"= {_show(value)} is below the exact {domain.relation} hockey-stick delta "
                f"{_show(exact)} (rtol={rtol:g})",
                {"value": value, "exact_delta": exact},
            )

    return _one_step_hockey_stick("delta", _delta_strategies, body, domain, max_examples, seed,
                                  raise_on_failure)
