"""Exact minimisation over Rényi orders that evaluates only the orders that can win.

Converting an RDP curve to epsilon (or delta) takes a minimum over orders of a quantity that is
non-decreasing in the RDP value. Most orders cannot attain it, and the fractional ones are the
costly ones to evaluate, so the search

1. evaluates cheap *anchor* orders: integer orders 2 .. 12 and a few up to 64;
2. bounds every other order's RDP from below using facts about any RDP curve: it is
   non-decreasing in the order, and ``g(alpha) = (alpha - 1) RDP(alpha)`` is convex with
   ``g(1) = 0`` (van Erven and Harremoës 2014, "Rényi Divergence and Kullback-Leibler
   Divergence", Theorems 3 and 11; sums over composed steps keep both), so ``g`` lies above the
   extension of every chord between anchors; and an optional *floor* valid at every order (the
   caller's lower bound on the KL divergence, the RDP of order 1);
3. evaluates exactly those orders whose lower bound could still beat the best anchor.

Every order left out provably cannot attain the minimum, so the result equals the minimum over
all orders.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["minimize_over_orders"]

_ANCHOR_ORDERS = frozenset([*range(2, 13), 16, 20, 24, 32, 40, 48, 64])
# Lower bounds are shrunk by this relative margin so rounding can never prune a winner.
_MARGIN = 1e-9


def _anchor_mask(orders: np.ndarray) -> np.ndarray:
    anchors = np.isin(orders, list(_ANCHOR_ORDERS))
    if np.count_nonzero(anchors) < 3:
        return np.ones(orders.shape, dtype=bool)
    return anchors


def _lower_bounds(values: np.ndarray, anchors: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Lower bounds on the RDP at every order from the values at the anchor orders.

    ``values`` has shape ``(batch, n_orders)`` and is filled at the anchor columns.
    """
    points = np.concatenate(([1.0], orders[anchors]))
    scaled = np.concatenate(
        (np.zeros((values.shape[0], 1)), (orders[anchors] - 1.0) * values[:, anchors]), axis=1
    )
    count = points.size
    position = np.searchsorted(points, orders, side="left")  # first anchor >= order
    below = np.clip(position - 1, 0, count - 1)
    below2 = np.clip(position - 2, 0, count - 1)
    above = np.clip(position, 0, count - 1)
    above2 = np.clip(position + 1, 0, count - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope_below = (scaled[:, below] - scaled[:, below2]) / (points[below] - points[below2])
        slope_above = (scaled[:, above2] - scaled[:, above]) / (points[above2] - points[above])
        from_below = scaled[:, below] + (orders - points[below]) * slope_below
        from_above = scaled[:, above] - (points[above] - orders) * slope_above
    from_below = np.where(position >= 2, from_below, 0.0)
    from_above = np.where(position + 1 < count, from_above, 0.0)
    monotone = np.where(position >= 2, scaled[:, below] / np.maximum(points[below] - 1.0, 1e-300)
                        * (orders - 1.0), 0.0)
    scaled_bound = np.maximum(np.maximum(from_below, from_above), np.maximum(monotone, 0.0))
    bound = np.nan_to_num(scaled_bound / (orders - 1.0), nan=0.0, posinf=np.inf)
    return np.maximum(bound * (1.0 - _MARGIN), 0.0)


def minimize_over_orders(
    evaluate: Callable[[np.ndarray], np.ndarray],
    orders: np.ndarray,
    batch: int,
    objective: Callable[[np.ndarray, np.ndarray], np.ndarray],
    floor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum over orders of ``objective(rdp, orders)``, evaluating as few orders as possible.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(mask)`` with a boolean ``(batch, n_orders)`` mask returns the RDP values at the
        masked entries, in ``mask``'s row-major order.
    orders : ndarray
        The Rényi orders, sorted ascending.
    batch : int
        Number of independent curves.
    objective : callable
        ``objective(rdp, orders)`` elementwise, non-decreasing in ``rdp``.
    floor : ndarray of shape ``(batch,)``, optional
        A lower bound on the RDP at every order (e.g. on the KL divergence).

    Returns
    -------
    (minimum, argmin) : ndarrays of shape ``(batch,)``
        The minimum and the index of the order attaining it.
    """
    values = np.full((batch, orders.size), np.nan)
    anchors = _anchor_mask(orders)
    mask = np.broadcast_to(anchors, values.shape)
    values[mask] = evaluate(mask)
    objective_values = np.where(mask, objective(np.where(mask, values, 0.0), orders), np.inf)
    best = objective_values.min(axis=1)
    if not np.all(anchors):
        bounds = _lower_bounds(values, anchors, orders)
        if floor is not None:
            bounds = np.maximum(bounds, np.asarray(floor, dtype=float)[:, None])
        needed = ~mask & (objective(bounds, orders) < best[:, None])
        if np.any(needed):
            values[needed] = evaluate(needed)
            objective_values = np.where(
                needed, objective(np.where(needed, values, 0.0), orders), objective_values
            )
    index = np.argmin(objective_values, axis=1)
    return objective_values[np.arange(batch), index], index
