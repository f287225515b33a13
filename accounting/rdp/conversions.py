"""Conversions from Rényi-DP curves to (epsilon, delta)-DP.

Two conversions are offered:

``"classic"``
    Mironov 2017, "Rényi Differential Privacy", Proposition 3:
    ``epsilon = rdp(alpha) + log(1/delta) / (alpha - 1)``.
``"improved"``
    Canonne, Kamath and Steinke 2020, "The Discrete Gaussian for Differential Privacy",
    Proposition 12 (also Balle et al. 2020, "Hypothesis Testing Interpretations and Rényi
    Differential Privacy", Theorem 21):
    ``epsilon = rdp(alpha) + log1p(-1/alpha) - (log(delta) + log(alpha)) / (alpha - 1)``,
    together with the order-free bound ``delta <= sqrt(1 - exp(-rdp))`` at ``epsilon = 0``
    (Bretagnolle-Huber, since KL <= the RDP of any order > 1). This is what dp_accounting and
    Opacus use.

Each conversion takes the minimum over the orders supplied and reports the order attaining it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from accounting._validation import check_delta, check_epsilon, check_orders, check_real_array

__all__ = ["CONVERSIONS", "Conversion", "delta_from_rdp", "epsilon_from_rdp"]

Conversion = Literal["improved", "classic"]
CONVERSIONS: tuple[str, ...] = ("improved", "classic")


def check_conversion(conversion) -> str:
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, got {conversion!r}")
    return conversion


def _check_rdp_curve(rdp, orders) -> tuple[np.ndarray, np.ndarray]:
    orders = check_orders(orders)
    curve = np.atleast_1d(check_real_array(rdp, "rdp"))
    if curve.shape[-1] != orders.shape[0]:
        raise ValueError(
            f"rdp must have one value per order along its last axis: got {curve.shape[-1]} "
            f"values for {orders.shape[0]} orders"
        )
    if np.any(np.isnan(curve)) or np.any(curve < 0):
        raise ValueError("rdp values must be >= 0 (inf allowed), got a negative value or NaN")
    return curve, orders


def epsilon_from_rdp(
    rdp, orders, delta: float, conversion: Conversion = "improved"
) -> tuple[float, float]:
    """Smallest epsilon such that the RDP curve implies (epsilon, delta)-DP.

    Parameters
    ----------
    rdp : array_like
        Total RDP at each order (``>= 0``; ``inf`` allowed), along the last axis; leading axes
        are a batch of curves (e.g. a grid of configurations).
    orders : array_like
        Rényi orders ``> 1``, one per ``rdp`` value.
    delta : float
        Target delta in ``(0, 1)``.
    conversion : {"improved", "classic"}
        See the module docstring for the formulas and their sources.

    Returns
    -------
    (epsilon, order) : tuple of float, or of ndarray for a batch of curves
        ``epsilon >= 0``. ``epsilon`` is ``inf`` when every order's RDP is infinite (then the
        first order is reported).
    """
    curve, orders = _check_rdp_curve(rdp, orders)
    delta, conversion = check_delta(delta), check_conversion(conversion)
    candidates = epsilon_candidates(curve, orders, delta, conversion)
    best = np.argmin(candidates, axis=-1)
    epsilon = np.take_along_axis(candidates, best[..., None], -1)[..., 0]
    if curve.ndim == 1:
        return float(epsilon), float(orders[best])
    return epsilon, orders[best]


def epsilon_objective(orders: np.ndarray, delta: float, conversion: str):
    """``curve -> epsilon at each order`` (clipped at 0, non-decreasing in the curve).

    The order-dependent part is computed once: ``epsilon = curve + offset(alpha)``, and for the
    improved conversion epsilon is 0 where ``curve <= -log1p(-delta^2)`` (Bretagnolle-Huber:
    ``sqrt(1 - exp(-KL)) <= delta``). Unvalidated arguments.
    """
    offset, threshold = epsilon_offsets(orders, delta, conversion)

    def objective(curve: np.ndarray, _orders=None) -> np.ndarray:
        candidates = np.maximum(curve + offset, 0.0)  # inf stays inf
        if threshold >= 0.0:
            candidates[curve <= threshold] = 0.0
        return candidates

    return objective


def epsilon_offsets(orders: np.ndarray, delta: float, conversion: str) -> tuple[np.ndarray, float]:
    """``(offset, threshold)``: epsilon at order ``alpha`` is ``max(curve + offset(alpha), 0)``,
    and 0 where ``curve <= threshold`` (``-inf`` for the classic conversion, which has no
    order-free bound). Unvalidated arguments; see the module docstring for the formulas."""
    log_delta = np.log(delta)
    if conversion == "classic":
        return -log_delta / (orders - 1.0), -np.inf
    offset = np.log1p(-1.0 / orders) - (log_delta + np.log(orders)) / (orders - 1.0)
    return offset, -np.log1p(-(delta**2))


def epsilon_candidates(curve: np.ndarray, orders: np.ndarray, delta: float, conversion: str):
    """Epsilon implied by each order's RDP, clipped at 0 (unvalidated; non-decreasing in rdp)."""
    return epsilon_objective(orders, delta, conversion)(np.asarray(curve, dtype=float))


def delta_from_rdp(
    rdp, orders, epsilon: float, conversion: Conversion = "improved"
) -> tuple[float, float]:
    """Smallest delta such that the RDP curve implies (epsilon, delta)-DP.

    Parameters
    ----------
    rdp : array_like
        Total RDP at each order (``>= 0``; ``inf`` allowed), along the last axis; leading axes
        are a batch of curves.
    orders : array_like
        Rényi orders ``> 1``, one per ``rdp`` value.
    epsilon : float
        Target epsilon ``>= 0``.
    conversion : {"improved", "classic"}
        Classic: ``delta = exp((alpha - 1)(rdp - epsilon))``. Improved:
        ``log(delta) = (alpha - 1)(rdp - epsilon + log1p(-1/alpha)) - log(alpha)``, and
        ``delta <= sqrt(1 - exp(-rdp))`` (see the module docstring).

    Returns
    -------
    (delta, order) : tuple of float, or of ndarray for a batch of curves
        ``delta`` in ``[0, 1]``; 1 when every order's RDP is infinite.
    """
    curve, orders = _check_rdp_curve(rdp, orders)
    log_deltas = log_delta_candidates(
        curve, orders, check_epsilon(epsilon), check_conversion(conversion)
    )
    best = np.argmin(log_deltas, axis=-1)
    # delta is at most 1: clip in log space (no overflow for vacuous orders)
    delta = np.exp(np.minimum(np.take_along_axis(log_deltas, best[..., None], -1)[..., 0], 0.0))
    if curve.ndim == 1:
        return float(delta), float(orders[best])
    return delta, orders[best]


def log_delta_candidates(curve: np.ndarray, orders: np.ndarray, epsilon: float, conversion: str):
    """Log delta implied by each order's RDP (unvalidated; non-decreasing in ``curve``)."""
    # an epsilon near the float range sends log delta to -inf (delta 0): the right limit
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if conversion == "classic":
            log_deltas = (orders - 1.0) * (curve - epsilon)
        else:
            log_deltas = (orders - 1.0) * (curve - epsilon + np.log1p(-1.0 / orders)) - np.log(
                orders
            )
            log_deltas = np.minimum(log_deltas, 0.5 * np.log(-np.expm1(-curve)))
    return np.where(np.isinf(curve), 0.0, log_deltas)
