"""High-precision (mpmath) reference for the Poisson-subsampled Gaussian mechanism.

This module is the ground truth that the tests compare the fast NumPy code against. It trades
speed for an independent, arbitrary-precision evaluation of the same quantities.

Notation. ``mu0 = N(0, sigma^2)``, ``mu1 = N(1, sigma^2)`` and ``mu = (1 - q) mu0 + q mu1`` for a
sample rate ``q`` in ``[0, 1]`` and a noise multiplier ``sigma > 0``. For an order ``alpha > 1``::

    A_alpha = E_{z ~ mu0}[(mu(z) / mu0(z))^alpha]
            = E_{z ~ mu0}[((1 - q) + q exp((2 z - 1) / (2 sigma^2)))^alpha],
    RDP(alpha) = log(A_alpha) / (alpha - 1)

(Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
Mechanism", Sec. 3.3). For an integer order the binomial theorem gives the exact finite sum::

    A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)).

The moments accountant of Abadi et al. 2016 ("Deep Learning with Differential Privacy") uses,
for an integer ``lambda >= 1``, the log moments ``log E_{mu}[(mu / mu0)^lambda]`` ("add",
equal to ``log A_{lambda + 1}``) and ``log E_{mu0}[(mu0 / mu)^lambda]`` ("remove"), and their
maximum ``alpha(lambda)``.

Two independent evaluation paths are offered:

* :func:`log_a_binomial` sums the binomial expansion in the form
  ``A - 1 = sum_{k >= 2} C(alpha, k) (1 - q)^(alpha - k) q^k expm1(k (k - 1) / (2 sigma^2))``
  (the terms ``k = 0, 1`` without the exponential add up with the others to exactly 1), a sum
  of non-negative terms, so ``log A = log1p(A - 1)`` keeps its relative precision even when
  ``A - 1`` is far below the working precision.
* :func:`log_a_integral` and :func:`log_moment` integrate numerically with ``mpmath.quad``. With
  ``r = mu / mu0`` and ``E_{mu0}[r] = 1``, for any exponent ``beta`` outside ``[0, 1]``

      E_{mu0}[r^beta] - 1 = E_{mu0}[r^beta - 1 - beta (r - 1)],

  and the integrand on the right is non-negative (convexity of ``r -> r^beta``), so it is
  integrated without cancellation. ``beta = alpha`` gives ``A_alpha``, ``beta = lambda + 1`` the
  add moment (``mu r^lambda = mu0 r^(lambda + 1)``) and ``beta = -lambda`` the remove moment
  (``mu0 (mu0 / mu)^lambda = mu0 r^(-lambda)``).

All work is done with ``digits + 10`` decimal digits. The numerical integration fails loudly: it
raises :class:`ArithmeticError` when its estimated error is not below ``2^-(working bits - 30)``
of the integral.

Layout. This module is the public API; the work behind it is split by subject:

* :mod:`accounting.reference._checks`: the argument checks, the limits they enforce
  (:data:`MAX_ORDER`, :data:`MAX_DIGITS`, :data:`DEFAULT_DIGITS`, :data:`INTEGRAL_NOISE_RANGE`,
  :data:`MAX_HOCKEY_STICK_EPSILON`, re-exported here) and the guard digits;
* :mod:`accounting.reference._quadrature`: the mpmath integration engine behind
  :func:`log_a_integral` and :func:`log_moment` (breakpoints, quadrature rules, error control;
  its docstring derives them);
* :mod:`accounting.reference._conversions`: :func:`moments_epsilon`,
  :func:`rdp_to_epsilon_classic` and :func:`rdp_to_epsilon_improved`;
* :mod:`accounting.reference._hockey_stick`: :func:`hockey_stick_delta`.
"""

from __future__ import annotations

import mpmath

from accounting.reference._checks import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    INTEGRAL_NOISE_RANGE,
    MAX_DIGITS,
    MAX_HOCKEY_STICK_EPSILON,
    MAX_ORDER,
    check_alpha,
    check_digits,
    check_integer,
    check_integral_sigma,
    check_q,
    check_sigma,
)
from accounting.reference._conversions import (
    moments_epsilon,
    rdp_to_epsilon_classic,
    rdp_to_epsilon_improved,
)
from accounting.reference._hockey_stick import hockey_stick_delta
from accounting.reference._quadrature import log_mean_power

__all__ = [
    "DEFAULT_DIGITS",
    "INTEGRAL_NOISE_RANGE",
    "MAX_DIGITS",
    "MAX_HOCKEY_STICK_EPSILON",
    "MAX_ORDER",
    "hockey_stick_delta",
    "log_a_binomial",
    "log_a_integral",
    "log_moment",
    "moments_epsilon",
    "rdp",
    "rdp_to_epsilon_classic",
    "rdp_to_epsilon_improved",
]


# ---------------------------------------------------------------------------------------------
# Binomial sum (integer orders)
# ---------------------------------------------------------------------------------------------


def _log_a_binomial_mp(q: mpmath.mpf, sigma: mpmath.mpf, n: int) -> mpmath.mpf:
    """``log A_n`` from the non-negative sum for ``A_n - 1``, at the current precision."""
    if q == 0:
        return mpmath.mpf(0)
    c = 1 / (2 * sigma**2)
    if q == 1:
        return n * (n - 1) * c
    one_minus_q = 1 - q
    ratio = q / one_minus_q
    term = one_minus_q**n  # C(n, 0) (1 - q)^n q^0
    total = mpmath.mpf(0)
    for k in range(1, n + 1):
        term = term * ratio * (n - k + 1) / k  # C(n, k) (1 - q)^(n - k) q^k
        if k >= 2:
            total += term * mpmath.expm1(k * (k - 1) * c)
    return mpmath.log1p(total)


def log_a_binomial(q, sigma, alpha: int, digits: int = DEFAULT_DIGITS) -> mpmath.mpf:
    """``log A_alpha`` for an integer order by the exact binomial expansion.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : int
        Integer Rényi order ``>= 2`` (an integral float is accepted).
    digits : int
        Significant decimal digits wanted (``>= 15``); 10 guard digits are added internally.

    Returns
    -------
    mpmath.mpf
        ``log A_alpha`` where (Mironov, Talwar and Zhang 2019, Sec. 3.3)

        ``A_alpha = sum_{k=0}^{alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2))``.

        The sum is evaluated as ``log1p(sum_{k>=2} C(alpha,k) (1-q)^(alpha-k) q^k
        expm1((k^2-k)/(2 sigma^2)))``, whose terms are all non-negative, so the result keeps
        its relative precision even when ``A_alpha - 1`` is tiny. ``q = 0`` gives 0 and
        ``q = 1`` gives ``alpha (alpha - 1) / (2 sigma^2)``.

    Notes
    -----
    The cost is ``alpha`` multiply-adds and exponentials at the working precision (about half
    a second for ``alpha = 10^4`` at 50 digits).
    """
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        q_mp = check_q(q)
        sigma_mp = check_sigma(sigma)
        check_alpha(alpha)
        n = check_integer(alpha, "alpha", 2)
        return _log_a_binomial_mp(q_mp, sigma_mp, n)


# ---------------------------------------------------------------------------------------------
# Numerical integration (any order; both directions of the moments accountant)
# ---------------------------------------------------------------------------------------------


def log_a_integral(q, sigma, alpha, digits: int = DEFAULT_DIGITS) -> mpmath.mpf:
    """``log A_alpha`` for any real order ``alpha > 1`` by numerical integration.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : float
        Rényi order ``> 1``, integer or fractional.
    digits : int
        Significant decimal digits wanted (``>= 15``); 10 guard digits are added internally.

    Returns
    -------
    mpmath.mpf
        ``log A_alpha`` with ``A_alpha = E_{z~mu0}[((1-q) + q exp((2z-1)/(2 sigma^2)))^alpha]``
        (Mironov, Talwar and Zhang 2019, Sec. 3.3), computed as ``log1p`` of
        ``E_{mu0}[(1 + y)^alpha - 1 - alpha y]`` with ``y = mu/mu0 - 1`` (the integrand is
        non-negative and ``E_{mu0}[y] = 0``). ``q = 0`` gives 0.

    Raises
    ------
    ValueError
        For ``q`` outside ``[0, 1]``, ``sigma <= 0``, ``alpha <= 1`` or ``digits < 15``.
    ArithmeticError
        If the error estimate of ``mpmath.quad`` is not small relative to the result.

    Notes
    -----
    The quadrature targets the full working precision (``digits + 10``) relative to the
    integral and fails loudly if its error estimate exceeds about ``2^30`` units of it, so
    ``A_alpha - 1`` (hence ``log A_alpha``) has about ``digits`` correct significant digits.
    """
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        q_mp = check_q(q)
        sigma_mp = check_sigma(sigma)
        alpha_mp = check_alpha(alpha)
        if q_mp == 0:
            return mpmath.mpf(0)
        check_integral_sigma(sigma_mp)
        return log_mean_power(q_mp, sigma_mp, alpha_mp)


def rdp(q, sigma, alpha, digits: int = DEFAULT_DIGITS, method: str = "auto") -> mpmath.mpf:
    """Rényi-DP of order ``alpha`` of one step of the Poisson-subsampled Gaussian mechanism.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : float
        Rényi order ``> 1``.
    digits : int
        Significant decimal digits wanted (``>= 15``).
    method : {"auto", "binomial", "integral"}
        ``"auto"`` uses :func:`log_a_binomial` for integral ``alpha`` and
        :func:`log_a_integral` otherwise; the other two force one path (``"binomial"`` needs
        an integral ``alpha``).

    Returns
    -------
    mpmath.mpf
        ``RDP(alpha) = log(A_alpha) / (alpha - 1)`` (Mironov, Talwar and Zhang 2019,
        Sec. 3.3). ``q = 0`` gives 0 and ``q = 1`` gives the Gaussian mechanism's
        ``alpha / (2 sigma^2)`` exactly.
    """
    if method not in ("auto", "binomial", "integral"):
        raise ValueError(f"method must be 'auto', 'binomial' or 'integral', got {method!r}")
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        q_mp = check_q(q)
        sigma_mp = check_sigma(sigma)
        alpha_mp = check_alpha(alpha)
        if q_mp == 0:
            return mpmath.mpf(0)
        if q_mp == 1:
            return alpha_mp / (2 * sigma_mp**2)
        integral_order = alpha_mp == mpmath.floor(alpha_mp)
        if method == "binomial" or (method == "auto" and integral_order):
            n = check_integer(alpha_mp, "alpha", 2)
            log_a = _log_a_binomial_mp(q_mp, sigma_mp, n)
        else:
            check_integral_sigma(sigma_mp)
            log_a = log_mean_power(q_mp, sigma_mp, alpha_mp)
        return log_a / (alpha_mp - 1)


def log_moment(
    q, sigma, lam: int, digits: int = DEFAULT_DIGITS, direction: str = "max"
) -> mpmath.mpf:
    """Log moment of the privacy loss of the moments accountant (Abadi et al. 2016).

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    lam : int
        Moment order ``lambda >= 1``.
    digits : int
        Significant decimal digits wanted (``>= 15``).
    direction : {"max", "add", "remove"}
        ``"add"``: ``log E_{z~mu}[(mu(z)/mu0(z))^lambda]`` (``= log A_{lambda+1}``);
        ``"remove"``: ``log E_{z~mu0}[(mu0(z)/mu(z))^lambda]``; ``"max"``: the larger of the
        two, Abadi et al.'s ``alpha(lambda)``.

    Returns
    -------
    mpmath.mpf
        The log moment, computed by numerical integration over the densities, independently
        of the binomial sum: with ``r = mu/mu0`` the add moment is ``E_{mu0}[r^(lambda+1)]``
        (since ``mu r^lambda = mu0 r^(lambda+1)``) and the remove moment is
        ``E_{mu0}[r^(-lambda)]`` (the integrand ``mu0^(lambda+1) / mu^lambda``); each is
        integrated as ``1 + E_{mu0}[r^beta - 1 - beta (r - 1)]`` with a non-negative
        integrand. Mironov, Talwar and Zhang 2019 (Theorem 5) show the add direction
        dominates.
    """
    if direction not in ("max", "add", "remove"):
        raise ValueError(f"direction must be 'max', 'add' or 'remove', got {direction!r}")
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        q_mp = check_q(q)
        sigma_mp = check_sigma(sigma)
        n = check_integer(lam, "lam", 1)
        if n > MAX_ORDER - 1:
            raise ValueError(f"lam must be a whole number in [1, {MAX_ORDER - 1}], got {lam!r}")
        if q_mp == 0:
            return mpmath.mpf(0)
        if q_mp == 1:  # mu = mu1: both directions are the Gaussian's lambda (lambda+1)/(2 sigma^2)
            return n * (n + 1) / (2 * sigma_mp**2)
        check_integral_sigma(sigma_mp)
        results = []
        if direction in ("add", "max"):
            results.append(log_mean_power(q_mp, sigma_mp, mpmath.mpf(n + 1)))
        if direction in ("remove", "max"):
            results.append(log_mean_power(q_mp, sigma_mp, mpmath.mpf(-n)))
        return max(results)
