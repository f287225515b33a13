"""Rényi-DP of the Gaussian mechanism on a fixed-size batch drawn without replacement.

A batch of ``b`` records is drawn uniformly without replacement from ``n`` (``q = b / n``) and
the Gaussian mechanism with noise ``sigma`` (against the *replace-one* sensitivity of the batch
query, 1) runs on it. Wang, Balle and Kasiviswanathan 2019 ("Subsampled Rényi differential
privacy and analytical moments accountant", AISTATS; arXiv:1808.00087, Theorem 9 and its
strengthening for mechanisms like the Gaussian, Theorem 27 of the arXiv version) bound its RDP
for **replace-one** neighbours at integer orders ``alpha >= 2`` by
``log(A_alpha) / (alpha - 1)`` with

    A_alpha = 1 + sum_{i=2}^{alpha} C(alpha, i) q^i m_i,
    m_i = min(4 sqrt(M_{2 floor(i/2)} M_{2 ceil(i/2)}), 2 exp((i - 1) eps(i))),

where ``eps(i) = i / (2 sigma^2)`` is the Gaussian mechanism's RDP and ``M_l`` is the ``l``-th
forward difference at 0 of ``j -> exp((j - 1) eps(j))`` (``M_2 = e^(1/sigma^2) - 1``). As in
dp_accounting 0.6 (``_compute_rdp_sample_wor_gaussian_int``), orders above 256 use the plain
Theorem 9 term ``m_i = 2 exp((i - 1) eps(i))`` for ``i >= 3`` (a larger, still valid, bound), and
a fractional order interpolates ``log A`` linearly between the neighbouring integer orders
(their Corollary 10; ``log A_1 = 0``).

The forward differences alternate in sign and cancel catastrophically for large noise (by up to
500 digits at ``l = 256``). Here ``M_l = E[(L - 1)^l]`` with ``L = exp(t / sigma - 1 /
(2 sigma^2))``, ``t ~ N(0, 1)`` (the Gaussian's likelihood ratio; ``E[L^j] = exp((j - 1)
eps(j))``), a non-negative integrand for even ``l``: where the alternating sum would cancel it
is integrated with the trapezoidal rule instead, with the step and the window chosen from the
rule's error bound for entire integrands (Trefethen and Weideman 2014, "The exponentially
convergent trapezoidal rule", Theorem 5.1), so every ``M_l`` keeps its relative precision.

The result is also capped by the Gaussian mechanism's own ``alpha / (2 sigma^2)``, a bound for
every ``q`` (the subsampled outputs are mixtures of Gaussian pairs at distance at most 1, and
``exp((alpha - 1) D_alpha)`` is jointly convex); the cap makes the bound non-decreasing in ``q``
up to ``q = 1``, where it is exactly ``alpha / (2 sigma^2)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from accounting._caches import register_cache
from accounting._validation import check_noise_multiplier, check_orders, check_sample_rate
from accounting.rdp._ragged import RaggedIndex, segment_logsumexp
from accounting.rdp.sampled_gaussian import (
    _binomial_layout,
    _cached_binomial_layout,
    _chunks,
    _log_choose,
)

__all__ = ["rdp_sampled_without_replacement"]

# Orders up to this use the forward-difference terms (dp_accounting's max_alpha).
_MAX_DIFFERENCE_ORDER = 256
# Even forward differences needed: l = 0, 2, .., 2 ceil(256 / 2).
_DIFFERENCE_ORDERS = np.arange(0, _MAX_DIFFERENCE_ORDER + 1, 2, dtype=float)
# The alternating sum is used where its terms' absolute sum is at most this many times M_l
# (it then loses at most two digits, as any log-space sum of numbers of that size).
_MAX_CANCELLATION = 100.0
# Trapezoid error and window tails are kept below exp(-_QUADRATURE_TARGET) of M_l.
_QUADRATURE_TARGET = 40.0
# Most quadrature nodes one M_l may cost; beyond it M_l is taken as +inf, so that m_i falls back
# to the (larger, valid) Theorem 9 term.
_MAX_NODES_PER_DIFFERENCE = 200_000
_CHUNK_TERMS = 2_000_000
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def rdp_sampled_without_replacement(sample_rate, noise_multiplier, orders) -> np.ndarray:
    """RDP of the Gaussian mechanism on a batch sampled without replacement (replace-one).

    Parameters
    ----------
    sample_rate : float
        Batch ratio ``q = b / n`` in ``[0, 1]`` (``b`` records drawn without replacement from
        ``n``).
    noise_multiplier : float
        Noise standard deviation over the **replace-one** sensitivity of the batch query,
        ``sigma > 0``. For a DP-SGD sum of per-record gradients clipped to norm ``C``, replacing
        one record moves the sum by up to ``2 C``, so DP-SGD with noise multiplier ``sigma`` is
        ``sigma / 2`` here (dp_accounting's ``SampledWithoutReplacementDpEvent`` convention).
    orders : float or array_like
        Rényi orders in ``(1, MAX_ORDER]``, integer or fractional.

    Returns
    -------
    ndarray
        The RDP bound at each order, of shape ``(len(orders),)``: ``min(log(A_alpha) /
        (alpha - 1), alpha / (2 sigma^2))`` with ``A_alpha`` of Wang, Balle and Kasiviswanathan
        2019 (Theorem 9 with the forward-difference terms of their Theorem 27 up to order 256,
        linear interpolation of ``log A`` at fractional orders, Corollary 10; see the module
        docstring). ``q = 0`` gives 0 and ``q = 1`` gives ``alpha / (2 sigma^2)``. Below the cap
        it equals dp_accounting 0.6's ``_compute_rdp_sample_wor_gaussian`` wherever that one's
        forward differences do not cancel; ``inf`` only beyond the float range.

    Notes
    -----
    Guarantee for **replace-one** neighbours (data sets of the same size differing in one
    record). Work is at most ``alpha - 1`` terms per integer order involved, summed in chunks of
    bounded size, plus a one-off quadrature per ``sigma`` (cached).

    Raises
    ------
    ValueError
        If ``sample_rate`` is outside ``[0, 1]``, ``noise_multiplier`` is not a finite positive
        number, or an order is not a finite number in ``(1, MAX_ORDER]``.
    TypeError
        If ``sample_rate`` or ``noise_multiplier`` is not a single real number.
    """
    q = check_sample_rate(sample_rate, scalar=True)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    alphas = check_orders(orders)
    with np.errstate(all="ignore"):  # overflows to inf are the documented result
        gaussian = alphas / (2.0 * sigma * sigma)
        if q == 0.0:
            return np.zeros(alphas.shape)
        if q == 1.0 or sigma < _SMALLEST_SERIES_SIGMA:
            # below it the series' 1 / (2 sigma^2) overflows; the cap is a valid bound (inf)
            return gaussian
        return np.minimum(_wor_rdp(q, sigma, alphas), gaussian)


#: Smallest noise multiplier the series is evaluated at (``1 / (2 sigma^2)`` stays finite).
_SMALLEST_SERIES_SIGMA = 1e-150


def _wor_rdp(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """The bound at every order for ``0 < q < 1``, before the cap."""
    below = np.floor(alphas)
    above = np.ceil(alphas)
    needed, inverse = np.unique(np.concatenate((below, above)), return_inverse=True)
    log_a = np.zeros(needed.shape)  # log A_1 = 0
    integer = needed >= 2.0
    log_a[integer] = _log_a_integer(q, sigma, needed[integer])
    log_below, log_above = np.split(log_a[inverse], 2)
    fraction = alphas - below
    # exact at integer orders (fraction 0; below == above)
    log_a_alpha = np.where(fraction == 0.0, log_below,
                           (1.0 - fraction) * log_below + fraction * log_above)
    return log_a_alpha / (alphas - 1.0)


def _log_a_integer(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """``log A_alpha`` for integer orders ``alpha >= 2``, in chunks of bounded memory."""
    terms = np.cumsum(alphas - 1.0)
    if terms[-1] <= _CHUNK_TERMS:
        return _log_a_integer_chunk(q, sigma, alphas)
    result = np.empty(alphas.shape)
    for part in _chunks(terms, _CHUNK_TERMS):
        result[part] = _log_a_integer_chunk(q, sigma, alphas[part])
    return result


def _log_a_integer_chunk(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    small = alphas.size <= 64 and np.sum(alphas) <= 2**15
    index, k, _, log_binomial = (
        _cached_binomial_layout(tuple(alphas.tolist())) if small else _binomial_layout(alphas)
    )
    log_m = _log_m_terms(sigma)
    c = 1.0 / (2.0 * sigma * sigma)
    # Theorem 9 term 2 exp((i - 1) eps(i)) past the forward-difference orders; i = 2 keeps its
    # own term at every order.
    plain = np.log(2.0) + c * k * (k - 1.0)
    large = (alphas[index.item] > _MAX_DIFFERENCE_ORDER) & (k > 2.0)
    position = np.minimum(k, _MAX_DIFFERENCE_ORDER).astype(np.int64) - 2
    weight = np.where(large, plain, log_m[position])
    log_terms = log_binomial + k * np.log(q) + weight
    return np.logaddexp(0.0, segment_logsumexp(log_terms, index))


@lru_cache(maxsize=256)
def _log_m_terms(sigma: float) -> np.ndarray:
    """``log m_i`` for ``i = 2 .. 256`` (read-only)."""
    c = 1.0 / (2.0 * sigma * sigma)
    log_differences = _log_even_differences(sigma)  # at l = 0, 2, .., 256
    i = np.arange(2, _MAX_DIFFERENCE_ORDER + 1)
    low = log_differences[i // 2]  # l = 2 floor(i / 2)
    high = log_differences[(i + 1) // 2]  # l = 2 ceil(i / 2)
    with np.errstate(invalid="ignore"):  # inf + inf stays inf
        paired = np.log(4.0) + 0.5 * (low + high)
    result = np.minimum(paired, np.log(2.0) + c * i * (i - 1.0))
    result.setflags(write=False)
    return result


def _log_even_differences(sigma: float) -> np.ndarray:
    """``log M_l`` at ``l = 0, 2, .., 256``: the alternating sum where it does not cancel, the
    trapezoidal rule on ``E[(L - 1)^l]`` elsewhere."""
    c = 1.0 / (2.0 * sigma * sigma)
    orders = _DIFFERENCE_ORDERS
    index = RaggedIndex(orders.astype(np.int64) + 1)  # j = 0 .. l
    j = index.local.astype(float)
    l_items = orders[index.item]
    log_terms = _log_choose(l_items, j) + c * j * (j - 1.0)
    # l is even: the terms with j even are added, those with j odd subtracted
    even = index.local % 2 == 0
    positive = segment_logsumexp(np.where(even, log_terms, -np.inf), index)
    negative = segment_logsumexp(np.where(even, -np.inf, log_terms), index)
    gap = negative - positive  # <= 0 as M_l >= 0; NaN where both are inf
    with np.errstate(invalid="ignore"):
        direct = positive + np.log(-np.expm1(np.minimum(gap, 0.0)))
        # |terms| / M_l = (1 + e^gap) / (1 - e^gap)
        clean = np.exp(gap) <= (_MAX_CANCELLATION - 1.0) / (_MAX_CANCELLATION + 1.0)
    result = np.where(clean, direct, np.nan)
    result[0] = 0.0  # M_0 = 1
    result[np.isinf(positive) & (positive > 0)] = np.inf
    cancelled = np.flatnonzero(np.isnan(result))
    if cancelled.size:
        log_absolute = np.logaddexp(positive[cancelled], negative[cancelled])
        result[cancelled] = _log_moment_quadrature(sigma, orders[cancelled], log_absolute)
    return result


def _log_moment_quadrature(sigma: float, orders: np.ndarray, log_absolute: np.ndarray):
    """``log E[(L - 1)^l]`` for even ``l`` by the trapezoidal rule in ``t``.

    The integrand ``f(t) = phi(t) (L(t) - 1)^l`` is entire and ``|f(t + iy)| <= e^(y^2 / 2)
    phi(t) (L(t) + 1)^l``, whose integral is ``e^(y^2/2)`` times the alternating sum's absolute
    sum ``S_l``. So the rule with step ``h`` errs by at most ``2 e^(d^2/2) S_l /
    (e^(2 pi d / h) - 1)`` for any ``d`` (Trefethen and Weideman 2014, Theorem 5.1); with ``R``
    an upper bound on ``S_l / M_l`` (from Lyapunov's ``M_l >= M_2^(l/2)``), ``d`` and ``h`` below
    make it ``e^-40`` of ``M_l``. The nodes beyond the window ``[-u_left, l / sigma + u_right]``
    add at most ``R e^(-u_left^2 / 2)`` and ``R 2^l e^(-u_right^2 / 2)`` relative to ``M_l``
    (``(L + 1)^l <= 2^l`` for ``L <= 1`` and ``<= 2^l L^l`` above, with ``phi(t) L^l =
    E[L^l] phi(t - l / sigma)``).
    """
    s = 1.0 / sigma
    log_m2 = np.log(np.expm1(s * s))
    log_ratio = np.maximum(log_absolute - 0.5 * orders * log_m2, 0.0)
    target = _QUADRATURE_TARGET + np.log(8.0)
    d = np.sqrt(2.0 * (log_ratio + target))
    step = 2.0 * np.pi * d / (0.5 * d * d + log_ratio + target)
    u_left = np.sqrt(2.0 * (log_ratio + target))
    u_right = np.sqrt(2.0 * (log_ratio + orders * np.log(2.0) + target))
    lower = -u_left
    counts = np.ceil((orders * s + u_left + u_right) / step) + 1.0
    result = np.full(orders.shape, np.inf)  # over budget: m_i uses its other (valid) term
    within = np.flatnonzero(counts <= _MAX_NODES_PER_DIFFERENCE)
    if within.size == 0:
        return result
    nodes = RaggedIndex(counts[within].astype(np.int64))
    item = within[nodes.item]
    t = lower[item] + nodes.local * step[item]
    with np.errstate(divide="ignore"):  # a node at L = 1 gives log 0
        log_f = (-0.5 * t * t - _LOG_SQRT_2PI
                 + orders[item] * np.log(np.abs(np.expm1(s * t - 0.5 * s * s))))
    result[within] = np.log(step[within]) + segment_logsumexp(log_f, nodes)
    return result


register_cache(_log_m_terms.cache_clear)
