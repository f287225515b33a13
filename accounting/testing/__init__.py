"""Property-based verification kit for privacy accountants (needs the ``test`` extra).

Other DP frameworks can test *their* accountant of the Poisson-subsampled Gaussian mechanism
(DP-SGD) the way this package tests its own: Hypothesis draws valid and adversarial inputs,
each check asserts a mathematical property, and a failure comes back shrunk to a minimal
counterexample with a readable message. Install with ``pip install 'dpsgd-accounting[test]'``
(Hypothesis is not a dependency of :mod:`accounting` itself).

Guide
-----
1. Wrap your accountant in one of these forms::

       rdp(q, sigma, orders) -> sequence of float     # RDP of one step at each order
       epsilon(q, sigma, steps, delta) -> float
       delta(q, sigma, steps, epsilon) -> float
       make_accountant() -> object with .compose(q, sigma, steps) and .get_epsilon(delta)

2. Run everything that applies in one call::

       from accounting.testing import verify_accountant

       def test_my_accountant():
           verify_accountant(my_rdp, kind="rdp")            # raises AssertionError on failure

   ``kind`` is ``"rdp"``, ``"epsilon"`` (an RDP-based epsilon; pass your ``orders`` and
   ``conversion`` so the reference uses the same ones), ``"tight_epsilon"`` (e.g. a PLD
   accountant: checked to stay below the RDP epsilon), ``"delta"`` or ``"accountant"``.
   ``raise_on_failure=False`` returns a :class:`VerificationReport` to inspect instead.
   Or, with ``pytest_plugins = ["accounting.testing.pytest_plugin"]`` in a ``conftest.py``,
   request the ``verify_accountant`` fixture (honours ``--accounting-examples N``).

3. Or pick single checks from :mod:`accounting.testing.properties` (monotonicity in ``q``,
   ``sigma``, ``steps``, ``delta``; RDP non-decreasing in ``alpha`` with ``(alpha - 1) RDP``
   convex; the ``q = 1`` closed form; subsampled <= unsubsampled; composition additivity; the
   ``delta(epsilon(delta))`` round trip; agreement with the mpmath reference
   :mod:`accounting.reference` within ``rtol = 1e-6``; ``eps(PLD) <= eps(RDP)``), and the
   strategies of :mod:`accounting.testing.strategies` for your own properties.

Each check returns a :class:`CheckResult` or raises :class:`PropertyViolation` (an
``AssertionError``) whose ``counterexample`` holds the shrunk inputs, e.g.::

    [FAIL] RDP agrees with the mpmath reference (rtol=1e-06): rdp(q=0.5, sigma=1,
    alpha=1.5) = inf, but accounting.reference.rdp (20 digits) gives 0.31... (relative
    error inf > rtol=1e-06)

Tolerances: shape checks allow ``1e-8`` relative slack for rounding; reference checks accept
``1e-6`` relative error (the package itself is held to ``1e-10``). Sources of each property are
given in :mod:`accounting.testing.properties`.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "accounting.testing needs the optional dependency 'hypothesis'; install it with "
        "pip install 'dpsgd-accounting[test]'"
    ) from error

from accounting.testing import properties, strategies
from accounting.testing.properties import (
    CheckResult,
    PropertyViolation,
    check_composition,
    check_delta_monotone,
    check_delta_reference,
    check_epsilon_monotone,
    check_epsilon_reference,
    check_epsilon_subsampling_bound,
    check_pld_below_rdp,
    check_rdp_closed_form,
    check_rdp_monotone_in_noise,
    check_rdp_monotone_in_sample_rate,
    check_rdp_order_shape,
    check_rdp_reference,
    check_rdp_subsampling_bound,
    check_round_trip,
    reference_epsilon,
)
from accounting.testing.verify import (
    KINDS,
    VerificationError,
    VerificationReport,
    verify_accountant,
)

__all__ = [
    "KINDS",
    "CheckResult",
    "PropertyViolation",
    "VerificationError",
    "VerificationReport",
    "check_composition",
    "check_delta_monotone",
    "check_delta_reference",
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
    "properties",
    "reference_epsilon",
    "strategies",
    "verify_accountant",
]
