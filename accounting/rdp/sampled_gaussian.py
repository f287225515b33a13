"""Rényi-DP of one step of the Poisson-subsampled Gaussian mechanism.

With ``mu0 = N(0, sigma^2)``, ``mu1 = N(1, sigma^2)`` and ``mu = (1 - q) mu0 + q mu1`` the RDP of
order ``alpha`` of one DP-SGD step (add/remove-one neighbours, sensitivity 1) is

    RDP(alpha) = log(A_alpha) / (alpha - 1),
    A_alpha = E_{z ~ mu0}[(mu(z) / mu0(z))^alpha]

(Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
Sections 3.1-3.3; the add direction dominates the remove direction, their Theorem 5).

Both paths below compute ``A_alpha - 1`` rather than ``A_alpha``, as a sum or integral of
non-negative terms, so the result keeps its relative precision when ``A_alpha`` is within
``1e-16`` of 1 (tiny sample rates, huge noise), where ``log(A_alpha)`` computed from ``A_alpha``
would lose every digit:

* integer orders: ``A - 1 = sum_{k>=2} C(alpha,k) (1-q)^(alpha-k) q^k expm1(k(k-1)/(2 sigma^2))``
  (the binomial expansion of Mironov et al. Sec. 3.3, with
  ``sum_k C(alpha,k) (1-q)^(alpha-k) q^k = 1`` taken out);
* fractional orders: ``A - 1 = E_{z ~ mu0}[psi(u(z))]`` with ``u = q (L - 1)``, ``L = mu1/mu0`` and
  ``psi(u) = (1 + u)^alpha - 1 - alpha u >= 0`` (convexity; ``E[u] = 0``), integrated with the
  trapezoidal rule, which converges geometrically for integrands analytic in a strip
  (Trefethen and Weideman 2014, "The exponentially convergent trapezoidal rule", Thm. 5.1),
  on the cells where the integrand is within ``e^-38`` of its peak.

Integer orders above ``_PROBED_ORDER`` sum only the cells of binomial terms that carry the sum,
found by probing every few terms with a bound on how far the log-terms bend between probes;
fractional orders of one ``(q, sigma)`` (:func:`step_rdp_one_pair`), and the small integer orders
asked with them, share one quadrature lattice, where ``psi`` near ``u = 0`` is the power series
in ``log1p(u)``, ``sum_n (alpha^n - alpha) log1p(u)^n / n!``, summed for all orders at once as one
matrix product.

Everything is vectorised over orders and parameters: no Python loop runs per order.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from accounting._caches import register_cache
from accounting._log_gamma import log_gamma
from accounting._validation import check_noise_multiplier, check_orders, check_sample_rate
from accounting.rdp._ragged import RaggedIndex, segment_logsumexp

__all__ = ["poisson_gaussian_rdp", "rdp_items", "step_rdp_integer_one_pair", "step_rdp_one_pair"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
# Integrand cells below exp(-_DROP_BELOW) of the peak are left out (< 3e-17 relative each).
_DROP_BELOW = 38.0
# Target spacing of the probes that locate the integrand's mass, in units of t.
_PROBE_SPACING = 2.5
# Margin beyond which the integrand is negligible, in units of t = z / sigma: below t = -14 the
# Gaussian factor is under exp(-98) while psi is at most polynomially larger than near t = 0,
# and beyond the (1 + u)^alpha mode (at most at alpha / sigma) the log-integrand falls with
# slope at least t - alpha / sigma, so by more than 98 within 14.
_TAIL = 14.0
# Most probes per item when locating the integrand's mass.
_MAX_PROBES = 4096
# The power series of psi is used where |u| and |alpha u| are at most this radius.
_SERIES_RADIUS = 0.03
# Largest number of quadrature nodes evaluated at once (bounds memory on big grids).
_CHUNK_NODES = 2_000_000
# Few short items (at most _DIRECT_NODES nodes each, _DIRECT_BUDGET in all) are summed over their
# whole range in one pass, which costs fewer NumPy calls; otherwise the range is first probed to
# find the cells that carry the mass, which costs fewer evaluations.
_DIRECT_NODES = 400
_DIRECT_BUDGET = 20_000
# Beyond this tilt alpha / sigma (far outside any useful setting: sigma < 1e-6 alpha, epsilon
# in the billions) fractional orders use the convex upper bound between integer orders.
_MAX_TILT = 1e6
# Most quadrature nodes one fractional order may cost. The trapezoid step shrinks with sigma, so
# a small noise needs about alpha / sigma^2 nodes; past this budget (sigma below about 5e-3 at
# the default orders, epsilon in the thousands) the order gets the convex upper bound between
# integer orders instead, so the cost of any input is independent of sigma.
_MAX_ITEM_NODES = 20_000
# Largest number of binomial terms summed at once (bounds memory for many large integer orders).
_CHUNK_TERMS = 2_000_000
# Integer orders above this sum only the cells of binomial terms that carry the sum, found by
# probing every _CELL_TERMS terms; _CURVATURE bounds how far the log-terms bend down between probes
# (see _log_a_minus_1_integer_probed).
_PROBED_ORDER = 96
_CELL_TERMS = 8
_CURVATURE = 4.5
# Binomial layouts are cached only up to this many terms (bounds the cache's memory).
_CACHED_TERMS = 2**15


def poisson_gaussian_rdp(sample_rate, noise_multiplier, orders) -> np.ndarray:
    """RDP of one step of the Poisson-subsampled Gaussian mechanism.

    Parameters
    ----------
    sample_rate : float or array_like
        Poisson sampling probability ``q`` in ``[0, 1]``.
    noise_multiplier : float or array_like
        Noise standard deviation over the L2 sensitivity, ``sigma > 0``.
    orders : float or array_like
        Rényi orders ``alpha > 1``, integer or fractional.

    Returns
    -------
    ndarray
        ``RDP(alpha)``, of shape
        ``broadcast(sample_rate, noise_multiplier).shape + (len(orders),)``.
        ``q = 1`` gives the Gaussian mechanism's ``alpha / (2 sigma^2)``, ``q = 0`` gives 0. The
        value is ``inf`` only where it exceeds the floating-point range (e.g. ``sigma`` of order
        ``1e-160``); it is never NaN. For fractional orders with ``alpha / sigma > 1e6`` (noise
        below a millionth of the order, epsilon in the billions) the value is the convex upper
        bound between the neighbouring integer orders: safe, not tight.

    Notes
    -----
    Mironov, Talwar and Zhang 2019, arXiv:1908.10530, Sec. 3. Agrees with a 50-digit mpmath
    evaluation (``accounting.reference``) to better than ``1e-10`` relative over
    ``q in [1e-8, 1]``, ``sigma in [0.1, 1e4]``, ``alpha in (1, 1e4]``.

    Raises
    ------
    ValueError
        If ``sample_rate`` is outside ``[0, 1]``, ``noise_multiplier`` is not a finite positive
        number, or an order is not a finite number ``> 1``.
    """
    q = np.asarray(check_sample_rate(sample_rate), dtype=float)
    sigma = np.asarray(check_noise_multiplier(noise_multiplier), dtype=float)
    alphas = check_orders(orders)
    try:
        q, sigma = np.broadcast_arrays(q, sigma)
    except ValueError:
        raise ValueError(
            "sample_rate and noise_multiplier must broadcast together, got shapes "
            f"{q.shape} and {sigma.shape}"
        ) from None
    shape = q.shape + alphas.shape
    q_items = np.broadcast_to(q[..., None], shape).ravel()
    sigma_items = np.broadcast_to(sigma[..., None], shape).ravel()
    alpha_items = np.broadcast_to(alphas, shape).ravel()
    with np.errstate(all="ignore"):  # every overflow and log(0) below is handled explicitly
        return rdp_items(q_items, sigma_items, alpha_items).reshape(shape)


def rdp_items(q: np.ndarray, sigma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RDP for flat arrays of (q, sigma, alpha) items; arguments already validated."""
    rdp = np.zeros(q.shape)
    full = q == 1.0
    rdp[full] = alpha[full] / (2.0 * sigma[full] ** 2)
    sampled = (q > 0.0) & ~full
    integer = sampled & (alpha == np.floor(alpha))
    fractional = sampled & ~integer
    log_a_minus_1 = np.full(q.shape, -np.inf)
    if np.any(integer):
        log_a_minus_1[integer] = log_a_minus_1_integer(q[integer], sigma[integer], alpha[integer])
    extreme = fractional & (alpha / sigma > _MAX_TILT)
    fractional &= ~extreme
    if np.any(fractional):
        log_a_minus_1[fractional] = _log_a_minus_1_fractional(
            q[fractional], sigma[fractional], alpha[fractional]
        )
        # NaN marks the orders whose quadrature would exceed its node budget.
        extreme |= fractional & np.isnan(log_a_minus_1)
    log_a = np.zeros(q.shape)
    log_a[sampled] = np.logaddexp(0.0, log_a_minus_1[sampled])
    if np.any(extreme):
        log_a[extreme] = _log_a_interpolated(q[extreme], sigma[extreme], alpha[extreme])
    rdp[sampled] = log_a[sampled] / (alpha[sampled] - 1.0)
    return rdp


def _log_a_interpolated(q: np.ndarray, sigma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Upper bound on ``log A_alpha`` by the chord between the neighbouring integer orders.

    ``log A_alpha = (alpha - 1) D_alpha(mu || mu0)`` is convex in ``alpha`` (Hoelder's
    inequality; van Erven and Harremoës 2014, "Rényi Divergence and Kullback-Leibler
    Divergence", Theorem 11) and ``log A_1 = 0``, so the chord lies above it: the resulting
    epsilon is safe (never too small), though not tight.
    """
    below = np.floor(alpha)
    fraction = alpha - below
    log_a_below = np.zeros(alpha.shape)
    has_below = below >= 2
    log_a_below[has_below] = np.logaddexp(
        0.0, log_a_minus_1_integer(q[has_below], sigma[has_below], below[has_below])
    )
    log_a_above = np.logaddexp(0.0, log_a_minus_1_integer(q, sigma, below + 1.0))
    return (1.0 - fraction) * log_a_below + fraction * log_a_above


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """``log(exp(x) - 1)`` for ``x >= 0`` without overflow or loss of precision."""
    small = np.log(np.expm1(np.minimum(x, 1.0)))
    large = x + np.log(-np.expm1(-np.maximum(x, 1.0)))
    return np.where(x <= 1.0, small, large)


def _binomial_layout(alpha: np.ndarray):
    """Terms ``k = 2 .. alpha`` of every item: ``(index, k, alpha - k, log C(alpha, k))``."""
    index = RaggedIndex(alpha.astype(np.int64) - 1)
    k = (index.local + 2).astype(float)
    a = alpha[index.item]
    return index, k, a - k, _log_choose(a, k)


@lru_cache(maxsize=256)
def _cached_binomial_layout(alpha: tuple):
    return _binomial_layout(np.array(alpha))


def log_a_minus_1_integer(q: np.ndarray, sigma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``log(A_alpha - 1)`` for integer orders by the positive binomial sum over ``k >= 2``.

    Orders above ``_PROBED_ORDER`` sum only the cells of terms that carry the sum
    (:func:`_log_a_minus_1_integer_probed`), the others every term.
    """
    large = alpha > _PROBED_ORDER
    if not np.any(large):
        return _log_a_minus_1_integer_full(q, sigma, alpha)
    result = np.empty(q.shape)
    small = ~large
    if np.any(small):
        result[small] = _log_a_minus_1_integer_full(q[small], sigma[small], alpha[small])
    result[large] = _log_a_minus_1_integer_probed(q[large], sigma[large], alpha[large])
    return result


def _log_binomial_terms(k, alpha, log_binomial, q, sigma) -> np.ndarray:
    """``log(C(alpha, k) (1-q)^(alpha-k) q^k expm1(k(k-1) / (2 sigma^2)))``, term by term."""
    return (
        log_binomial
        + (alpha - k) * np.log1p(-q)
        + k * np.log(q)
        + _log_expm1(k * (k - 1.0) / (2.0 * sigma**2))
    )


def _log_choose(alpha, k):
    """``log C(alpha, k)`` through ``log Gamma`` (elementwise)."""
    return log_gamma(alpha + 1.0) - log_gamma(k + 1.0) - log_gamma(alpha - k + 1.0)


def _log_a_minus_1_integer_probed(q, sigma, alpha) -> np.ndarray:
    """The binomial sum of :func:`log_a_minus_1_integer` over the cells of terms that carry it.

    The log-term ``L(k)``, continued to real ``k`` in ``[2, alpha]`` through ``gammaln``, has
    ``L'' >= -_CURVATURE``: ``-psi'(k + 1) >= -psi'(3) > -0.4``, ``-psi'(alpha - k + 1) >=
    -psi'(1) = -pi^2 / 6``, and ``log expm1(x(k))`` with ``x = k(k-1) / (2 sigma^2)`` has second
    derivative at least ``-x'^2 / x^2 = -(2k-1)^2 / (k(k-1))^2 >= -9/4`` (since
    ``(e^x - 1)^2 >= x^2 e^x``); the rest is linear in ``k``. So inside a cell of ``w`` terms
    between two probes ``L`` exceeds the larger probe by at most ``_CURVATURE w^2 / 8``, and a
    cell whose probes are both that far below ``peak - _DROP_BELOW - log(alpha)`` holds terms
    whose total (at most ``alpha`` of them) is below ``e^-_DROP_BELOW`` of the sum.
    """
    cells = np.ceil((alpha - 2.0) / _CELL_TERMS).astype(np.int64)
    cost = np.cumsum(alpha + cells)  # probes, and at most every term in kept cells
    result = np.empty(q.shape)
    for part in _chunks(cost, _CHUNK_TERMS):
        result[part] = _probed_binomial_chunk(q[part], sigma[part], alpha[part], cells[part])
    return result


def _probed_binomial_chunk(q, sigma, alpha, cells) -> np.ndarray:
    """:func:`_log_a_minus_1_integer_probed` for one chunk of items."""
    probes = RaggedIndex(cells + 1)
    item = probes.item
    # probe j sits at k = 2 + j w (the last one at alpha); cell j runs from probe j to probe j+1
    k = np.minimum(2.0 + probes.local * float(_CELL_TERMS), alpha[item])
    log_probe = _log_binomial_terms(k, alpha[item], _log_choose(alpha[item], k), q[item],
                                    sigma[item])
    peak = np.maximum.reduceat(log_probe, probes.starts)
    threshold = peak - _DROP_BELOW - np.log(alpha) - _CURVATURE * _CELL_TERMS**2 / 8.0
    above = log_probe >= threshold[item]
    next_above = np.zeros_like(above)
    next_above[:-1] = above[1:]
    keep = np.flatnonzero((probes.local < cells[item]) & (above | next_above))
    # the terms of the kept cells, each cell's end excluded; the last term (k = alpha) added apart
    first = k[keep]
    terms = RaggedIndex((k[keep + 1] - first).astype(np.int64))
    owner = item[keep][terms.item]
    kk = first[terms.item] + terms.local
    a = alpha[owner]
    log_terms = _log_binomial_terms(kk, a, _log_choose(a, kk), q[owner], sigma[owner])
    last = probes.starts + cells
    owners = np.concatenate((owner, item[last]))
    order = np.argsort(owners, kind="stable")
    values = np.concatenate((log_terms, log_probe[last]))[order]
    return segment_logsumexp(values, RaggedIndex(np.bincount(owners, minlength=q.size)))


def _log_a_minus_1_integer_full(q, sigma, alpha) -> np.ndarray:
    """The binomial sum of :func:`log_a_minus_1_integer`, every term.

    Items are summed in chunks of at most ``_CHUNK_TERMS`` terms (or one item), so the memory
    used is bounded whatever the number and size of the orders.
    """
    terms = np.cumsum(alpha - 1.0)
    if terms.size == 0 or terms[-1] <= _CHUNK_TERMS:
        return _log_a_minus_1_integer_chunk(q, sigma, alpha)
    result = np.empty(q.shape)
    for part in _chunks(terms, _CHUNK_TERMS):
        result[part] = _log_a_minus_1_integer_chunk(q[part], sigma[part], alpha[part])
    return result


def _chunks(cumulative_cost: np.ndarray, limit: float):
    """Consecutive slices of the items whose cost (given as its running total) is at most
    ``limit`` each, or one item where that item alone costs more."""
    start, done = 0, 0
    while start < cumulative_cost.size:
        stop = max(start + 1, int(np.searchsorted(cumulative_cost, done + limit, side="right")))
        yield slice(start, stop)
        start, done = stop, cumulative_cost[stop - 1]


def _log_a_minus_1_integer_chunk(q, sigma, alpha) -> np.ndarray:
    """:func:`log_a_minus_1_integer` for items of at most ``_CHUNK_TERMS`` terms (or one)."""
    # Accountants ask for the same few orders again and again: reuse their layout.
    small = alpha.size <= 64 and np.sum(alpha) <= _CACHED_TERMS
    index, k, rest, log_binomial = (
        _cached_binomial_layout(tuple(alpha.tolist())) if small else _binomial_layout(alpha)
    )
    item = index.item
    qi, si = q[item], sigma[item]
    log_terms = (
        log_binomial
        + rest * np.log1p(-qi)
        + k * np.log(qi)
        + _log_expm1(k * (k - 1.0) / (2.0 * si**2))
    )
    return segment_logsumexp(log_terms, index)


def _log_psi(u: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``log((1+u)^alpha - 1 - alpha u)`` for ``u > -1``, ``alpha > 1``, accurate for all ``u``.

    Near ``u = 0`` the power series ``u^2 sum_{k>=2} C(alpha,k) u^(k-2)`` is used (every ratio of
    consecutive terms is below ``r = max |u|, |alpha u|`` in modulus there, so
    ``log(1e-17) / log(r)`` terms suffice); elsewhere the form
    ``(1+u) (expm1((alpha-1) log1p(u)) + (alpha-1) expm1(-log1p(u)))``, whose two terms never
    cancel by more than about one digit outside the series' region.
    """
    series = np.abs(alpha * u) <= _SERIES_RADIUS  # alpha > 1, so |u| < |alpha u| too
    result = np.empty(u.shape)

    inner = np.flatnonzero(series)
    if inner.size:
        result[inner] = _log_psi_series(u[inner], alpha[inner])

    outer = np.flatnonzero(~series)
    if outer.size:
        result[outer] = _log_psi_from_log1p(np.log1p(u[outer]), alpha[outer] - 1.0)
    return result


def _log_psi_series(u: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """:func:`_log_psi` where ``|alpha u| <= _SERIES_RADIUS``, by its power series."""
    return np.log(_psi_series(u, alpha))


def _psi_series(u: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``psi`` where ``|alpha u| <= _SERIES_RADIUS``, by its power series (see :func:`_log_psi`)."""
    ratio = np.max(np.abs(alpha * u))
    terms = 2 if ratio == 0.0 else int(np.ceil(np.log(1e-17) / np.log(ratio))) + 1
    # C(alpha, k+1) u^(k-1) / (C(alpha, k) u^(k-2)) = (alpha - k) u / (k + 1), k = 2 .. terms
    k = np.arange(2.0, terms + 1.0)[:, None]
    products = (alpha - k) * (u / (k + 1.0))
    # running products one row (term) at a time: a few long vector operations cost less than
    # np.cumprod along a short axis
    for row in range(1, products.shape[0]):
        products[row] *= products[row - 1]
    series_sum = 1.0 + products.sum(axis=0)
    return u * u * (alpha * (alpha - 1.0) * 0.5) * series_sum


def _log_psi_from_log1p(ell: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``log psi`` from ``ell = log(1 + u)`` and ``beta = alpha - 1`` (away from ``u = 0``).

    ``psi = (1 + u) (expm1(beta ell) + beta expm1(-ell))``; the bracket never cancels by more
    than about two digits where ``|alpha u| > 0.03``, and it is taken in log space once
    ``beta ell`` would overflow.
    """
    growth = beta * ell
    tail = beta * np.expm1(-ell)
    if np.all(growth <= 700.0):
        log_bracket = np.log(np.expm1(growth) + tail)
    else:
        log_bracket = np.where(
            growth <= 700.0,
            np.log(np.expm1(np.minimum(growth, 700.0)) + tail),
            growth + np.log1p((tail - 1.0) * np.exp(-growth)),
        )
    return ell + log_bracket


def _log_integrand(t, q, sigma, alpha) -> np.ndarray:
    """Log of ``phi(t) psi(u(t))`` in the standardised variable ``t = z / sigma``."""
    s = t / sigma - 0.5 / sigma**2
    u = q * np.expm1(s)
    log_psi = np.full(t.shape, np.inf)
    finite = np.isfinite(u)
    log_psi[finite] = _log_psi(u[finite], alpha[finite])
    # Where expm1 overflows, log(1 + u) = log(q) + s + log1p((1 - q) e^-s / q) = log(q) + s to
    # far better than double precision; psi keeps its "- 1 - alpha u" (which matters when alpha
    # is close to 1: psi ~ (alpha - 1) u log u there, not u^alpha).
    huge = ~finite
    log_psi[huge] = _log_psi_from_log1p(np.log(q[huge]) + s[huge], alpha[huge] - 1.0)
    return -0.5 * t * t - _LOG_SQRT_2PI + log_psi


def _trapezoid_layout(sigma: np.ndarray, alpha: np.ndarray):
    """Where and how finely each item's integrand is sampled.

    Returns ``(lower, upper, step, full_nodes, direct, nodes, node_item, t)``: the range and the
    trapezoid step of every item, and for the items summed in one pass (``direct``) the flat
    node layout and abscissae.
    """
    # Trapezoid step: geometric convergence at rate exp(-2 pi d / h) for an integrand analytic in
    # the strip |Im t| < d; the branch points of (1 + u)^alpha lie at Im t = pi sigma.
    # The Gaussian factor grows by exp(d^2 / 2) across the strip, hence the cap on d.
    strip = np.minimum(0.95 * np.pi * sigma, 3.6)
    step = 2.0 * np.pi * strip / 45.0
    lower = np.minimum(0.0, 0.5 / sigma) - _TAIL
    upper = np.maximum(0.0, 0.5 / sigma) + _TAIL + alpha / sigma
    full_nodes = np.ceil((upper - lower) / step) + 1.0  # float: may exceed the int64 range
    direct = full_nodes <= _DIRECT_NODES
    if np.sum(full_nodes[direct]) > _DIRECT_BUDGET:
        direct[:] = False
    nodes = RaggedIndex(full_nodes[direct].astype(np.int64))
    node_item = np.flatnonzero(direct)[nodes.item]
    t = lower[node_item] + nodes.local * step[node_item]
    return lower, upper, step, full_nodes, direct, nodes, node_item, t


@lru_cache(maxsize=256)
def _cached_trapezoid_layout(sigma: tuple, alpha: tuple):
    return _trapezoid_layout(np.array(sigma), np.array(alpha))


def _log_a_minus_1_fractional(q: np.ndarray, sigma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``log(A_alpha - 1)`` for any order by the trapezoidal rule on the integrand's mass.

    NaN for the items whose quadrature would need more than ``_MAX_ITEM_NODES`` nodes.
    """
    result = np.empty(q.shape)
    # Accountants ask for the same few (sigma, order) pairs again and again: reuse the layout.
    layout = (
        _cached_trapezoid_layout(tuple(sigma.tolist()), tuple(alpha.tolist()))
        if alpha.size <= 64
        else _trapezoid_layout(sigma, alpha)
    )
    lower, upper, step, _, direct, nodes, item, t = layout
    if item.size:
        log_values = _log_integrand(t, q[item], sigma[item], alpha[item])
        result[direct] = np.log(step[direct]) + segment_logsumexp(log_values, nodes)
    probed = np.flatnonzero(~direct)
    if probed.size == 0:
        return result
    result[probed] = _probed_trapezoid(
        q[probed], sigma[probed], alpha[probed], lower[probed], upper[probed], step[probed]
    )
    return result


def step_rdp_one_pair(q: float, sigma: float, alpha: np.ndarray,
                      integer: np.ndarray | None = None) -> np.ndarray:
    """:func:`rdp_items` at one ``(q, sigma)`` with ``0 < q < 1`` and many orders.

    The same values, with fewer operations: the fractional orders share one quadrature lattice
    (its step and lower end depend on ``sigma`` alone, only its upper end on the order), so the
    abscissae and ``u(t)`` are computed once and every order is summed over the whole lattice in
    one pass; integer orders join them where that lengthens the lattice by at most half
    (the integral is the same for every order), the others are summed binomially. Orders it
    cannot take that way (too many nodes, an overflowing ``u``) go through :func:`rdp_items`.
    Arguments already validated; ``integer`` (optional) marks the whole orders. As for
    :func:`rdp_items`, the caller silences floating-point warnings (``np.errstate(all="ignore")``):
    every overflow and ``log(0)`` is handled.
    """
    # NumPy scalars: a huge or tiny sigma overflows to inf as in rdp_items, never raises
    q, sigma = np.float64(q), np.float64(sigma)
    integer = alpha == np.floor(alpha) if integer is None else integer
    if alpha.size == 0:
        return np.empty(0)
    if integer.all():
        return _finish(_log_a_minus_1_integer_one_pair(q, sigma, alpha), alpha)
    # the lattice spans about alpha / sigma + 2 _TAIL: at most half longer up to this
    reach = min(1.5 * alpha[~integer].max() + _TAIL * sigma, _LATTICE_INTEGERS)
    binomial = integer & (alpha > reach)
    split = binomial.any()  # usually not: every order on the lattice, no split of the orders
    shared = _shared_lattice_log_a_minus_1(q, sigma, alpha[~binomial] if split else alpha)
    if shared is None:
        ones = np.ones(alpha.size)
        return rdp_items(q * ones, sigma * ones, alpha)
    if not split:
        return _finish(shared, alpha)
    log_a_minus_1 = np.empty(alpha.shape)
    log_a_minus_1[~binomial] = shared
    log_a_minus_1[binomial] = _log_a_minus_1_integer_one_pair(q, sigma, alpha[binomial])
    return _finish(log_a_minus_1, alpha)


def step_rdp_integer_one_pair(q: float, sigma: float, alpha: np.ndarray) -> np.ndarray:
    """:func:`step_rdp_one_pair` for whole orders only (the binomial sums, no lattice)."""
    return _finish(_log_a_minus_1_integer_one_pair(np.float64(q), np.float64(sigma), alpha),
                   alpha)


def _log_a_minus_1_integer_one_pair(q: float, sigma: float, alpha: np.ndarray) -> np.ndarray:
    """:func:`log_a_minus_1_integer` at one ``(q, sigma)``: the same terms, without per-term
    copies of ``q`` and ``sigma`` where the layout of the orders is cached."""
    if not (alpha.size <= 64 and alpha.max() <= _PROBED_ORDER):
        ones = np.ones(alpha.size)
        return log_a_minus_1_integer(q * ones, sigma * ones, alpha)
    index, k, rest, log_binomial, pairs = _cached_one_pair_layout(tuple(alpha.tolist()))
    x = pairs * (0.5 / sigma**2)
    # log expm1(x) = x + log(1 - e^-x): one form for every x >= 0, with an absolute error of a
    # few ulps of max(x, |log expm1(x)|), as _log_expm1's two branches
    log_terms = (log_binomial + rest * np.log1p(-q) + k * np.log(q)) + (x + np.log(-np.expm1(-x)))
    peak = np.maximum.reduceat(log_terms, index.starts)
    if not np.isfinite(peak).all():
        return segment_logsumexp(log_terms, index)
    # segment_logsumexp's arithmetic, for blocks that all have a finite peak
    return peak + np.log(np.add.reduceat(np.exp(log_terms - peak[index.item]), index.starts))


@lru_cache(maxsize=256)
def _cached_one_pair_layout(alpha: tuple):
    index, k, rest, log_binomial = _cached_binomial_layout(alpha)
    return index, k, rest, log_binomial, k * (k - 1.0)


def _finish(log_a_minus_1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RDP from ``log(A_alpha - 1)``."""
    return np.logaddexp(0.0, log_a_minus_1) / (alpha - 1.0)


# Integer orders up to this join the fractional ones on the shared lattice (one pass instead of
# two); beyond, the binomial sum's log C(alpha, k) (differences of log-gammas near
# alpha log alpha) loses more than the quadrature, and the values would drift from rdp_items'.
_LATTICE_INTEGERS = 24.0
# Most (order, node) pairs the shared lattice evaluates at once; beyond, the general path.
_SHARED_NODES = 200_000
# The shared lattice sums in linear space when every term is far inside the float range: q at
# least this (psi >= q^2 times a modest factor wherever it matters, far above 1e-308 e^98) and
# (alpha - 1) log(1 + u) at most this (psi below e^600).
_LINEAR_MIN_RATE = 1e-60
_LINEAR_MAX_GROWTH = 600.0


# Inside |alpha log1p(u)| <= _ELL_RADIUS the shared lattice sums psi as its power series in
# ell = log1p(u), psi = ell^2 sum_{n=2}^{_ELL_TERMS+1} (alpha^n - alpha) ell^(n-2) / n!; outside,
# the closed form of _log_psi_from_log1p loses at most about 8 ulps (its two terms, each about
# (alpha - 1) |ell|, cancel down to alpha (alpha - 1) ell^2 / 2).
_ELL_RADIUS = 0.5
_ELL_TERMS = 16  # n = 2 .. 17; _ell_powers builds exactly 16 powers
_ELL_POWERS = np.arange(1.0, _ELL_TERMS + 1.0)  # n - 1
_ELL_INVERSE_FACTORIALS = 1.0 / np.cumprod(np.arange(2.0, _ELL_TERMS + 2.0))  # 1 / n!


def _ell_powers(ell: np.ndarray) -> np.ndarray:
    """Rows ``ell^0 .. ell^15`` (four products of blocks instead of fifteen of rows)."""
    powers = np.empty((_ELL_TERMS, ell.size))
    powers[0] = 1.0
    powers[1] = ell
    np.multiply(ell, ell, out=powers[2])
    np.multiply(powers[2], ell, out=powers[3])
    np.multiply(powers[:4], powers[2] * powers[2], out=powers[4:8])
    np.multiply(powers[:8], powers[4] * powers[4], out=powers[8:])
    return powers


def _psi_over_ell_squared(ell: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``psi / ell^2`` at every (order, node) pair by its power series in ``ell = log1p(u)``.

    With ``1 + u = e^ell``, ``psi = e^(alpha ell) - 1 - alpha (e^ell - 1) = sum_{n>=2}
    (alpha^n - alpha) ell^n / n!``. Since ``0 < alpha^n - alpha <= (n - 1) (alpha - 1)
    alpha^(n-1)``, the terms beyond ``n = _ELL_TERMS + 1`` add less than ``1e-19`` relative where
    ``|alpha ell| <= _ELL_RADIUS``. Elsewhere the sum is meaningless (the caller does not use it).
    The sum over ``n`` is one matrix product: coefficients per order times powers per node.
    """
    return _series_coefficients(alpha) @ _ell_powers(ell)


def _series_coefficients(alpha: np.ndarray) -> np.ndarray:
    """:func:`_ell_coefficients`, cached for the few sets of orders that come back."""
    return (_cached_ell_coefficients(alpha.tobytes()) if alpha.size <= 256
            else _ell_coefficients(alpha))


def _ell_coefficients(alpha: np.ndarray) -> np.ndarray:
    """``(alpha^n - alpha) / n!`` for ``n = 2 .. _ELL_TERMS + 1``, one row per order."""
    # alpha^n - alpha = alpha expm1((n - 1) log alpha): no cancellation near alpha = 1
    return (alpha[:, None] * _ELL_INVERSE_FACTORIALS) * np.expm1(
        np.log(alpha)[:, None] * _ELL_POWERS)


@lru_cache(maxsize=256)
def _cached_ell_coefficients(alpha: bytes) -> np.ndarray:
    # the same few sets of orders come back call after call (keyed by their bytes: cheap to hash)
    coefficients = _ell_coefficients(np.frombuffer(alpha))
    coefficients.setflags(write=False)
    return coefficients


def _shared_lattice_log_a_minus_1(q: float, sigma: float, alpha: np.ndarray):
    """``log(A_alpha - 1)`` for orders at one ``(q, sigma)`` on a shared lattice, or ``None``
    where the general path is needed (node budget, overflow, extreme tilt).

    The lattice is :func:`_trapezoid_layout`'s (step and lower end from ``sigma`` alone) run to
    the largest order's upper end; every order is summed over all of it, a few nodes past its own
    upper end. Those nodes carry positive terms below ``e^-98`` of the sum (see ``_TAIL``), so
    the sums agree with the general path's to rounding. ``psi`` is the closed form of
    :func:`_log_psi_from_log1p` where ``|alpha ell| > _ELL_RADIUS`` (its two terms, each about
    ``(alpha - 1) |ell|``, cancel down to ``alpha (alpha - 1) ell^2 / 2``: at most about 8 ulps
    lost there) and the power series of :func:`_psi_over_ell_squared` inside.
    """
    strip = min(0.95 * math.pi * sigma, 3.6)
    step = 2.0 * math.pi * strip / 45.0
    lower = min(0.0, 0.5 / sigma) - _TAIL
    smallest, largest = float(alpha.min()), float(alpha.max())
    if largest / sigma > _MAX_TILT:
        return None
    upper = max(0.0, 0.5 / sigma) + _TAIL + largest / sigma  # finite: sigma > 1e-6
    nodes = math.ceil((upper - lower) / step) + 1.0
    if nodes * alpha.size > _SHARED_NODES:
        return None
    t = np.arange(int(nodes)) * step + lower
    u = q * np.expm1(t * (1.0 / sigma) - 0.5 / sigma**2)
    # u increases along the lattice and t / sigma is largest at its end (where t >= _TAIL >=
    # -lower): if the last u is finite, every u is
    if not math.isfinite(u[-1]):
        return None
    ell = np.log1p(u)  # non-decreasing along the lattice, as u
    beta = alpha[:, None] - 1.0
    # the power series serves the nodes with |ell| <= _ELL_RADIUS / alpha: one slice of nodes
    # (a node exactly at -widest keeps the closed form, as accurate there)
    widest = _ELL_RADIUS / smallest
    first, stop = ell.searchsorted(-widest, side="right"), ell.searchsorted(widest, side="right")
    # ell is largest at the last node (u increases with t), so this is the largest growth
    if q >= _LINEAR_MIN_RATE and (largest - 1.0) * ell[-1] <= _LINEAR_MAX_GROWTH:
        # every term lies well inside the float range: sum in linear space
        return np.log(_linear_lattice_sum(u, ell, t, alpha, beta, largest, first, stop)) + (
            math.log(step))
    part = ell[first:stop]
    near = np.abs(part) * alpha[:, None] <= _ELL_RADIUS
    reduced = _psi_over_ell_squared(part, alpha)
    growth = beta * ell
    log_weight = -0.5 * t * t - _LOG_SQRT_2PI
    tail = beta * np.expm1(-ell)
    if (largest - 1.0) * ell[-1] <= 700.0:
        log_psi = ell + np.log(np.expm1(growth) + tail)
    else:
        log_psi = ell + np.where(growth <= 700.0,
                                 np.log(np.expm1(np.minimum(growth, 700.0)) + tail),
                                 growth + np.log1p((tail - 1.0) * np.exp(-growth)))
    np.copyto(log_psi[:, first:stop], np.log(reduced) + 2.0 * np.log(np.abs(part)), where=near)
    log_values = log_psi + log_weight
    peak = log_values.max(axis=1)
    return math.log(step) + peak + np.log(np.exp(log_values - peak[:, None]).sum(axis=1))


def _linear_lattice_sum(u, ell, t, alpha, beta, largest, first, stop) -> np.ndarray:
    """``sum_t weight(t) psi(t)`` per order over the lattice, every term far inside the float
    range (``_shared_lattice_log_a_minus_1``'s linear case; ``ell[first:stop]`` holds the nodes
    where some order takes the power series).

    The nodes with ``|ell| <= _ELL_RADIUS / largest`` take the series at every order, so their
    sum is taken moment by moment, ``coefficients @ (ell^k @ (weight ell^2))``: no
    (order, node) array for them. Each term of the series is at most ``(alpha + 1) |ell| / 3
    <= 1/3`` of the one before, so the signed sum is at least a third of the sum of the terms'
    sizes: the moments' mixed signs cost at most a few ulps. Elsewhere
    ``psi = (1 + u) expm1((alpha - 1) ell) - (alpha - 1) u``: the two terms, each about
    ``(alpha - 1) |u|``, cancel as those of :func:`_log_psi_from_log1p`, and the series
    replaces it where ``|alpha ell| <= _ELL_RADIUS``.
    """
    weight = np.exp(-0.5 * t * t - _LOG_SQRT_2PI)
    narrowest = _ELL_RADIUS / largest
    inner_first = int(ell.searchsorted(-narrowest, side="left"))
    inner_stop = int(ell.searchsorted(narrowest, side="right"))
    first, stop = min(int(first), inner_first), max(int(stop), inner_stop)
    coefficients = _series_coefficients(alpha)
    inner = ell[inner_first:inner_stop]
    # the powers of the inner nodes, then of the mixed ones (some order near, some not), at once
    series = np.concatenate((inner, ell[first:inner_first], ell[inner_stop:stop]))
    powers = _ell_powers(series)
    inner_weight = weight[inner_first:inner_stop] * (inner * inner)
    total = coefficients @ (powers[:, :inner.size] @ inner_weight)
    if inner_first == 0 and inner_stop == ell.size:
        return total
    # the other nodes, side by side: the mixed ones are contiguous there
    outer_u = np.concatenate((u[:inner_first], u[inner_stop:]))
    outer_ell = np.concatenate((ell[:inner_first], ell[inner_stop:]))
    psi = (1.0 + outer_u) * np.expm1(beta * outer_ell)
    psi -= beta * outer_u
    if series.size > inner.size:
        mixed = slice(first, inner_first + stop - inner_stop)
        part = outer_ell[mixed]
        np.copyto(psi[:, mixed], (coefficients @ powers[:, inner.size:]) * (part * part),
                  where=np.abs(part) * alpha[:, None] <= _ELL_RADIUS)
    return total + psi @ np.concatenate((weight[:inner_first], weight[inner_stop:]))


def _probed_trapezoid(q, sigma, alpha, lower, upper, step) -> np.ndarray:
    """The trapezoidal sum for long ranges, in chunks that bound the memory used.

    NaN for the items over the node budget: at least one cell (the peak's) is always summed, so
    an item whose cell alone exceeds ``_MAX_ITEM_NODES`` nodes is left out before probing.
    """
    result = np.full(q.shape, np.nan)
    probes_wanted = np.ceil((upper - lower) / np.maximum(step, _PROBE_SPACING))
    cell_steps = np.maximum(1.0, np.ceil((upper - lower) / np.minimum(probes_wanted, _MAX_PROBES)
                                         / step))
    within = np.flatnonzero(cell_steps <= _MAX_ITEM_NODES)
    if within.size == 0:
        return result
    q, sigma, alpha, lower, upper, step, cell_steps = (
        x[within] for x in (q, sigma, alpha, lower, upper, step, cell_steps)
    )
    cells = np.ceil((upper - lower) / (cell_steps * step)).astype(np.int64)
    # At most _MAX_PROBES cells of at most _MAX_ITEM_NODES nodes: no int64 overflow.
    cost = cells + 1 + np.minimum(cells * cell_steps.astype(np.int64), _MAX_ITEM_NODES)
    for part in _chunks(np.cumsum(cost), _CHUNK_NODES):
        result[within[part]] = _trapezoid_on_mass(
            q[part], sigma[part], alpha[part], lower[part], step[part],
            cell_steps[part].astype(np.int64), cells[part],
        )
    return result


def _trapezoid_on_mass(q, sigma, alpha, lower, step, cell_steps, cells) -> np.ndarray:
    """Trapezoidal sum of the integrand over the probe cells that carry its mass.

    Probes sit every ``cell_steps`` quadrature steps. Since the log-integrand's curvature is at
    least -1 (that of the Gaussian factor) away from the zero of ``psi``, it can exceed the larger
    value at a cell's two ends by at most ``width^2 / 8`` inside the cell, so a cell whose ends
    are both ``_DROP_BELOW + width^2 / 8`` below the highest probe holds a negligible share.
    """
    probes = RaggedIndex(cells + 1)
    item = probes.item
    t_probe = lower[item] + probes.local * (cell_steps[item] * step[item])
    log_probe = _log_integrand(t_probe, q[item], sigma[item], alpha[item])
    peak = np.maximum.reduceat(log_probe, probes.starts)
    width = cell_steps * step
    threshold = peak - _DROP_BELOW - width**2 / 8.0

    # A cell j (between probes j and j+1) is kept if either end reaches the threshold.
    above = log_probe >= threshold[item]
    is_cell = probes.local < cells[item]
    next_above = np.zeros_like(above)
    next_above[:-1] = above[1:]
    keep = is_cell & (above | next_above)
    # Items whose kept cells exceed the node budget get NaN (their caller uses a bound instead).
    kept_nodes = np.bincount(item[keep], weights=cell_steps[item[keep]], minlength=q.size)
    over = kept_nodes > _MAX_ITEM_NODES
    keep &= ~over[item]
    cell_item = item[keep]
    cell_index = probes.local[keep]

    nodes = RaggedIndex(cell_steps[cell_item])
    node_item = cell_item[nodes.item]
    lattice = cell_index[nodes.item] * cell_steps[node_item] + nodes.local
    t = lower[node_item] + lattice * step[node_item]
    log_values = _log_integrand(t, q[node_item], sigma[node_item], alpha[node_item])
    per_item = RaggedIndex(np.bincount(node_item, minlength=q.size))
    # node_item is sorted, so per_item's blocks line up with log_values.
    return np.where(over, np.nan, np.log(step) + segment_logsumexp(log_values, per_item))


register_cache(_cached_binomial_layout.cache_clear, table=True)
register_cache(_cached_one_pair_layout.cache_clear, table=True)
register_cache(_cached_trapezoid_layout.cache_clear)
register_cache(_cached_ell_coefficients.cache_clear, table=True)
