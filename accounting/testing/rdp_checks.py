"""Checks of an RDP function: one job, holding ``rdp(q, sigma, orders)`` to its properties.

The function under test gives the Rényi DP of *one* step of the Poisson-subsampled Gaussian
mechanism at each order (``orders`` is passed as a list of floats). With ``mu0 = N(0,
sigma^2)`` and ``mu = (1-q) mu0 + q N(1, sigma^2)``, the properties checked and their sources:

* RDP is non-decreasing in ``q`` and non-increasing in ``sigma`` (data processing: a smaller
  rate or more noise is a post-processing of the larger/noisier mechanism; Mironov, Talwar and
  Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Sec. 3):
  :func:`check_rdp_monotone_in_sample_rate`, :func:`check_rdp_monotone_in_noise`;
* RDP is non-decreasing in ``alpha`` and ``(alpha - 1) RDP(alpha) = log A_alpha`` is convex
  in ``alpha`` (Van Erven and Harremoës 2014, "Rényi Divergence and Kullback-Leibler
  Divergence", Theorems 3 and 11): :func:`check_rdp_order_shape`;
* ``q = 1`` gives the Gaussian mechanism's ``alpha / (2 sigma^2)`` and ``q = 0`` gives 0
  (Mironov 2017, "Rényi Differential Privacy", Proposition 7): :func:`check_rdp_closed_form`;
  and ``RDP(q) <= RDP(1)``, edges included: :func:`check_rdp_subsampling_bound`;
* agreement with the mpmath reference :func:`accounting.reference.rdp` within ``rtol``:
  :func:`check_rdp_reference`.

How a check runs and reports is :mod:`accounting.testing._harness`'s job; the public entry
points are :mod:`accounting.testing.properties` and :mod:`accounting.testing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from accounting import reference
from accounting.rdp import poisson_gaussian_rdp
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
    "RdpFunction",
    "check_rdp_closed_form",
    "check_rdp_monotone_in_noise",
    "check_rdp_monotone_in_sample_rate",
    "check_rdp_order_shape",
    "check_rdp_reference",
    "check_rdp_subsampling_bound",
]

#: ``rdp(q, sigma, orders) -> sequence of float``: the RDP of one step at each order.
RdpFunction = Callable[[float, float, Sequence[float]], Any]


def _rdp_values(fn: RdpFunction, q: float, sigma: float, orders: Sequence[float]) -> np.ndarray:
    """Call ``fn(q, sigma, orders)``; fail on exceptions, wrong shapes, NaN or negative RDP."""
    orders = [float(alpha) for alpha in orders]
    call = f"{_label(fn)}(q={_show(q)}, sigma={_show(sigma)}, orders={_show(orders)})"
    try:
        raw = fn(q, sigma, orders)
    except Exception as error:  # the user's function failing on a valid input is a finding
        raise _Falsified(f"{call} raised {type(error).__name__}: {error}") from error
    try:
        values = np.asarray(raw, dtype=float).reshape(-1)
    except (TypeError, ValueError) as error:
        raise _Falsified(f"{call} returned {raw!r}, not a sequence of numbers") from error
    if values.size != len(orders):
        raise _Falsified(f"{call} returned {values.size} values for {len(orders)} orders")
    if np.any(np.isnan(values)):
        raise _Falsified(f"{call} returned NaN: {_show(values.tolist())}")
    if np.any(values < 0):
        raise _Falsified(f"{call} returned a negative RDP: {_show(values.tolist())}")
    return values


def check_rdp_monotone_in_sample_rate(
    rdp: RdpFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 50,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``q1 <= q2`` implies ``rdp(q1, sigma, alpha) <= rdp(q2, sigma, alpha)``.

    Parameters
    ----------
    rdp : callable
        ``rdp(q, sigma, orders)``, the RDP of one step at each order.
    rtol : float
        Relative slack allowed for floating-point noise.
    max_examples : int
        Hypothesis examples drawn.
    seed : int, optional
        Fixes Hypothesis' random draws (for reproducible runs).
    raise_on_failure : bool
        Raise :class:`PropertyViolation` on failure (else return the failed result).
    domain : Domain, optional
        The inputs the function supports (:class:`~accounting.testing.Domain`); only these are
        drawn.

    Returns
    -------
    CheckResult
    """

    return _check_rdp_monotone(rdp, "q", rtol, max_examples, seed, raise_on_failure, domain)


def check_rdp_monotone_in_noise(
    rdp: RdpFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 50,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``sigma1 <= sigma2`` implies ``rdp(q, sigma1, alpha) >= rdp(q, sigma2, alpha)``.

    Parameters are those of :func:`check_rdp_monotone_in_sample_rate`.
    """

    return _check_rdp_monotone(rdp, "sigma", rtol, max_examples, seed, raise_on_failure,
                               domain)


def _check_rdp_monotone(rdp, varied, rtol, max_examples, seed, raise_on_failure,
                        domain) -> CheckResult:
    """RDP non-decreasing in ``q`` (``varied="q"``) or non-increasing in ``sigma``.

    Both hold under either neighbouring relation: the pair at a smaller ``q`` is the pair at
    the larger one mixed with a common component, and more noise is a post-processing.
    """
    domain = _domain(domain)

    fixed = "sigma" if varied == "q" else "q"
    first, second = f"{varied}1", f"{varied}2"

    def body(orders, **drawn):
        low, high = sorted((drawn[first], drawn[second]))
        other = drawn[fixed]
        if varied == "q":
            at_low = _rdp_values(rdp, low, other, orders)
            at_high = _rdp_values(rdp, high, other, orders)
        else:
            at_low = _rdp_values(rdp, other, low, orders)
            at_high = _rdp_values(rdp, other, high, orders)
        for alpha, a, b in zip(orders, at_low, at_high, strict=True):
            where = f"alpha={_show(float(alpha))}"
            if varied == "q" and _exceeds(b, a, rtol):
                raise _Falsified(
                    f"RDP decreased as the sample rate grew: rdp(q={_show(low)}) = {_show(a)} > "
                    f"rdp(q={_show(high)}) = {_show(b)} at sigma={_show(other)}, {where}"
                )
            if varied == "sigma" and _exceeds(a, b, rtol):
                raise _Falsified(
                    f"RDP grew with the noise: rdp(sigma={_show(high)}) = {_show(b)} > "
                    f"rdp(sigma={_show(low)}) = {_show(a)} at q={_show(other)}, {where}"
                )

    rates, noises = sts.sample_rates(domain=domain), sts.noise_multipliers(domain=domain)
    varied_values = rates if varied == "q" else noises
    strategies = {
        first: varied_values,
        second: varied_values,
        fixed: noises if varied == "q" else rates,
        "orders": sts.order_grids(max_size=4, domain=domain),
    }
    name = "RDP non-decreasing in q" if varied == "q" else "RDP non-increasing in sigma"
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_rdp_order_shape(
    rdp: RdpFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 50,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check RDP is non-decreasing in ``alpha`` and ``(alpha - 1) RDP(alpha)`` is convex.

    Convexity is tested on every three consecutive orders ``a < b < c`` of a drawn grid:
    ``f(b) <= ((c - b) f(a) + (b - a) f(c)) / (c - a)`` with ``f = (alpha - 1) RDP``, up to
    ``rtol`` times the largest ``f``. Parameters are those of
    :func:`check_rdp_monotone_in_sample_rate`.
    """
    name = "RDP non-decreasing in alpha, (alpha-1)*RDP convex"
    domain = _domain(domain)
    if domain.order_grid is not None and len(domain.order_grid) < 2:
        return _skipped(name, "the domain's grid holds a single order")

    def body(q, sigma, orders):
        values = _rdp_values(rdp, q, sigma, orders)
        alphas = np.asarray(orders, dtype=float)
        for i in range(len(alphas) - 1):
            if _exceeds(values[i + 1], values[i], rtol):
                raise _Falsified(
                    f"RDP decreased with the order: rdp(alpha={_show(alphas[i])}) = "
                    f"{_show(values[i])} > rdp(alpha={_show(alphas[i + 1])}) = "
                    f"{_show(values[i + 1])} at q={_show(q)}, sigma={_show(sigma)}"
                )
        log_a = (alphas - 1.0) * values
        if not np.all(np.isfinite(log_a)):
            return
        slack = rtol * float(np.max(np.abs(log_a)))
        for i in range(len(alphas) - 2):
            a, b, c = alphas[i : i + 3]
            chord = ((c - b) * log_a[i] + (b - a) * log_a[i + 2]) / (c - a)
            if log_a[i + 1] > chord + slack:
                raise _Falsified(
                    f"(alpha - 1) * RDP is not convex in alpha: at alpha={_show(b)} it is "
                    f"{_show(log_a[i + 1])}, above the chord {_show(chord)} between "
                    f"alpha={_show(a)} and alpha={_show(c)} (q={_show(q)}, sigma={_show(sigma)})"
                )

    strategies = {
        "q": sts.sample_rates(domain=domain),
        "sigma": sts.noise_multipliers(domain=domain),
        "orders": sts.order_grids(min_size=3, max_size=6, domain=domain),
    }
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_rdp_closed_form(
    rdp: RdpFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``rdp(1, sigma, alpha) = alpha / (2 sigma^2)`` and ``rdp(0, sigma, alpha) = 0``.

    The first is the Gaussian mechanism's RDP (Mironov 2017, Proposition 7). Both must hold to
    ``rtol`` relative to ``alpha / (2 sigma^2)``. Parameters are those of
    :func:`check_rdp_monotone_in_sample_rate`. Only the forms whose ``q`` lies in ``domain`` are
    checked (skipped if neither does); under ``"replace_one"`` the ``q = 1`` value depends on
    the sensitivity convention (1 or 2), so only ``q = 0`` is checked.
    """
    name = "RDP closed forms at q=1 and q=0"
    domain = _domain(domain)
    at_one = domain.allows_q(1.0) and domain.relation == "add_remove"
    at_zero = domain.allows_q(0.0)
    if not at_one and not at_zero:
        why_one = "q = 1 lies outside the domain" if not domain.allows_q(1.0) else (
            "q = 1 depends on the replace-one sensitivity convention")
        return _skipped(name, f"q = 0 lies outside the domain and {why_one}")

    def body(sigma, orders):
        gaussian = np.asarray(orders, dtype=float) / (2.0 * sigma**2)
        full = _rdp_values(rdp, 1.0, sigma, orders) if at_one else gaussian
        for alpha, value, expected in zip(orders, full, gaussian, strict=True):
            if _relative_error(value, expected) > rtol:
                raise _Falsified(
                    f"at q=1 the RDP must be alpha / (2 sigma^2) = {_show(expected)}, got "
                    f"{_show(value)} (alpha={_show(float(alpha))}, sigma={_show(sigma)})"
                )
        if not at_zero:
            return
        empty = _rdp_values(rdp, 0.0, sigma, orders)
        for alpha, value, expected in zip(orders, empty, gaussian, strict=True):
            if abs(value) > rtol * expected:
                raise _Falsified(
                    f"at q=0 the RDP must be 0, got {_show(value)} "
                    f"(alpha={_show(float(alpha))}, sigma={_show(sigma)})"
                )

    strategies = {
        "sigma": sts.noise_multipliers(domain=domain),
        "orders": sts.order_grids(max_size=4, domain=domain),
    }
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    if not (at_one and at_zero):
        why = "q = 0 is outside the domain" if at_one else (
            "q = 1 is outside the domain" if not domain.allows_q(1.0)
            else "under replace_one q = 1 depends on the sensitivity convention")
        only = "q = 1 only" if at_one else "q = 0 only"
        result = CheckResult(name, result.passed, f"{result.message} ({only}: {why})",
                             result.counterexample)
    return _finish(result, raise_on_failure)


def check_rdp_subsampling_bound(
    rdp: RdpFunction,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 50,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``0 <= rdp(q, sigma, alpha) <= alpha / (2 sigma^2)``, edges included.

    Subsampling never hurts: the RDP at any ``q`` is at most that at ``q = 1``. Half of the
    examples are adversarial (:func:`accounting.testing.strategies.edge_mechanisms`: ``q`` of
    ``1e-16`` or ``1 - 1e-12``, ``q / sigma`` extreme, orders near 1 or above 1000), where the
    function must also return a number rather than raise or give NaN (``inf`` fails: the
    bound is finite). Parameters are those of :func:`check_rdp_monotone_in_sample_rate`.

    Under ``domain.relation == "replace_one"`` the bound is the replace-one Gaussian's
    ``2 alpha / sigma^2`` (the two outputs' means differ by at most 2; it also bounds the
    convention where the sensitivity is 1).
    """
    domain = _domain(domain)
    replace = domain.relation == "replace_one"
    factor, shown = (2.0, "2 alpha / sigma^2") if replace else (0.5, "alpha / (2 sigma^2)")

    def body(point):
        q, sigma, alpha = point
        (value,) = _rdp_values(rdp, q, sigma, [alpha])
        bound = factor * float(alpha) / sigma**2
        if _exceeds(bound, value, rtol):
            raise _Falsified(
                f"subsampled RDP exceeds the unsubsampled {shown} = {_show(bound)}: "
                f"rdp(q={_show(q)}, sigma={_show(sigma)}, alpha={_show(float(alpha))}) = "
                f"{_show(value)}",
                inputs={"q": q, "sigma": sigma, "alpha": alpha},
            )

    regular = st.tuples(sts.sample_rates(domain=domain), sts.noise_multipliers(domain=domain),
                        sts.orders(domain=domain))
    strategies = {"point": st.one_of(regular, sts.edge_mechanisms(domain=domain))}
    name = "subsampled RDP <= unsubsampled (edges included)"
    if replace:
        name = "subsampled RDP <= replace-one Gaussian 2 alpha / sigma^2 (edges included)"
    result, _ = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)


def check_rdp_reference(
    rdp: RdpFunction,
    *,
    rtol: float = REFERENCE_RTOL,
    exact: bool = False,
    digits: int = 20,
    sample_rate: st.SearchStrategy[float] | None = None,
    noise_multiplier: st.SearchStrategy[float] | None = None,
    order: st.SearchStrategy[float] | None = None,
    max_examples: int = 50,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check ``rdp`` agrees with the mpmath reference :func:`accounting.reference.rdp`.

    Parameters
    ----------
    rdp : callable
        ``rdp(q, sigma, orders)``.
    rtol : float
        Largest relative error accepted (default ``1e-6``).
    exact : bool
        Decide every example with mpmath rather than with :func:`accounting.poisson_gaussian_rdp`
        (held to ``1e-10`` of mpmath over the ranges drawn here); the reported counterexample is
        re-evaluated with mpmath either way.
    digits : int
        Significant digits of the mpmath evaluation.
    sample_rate, noise_multiplier, order : hypothesis strategy, optional
        Narrow the inputs drawn (e.g. ``strategies.fractional_orders(11.0)`` to probe
        fractional orders only). The defaults draw ``q`` in ``{0, 1} U [1e-8, 1]``, ``sigma``
        in ``[0.1, 1e4]`` and integer and fractional orders in ``(1, 1e4]``; with
        ``exact=False`` keep to these ranges, where the fast path is held to the reference.
        A strategy given here is drawn as given; the others are narrowed to ``domain``.
    max_examples, seed, raise_on_failure
        As in :func:`check_rdp_monotone_in_sample_rate`.
    domain : Domain, optional
        The inputs to draw; skipped under ``"replace_one"`` (no replace-one RDP reference).
    """
    name = f"RDP agrees with the mpmath reference (rtol={rtol:g})"
    domain = _domain(domain)
    if domain.relation == "replace_one":
        return _skipped(name, _NO_RDP_REFERENCE)

    def expected_at(q, sigma, alpha, use_mpmath):
        if use_mpmath:
            return float(reference.rdp(q, sigma, alpha, digits=digits))
        return float(poisson_gaussian_rdp(q, sigma, [alpha])[0])

    def body(q, sigma, alpha):
        (value,) = _rdp_values(rdp, q, sigma, [alpha])
        expected = expected_at(q, sigma, float(alpha), exact)
        error = _relative_error(value, expected)
        if error > rtol:
            raise _Falsified(
                f"rdp(q={_show(q)}, sigma={_show(sigma)}, alpha={_show(float(alpha))}) = "
                f"{_show(value)}, but the reference gives {_show(expected)} "
                f"(relative error {error:.3g} > rtol={rtol:g})",
                {"value": value},
            )

    strategies = {
        "q": sample_rate if sample_rate is not None else sts.sample_rates(domain=domain),
        "sigma": noise_multiplier if noise_multiplier is not None
        else sts.noise_multipliers(domain=domain),
        "alpha": order if order is not None else sts.orders(domain=domain),
    }
    result, failure = _run(name, strategies, body, max_examples=max_examples, seed=seed)
    if failure is not None and failure.example is not None and not exact:
        q, sigma, alpha = (failure.example[key] for key in ("q", "sigma", "alpha"))
        value = failure.details.get("value")
        if value is not None:
            exact_value = expected_at(q, sigma, float(alpha), True)
            error = _relative_error(value, exact_value)
            verdict = (
                f"rdp(q={_show(q)}, sigma={_show(sigma)}, alpha={_show(float(alpha))}) = "
                f"{_show(value)}, but accounting.reference.rdp ({digits} digits) gives "
                f"{_show(exact_value)} (relative error {error:.3g}"
            )
            if error > rtol:
                message = f"{verdict} > rtol={rtol:g})"
                shown = result.message.split("\n", 1)[1]
                result = CheckResult(name, False, f"{message}\n{shown}", result.counterexample)
            else:  # the fast path, not the user's function, is off: never blame the user
                result = CheckResult(
                    name, True, f"{verdict} <= rtol); accounting's fast path disagrees with its "
                    "own reference here: please report this to accounting", None
                )
    return _finish(result, raise_on_failure)
