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
from scipy import optimize, special

from accounting._validation import (
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_sample_rate,
    check_steps,
)

__all__ = ["gaussian_delta", "gaussian_epsilon", "gdp_delta", "gdp_epsilon", "gdp_mu"]


def _mu_delta(mu: float, epsilon: float) -> float:
    """``Phi(-eps/mu + mu/2) - exp(eps) Phi(-eps/mu - mu/2)`` without overflow."""
    if mu == 0.0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    a = -epsilon / mu + mu / 2.0
    b = -epsilon / mu - mu / 2.0
    # exp(eps) Phi(b) = exp(eps + log Phi(b)); both terms in log space, subtract stably
    log_first = special.log_ndtr(a)
    log_second = epsilon + special.log_ndtr(b)
    if log_second >= log_first:
        return 0.0
    return float(np.exp(log_first) * -np.expm1(log_second - log_first))


def _mu_epsilon(mu: float, delta: float) -> float:
    """Smallest ``eps >= 0`` with ``delta(eps) <= delta`` for ``mu``-GDP."""
    if mu == 0.0 or _mu_delta(mu, 0.0) <= delta:
        return 0.0
    high = 1.0
    while _mu_delta(mu, high) > delta:
        high *= 2.0
    return float(optimize.brentq(lambda e: _mu_delta(mu, e) - delta, 0.0, high, xtol=1e-14,
                                 rtol=1e-15))


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
    sigma = float(check_noise_multiplier(noise_multiplier))
    steps = check_steps(steps)
    return _mu_delta(math.sqrt(steps) / sigma, epsilon)


def gaussian_epsilon(delta: float, noise_multiplier: float, steps: int = 1) -> float:
    """Exact epsilon of ``steps`` compositions of the Gaussian mechanism at ``delta``."""
    delta = check_delta(delta)
    sigma = float(check_noise_multiplier(noise_multiplier))
    steps = check_steps(steps)
    return _mu_epsilon(math.sqrt(steps) / sigma, delta)


def gdp_mu(sample_rate: float, noise_multiplier: float, steps: int) -> float:
    """CLT estimate ``mu = q sqrt(T (exp(1/sigma^2) - 1))`` (Dong, Roth, Su; approximation)."""
    q = float(check_sample_rate(sample_rate))
    sigma = float(check_noise_multiplier(noise_multiplier))
    steps = check_steps(steps)
    exponent = 1.0 / sigma**2
    if exponent > 700:
        return math.inf if q > 0 and steps > 0 else 0.0
    return q * math.sqrt(steps * math.expm1(exponent))


def gdp_epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """Epsilon of the CLT mu-GDP approximation at ``delta``. **Not an upper bound.**"""
    delta = check_delta(delta)
    mu = gdp_mu(sample_rate, noise_multiplier, steps)
    return math.inf if math.isinf(mu) else _mu_epsilon(mu, delta)


def gdp_delta(sample_rate: float, noise_multiplier: float, steps: int, epsilon: float) -> float:
    """Delta of the CLT mu-GDP approximation at ``epsilon``. **Not an upper bound.**"""
    epsilon = check_epsilon(epsilon)
    return _mu_delta(gdp_mu(sample_rate, noise_multiplier, steps), epsilon)
