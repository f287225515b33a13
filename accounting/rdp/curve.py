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

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from accounting._caches import register_cache
from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_orders,
    check_sample_rate,
    check_step_counts,
)
from accounting.rdp.conversions import Conversion, check_conversion
from accounting.rdp.order_search import ANCHOR_ORDERS, folded_bound_maps, lower_bounds
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.rdp.sampled_gaussian import (
    rdp_items,
    step_rdp_integer_one_pair,
    step_rdp_one_pair,
)

__all__ = ["epsilon_curve"]

_DEFAULT_KEY = tuple(DEFAULT_ORDERS.tolist())

# Up to this many (step count, line) pairs the minimum is taken directly; beyond, on the envelope.
_DIRECT_PAIRS = 1 << 15
# The envelope compares every pair of lines: beyond this many lines (orders) the minimum is taken
# directly, _CHUNK_PAIRS (step count, line) pairs at a time, so the memory stays bounded.
_ENVELOPE_LINES = 1024
_CHUNK_PAIRS = 1 << 20
# Conversion offsets kept per table (by delta and conversion): a curve or an accountant asks for
# the same few deltas again and again.
_CACHED_OFFSETS = 16


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
    table = _table(None if orders is None else np.sort(check_orders(orders)))
    orders = table.orders
    low = counts.min() if counts.size else 0.0
    high = counts.max() if counts.size else 0.0
    if q > 0.0 and counts.size and 0.0 < low and high < np.inf:
        # every count positive and finite (the usual call): no masks over the counts
        with np.errstate(all="ignore"):
            epsilon, index = _curve(q, sigma, counts.reshape(-1), delta, conversion, table,
                                    span=(low, high))
        return epsilon.reshape(counts.shape), orders[index].reshape(counts.shape)
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
        with np.errstate(all="ignore"):  # T r beyond the float range is inf: the right epsilon
            flat_epsilon[live], flat_index[live] = _curve(q, sigma, counts[live], delta,
                                                          conversion, table)
    return epsilon, orders[index.reshape(-1)].reshape(index.shape)


def one_pair_epsilon(q: float, sigma: float, count: float, delta: float, conversion: str,
                     orders: np.ndarray | None, store: np.ndarray) -> tuple[float, int]:
    """Epsilon and order index after ``count`` steps at one ``(q, sigma)`` with ``0 < q`` and
    ``0 < count < inf`` (arguments already validated; ``orders`` in any order, ``None`` for
    :data:`DEFAULT_ORDERS`).

    ``store`` holds the per-step RDP at ``orders``, NaN where not known yet; the orders this
    evaluates are written into it, so a caller that keeps it (an accountant) computes each order
    once. The value is that of :func:`epsilon_curve` at ``count`` (clipped at 0), the minimum
    over every order of the converted ``count * store`` (with the store filled in).
    """
    with np.errstate(all="ignore"):
        epsilon, index = _curve(q, sigma, np.array([float(count)]), delta, conversion,
                                _table(orders), store)
    return float(epsilon[0]), int(index[0])


class _Table(NamedTuple):
    """What depends on the orders alone, computed once per set of orders."""

    orders: np.ndarray
    key: tuple
    log1p_inverse: np.ndarray  # log1p(-1 / alpha)
    log_orders: np.ndarray
    minus_one: np.ndarray  # alpha - 1
    anchors: np.ndarray  # indices of the anchor orders (order_search.pruning_anchors)
    others: np.ndarray  # indices of the other orders, ascending
    integer: np.ndarray  # which orders are whole numbers
    whole_anchors: bool  # whether every anchor order is a whole number
    # order_search's folded bound maps restricted to the other orders: lower bounds on their RDP
    # are (rdp[anchors] @ weights + shifts).reshape(3, -1).max(axis=0)
    weights: np.ndarray
    shifts: np.ndarray
    # _offsets by (delta, conversion), at most _CACHED_OFFSETS of them
    offsets: dict


_default_table: list[_Table] = []  # the default orders' table, kept apart: no tuple to hash


def _table(orders: np.ndarray | None) -> _Table:
    """The table of ``orders`` (the default orders for ``None``)."""
    if orders is None or orders is DEFAULT_ORDERS:
        if not _default_table:
            _default_table.append(_build_table(_DEFAULT_KEY))
        return _default_table[0]
    return _build_table(tuple(orders.tolist()))


@lru_cache(maxsize=64)
def _build_table(key: tuple) -> _Table:
    orders = np.array(key)
    orders.setflags(write=False)
    anchors, weights, shifts = folded_bound_maps(key)  # anchors: pruning_anchors(key)
    others = np.setdiff1d(np.arange(orders.size), anchors)
    pick = (np.arange(3)[:, None] * orders.size + others).ravel()
    integer = orders == np.floor(orders)
    return _Table(orders, key, np.log1p(-1.0 / orders), np.log(orders), orders - 1.0, anchors,
                  others, integer, bool(integer[anchors].all()), weights[:, pick], shifts[pick],
                  {})


def _clear_tables() -> None:
    _default_table.clear()
    _build_table.cache_clear()


def _offsets(table: _Table, delta: float, conversion: str) -> tuple[np.ndarray, float]:
    """:func:`accounting.rdp.conversions.epsilon_offsets` from the table (the same operations
    on the same values: the same bits), kept on the table for the last few deltas."""
    key = (delta, conversion)
    found = table.offsets.get(key)
    if found is not None:
        return found
    log_delta = np.log(delta)
    if conversion == "classic":
        found = -log_delta / table.minus_one, -np.inf
    else:
        found = (table.log1p_inverse - (log_delta + table.log_orders) / table.minus_one,
                 -np.log1p(-(delta**2)))
    found[0].setflags(write=False)
    if len(table.offsets) >= _CACHED_OFFSETS:
        table.offsets.clear()
    table.offsets[key] = found
    return found


def _curve(q, sigma, counts, delta, conversion, table, store=None, span=None):
    """Epsilon and order index for positive finite ``counts`` (arguments already validated,
    floating-point warnings silenced by the caller; ``span``: their least and largest, where
    the caller has them)."""
    offset, threshold = _offsets(table, delta, conversion)
    if counts.size == 1:
        found = _one_count(q, sigma, float(counts[0]), table, offset, threshold, store)
        if found is not None:
            return np.array([found[0]]), np.array([found[1]])
    rdp = _step_rdp(q, sigma, table, offset, threshold, counts, store, span)
    lines = np.flatnonzero(rdp < np.inf)  # unevaluated orders are NaN, vacuous ones inf
    if lines.size == 0:
        return np.full(counts.shape, np.inf), np.zeros(counts.shape, dtype=np.int64)
    slopes, intercepts = rdp[lines], offset[lines]
    if counts.size * lines.size <= _DIRECT_PAIRS:
        best = (counts[:, None] * slopes + intercepts).argmin(axis=1)
        lowest = counts * slopes[best] + intercepts[best]  # the same operations: the same bits
    elif lines.size > _ENVELOPE_LINES:
        lowest, best = _direct_minimum(slopes, intercepts, counts)
    else:
        lowest, best = _envelope_minimum(slopes, intercepts, counts)
    # Bretagnolle-Huber: epsilon is 0 once some order's total RDP is at most the threshold.
    flattest = slopes.argmin()
    zero = counts * slopes[flattest] <= threshold
    if zero.any():
        best[zero] = flattest
        lowest[zero] = 0.0
    return np.maximum(lowest, 0.0), lines[best]


def _one_count(q, sigma, count, table, offset, threshold, store):
    """:func:`_curve` at one step count, on the anchors' and the unpruned orders' values alone
    (no array over every order): the same orders evaluated, the same minimum and order. ``None``
    where the general path is needed (a store that knows some anchors but not all, or orders
    beyond them; an anchor with infinite RDP)."""
    anchors = table.anchors
    if store is None:
        known = 0
    else:
        known = np.count_nonzero(~np.isnan(store[anchors]))
        if known not in (0, anchors.size) or np.count_nonzero(~np.isnan(store)) != known:
            return None
    anchor_rdp = store[anchors] if known else _anchor_rdp(q, sigma, table, anchors)
    if store is not None:
        store[anchors] = anchor_rdp
    if not anchor_rdp.max() < np.inf:
        return None
    # _needed's test at one count: an order is evaluated where its lower line lies below the
    # anchors' least epsilon there, or where it may reach the zero threshold
    bound = np.maximum(_anchor_bounds(anchor_rdp, table), _kl_floor(q, sigma))
    others = table.others
    rest = others[(count * bound + offset[others] < (count * anchor_rdp + offset[anchors]).min())
                  | (count * bound <= threshold)]
    rdp = _per_step(q, sigma, table.orders[rest], table.integer[rest])
    if store is not None:
        store[rest] = rdp
    index = np.concatenate((anchors, rest))
    values = np.concatenate((anchor_rdp, rdp))
    lines = values < np.inf  # vacuous orders (inf) never attain the minimum
    index, values = index[lines], values[lines]
    # Bretagnolle-Huber: epsilon is 0 once some order's total RDP is at most the threshold.
    flattest = values.min()
    if count * flattest <= threshold:
        return 0.0, int(index[values == flattest].min())
    epsilon = count * values + offset[index]  # as _curve's lines: the same operations, bits
    lowest = epsilon.min()
    # the first order attaining the minimum, as an argmin over the orders in order finds
    return max(float(lowest), 0.0), int(index[epsilon == lowest].min())


def _anchor_rdp(q, sigma, table, index) -> np.ndarray:
    """Per-step RDP at the anchor orders ``table.orders[index]``."""
    if q < 1.0 and table.whole_anchors:  # the usual anchors: binomial sums alone
        return step_rdp_integer_one_pair(q, sigma, table.orders[index])
    return _per_step(q, sigma, table.orders[index], table.integer[index])


def _anchor_bounds(anchor_rdp, table) -> np.ndarray:
    """Lower bounds on the RDP at ``table.others`` from the anchors' RDP alone (the folded bound
    maps of :mod:`accounting.rdp.order_search`)."""
    return (anchor_rdp @ table.weights + table.shifts).reshape(3, -1).max(axis=0)


def _kl_floor(q: float, sigma: float) -> float:
    """Pinsker's floor on the KL divergence of one step, as kl_lower_bound (with the scalar
    erf): a lower bound on the RDP at every order."""
    return 2.0 * (q * math.erf(math.sqrt(0.125) / sigma)) ** 2 * ((1.0 - 1e-12) * (1.0 - 1e-9))


def _step_rdp(q, sigma, table, offset, threshold, counts, store, span=None) -> np.ndarray:
    """Per-step RDP at the orders that can attain the minimum for some ``T`` in ``counts``
    (NaN at the others): the anchor orders first, then the orders their bounds cannot prune.
    Filled into ``store`` where one is given (orders known there are not evaluated again)."""
    anchors = table.anchors
    if store is None:
        rdp = np.full(table.orders.shape, np.nan)
        missing = anchors
        fresh = True
    else:
        rdp = store
        missing = anchors[np.isnan(rdp[anchors])]
        # a store that knows no order beyond the anchors (a new accountant's) prunes as a fresh
        # array does: with the precomputed bound maps, not the general chord bounds
        fresh = np.count_nonzero(np.isnan(rdp)) == rdp.size - anchors.size + missing.size
    if missing.size:
        rdp[missing] = _anchor_rdp(q, sigma, table, missing)
    needed = _needed(q, sigma, rdp, table, offset, threshold, counts, fresh, span)
    if needed.size:
        rdp[needed] = _per_step(q, sigma, table.orders[needed], table.integer[needed])
    return rdp


def _needed(q, sigma, rdp, table, offset, threshold, counts, fresh, span=None) -> np.ndarray:
    """Indices of the orders not yet evaluated that may attain the minimum for some ``T`` in
    ``counts``, given the RDP at the anchors and at the orders evaluated so far (``fresh``:
    at the anchors alone).

    An order may win at ``T`` only if its lower line ``T bound + offset`` is below the envelope
    of the evaluated orders' lines there. Over many counts the envelope is replaced by the lower
    envelope ``E`` of the lines that attain it at some count (equal to it at every count, above
    it in between), concave in ``T``: ``E`` minus a line is largest at an end of
    ``[min(counts), max(counts)]`` or at a breakpoint of ``E``, so comparing there prunes no order
    that could win at some count.
    """
    values = rdp[table.anchors]
    if fresh and values.max() < np.inf:
        rest, known = table.others, table.anchors
        bound = _anchor_bounds(values, table)
    else:
        unknown = np.isnan(rdp)
        rest = np.flatnonzero(unknown)
        if rest.size == 0:
            return rest
        bound = lower_bounds(rdp, table.orders, table.key, ANCHOR_ORDERS)[rest]
        known = np.flatnonzero(rdp < np.inf)
        if known.size == 0 or known.size > _ENVELOPE_LINES:
            return rest  # nothing to prune with, or too many lines for the envelope: evaluate all
    bound = np.maximum(bound, _kl_floor(q, sigma))
    slopes, intercepts = rdp[known], offset[known]
    low, high = span if span is not None else (counts.min(), counts.max())
    if counts.size == 1:
        points = counts
    else:
        if counts.size * known.size <= _DIRECT_PAIRS:
            # the lines attaining the envelope at some count, steepest first (smallest T first)
            hit = np.zeros(known.size, dtype=bool)
            hit[(counts[:, None] * slopes + intercepts).argmin(axis=1)] = True
            attained = np.flatnonzero(hit)
            attained = attained[np.argsort(-slopes[attained], kind="stable")]
            slopes, intercepts = slopes[attained], intercepts[attained]
            breaks = (intercepts[1:] - intercepts[:-1]) / (slopes[:-1] - slopes[1:])
        else:
            lines, breaks = _envelope(slopes, intercepts)
            slopes, intercepts = slopes[lines], intercepts[lines]
        points = np.concatenate(([low, high], breaks[(breaks > low) & (breaks < high)]))
    envelope = (points[:, None] * slopes + intercepts).min(axis=1, keepdims=True)
    below = (points[:, None] * bound + offset[rest] < envelope).any(axis=0)
    # Under the improved conversion an order also wins (epsilon 0) where T r <= threshold.
    return rest[below | (low * bound <= threshold)]


def _per_step(q: float, sigma: float, alphas: np.ndarray, integer: np.ndarray) -> np.ndarray:
    """Per-step RDP at ``alphas`` (``integer`` marks the whole ones; the general path for the
    closed-form case ``q = 1``)."""
    if q == 1.0:
        return rdp_items(np.ones(alphas.size), np.full(alphas.size, sigma), alphas)
    return step_rdp_one_pair(q, sigma, alphas, integer)


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


register_cache(_clear_tables, table=True)
