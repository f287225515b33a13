"""The harness that runs a property check: one job, turning a property into a verdict.

A check module (:mod:`~accounting.testing.rdp_checks`,
:mod:`~accounting.testing.epsilon_delta_checks`, :mod:`~accounting.testing.accountant_checks`)
states a property as a Hypothesis test body that raises :class:`_Falsified` on a bad example;
this module runs it and reports. It holds:

* the results: :class:`CheckResult` (passed, failed or skipped, with its message and
  counterexample) and :class:`PropertyViolation`, the ``AssertionError`` a failed check raises;
* the run: :func:`_run` draws the examples with fixed Hypothesis settings (no deadline, no
  database, optional ``seed``), lets Hypothesis shrink a failure to a minimal counterexample,
  and writes it into the message; :func:`_finish` raises or returns the result;
* skipping: :func:`_skipped` makes the ``[SKIP]`` result of a check not applicable to the
  declared :class:`~accounting.testing.Domain`, :func:`_domain` checks and defaults
  ``domain=``, and :data:`_NO_RDP_REFERENCE` says why the kit has no replace-one RDP reference;
* the message helpers :func:`_show` (a value as the messages print it, floats to 17 digits)
  and :func:`_label` (a callable's name);
* the comparisons shared by every family: :func:`_exceeds` (an order violated beyond the
  relative slack) and :func:`_relative_error`, with the default tolerances
  :data:`SHAPE_RTOL` and :data:`REFERENCE_RTOL`.

The underscored names are the harness' interface to the check modules, not the kit's public
API; :class:`CheckResult` and :class:`PropertyViolation` are public through
:mod:`accounting.testing.properties` and :mod:`accounting.testing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Verbosity, given, settings
from hypothesis import seed as _hypothesis_seed
from hypothesis import strategies as st

from accounting.testing.domain import Domain

__all__ = ["REFERENCE_RTOL", "SHAPE_RTOL", "CheckResult", "PropertyViolation"]

#: Default slack of the shape checks (monotonicity, convexity, closed forms).
SHAPE_RTOL = 1e-8
#: Default tolerance of the reference checks.
REFERENCE_RTOL = 1e-6


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


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
# Running a check
# --------------------------------------------------------------------------------------------


def _settings(max_examples: int) -> settings:
    """Hypothesis settings of every check: quiet, reproducible, no deadline or database."""
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
    """Raise :class:`PropertyViolation` for a failed ``result`` if asked; else return it."""
    if result.failed and raise_on_failure:
        raise PropertyViolation(result)
    return result


# --------------------------------------------------------------------------------------------
# Skipping a check not applicable to the domain
# --------------------------------------------------------------------------------------------


def _skipped(name: str, reason: str) -> CheckResult:
    """A check not run: not applicable to the declared domain (never counted as passed)."""
    return CheckResult(name, False, f"not applicable: {reason}", None, skipped=True)


def _domain(domain: Domain | None) -> Domain:
    """The ``domain=`` argument checked, ``None`` meaning the unrestricted domain."""
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


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """``value`` as the messages print it: floats to 17 digits, lists item by item."""
    if isinstance(value, float):
        return f"{value:.17g}" if value == value else "nan"
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)


def _label(fn: Callable) -> str:
    """The name a message gives the user's callable ``fn``."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------


def _exceeds(larger_expected: float, smaller_expected: float, rtol: float) -> bool:
    """Whether ``smaller_expected`` is above ``larger_expected`` beyond the relative slack."""
    if math.isinf(larger_expected):
        return False
    return smaller_expected > larger_expected + rtol * abs(larger_expected)


def _relative_error(value: float, expected: float) -> float:
    """``|value - expected| / |expected|`` (0 when equal, ``inf`` against 0 or ``inf``)."""
    if value == expected:
        return 0.0
    if math.isinf(value) or math.isinf(expected):
        return math.inf
    return abs(value - expected) / abs(expected) if expected else math.inf
