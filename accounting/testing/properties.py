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
decides every example with mpmath (slower: a high-precision quadrature per fractional order).

Every check takes ``domain=``, a :class:`~accounting.testing.Domain` of the inputs the
accountant supports, and draws only inside it. A check that needs an input outside the domain
(``q = 1`` for the closed form or for ``epsilon(q=1)``, ``steps = 1`` for the hockey-stick
checks), or a reference the kit lacks for the domain's neighbouring relation (the RDP reference
is add/remove), returns a *skipped* :class:`CheckResult` (``passed=False, skipped=True``,
``[SKIP]`` with the reason) instead of running; it never raises for that.

Layout: this module is the public face of the single checks and only re-exports them, each
module below having one job:

* :mod:`accounting.testing._harness` runs a check: Hypothesis settings, shrinking to a minimal
  counterexample, :class:`CheckResult` and :class:`PropertyViolation`, the ``[SKIP]`` of a check
  not applicable to the domain, and the messages' formatting;
* :mod:`accounting.testing.rdp_checks` holds RDP functions to their properties
  (``check_rdp_*``);
* :mod:`accounting.testing.epsilon_delta_checks` holds epsilon and delta functions to theirs
  (``check_epsilon_*``, ``check_delta_*``, :func:`check_round_trip`,
  :func:`check_pld_below_rdp`, :func:`reference_epsilon`);
* :mod:`accounting.testing.accountant_checks` holds an accountant's composition to its
  additivity (:func:`check_composition`).
"""

from __future__ import annotations

from accounting.testing._harness import REFERENCE_RTOL as REFERENCE_RTOL
from accounting.testing._harness import SHAPE_RTOL as SHAPE_RTOL
from accounting.testing._harness import CheckResult, PropertyViolation
from accounting.testing.accountant_checks import AccountantFactory, check_composition
from accounting.testing.epsilon_delta_checks import (
    DeltaFunction,
    EpsilonFunction,
    check_delta_hockey_stick,
    check_delta_monotone,
    check_delta_reference,
    check_epsilon_hockey_stick,
    check_epsilon_monotone,
    check_epsilon_reference,
    check_epsilon_subsampling_bound,
    check_pld_below_rdp,
    check_round_trip,
    reference_epsilon,
)
from accounting.testing.rdp_checks import (
    RdpFunction,
    check_rdp_closed_form,
    check_rdp_monotone_in_noise,
    check_rdp_monotone_in_sample_rate,
    check_rdp_order_shape,
    check_rdp_reference,
    check_rdp_subsampling_bound,
)

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
