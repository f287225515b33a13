"""Gaussian-mechanism closed forms and the Gaussian-DP (CLT) approximation of DP-SGD.

* :func:`gaussian_delta` / :func:`gaussian_epsilon`: the exact privacy profile of the Gaussian
  mechanism with sensitivity 1 and noise ``sigma`` (Balle and Wang 2018, "Improving the Gaussian
  mechanism for differential privacy", Theorem 8), with ``mu = 1 / sigma``:
  ``delta(eps) = Phi(-eps/mu + mu/2) - exp(eps) Phi(-eps/mu - mu/2)``. ``T`` compositions of it
  are the same profile with ``mu = sqrt(T) / sigma``.
* :func:`gdp_mu` / :func:`gdp_epsilon`: the central-limit approximation of Poisson-subsampled
  DP-SGD by mu-GDP (Dong, Roth, Su 2022, "Gaussian differential privacy", Theorem 5 / Corollary
  5.4; Bu, Dong, Long, Su 2020): ``mu = q sqrt(T (exp(1/sigma^2) - 1))``. **An approximation,
  not an upper bound**: it can be below the true epsilon (on the four benchmark settings it is
  2-6% below the certified PLD lower bound), so never report it as a privacy guarantee.
"""

from __future__ import annotations

import math

import numpy as np

from accounting import _scipy
from accounting._validation import (
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_sample_rate,
    check_steps,
    count_as_float,
)

__all__ = ["gaussian_delta", "gaussian_epsilon", "gdp_delta", "gdp_epsilon", "gdp_mu"]


def step_total_variation(sample_rate, noise_multiplier):
    """Total variation ``TV(mu, mu0) = q (2 Phi(1 / (2 sigma)) - 1) = q erf(1 / (2 sqrt(2)
    sigma))`` of one Poisson-subsampled Gaussian step. Broadcasts over its arguments."""
    with np.errstate(over="ignore"):  # subnormal sigma: erf(inf) = 1, the right value
        return sample_rate * _scipy.special.erf(np.sqrt(0.125) / noise_multiplier)


def _mu_delta(mu: float, epsilon: float) -> float:
    """``Phi(-eps/mu + mu/2) - exp(eps) Phi(-eps/mu - mu/2)`` without overflow."""
    if mu == 0.0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    a = -epsilon / mu + mu / 2.0
    b = -epsilon / mu - mu / 2.0
    # exp(eps) Phi(b) = exp(eps + log Phi(b)); both terms in log space, subtract stably
    log_first = _scipy.special.log_ndtr(a)
    log_second = epsilon + _scipy.special.log_ndtr(b)
    if log_second >= log_first:
        return 0.0
    return float(np.exp(log_first) * -np.expm1(log_second - log_first))


def mu_epsilon(mu: float, delta: float) -> float:
    """Smallest ``eps >= 0`` with ``delta(eps) <= delta`` for ``mu``-GDP (``inf`` past floats)."""
    if mu == 0.0 or _mu_delta(mu, 0.0) <= delta:
        return 0.0
    if math.isinf(mu):
        return math.inf
    high = 1.0
    while _mu_delta(mu, high) > delta:
        if high > 1e307:  # about mu^2 / 2: the answer is beyond the float range
            return math.inf
        high *= 2.0
    return float(_scipy.optimize.brentq(lambda e: _mu_delta(mu, e) - delta, 0.0, high, xtol=1e-14,
                                 rtol=1e-15))


def _sqrt_count(steps: int) -> float:
    """``sqrt(steps)`` for any int (``10**400`` too), as a float."""
    count = count_as_float(steps)
    return math.sqrt(count) if math.isfinite(count) else math.exp(0.5 * math.log(steps))


def _inverse(sigma: float) -> float:
    """``1 / sigma`` (``inf`` where it overflows, for subnormal ``sigma``)."""
    return float(np.divide(1.0, sigma)) if sigma >= 1e-300 else math.inf


def gaussian_delta(epsilon: float, noise_multiplier: float, steps: int = 1) -> float:
    """Exact delta of ``steps`` compositions of the Gaussian mechanism (sensitivity 1).

    Parameters
    ----------
    epsilon : float
        ``>= 0``.
    noise_multiplier : float
        Noise standard deviation over the sensitivity, ``> 0``.
    steps : int
        Number of compositions, ``>= 0``.
    """
    epsilon = check_epsilon(epsilon)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    steps = check_steps(steps)
    return _mu_delta(_gaussian_mu(sigma, steps), epsilon)


def gaussian_epsilon(delta: float, noise_multiplier: float, steps: int = 1) -> float:
    """Exact epsilon of ``steps`` compositions of the Gaussian mechanism at ``delta``.

    ``inf`` where it exceeds the float range (``sqrt(steps) / sigma`` above about ``1e154``).
    """
    delta = check_delta(delta)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    steps = check_steps(steps)
    return mu_epsilon(_gaussian_mu(sigma, steps), delta)


def _gaussian_mu(sigma: float, steps: int) -> float:
    """``sqrt(steps) / sigma`` without overflow errors (``inf`` past the float range)."""
    if steps == 0:
        return 0.0
    with np.errstate(over="ignore"):
        return float(np.float64(_sqrt_count(steps)) * _inverse(sigma))


def gdp_mu(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    """CLT estimate ``mu = q sqrt(T (exp(1/sigma^2) - 1))`` (Dong, Roth, Su; approximation).

    Any ``sigma > 0`` and any number of steps: ``inf`` when ``1 / sigma^2 > 700`` (``sigma``
    below about 0.0378) or the product leaves the float range, about ``q sqrt(T) / sigma``
    for huge ``sigma`` (0 once that underflows), 0 when ``q = 0`` or ``steps = 0``.
    """
    q = check_sample_rate(sample_rate, scalar=True)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    steps = check_steps(steps)
    if q == 0.0 or steps == 0:
        return 0.0
    inverse = _inverse(sigma)
    exponent = inverse * inverse
    if exponent > 700.0:  # exp(1/sigma^2) near overflow: past any useful mu
        return math.inf
    # sqrt(expm1(x)) = sqrt(x) sqrt(expm1(x) / x), kept apart so that a tiny x does not
    # underflow before it is multiplied by sqrt(T)
    ratio = math.expm1(exponent) / exponent if exponent > 0.0 else 1.0
    with np.errstate(over="ignore", under="ignore"):
        mu = np.float64(q) * _sqrt_count(steps) * inverse * math.sqrt(ratio)
    return float(mu)


def gdp_epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """Epsilon of the CLT mu-GDP approximation at ``delta``. **Not an upper bound.**"""
    delta = check_delta(delta)
    return mu_epsilon(gdp_mu(sample_rate, noise_multiplier, steps), delta)


def gdp_delta(sample_rate: float, noise_multiplier: float, steps: int, epsilon: float) -> float:
    """Delta of the CLT mu-GDP approximation at ``epsilon``. **Not an upper bound.**"""
    epsilon = check_epsilon(epsilon)
    return _mu_delta(gdp_mu(sample_rate, noise_multiplier, steps), epsilon)
