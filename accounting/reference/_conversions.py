"""Epsilon of ``(epsilon, delta)``-DP from log moments or from an RDP curve, in mpmath.

The moments accountant's tail bound (:func:`moments_epsilon`) and the classic and improved
conversions of an RDP curve (:func:`rdp_to_epsilon_classic`, :func:`rdp_to_epsilon_improved`),
each a minimum over the orders at ``digits + 10`` working digits.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import mpmath

from accounting.reference._checks import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    check_alpha,
    check_delta,
    check_digits,
    check_integer,
    to_mpf,
)

__all__ = ["moments_epsilon", "rdp_to_epsilon_classic", "rdp_to_epsilon_improved"]

# Orders accepted by the conversions (cheap at any order): accounting.MAX_ORDER, as the fast ones.
_CONVERSION_MAX_ORDER = 1_000_000


def _moment_items(log_moments_total) -> list[tuple[object, object]]:
    if isinstance(log_moments_total, Mapping):
        items = list(log_moments_total.items())
    elif isinstance(log_moments_total, (str, bytes)) or not isinstance(log_moments_total, Iterable):
        raise TypeError("log_moments_total must be a mapping or a sequence")
    else:
        items = []
        for index, entry in enumerate(log_moments_total):
            if isinstance(entry, (numbers.Real, mpmath.mpf)):
                items.append((index + 1, entry))
                continue
            pair = list(entry)
            if len(pair) != 2:
                raise ValueError("log_moments_total pairs must be (lambda, log moment)")
            items.append((pair[0], pair[1]))
    if not items:
        raise ValueError("log_moments_total must not be empty")
    return items


def moments_epsilon(
    log_moments_total, delta, digits: int = DEFAULT_DIGITS
) -> tuple[mpmath.mpf, int]:
    """Epsilon of the moments accountant's tail bound (Abadi et al. 2016, Theorem 2).

    Parameters
    ----------
    log_moments_total : mapping or sequence
        Total log moment ``sum_steps alpha(lambda)`` per moment order ``lambda``: a mapping
        ``{lambda: value}``, a sequence of ``(lambda, value)`` pairs, or a plain sequence of
        values for ``lambda = 1, 2, ...``.
    delta : float
        Target delta in ``(0, 1)``.
    digits : int
        Significant decimal digits of the arithmetic (``>= 15``).

    Returns
    -------
    (epsilon, lambda) : tuple of (mpmath.mpf, int)
        ``epsilon = min_lambda (alpha(lambda) + log(1/delta)) / lambda`` and the ``lambda``
        attaining it (the first one on ties; the first one if every moment is infinite).
    """
    digits = check_digits(digits)
    items = _moment_items(log_moments_total)
    with mpmath.workdps(digits + GUARD_DIGITS):
        log_inv_delta = -mpmath.log(check_delta(delta))
        best: tuple[mpmath.mpf, int] | None = None
        for lam, value in items:
            n = check_integer(lam, "lambda", 1)
            moment = to_mpf(value, "log moment")
            if mpmath.isnan(moment):
                raise ValueError(f"log moment for lambda={n} is NaN")
            epsilon = (moment + log_inv_delta) / n
            if best is None or epsilon < best[0]:
                best = (epsilon, n)
        return best


def _as_list(values, name: str) -> list:
    """One number or a sequence of numbers, as a list."""
    if isinstance(values, numbers.Real):
        return [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {values!r:.60}")
    return list(values)


def _rdp_items(rdp_values, orders) -> list[tuple[mpmath.mpf, mpmath.mpf, object]]:
    rdp_list = _as_list(rdp_values, "rdp_values")
    order_list = _as_list(orders, "orders")
    if len(rdp_list) != len(order_list):
        raise ValueError(
            f"rdp_values must have one value per order: got {len(rdp_list)} values for "
            f"{len(order_list)} orders"
        )
    if not order_list:
        raise ValueError("orders must not be empty")
    items = []
    for value, order in zip(rdp_list, order_list, strict=True):
        alpha = check_alpha(order, _CONVERSION_MAX_ORDER)
        rdp_mp = to_mpf(value, "rdp_values")
        if mpmath.isnan(rdp_mp) or rdp_mp < 0:
            raise ValueError(f"rdp_values must be >= 0 (inf allowed), got {value!r}")
        items.append((rdp_mp, alpha, order))
    return items


def rdp_to_epsilon_classic(
    rdp_values, orders, delta, digits: int = DEFAULT_DIGITS
) -> tuple[mpmath.mpf, object]:
    """Epsilon from an RDP curve by the classic conversion (Mironov 2017, Proposition 3).

    Parameters
    ----------
    rdp_values : sequence of float
        RDP at each order (``>= 0``, ``inf`` allowed).
    orders : sequence of float
        Rényi orders ``> 1``, one per value.
    delta : float
        Target delta in ``(0, 1)``.
    digits : int
        Significant decimal digits of the arithmetic (``>= 15``).

    Returns
    -------
    (epsilon, order)
        ``epsilon = min_alpha rdp(alpha) + log(1/delta) / (alpha - 1)`` as an mpf, and the
        order attaining it as it was passed in (the first one on ties).
    """
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        log_inv_delta = -mpmath.log(check_delta(delta))
        return _minimum_over_orders(
            rdp_values, orders, lambda rdp_mp, alpha: rdp_mp + log_inv_delta / (alpha - 1)
        )


def rdp_to_epsilon_improved(
    rdp_values, orders, delta, digits: int = DEFAULT_DIGITS
) -> tuple[mpmath.mpf, object]:
    """Epsilon from an RDP curve by the improved conversion.

    Canonne, Kamath and Steinke 2020, "The Discrete Gaussian for Differential Privacy",
    Proposition 12 (also Balle et al. 2020, Theorem 21).

    Parameters
    ----------
    rdp_values : sequence of float
        RDP at each order (``>= 0``, ``inf`` allowed).
    orders : sequence of float
        Rényi orders ``> 1``, one per value.
    delta : float
        Target delta in ``(0, 1)``.
    digits : int
        Significant decimal digits of the arithmetic (``>= 15``).

    Returns
    -------
    (epsilon, order)
        ``epsilon = max(0, min_alpha rdp(alpha) + log1p(-1/alpha) - log(delta alpha) /
        (alpha - 1))`` as an mpf, and the order attaining the minimum as it was passed in
        (the first one on ties).
    """
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        log_delta = mpmath.log(check_delta(delta))
        epsilon, order = _minimum_over_orders(
            rdp_values,
            orders,
            lambda rdp_mp, alpha: (
                rdp_mp + mpmath.log1p(-1 / alpha) - (log_delta + mpmath.log(alpha)) / (alpha - 1)
            ),
        )
        return max(epsilon, mpmath.mpf(0)), order


def _minimum_over_orders(rdp_values, orders, candidate) -> tuple[mpmath.mpf, object]:
    """``min`` over the orders of ``candidate(rdp, alpha)`` and the order attaining it (first
    on ties), at the caller's working precision."""
    best = None
    for rdp_mp, alpha, order in _rdp_items(rdp_values, orders):
        value = candidate(rdp_mp, alpha)
        if best is None or value < best[0]:
            best = (value, order)
    return best
