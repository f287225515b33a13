"""Hockey-stick divergence of one Poisson-subsampled Gaussian step, in mpmath.

:func:`hockey_stick_delta` is the privacy-loss-distribution side of the reference: the
``delta(epsilon)`` of one step for the remove, add and replace pairs, found by bisecting the
privacy loss for its root and integrating the densities' difference beyond it.
"""

from __future__ import annotations

import mpmath

from accounting.reference._checks import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    MAX_HOCKEY_STICK_EPSILON,
    check_digits,
    check_q,
    check_sigma,
    to_mpf,
)

__all__ = ["hockey_stick_delta"]

# Most doublings when bracketing the privacy loss's root in hockey_stick_delta (enough to reach
# any finite float epsilon at any float sigma).
_MAX_DOUBLINGS = 5000

#: Components ``(weight factor of q, mean)`` of the pairs of :mod:`accounting.pld.privacy_loss`,
#: written here independently: ``P`` then ``Q`` for each direction.
_PAIR_MEANS = {
    "remove": (((0, 0), (1, 1)), ((0, 0),)),
    "add": (((0, 0),), ((0, 0), (1, -1))),
    "replace": (((0, 0), (1, 1)), ((0, 0), (1, -1))),
}


def _mixture_density(q, sigma, components, x):
    """Density at ``x`` of ``sum w N(m, sigma^2)``; a component ``(0, m)`` has weight
    ``1 - q`` when the mixture has two components and 1 alone, ``(1, m)`` has weight ``q``."""
    total = mpmath.mpf(0)
    for kind, mean in components:
        weight = q if kind == 1 else (1 - q if len(components) == 2 else mpmath.mpf(1))
        total += weight * mpmath.npdf(x, mean, sigma)
    return total


def hockey_stick_delta(q, sigma, epsilon, direction: str, digits: int = DEFAULT_DIGITS):
    """``delta(eps) = int (p(x) - e^eps q(x))_+ dx`` of one Poisson-subsampled Gaussian step.

    The pairs ``(P, Q)`` are those of :mod:`accounting.pld.privacy_loss` (``"remove"``, ``"add"``,
    ``"replace"``). The loss ``log p / q`` increases in ``x``, so the integrand is positive
    exactly beyond the root ``x*`` of ``log p(x*) / q(x*) = eps``, found by bisection in
    ``mpmath``; ``int_{x*}^inf (p - e^eps q)`` is then integrated with ``mpmath.quad`` on pieces
    one ``sigma`` wide near ``x*`` (Balle and Wang 2018 give the same quantity in closed form
    for ``q = 1``).
    """
    q = check_q(q)
    sigma = check_sigma(sigma)
    digits = check_digits(digits)
    if not isinstance(direction, str) or direction not in _PAIR_MEANS:
        raise ValueError(f"direction must be one of {tuple(_PAIR_MEANS)}, got {direction!r}")
    p_parts, q_parts = _PAIR_MEANS[direction]
    with mpmath.workdps(digits + GUARD_DIGITS):
        eps = to_mpf(epsilon, "epsilon")
        if not 0 <= eps <= MAX_HOCKEY_STICK_EPSILON:
            raise ValueError(
                f"epsilon must lie in [0, {MAX_HOCKEY_STICK_EPSILON:g}] "
                f"(MAX_HOCKEY_STICK_EPSILON), got {epsilon!r:.60}"
            )
        factor = mpmath.exp(eps)

        def loss(x):
            return mpmath.log(_mixture_density(q, sigma, p_parts, x)) - mpmath.log(
                _mixture_density(q, sigma, q_parts, x)
            )

        def integrand(x):
            return _mixture_density(q, sigma, p_parts, x) - factor * _mixture_density(
                q, sigma, q_parts, x
            )

        # the loss is bounded above (add) or below (remove) when q < 1
        far = 60 * sigma + 2
        if direction == "add" and q < 1 and eps >= -mpmath.log1p(-q):
            return mpmath.mpf(0)
        if direction == "remove" and q < 1 and eps <= mpmath.log1p(-q):
            return 1 - factor
        low, high = -far, far
        for _ in range(_MAX_DOUBLINGS):
            if not loss(low) > eps:
                break
            low *= 2
        for _ in range(_MAX_DOUBLINGS):
            if not loss(high) < eps:
                break
            high *= 2
        if loss(low) > eps or loss(high) < eps:
            raise ArithmeticError(f"no root of the privacy loss found for epsilon={epsilon!r}")
        for _ in range(4 * mpmath.mp.prec):
            mid = (low + high) / 2
            if loss(mid) > eps:
                high = mid
            else:
                low = mid
            if high - low < mpmath.mpf(2) ** (-mpmath.mp.prec + 8) * (1 + abs(mid)):
                break
        root = (low + high) / 2
        points = [root + k * sigma for k in range(0, 41)] + [mpmath.inf]
        value = mpmath.quad(integrand, points)
    return +value
