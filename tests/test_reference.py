"""The mpmath reference checked against itself and against direct evaluations."""

from __future__ import annotations

import mpmath
import pytest

from accounting import reference


@pytest.mark.parametrize(
    ("q", "sigma", "alpha"),
    [(1e-8, 1e4, 2), (0.01, 1.1, 7), (0.5, 0.1, 64), (0.3, 2.0, 1000), (0.999, 0.5, 3)],
)
def test_integral_and_binomial_paths_agree(q, sigma, alpha):
    by_sum = reference.log_a_binomial(q, sigma, alpha)
    by_integral = reference.log_a_integral(q, sigma, alpha)
    assert abs(by_sum - by_integral) <= mpmath.mpf(10) ** -40 * abs(by_sum)


@pytest.mark.parametrize(("q", "sigma", "alpha"), [(0.01, 1.0, 2.5), (0.2, 0.7, 6.3)])
def test_integral_matches_plain_quadrature_of_a(q, sigma, alpha):
    # Independent of the A - 1 rewriting: integrate E_{mu0}[(mu/mu0)^alpha] itself at 80 digits.
    with mpmath.workdps(80):
        q_, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)

        def integrand(t):
            return mpmath.npdf(t) * ((1 - q_) + q_ * mpmath.exp(t / s - 1 / (2 * s * s))) ** a

        plain = mpmath.log(mpmath.quad(integrand, [-mpmath.inf, -10, 0, 10, 20, mpmath.inf]))
    assert abs(reference.log_a_integral(q, sigma, alpha) - plain) <= mpmath.mpf(10) ** -40


def test_closed_forms():
    assert reference.rdp(1.0, 2.0, 3.5) == mpmath.mpf(3.5) / 8
    assert reference.rdp(0.0, 2.0, 3.5) == 0
    # A_2 = 1 + q^2 (exp(1/sigma^2) - 1).
    with mpmath.workdps(60):
        exact = mpmath.log1p(mpmath.mpf(0.1) ** 2 * mpmath.expm1(1 / mpmath.mpf(0.9) ** 2))
    assert abs(reference.rdp(0.1, 0.9, 2) - exact) <= mpmath.mpf(10) ** -45


def test_moments_and_conversions():
    moments = {
        lam: 1000 * reference.log_moment(0.01, 1.1, lam, digits=30, direction="add")
        for lam in (4, 8, 16)
    }
    epsilon, lam = reference.moments_epsilon(moments, 1e-5)
    orders = [lam_ + 1 for lam_ in moments]
    rdp = [moments[lam_] / lam_ for lam_ in moments]
    classic, order = reference.rdp_to_epsilon_classic(rdp, orders, 1e-5)
    assert abs(epsilon - classic) <= mpmath.mpf(10) ** -25 * epsilon
    assert order == lam + 1
    improved, _ = reference.rdp_to_epsilon_improved(rdp, orders, 1e-5)
    assert improved < classic


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: reference.rdp(1.5, 1.0, 2), "q"),
        (lambda: reference.rdp(0.1, 0.0, 2), "sigma"),
        (lambda: reference.rdp(0.1, 1.0, 1.0), "alpha"),
        (lambda: reference.rdp(0.1, 1.0, 2, digits=5), "digits"),
    ],
)
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()
