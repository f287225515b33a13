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
from functools import lru_cache

import numpy as np

from accounting._caches import register_cache
from accounting.gdp import step_total_variation

__all__ = [
    "ANCHOR_ORDERS",
    "folded_bound_maps",
    "kl_lower_bound",
    "lower_bounds",
    "minimize_over_orders",
    "pruning_anchors",
]

#: The integer orders evaluated first: cheap, and spread over the range where optima lie.
ANCHOR_ORDERS = frozenset([*range(2, 13), 16, 20, 24, 32, 40, 48, 64])
# Lower bounds are shrunk by this relative margin so rounding can never prune a winner.
_MARGIN = 1e-9
# Anchors spread over the orders when fewer than three of them are standard anchors.
_SPREAD_ANCHORS = 17


def kl_lower_bound(sample_rate, noise_multiplier, steps):
    """Lower bound on the KL divergence of ``steps`` Poisson-subsampled Gaussian steps.

    Pinsker: ``KL >= 2 TV^2`` with one step's TV from
    :func:`~accounting.gdp.step_total_variation`; KL composes additively. Since RDP is
    non-decreasing in the order, this bounds the RDP at every order (the ``floor`` of
    :func:`minimize_over_orders`). Shrunk by ``1e-12`` against rounding.
    Broadcasts over its arguments.
    """
    square = step_total_variation(sample_rate, noise_multiplier) ** 2
    with np.errstate(invalid="ignore", over="ignore"):  # steps may be inf; inf * 0 is 0 here
        return np.where(square > 0.0, steps * 2.0 * square * (1.0 - 1e-12), 0.0)


@lru_cache(maxsize=64)
def _bound_maps(
    orders_key: tuple, anchor_orders: frozenset = ANCHOR_ORDERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anchor mask, and the linear maps from anchor values to the lower bounds at every order.

    With ``g = (alpha - 1) RDP`` known at the points ``1 (g = 0)`` and the anchors, each bound on
    ``g(alpha)`` is a linear combination of two known values: the chord through the two nearest
    points below extended to ``alpha``, the chord through the two nearest above extended down to
    ``alpha``, and monotonicity of RDP from the nearest anchor below. Returns ``(anchors,
    columns, weights, offsets)``: the anchor mask, the anchor columns sorted by order,
    ``weights`` of shape ``(points, 3, orders)`` and ``offsets`` of shape ``(3, orders)``
    (``-inf`` where a bound does not apply).
    """
    orders = np.array(orders_key)
    # One anchor per distinct value (a repeated order would make a chord of zero width).
    first = np.zeros(orders.shape, dtype=bool)
    first[np.unique(orders, return_index=True)[1]] = True
    anchors = first & np.isin(orders, list(anchor_orders))
    if np.count_nonzero(anchors) < 3:  # evenly spread distinct orders (few: weights are dense)
        distinct = np.flatnonzero(first)[np.argsort(orders[first], kind="stable")]
        picks = np.unique(np.linspace(0, distinct.size - 1, _SPREAD_ANCHORS).round().astype(int))
        anchors = np.zeros(orders.shape, dtype=bool)
        anchors[distinct[picks]] = True
    columns = np.flatnonzero(anchors)
    columns = columns[np.argsort(orders[columns], kind="stable")]  # points must be sorted
    points = np.concatenate(([1.0], orders[columns]))
    count = points.size
    weights = np.zeros((count, 3, orders.size))
    offsets = np.full((3, orders.size), -np.inf)
    position = np.searchsorted(points, orders, side="left")  # first point >= order
    for column, (alpha, where) in enumerate(zip(orders, position, strict=True)):
        if where >= 2:  # two points below: chord extension, and monotonicity
            low, lower = where - 1, where - 2
            lean = (alpha - points[low]) / (points[low] - points[lower])
            weights[low, 0, column], weights[lower, 0, column] = 1.0 + lean, -lean
            weights[low, 2, column] = (alpha - 1.0) / (points[low] - 1.0)
            offsets[0, column] = offsets[2, column] = 0.0
        if where + 1 < count:  # two points above: chord extension downwards
            high, higher = where, where + 1
            lean = (points[high] - alpha) / (points[higher] - points[high])
            weights[high, 1, column], weights[higher, 1, column] = 1.0 + lean, -lean
            offsets[1, column] = 0.0
    return anchors, columns, weights.reshape(count, -1), offsets


def _lower_bounds(values: np.ndarray, orders: np.ndarray, orders_key: tuple,
                  anchor_orders: frozenset = ANCHOR_ORDERS) -> np.ndarray:
    """Lower bounds on the RDP at every order from ``values`` filled at the anchor columns."""
    _, columns, weights, offsets = _bound_maps(orders_key, anchor_orders)
    with np.errstate(invalid="ignore", over="ignore"):  # inf bounds are valid bounds
        scaled = np.concatenate(
            (np.zeros((values.shape[0], 1)), (orders[columns] - 1.0) * values[:, columns]),
            axis=1,
        )
        candidates = (scaled @ weights).reshape(values.shape[0], 3, -1) + offsets
        scaled_bound = np.nan_to_num(candidates.max(axis=1), nan=0.0)
    bound = np.maximum(scaled_bound, 0.0) / (orders - 1.0)
    return bound * (1.0 - _MARGIN)


def pruning_anchors(orders_key: tuple, anchor_orders: frozenset = ANCHOR_ORDERS) -> np.ndarray:
    """Indices of the anchor orders among the sorted orders ``orders_key``, ascending: those of
    ``anchor_orders`` present, or orders spread over the range where fewer than three are."""
    return _bound_maps(orders_key, anchor_orders)[1]


def lower_bounds(rdp: np.ndarray, orders: np.ndarray, orders_key: tuple,
                 anchor_orders: frozenset = ANCHOR_ORDERS) -> np.ndarray:
    """Lower bounds on one RDP curve at every order from its values at the anchor orders.

    ``rdp`` holds the curve at :func:`pruning_anchors` (any value elsewhere); the bounds are
    positively homogeneous in the curve, so they scale with a number of composed steps.
    """
    columns, weights, offsets = folded_bound_maps(orders_key, anchor_orders)
    values = rdp[columns]
    if not np.all(np.isfinite(values)):  # inf * 0 would be NaN: the general path handles it
        return _lower_bounds(rdp[None, :], orders, orders_key, anchor_orders)[0]
    return np.maximum((values @ weights + offsets).reshape(3, -1).max(axis=0), 0.0)


@lru_cache(maxsize=64)
def folded_bound_maps(orders_key: tuple, anchor_orders: frozenset = ANCHOR_ORDERS):
    """:func:`_bound_maps` with the scalings of :func:`_lower_bounds` folded into the weights:
    ``(columns, weights, offsets)`` with ``values[columns] @ weights + offsets`` the three
    candidate bounds on the RDP (already divided by ``alpha - 1`` and shrunk by the margin)."""
    _, columns, weights, offsets = _bound_maps(orders_key, anchor_orders)
    orders = np.array(orders_key)
    scale = np.tile((1.0 - _MARGIN) / (orders - 1.0), 3)
    # row 0 multiplies g(1) = 0; the others take the anchors' RDP times (alpha - 1)
    folded = weights[1:] * scale * (orders[columns] - 1.0)[:, None]
    return columns, folded, offsets.reshape(-1)


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
    orders_key = tuple(orders.tolist())
    anchors = _bound_maps(orders_key)[0]
    mask = np.broadcast_to(anchors, values.shape)
    values[mask] = evaluate(mask)
    objective_values = np.where(mask, objective(np.where(mask, values, 0.0), orders), np.inf)
    best = objective_values.min(axis=1)
    if not np.all(anchors):
        bounds = _lower_bounds(values, orders, orders_key)
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


register_cache(_bound_maps.cache_clear, table=True)
register_cache(folded_bound_maps.cache_clear, table=True)
