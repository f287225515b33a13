"""Epsilon over many step counts at one (sample rate, noise) pair: the budget-planning curve.

The total RDP of ``T`` identical steps is ``T r(alpha)`` with ``r`` the per-step curve, and both
conversions of :mod:`accounting.rdp.conversions` give, at each order, a candidate
``T r(alpha) + offset(alpha)``: a line in ``T``. The epsilon for ``T`` steps is the lower envelope
of these lines at ``T`` (clipped at 0, and 0 under the improved conversion's order-free bound
``T min r <= -log1p(-delta^2)``). So

1. the per-step RDP is computed once, and only at the orders that can be on the envelope for
   some ``T`` in the range asked for (the pruning bounds of :mod:`accounting.rdp.order_search`,
   scaled by ``T``: they are positively homogeneous);
2. the envelope is built once, and each step count is located on it by a binary search
   (the convex-hull trick), so the work per step count is a few operations, whatever the number
   of orders.

The result is the same minimum over the same orders as converting each total curve with
:func:`accounting.rdp.epsilon_from_rdp` (equal up to rounding in the last bits).
"""

from __future__ import annotations

import numpy as np

from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_orders,
    check_sample_rate,
    check_step_counts,
)
from accounting.rdp.conversions import Conversion, check_conversion, epsilon_offsets
from accounting.rdp.order_search import (
    ANCHOR_ORDERS,
    kl_lower_bound,
    lower_bounds,
    pruning_anchors,
)
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.rdp.sampled_gaussian import rdp_items, step_rdp_one_pair

__all__ = ["epsilon_curve"]

_DEFAULT_KEY = tuple(DEFAULT_ORDERS.tolist())

# Up to this many (step count, line) pairs the minimum is taken directly; beyond, on the envelope.
_DIRECT_PAIRS = 1 << 15
# The envelope compares every pair of lines: beyond this many lines (orders) the minimum is taken
# directly, _CHUNK_PAIRS (step count, line) pairs at a time, so the memory stays bounded.
_ENVELOPE_LINES = 1024
_CHUNK_PAIRS = 1 << 20


def epsilon_curve(
    sample_rate: float,
    noise_multiplier: float,
    steps,
    delta: float,
    conversion: Conversion = "improved",
    orders=None,
) -> tuple[np.ndarray, np.ndarray]:
    """RDP epsilon after each of many step counts of one Poisson-subsampled Gaussian mechanism.

    Parameters
    ----------
    sample_rate : float
        Poisson sampling probability ``q`` in ``[0, 1]``.
    noise_multiplier : float
        Noise standard deviation over the L2 sensitivity, ``sigma > 0``.
    steps : array_like of int
        Step counts, whole numbers ``>= 0`` of any shape (Python ints beyond the float range
        count as ``inf``; a float ``inf`` is not a number of steps).
    delta : float
        Target delta in ``(0, 1)``.
    conversion : {"improved", "classic"}
        RDP to (epsilon, delta) conversion (:mod:`accounting.rdp.conversions`): Canonne, Kamath
        and Steinke 2020, Proposition 12 / Balle et al. 2020, Theorem 21 (improved), or
        Mironov 2017, Proposition 3 (classic).
    orders : array_like, optional
        Rényi orders; :data:`accounting.rdp.DEFAULT_ORDERS` by default.

    Returns
    -------
    (epsilon, order) : ndarrays of the shape of ``steps``
        For each step count ``T``, ``min_alpha`` of the conversion of ``T r(alpha)`` with ``r``
        the per-step RDP of :func:`accounting.rdp.poisson_gaussian_rdp` (Mironov, Talwar and
        Zhang 2019), and an order attaining it: the same values as
        ``epsilon_from_rdp(T * poisson_gaussian_rdp(q, sigma, orders), orders, delta)`` up to
        rounding. ``(0, orders[0])`` where nothing is spent (``q = 0`` or ``T = 0``);
        ``(inf, orders[0])`` for ``T = inf`` with ``q > 0``.

    Raises
    ------
    ValueError, TypeError
        If an argument is outside the range named above.

    Notes
    -----
    Orders that cannot attain the minimum for any step count in the range asked for are never
    evaluated: the per-step RDP is bounded below from a few integer orders by convexity of
    ``(alpha - 1) RDP(alpha)`` and monotonicity (van Erven and Harremoës 2014, Theorems 3 and
    11), and by the KL divergence (Pinsker). The minimum over the rest is found on the lower
    envelope of the lines ``T -> T r(alpha) + offset(alpha)``.
    """
    q = check_sample_rate(sample_rate, scalar=True)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    counts = check_step_counts(steps)
    delta = check_delta(delta)
    conversion = check_conversion(conversion)
    orders = DEFAULT_ORDERS if orders is None else np.sort(check_orders(orders))
    epsilon = np.zeros(counts.shape)
    index = np.zeros(counts.shape, dtype=np.int64)
    flat_epsilon, flat_index = epsilon.reshape(-1), index.reshape(-1)
    counts = counts.reshape(-1)
    if q == 0.0:
        return epsilon, orders[index.reshape(-1)].reshape(index.shape)
    infinite = np.isinf(counts)
    flat_epsilon[infinite] = np.inf
    live = np.flatnonzero((counts > 0.0) & ~infinite)
    if live.size:
        with np.errstate(over="ignore"):  # T r beyond the float range is inf: the right epsilon
            flat_epsilon[live], flat_index[live] = _curve(q, sigma, counts[live], delta,
                                                          conversion, orders)
    return epsilon, orders[index.reshape(-1)].reshape(index.shape)


def _curve(q, sigma, counts, delta, conversion, orders) -> tuple[np.ndarray, np.ndarray]:
    """Epsilon and order index for positive finite ``counts`` (arguments already validated)."""
    offset, threshold = epsilon_offsets(orders, delta, conversion)
    rdp = _step_rdp(q, sigma, orders, offset, threshold, counts)
    lines = np.flatnonzero(np.isfinite(rdp))  # unevaluated orders are NaN, vacuous ones inf
    if lines.size == 0:
        return np.full(counts.shape, np.inf), np.zeros(counts.shape, dtype=np.int64)
    slopes, intercepts = rdp[lines], offset[lines]
    if counts.size * lines.size <= _DIRECT_PAIRS or lines.size > _ENVELOPE_LINES:
        lowest, best = _direct_minimum(slopes, intercepts, counts)
    else:
        lowest, best = _envelope_minimum(slopes, intercepts, counts)
    # Bretagnolle-Huber: epsilon is 0 once some order's total RDP is at most the threshold.
    flattest = int(np.argmin(slopes))
    zero = counts * slopes[flattest] <= threshold
    best[zero] = flattest
    epsilon = np.where(zero, 0.0, np.maximum(lowest, 0.0))
    return epsilon, lines[best]


def _step_rdp(q, sigma, orders, offset, threshold, counts) -> np.ndarray:
    """Per-step RDP at the orders that can attain the minimum for some ``T`` in ``counts``
    (NaN at the others): the anchor orders first, then the orders their bounds cannot prune."""
    key = _DEFAULT_KEY if orders is DEFAULT_ORDERS else tuple(orders.tolist())
    rdp = np.full(orders.shape, np.nan)
    floor = kl_lower_bound(q, sigma, 1.0) * (1.0 - 1e-9)
    with np.errstate(all="ignore"):
        anchors = pruning_anchors(key, ANCHOR_ORDERS)
        rdp[anchors] = _per_step(q, sigma, orders[anchors])
        needed = _needed(rdp, orders, key, ANCHOR_ORDERS, floor, offset, threshold, counts)
        if needed.size:
            rdp[needed] = _per_step(q, sigma, orders[needed])
    return rdp


def _needed(rdp, orders, key, anchor_orders, floor, offset, threshold, counts) -> np.ndarray:
    """Indices of the orders not yet evaluated that may attain the minimum for some ``T`` in
    ``counts``, given the RDP at the anchors and at the orders evaluated so far."""
    rest = np.flatnonzero(np.isnan(rdp))
    if rest.size == 0:
        return rest
    bound = np.maximum(lower_bounds(rdp, orders, key, anchor_orders)[rest], floor)
    known = np.flatnonzero(np.isfinite(rdp))
    if known.size == 0 or known.size > _ENVELOPE_LINES:
        return rest  # nothing to prune with, or too many lines for the envelope: evaluate all
    low = counts.min()
    if counts.size * rest.size <= _DIRECT_PAIRS:
        points = counts  # few counts: compare at each of them
    else:
        # The envelope E(T) of the evaluated orders' lines is concave and each bound's line is
        # linear in T, so their difference is largest at an end of [low, high] or at a
        # breakpoint of E: comparing there prunes no order that could win at some count.
        high = counts.max()
        _, breaks = _envelope(rdp[known], offset[known])
        points = np.concatenate(([low, high], breaks[(breaks > low) & (breaks < high)]))
    envelope = np.min(points[:, None] * rdp[known] + offset[known], axis=1)
    below = points[:, None] * bound + offset[rest] < envelope[:, None]
    # Under the improved conversion an order also wins (epsilon 0) where T r <= threshold.
    return rest[np.any(below, axis=0) | (low * bound <= threshold)]


def _per_step(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """Per-step RDP at ``alphas`` (the general path for the closed-form case ``q = 1``)."""
    if q == 1.0:
        return rdp_items(np.ones(alphas.size), np.full(alphas.size, sigma), alphas)
    return step_rdp_one_pair(q, sigma, alphas)


def _envelope(slopes: np.ndarray, intercepts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope of the lines ``T -> slopes T + intercepts`` over all real ``T``.

    Returns ``(lines, breaks)``: the indices of the lines on the envelope in order of increasing
    ``T`` (decreasing slope), and ``breaks[j]``, the ``T`` from which line ``lines[j]`` is the
    lowest (``-inf`` for the first). A line is on the envelope where it lies below every steeper
    line (``T`` past their crossings) and every flatter line (``T`` before them).
    """
    # Steepest first; among equal slopes the lowest intercept first (the others never win).
    rank = np.lexsort((intercepts, -slopes))
    s, b = slopes[rank], intercepts[rank]
    distinct = np.ones(s.size, dtype=bool)
    distinct[1:] = s[1:] != s[:-1]
    rank, s, b = rank[distinct], s[distinct], b[distinct]
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (b[None, :] - b[:, None]) / (s[:, None] - s[None, :])  # row i, column j
    steeper = np.tri(s.size, k=-1, dtype=bool)  # column j < row i: line j is steeper
    start = np.max(np.where(steeper, crossing, -np.inf), axis=1)
    stop = np.min(np.where(steeper.T, crossing, np.inf), axis=1)
    on = start < stop
    return rank[on], start[on]


def _direct_minimum(slopes, intercepts, counts) -> tuple[np.ndarray, np.ndarray]:
    """``min_j slopes[j] T + intercepts[j]`` and its argmin for every ``T``, line by line, in
    chunks of step counts that bound the memory used."""
    lowest = np.empty(counts.shape)
    best = np.empty(counts.shape, dtype=np.int64)
    rows = max(1, _CHUNK_PAIRS // slopes.size)
    for start in range(0, counts.size, rows):
        part = slice(start, start + rows)
        values = counts[part, None] * slopes + intercepts
        best[part] = np.argmin(values, axis=1)
        lowest[part] = values[np.arange(values.shape[0]), best[part]]
    return lowest, best


def _envelope_minimum(slopes, intercepts, counts) -> tuple[np.ndarray, np.ndarray]:
    """``min_j slopes[j] T + intercepts[j]`` and its argmin for every ``T`` in ``counts``.

    Each ``T`` is located on the envelope by binary search. Where a breakpoint is rounded the
    wrong way the line found is the neighbour, equal to the lowest up to that rounding.
    """
    lines, breaks = _envelope(slopes, intercepts)
    best = lines[np.searchsorted(breaks, counts, side="right") - 1]
    return counts * slopes[best] + intercepts[best], best
