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

3. Declare what your accountant supports with a :class:`Domain`, and the kit draws only
   inside it. A framework whose RDP exists only at integer orders and for ``0 < q < 1``::

       from accounting.testing import Domain, verify_accountant

       # my_rdp raises at q = 0 and q = 1 and has no fractional orders
       SUPPORTED = Domain(orders="integer", q=(0.0, 1.0), q_closed=(False, False))

       def test_my_rdp():  # 5/5 checks passed, 1 skipped as not applicable
           report = verify_accountant(my_rdp, kind="rdp", domain=SUPPORTED)
           print(report)  # [SKIP] RDP closed forms at q=1 and q=0: not applicable: ...

   ``orders`` is ``"any"`` (default), ``"integer"`` or your explicit grid (``orders=[2, 4,
   8]``; the keyword ``verify_accountant(..., orders=...)`` is shorthand for it); ``q`` takes
   open or closed ends through ``q_closed``; ``sigma``, ``steps``, ``delta`` and ``epsilon``
   are closed ranges (``sigma=(0.5, 50)``, ``steps=(1, 10**6)``); ``relation`` is
   ``"add_remove"`` (default) or ``"replace_one"``. A check that needs an input outside the
   domain (the ``q = 1`` closed form, ``epsilon(q=1)``) or a reference the kit lacks (the RDP
   reference is add/remove only, so under ``"replace_one"`` RDP is held to the shape checks,
   ``q = 0`` and the bound ``2 alpha / sigma^2``) shows as ``[SKIP]`` with its reason, never as
   passed. Under ``"replace_one"``, epsilon and delta functions are also checked at one step
   against the exact ``"replace"`` hockey-stick divergence of :mod:`accounting.reference`
   (:func:`check_epsilon_hockey_stick`, :func:`check_delta_hockey_stick`). Bad values raise
   ``ValueError``/``TypeError`` naming the field, e.g. ``Domain.q: sample rates must lie in
   [0, 1]``. Every strategy and check below also takes ``domain=``.

4. Or pick single checks from :mod:`accounting.testing.properties` (monotonicity in ``q``,
   ``sigma``, ``steps``, ``delta``; RDP non-decreasing in ``alpha`` with ``(alpha - 1) RDP``
   convex; the ``q = 1`` closed form; subsampled <= unsubsampled; composition additivity; the
   ``delta(epsilon(delta))`` round trip; agreement with the mpmath reference
   :mod:`accounting.reference` within ``rtol = 1e-6``; ``eps(PLD) <= eps(RDP)``; one step
   never below the exact hockey-stick epsilon or delta), and the
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
from accounting.testing.domain import RELATIONS, Domain, Range
from accounting.testing.properties import (
    CheckResult,
    PropertyViolation,
    check_composition,
    check_delta_hockey_stick,
    check_delta_monotone,
    check_delta_reference,
    check_epsilon_hockey_stick,
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
    "RELATIONS",
    "CheckResult",
    "Domain",
    "PropertyViolation",
    "Range",
    "VerificationError",
    "VerificationReport",
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
    "properties",
    "reference_epsilon",
    "strategies",
    "verify_accountant",
]
