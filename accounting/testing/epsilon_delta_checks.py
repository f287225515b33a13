"""Property checks for any privacy accountant of the Poisson-subsampled Gaussian mechanism.

Each ``check_*`` function takes the user's callable, draws valid inputs with Hypothesis
(:mod:`accounting.testing.strategies`), and tests one mathematical property. On success it
returns a :class:`CheckResult`; on failure Hypothesis shrinks the input to a minimal
counterexample and the check raises :class:`PropertyViolation` (or, with
``raise_on_failure=False``, returns the failed :class:`CheckResult`), whose message states the
property, the inputs and the values found.

The callables' signatures:

``rdp(q, sigma, orders) -> sequence of float``
    RDP of *one* step at each order (``orders`` is passed as a list of floats).
``epsilon(q, sigma, steps, delta) -> float`` and ``delta(q, sigma, steps, epsilon) -> float``
    Privacy spent by ``steps`` steps.
``make_accountant() -> object``
    A fresh accountant with ``compose(q, sigma, steps)`` and ``get_epsilon(delta)``.

The properties and their sources (``mu0 = N(0, sigma^2)``, ``mu = (1-q) mu0 + q N(1, sigma^2)``):

* RDP is non-decreasing in ``q`` and non-increasing in ``sigma`` (data processing: a smaller
  rate or more noise is a post-processing of the larger/noisier mechanism; Mironov, Talwar and
  Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Sec. 3);
* RDP is non-decreasing in ``alpha`` and ``(alpha - 1) RDP(alpha) = log A_alpha`` is convex
  in ``alpha`` (Van Erven and Harremoës 2014, "Rényi Divergence and Kullback-Leibler
  Divergence", Theorems 3 and 11);
* ``q = 1`` gives the Gaussian mechanism's ``alpha / (2 sigma^2)`` and ``q = 0`` gives 0
  (Mironov 2017, "Rényi Differential Privacy", Proposition 7), and ``RDP(q) <= RDP(1)``;
* epsilon and delta are monotone in ``q``, ``sigma``, ``steps`` and in each other, and
  ``delta(epsilon(delta)) = delta`` for an RDP accountant (both are minima over the same
  orders of functions monotone in each other);
* composition is additive: splitting or reordering a history changes nothing;
* agreement with :mod:`accounting.reference` (50-digit-capable mpmath) within ``rtol``;
* a tight accountant (e.g. PLD) never reports more epsilon than the RDP accountant.

Shape checks allow a relative slack ``rtol`` (default ``1e-8``) for floating-point noise.
Reference checks decide each example with :mod:`accounting`'s own fast path, which its test
suite holds to ``1e-10`` relative of the mpmath reference over ``q in [1e-8, 1]``,
``sigma in [0.1, 1e4]``, ``alpha in (1, 1e4]`` (the ranges drawn here); the reported
counterexample is always re-evaluated with the mpmath reference itself, and ``exact=True``
decides every example with mpmath (slower: about half a second per fractional order).

Every check takes ``domain=``, a :class:`~accounting.testing.Domain` of the inputs the
accountant supports, and draws only inside it. A check that needs an input outside the domain
(``q = 1`` for the closed form or for ``epsilon(q=1)``, ``steps = 1`` for the hockey-stick
checks), or a reference the kit lacks for the domain's neighbouring relation (the RDP reference
is add/remove), returns a *skipped* :class:`CheckResult` (``passed=False, skipped=True``,
``[SKIP]`` with the reason) instead of running; it never raises for that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mpmath
import numpy as np
from hypothesis import HealthCheck, Verbosity, given, settings
from hypothesis import seed as _hypothesis_seed
from hypothesis import strategies as st

from accounting import reference
from accounting.accountants import RdpAccountant
from accounting.budget import compute_epsilon
from accounting.conversions import CONVERSIONS, epsilon_from_rdp
from accounting.orders import DEFAULT_ORDERS
from accounting.rdp import poisson_gaussian_rdp
from accounting.testing import strategies as sts
from accounting.testing.domain import Domain

__all__ = [
    "AccountantFactory",
    "CheckResult",
    "DeltaFunction",
    "EpsilonFunction",
    "PropertyViolation",
    "RdpFunction",
    "check_composition",
    "check_delta_hockey_stick",
    "check_delta_monotone",
    "check_delta_reference",
    "check_epsilon_hockey_stick",
    "check_epsilon_monotone",
    "check_epsilon_reference",
    "check_epsilon_subsampling_bound",
    "check_pld_below_rdp",
    "check_rdp_closed_form",
    "check_rdp_monotone_in_noise",
    "check_rdp_monotone_in_sample_rate",
    "check_rdp_order_shape",
    "check_rdp_reference",
    "check_rdp_subsampling_bound",
    "check_round_trip",
    "reference_epsilon",
]

RdpFunction = Callable[[float, float, Sequence[float]], Any]
EpsilonFunction = Callable[[float, float, int, float], float]
DeltaFunction = Callable[[float, float, int, float], float]
AccountantFactory = Callable[[], Any]

#: Default slack of the shape checks (monotonicity, convexity, closed forms).
SHAPE_RTOL = 1e-8
#: Default tolerance of the reference checks.
REFERENCE_RTOL = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one property check.

    Attributes
    ----------
    name : str
        The property checked.
    passed : bool
        Whether the check ran and found no counterexample (``False`` when skipped).
    message : str
        What was found: the failed property with the minimal counterexample's values, how
        many examples the property held on, or why the check was not applicable.
    counterexample : dict or None
        The shrunk inputs of the failure (``None`` on success).
    skipped : bool
        Whether the check did not run because it is not applicable to the declared
        :class:`~accounting.testing.Domain`.
    """

    name: str
    passed: bool
    message: str
    counterexample: dict[str, Any] | None = None
    skipped: bool = False

    @property
    def failed(self) -> bool:
        """Whether the check ran and found a counterexample."""
        return not self.passed and not self.skipped

    @property
    def status(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"SKIP"``."""
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"

    def __str__(self) -> str:
        return f"[{self.status}] {self.name}: {self.message}"


class PropertyViolation(AssertionError):
    """A property check found a counterexample; ``result`` holds the :class:`CheckResult`."""

    def __init__(self, result: CheckResult):
        super().__init__(str(result))
        self.result = result

    @property
    def counterexample(self) -> dict[str, Any] | None:
        """The minimal (shrunk) inputs that break the property."""
        return self.result.counterexample


class _Falsified(Exception):
    """Raised inside a Hypothesis test body when the property fails on an example."""

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.inputs = inputs  # the inputs actually used, when not the drawn example itself
        self.example: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# Machinery
# --------------------------------------------------------------------------------------------


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def _run(
    name: str,
    strategies: dict[str, st.SearchStrategy],
    body: Callable[..., None],
    *,
    max_examples: int,
    seed: int | None,
) -> tuple[CheckResult, _Falsified | None]:
    """Run ``body(**example)`` on Hypothesis examples; return the result and the failure."""
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples!r}")

    def test(example: dict[str, Any]) -> None:
        try:
            body(**example)
        except _Falsified as failure:
            failure.example = dict(example)
            raise

    runner = _settings(max_examples)(given(st.fixed_dictionaries(strategies))(test))
    if seed is not None:
        runner = _hypothesis_seed(seed)(runner)
    try:
        runner()
    except _Falsified as failure:
        example = failure.inputs or failure.example or {}
        shown = ", ".join(f"{key}={_show(value)}" for key, value in example.items())
        message = f"{failure.message}\n    minimal counterexample: {shown}"
        return CheckResult(name, False, message, {**example, **failure.details}), failure
    return CheckResult(name, True, f"held on {max_examples} examples"), None


def _finish(result: CheckResult, raise_on_failure: bool) -> CheckResult:
    if result.failed and raise_on_failure:
        raise PropertyViolation(result)
    return result


def _skipped(name: str, reason: str) -> CheckResult:
    """A check not run: not applicable to the declared domain (never counted as passed)."""
    return CheckResult(name, False, f"not applicable: {reason}", None, skipped=True)


def _domain(domain: Domain | None) -> Domain:
    if domain is None:
        return _ANY
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be an accounting.testing.Domain, got {domain!r}")
    return domain


_ANY = Domain()
_NO_RDP_REFERENCE = (
    "the kit has no replace-one RDP reference (accounting.reference.rdp is the add/remove "
    "divergence of Mironov, Talwar and Zhang 2019)"
)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.17g}" if value == value else "nan"
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)


def _label(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


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


def _exceeds(larger_expected: float, smaller_expected: float, rtol: float) -> bool:
    """Whether ``smaller_expected`` is above ``larger_expected`` beyond the relative slack."""
    if math.isinf(larger_expected):
        return False
    return smaller_expected > larger_expected + rtol * abs(larger_expected)


def _relative_error(value: float, expected: float) -> float:
    if value == expected:
        return 0.0
    if math.isinf(value) or math.isinf(expected):
        return math.inf
    return abs(value - expected) / abs(expected) if expected else math.inf


# --------------------------------------------------------------------------------------------
# RDP functions
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Epsilon and delta functions
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
        As in :func:`check_rdp_monotone_in_sample_rate`.
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
    Parameters are those of :func:`check_rdp_monotone_in_sample_rate`; skipped when ``q = 1``
    lies outside ``domain``.
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
    :mod:`accounting.conversions` for the improved conversion.
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
        The RDP-to-DP conversion the accountant uses (:mod:`accounting.conversions`).
    rtol : float
        Largest relative error accepted (default ``1e-6``; absolute below epsilon ``1e-9``).
    exact : bool
        Decide every example with mpmath rather than with :func:`accounting.compute_epsilon`.
    digits, max_examples, seed, raise_on_failure
        As in :func:`check_rdp_reference`.
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
        As in :func:`check_rdp_monotone_in_sample_rate`; ``rtol`` also absorbs the tight
        accountant's discretisation error.
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
        As in :func:`check_rdp_monotone_in_sample_rate`; ``domain.relation`` picks the pairs.
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


# --------------------------------------------------------------------------------------------
# Composing accountants
# --------------------------------------------------------------------------------------------


def _epsilon_of(make_accountant: AccountantFactory, history, delta) -> float:
    label = f"{_label(make_accountant)}() composed with {_show(list(history))}"
    try:
        accountant = make_accountant()
        for record in history:
            accountant.compose(*record)
        value = float(accountant.get_epsilon(delta))
    except Exception as error:
        raise _Falsified(f"{label} raised {type(error).__name__}: {error}") from error
    if math.isnan(value) or value < 0:
        raise _Falsified(f"{label} gave epsilon {_show(value)} at delta={_show(delta)}")
    return value


def check_composition(
    make_accountant: AccountantFactory,
    *,
    rtol: float = SHAPE_RTOL,
    max_examples: int = 30,
    seed: int | None = None,
    raise_on_failure: bool = True,
    domain: Domain | None = None,
) -> CheckResult:
    """Check composition is additive: splitting, reordering or extending a history.

    For a heterogeneous history ``H`` (:func:`accounting.testing.strategies.
    composition_histories`), the epsilon must not change when a record ``(q, sigma, n)`` is
    split into ``(q, sigma, k)`` and ``(q, sigma, n - k)`` or when ``H`` is reversed (the
    privacy loss of a composition is a sum over its steps, e.g. RDP adds up, Mironov 2017,
    Proposition 1), and must not decrease when a record is appended.

    Parameters
    ----------
    make_accountant : callable
        Returns a fresh accountant with ``compose(q, sigma, steps)`` and
        ``get_epsilon(delta)``.
    rtol, max_examples, seed, raise_on_failure
        As in :func:`check_rdp_monotone_in_sample_rate`.
    domain : Domain, optional
        The records (``q``, ``sigma``, ``steps``) and ``delta`` drawn.
    """
    domain = _domain(domain)

    def body(history, split_at, extra, delta):
        history = [tuple(record) for record in history]
        base = _epsilon_of(make_accountant, history, delta)
        q, sigma, n = history[0]
        k = 1 + split_at % n if n > 1 else 0
        if 0 < k < n:
            split = [(q, sigma, k), (q, sigma, n - k), *history[1:]]
            value = _epsilon_of(make_accountant, split, delta)
            if _relative_error(value, base) > rtol:
                raise _Falsified(
                    f"splitting {_show(history[0])} into {k} + {n - k} steps changed epsilon "
                    f"from {_show(base)} to {_show(value)} (delta={_show(delta)})"
                )
        reordered = _epsilon_of(make_accountant, history[::-1], delta)
        if _relative_error(reordered, base) > rtol:
            raise _Falsified(
                f"reversing the history changed epsilon from {_show(base)} to "
                f"{_show(reordered)} (delta={_show(delta)})"
            )
        longer = _epsilon_of(make_accountant, [*history, tuple(extra)], delta)
        if _exceeds(longer, base, rtol):
            raise _Falsified(
                f"appending {_show(tuple(extra))} decreased epsilon from {_show(base)} to "
                f"{_show(longer)} (delta={_show(delta)})"
            )

    strategies = {
        "history": sts.composition_histories(domain=domain),
        "split_at": st.integers(0, 10**6),
        "extra": sts.composition_histories(1, 1, domain=domain).map(lambda history: history[0]),
        "delta": sts.deltas(domain=domain),
    }
    result, _ = _run("composition additive (split, reorder, extend)", strategies, body,
                     max_examples=max_examples, seed=seed)
    return _finish(result, raise_on_failure)
