"""Random allocation ("balls in bins"): certified RDP bounds and a Monte-Carlo estimate.

One epoch of ``t`` Gaussian steps in which every record takes part in exactly ``k`` of the steps,
chosen uniformly at random (Chua, Ghazi, Kamath, Kumar, Manurangsi, Sinha, Zhang 2025,
"Balls-and-bins sampling for DP-SGD"; Feldman & Shenfeld 2025, "Privacy amplification by random
allocation", arXiv:2502.08202). **Add/remove neighbours**, sensitivity 1, noise ``sigma``.

For ``k = 1`` the pair of output distributions that dominates the epoch (Feldman & Shenfeld 2025,
the reduction of allocation to a mixture against a product) is, with ``e_i`` the unit vectors of
``R^t``,

    P = (1/t) sum_i N(e_i, sigma^2 I_t),     Q = N(0, sigma^2 I_t),

and the likelihood ratio is ``R(x) = P/Q = (1/t) sum_i Y_i`` with ``Y_i = exp((x_i - 1/2) /
sigma^2)``, independent lognormals of mean 1 under ``Q``. The *remove* direction is
``D_alpha(P || Q) = log E_Q[R^alpha] / (alpha - 1)`` and the *add* direction
``D_alpha(Q || P) = log E_Q[R^(1 - alpha)] / (alpha - 1)``.

Remove direction, integer order ``alpha`` (exact). The exponential generating function of
``E[Y^m] = exp(m (m - 1) / (2 sigma^2))`` is ``f(x) = sum_m E[Y^m] x^m / m!``, so
``E_Q[R^alpha] = t^-alpha alpha! [x^alpha] f(x)^t`` (Feldman & Shenfeld 2025, the partition sum
of their exact remove-direction RDP). We raise the series to the power ``t`` truncated at the
largest order by repeated squaring, in the normalised form ``a_k(n) = log E[(S_n / t)^k]``
(``S_n`` a sum of ``n`` of the ``Y_i``), combined by the binomial convolution
``E[(A + B)^k] = sum_j C(k, j) E[A^j] E[B^(k-j)]`` of positive terms in log space:
``O(alpha^2 log t)`` work, no cancellation.

Add direction, integer order (certified numerical upper bound). With ``beta = alpha - 1`` and
``phi(v) = E[exp(-v Y)]`` (the Laplace transform of the lognormal),

    E_Q[R^-beta] = Gamma(beta)^-1 int_0^inf u^(beta-1) phi(u/t)^t du

(``r^-beta = Gamma(beta)^-1 int u^(beta-1) e^(-u r) du``). Every ingredient is bounded from
above rigorously: ``phi`` by the alternating Taylor polynomial of ``e^-w`` of degree 6 (an upper
bound for ``w >= 0``) over ``{Z <= z*}`` with the truncated lognormal moments in closed form,
plus ``exp(-v y*) P(Z > z*)`` above ``z*``, minimised over a grid of ``z*``; the integral by
sums over a grid whose piece on ``[u_j, u_j+1]`` is the smaller of ``(e^v phi(v))^t`` at the
right end (it increases: ``e^v phi(v) = E[e^(v (1 - Y))]`` is convex with zero slope at 0) times
the exact gamma mass of the piece, and ``phi(u_j / t)^t`` (``phi`` decreases) times
``int u^(beta-1)``; the tail beyond the grid by ``phi(U/t)^(t-1) t^beta E[Y^-beta]``. The bound
is within about 1% of the exact value for ``t >= 20`` and loose for ``t <= 5``, where the
closed-form bound below wins.

Add direction, any order (Feldman & Shenfeld 2025, their RDP add-direction bound; by Jensen,
``log R >= mean_i log Y_i``): ``D_alpha(Q || P) <= (alpha + t - 1) / (2 t sigma^2)``.

Both directions, any order: ``alpha / (2 sigma^2)``, the Gaussian's own RDP (``E_Q[(P/Q)^alpha]``
and ``E_Q[(Q/P)^(alpha-1)]`` are convex in ``P``, and each mixture component is a Gaussian).

``k > 1``: the epoch is bounded by ``k`` compositions of the ``k = 1`` epoch of ``floor(t/k)``
steps (Feldman & Shenfeld 2025, their reduction of ``k``-out-of-``t`` to ``1``-out-of-``t/k``,
as their ``random_allocation`` code applies it).

Non-integer orders take the value at ``ceil(alpha)`` (RDP is non-decreasing in the order).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from accounting import _scipy
from accounting._caches import register_cache
from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_orders,
    check_positive_int,
    count_as_float,
)
from accounting.rdp.conversions import epsilon_from_rdp
from accounting.rdp.orders import DEFAULT_ORDERS

__all__ = [
    "MAX_ADD_NUMERIC_ORDER",
    "MAX_EXACT_ORDER",
    "MAX_MONTE_CARLO_WORK",
    "MAX_STEPS",
    "MonteCarloEstimate",
    "random_allocation_epsilon",
    "random_allocation_monte_carlo",
    "random_allocation_rdp",
]

#: Largest integer order of the exact remove-direction RDP (its work grows as the order squared);
#: above it the Gaussian bound ``alpha / (2 sigma^2)`` is used (a valid upper bound).
MAX_EXACT_ORDER = 1024
#: Largest integer order of the numerical add-direction bound; above it the closed-form bounds.
MAX_ADD_NUMERIC_ORDER = 128
#: Largest number of steps accepted (floats represent every integer up to it).
MAX_STEPS = 2**53
#: Noise multipliers outside ``[1e-100, 1e100]`` get the Gaussian bound ``alpha / (2 sigma^2)``
#: (still an upper bound): the amplified bounds square ``sigma`` and would leave the float range,
#: and at both ends they would change nothing that matters (epsilons above ``1e190`` or below
#: ``1e-90``).
_SIGMA_RANGE = (1e-100, 1e100)
#: Largest ``steps * samples * epochs`` of the Monte-Carlo estimate (its work is proportional).
MAX_MONTE_CARLO_WORK = 10**8
#: Largest ``steps`` and ``samples`` of the Monte-Carlo estimate: one sample's ``steps`` draws
#: are held at once (8 MiB here), and the inversion scans all samples about 400 times.
_MONTE_CARLO_MAX_STEPS = 2**20
_MONTE_CARLO_MAX_SAMPLES = 1_000_000

_U = float(np.finfo(float).eps)


def _binomial_log_convolution(a: np.ndarray, b: np.ndarray, log_binom: np.ndarray) -> np.ndarray:
    """``log sum_j C(k, j) exp(a_(k-j) + b_j)`` for every ``k`` (row chunks bound the memory).

    Row ``k`` reads ``a_(k-j)`` from a sliding window over ``a`` reversed and padded with
    ``-inf`` (no index arrays), and is summed by a plain max-shifted log-sum-exp (its largest
    term is finite: ``j = 0``).
    """
    size = a.shape[0]
    padded = np.concatenate([a[::-1], np.full(size - 1, -np.inf)])
    # windows[i, j] = padded[i + j] = a[size - 1 - i - j]: row k is window size - 1 - k
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)[::-1]
    out = np.empty(size)
    rows = max(1, 2**21 // size)
    for start in range(0, size, rows):
        terms = log_binom[start:start + rows] + windows[start:start + rows] + b[None, :]
        top = terms.max(axis=1)
        out[start:start + rows] = top + np.log(np.exp(terms - top[:, None]).sum(axis=1))
    return out


def _remove_log_moments(steps: int, sigma: float, max_order: int) -> np.ndarray:
    """``log E_Q[R^k]`` for ``k = 0 .. max_order`` (remove direction, ``k = 1`` allocation)."""
    k = np.arange(max_order + 1, dtype=float)
    log_t = math.log(steps)
    base = k * (k - 1.0) / (2.0 * sigma**2) - k * log_t
    log_binom = (_scipy.special.gammaln(k[:, None] + 1) - _scipy.special.gammaln(k[None, :] + 1)
                 - _scipy.special.gammaln(np.maximum(k[:, None] - k[None, :], 0) + 1))
    result, power, n = None, base, steps
    while n:
        if n & 1:
            result = power if result is None else _binomial_log_convolution(
                result, power, log_binom)
        n >>= 1
        if n:
            power = _binomial_log_convolution(power, power, log_binom)
    assert result is not None
    # rounding allowance: each level adds a few ulps of the largest log term it combines
    levels = 2 * steps.bit_length()
    scale = 1.0 + _scipy.special.gammaln(k + 1) + k * log_t + k * (k - 1.0) / (2.0 * sigma**2)
    return result + 16.0 * _U * levels * scale


def _log_phi_upper(v: np.ndarray, s2: float) -> np.ndarray:
    """Upper bound on ``log E[exp(-v Y)]``, ``log Y ~ N(-s2/2, s2)``, for each ``v >= 0``."""
    s = math.sqrt(s2)
    cuts = np.concatenate([np.linspace(-40.0, 10.0, 201), [np.inf]])
    k = np.arange(7, dtype=float)
    # log E[Y^k ; Z <= z*] = k (k - 1) s2 / 2 + log Phi(z* - k s)
    log_moments = k * (k - 1.0) * s2 / 2.0 + _scipy.special.log_ndtr(cuts[:, None] - k * s)
    signs = (-1.0) ** k / _scipy.special.factorial(k)
    y_cut = np.exp(cuts * s - s2 / 2.0)
    log_above = _scipy.special.log_ndtr(-cuts)
    out = np.empty_like(v)
    with np.errstate(over="ignore"):
        # the polynomial's coefficients per cut: sum_k c_k v^k as one matrix product where no
        # power or coefficient leaves the float range (else term by term in log space)
        coefficients = signs * np.exp(log_moments)
        top_power = np.max(v, initial=0.0) ** 6  # a NumPy float: inf, not OverflowError
        direct = bool(np.all(np.isfinite(coefficients))
                      and top_power * float(np.abs(coefficients).max()) < 1e300)
    chunk = 8192 if direct else 2048
    for start in range(0, v.shape[0], chunk):
        vv = v[start:start + chunk, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if direct:
                poly = (vv ** k) @ coefficients.T
            else:
                log_v = np.log(vv)[..., None]
                terms = signs * np.exp(k * log_v + log_moments[None])
                terms[..., 0] = np.exp(log_moments[None, :, 0])
                poly = terms.sum(axis=2)
            # the alternating sum is used only where it has no harmful cancellation
            poly = np.where(vv * y_cut <= 4.0, poly, np.inf)
            below = np.minimum(poly, np.exp(log_moments[:, 0])[None, :])
            above = np.where(np.isinf(cuts), 0.0, np.exp(-vv * y_cut + log_above))
            total = below + above
            total = np.where(np.isfinite(total) & (total > 0.0), total, np.inf)
            out[start:start + chunk] = np.minimum(np.log(total.min(axis=1)), 0.0)
    return out


def _add_log_moments_upper(steps: int, sigma: float, betas: np.ndarray) -> np.ndarray:
    """Upper bounds on ``log E_Q[R^-beta]`` for integer ``beta >= 1`` (add direction)."""
    s2 = 1.0 / sigma**2
    betas = np.asarray(betas, dtype=float)
    top = float(betas.max())
    fine_end = top + 15.0 * math.sqrt(top) + 40.0
    fine = np.arange(0.0, fine_end, 0.02)
    far = fine_end * np.exp(0.01 * np.arange(1, 3000))
    u = np.concatenate([fine, far[far < 1e6 * steps * (1.0 + top)]])
    log_phi = _log_phi_upper(u / steps, s2)
    log_rho = steps * (u / steps + log_phi)
    b = betas[:, None]
    lo, hi = u[:-1], u[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        # the gamma mass of [lo, hi]: a difference of lower regularised gammas left of the
        # mode, of upper ones right of it (no cancellation); each function is evaluated once
        # per grid point, and only where a piece uses it
        left = lo < b
        lower_at = np.zeros((betas.size, u.size))
        upper_at = np.zeros((betas.size, u.size))
        need_lower = np.zeros(lower_at.shape, dtype=bool)
        need_lower[:, :-1] |= left
        need_lower[:, 1:] |= left
        need_upper = np.zeros(upper_at.shape, dtype=bool)
        need_upper[:, :-1] |= ~left
        need_upper[:, 1:] |= ~left
        rows, cols = np.nonzero(need_lower)
        lower_at[rows, cols] = _scipy.special.gammainc(betas[rows], u[cols])
        rows, cols = np.nonzero(need_upper)
        upper_at[rows, cols] = _scipy.special.gammaincc(betas[rows], u[cols])
        mass = np.where(left, lower_at[:, 1:] - lower_at[:, :-1],
                        upper_at[:, :-1] - upper_at[:, 1:])
        # where the gamma mass underflows, its bound u_hi^(beta-1) e^-u_lo (u_hi - u_lo)
        log_mass_bound = ((b - 1.0) * np.log(hi) - lo + np.log(hi - lo)
                          - _scipy.special.gammaln(b))
        log_mass = np.where(mass > 1e-250, np.log(np.maximum(mass, 1e-300)), log_mass_bound)
        right_end = log_rho[1:] + log_mass
        log_hi = b * np.log(hi)
        log_lo = np.where(lo > 0.0, b * np.log(np.where(lo > 0.0, lo, 1.0)), -np.inf)
        left_end = (steps * log_phi[:-1] + log_hi + np.log1p(-np.exp(log_lo - log_hi))
                    - _scipy.special.gammaln(b + 1.0))
    pieces = np.minimum(right_end, left_end)
    log_tail = (steps - 1) * log_phi[-1] + betas * math.log(steps) + betas * (betas + 1) * s2 / 2
    total = _scipy.special.logsumexp(np.concatenate([pieces, log_tail[:, None]], axis=1), axis=1)
    # rounding allowance of the float evaluation
    return total + 1e-9 * (1.0 + np.abs(total))


def _single_rdp(steps: int, sigma: float, orders: np.ndarray) -> np.ndarray:
    """Certified RDP (max of both directions) of one ``k = 1`` epoch of ``steps`` steps."""
    with np.errstate(over="ignore", under="ignore"):
        # divided twice: sigma**2 leaves the float range for |log10 sigma| > 154 (inf is safe)
        gaussian = orders / 2.0 / sigma / sigma
    if steps == 1 or not _SIGMA_RANGE[0] <= sigma <= _SIGMA_RANGE[1]:
        return gaussian
    ints = np.ceil(orders).astype(np.int64)
    # remove direction: exact at ceil(alpha) up to MAX_EXACT_ORDER
    remove = gaussian.copy()
    exact = ints <= MAX_EXACT_ORDER
    if np.any(exact):
        moments = _remove_log_moments(steps, sigma, int(ints[exact].max()))
        remove[exact] = np.minimum(moments[ints[exact]] / (ints[exact] - 1.0), gaussian[exact])
    # add direction: Feldman-Shenfeld's closed form, the Gaussian, and the numerical bound
    add = np.minimum((orders + steps - 1.0) / (2.0 * steps * sigma**2), gaussian)
    numeric = ints <= MAX_ADD_NUMERIC_ORDER
    if np.any(numeric):
        betas = np.unique(ints[numeric]) - 1
        bounds = _add_log_moments_upper(steps, sigma, betas) / betas
        values = bounds[np.searchsorted(betas, ints[numeric] - 1)]
        add[numeric] = np.minimum(add[numeric], values)
    return np.maximum(np.maximum(remove, add), 0.0)


@functools.lru_cache(maxsize=64)
def _cached_single_rdp(steps: int, sigma: float, orders: bytes) -> np.ndarray:
    """:func:`_single_rdp` kept per ``(t, sigma, orders)`` (read-only: callers scale a copy)."""
    values = _single_rdp(steps, sigma, np.frombuffer(orders, dtype=float))
    values.setflags(write=False)
    return values


register_cache(_cached_single_rdp.cache_clear)


def _check_steps_selections(steps, selections) -> tuple[int, int]:
    steps = check_positive_int(steps, "steps", MAX_STEPS)
    selections = check_positive_int(selections, "selections", steps)
    return steps, selections


def random_allocation_rdp(steps: int, selections: int, noise_multiplier: float,
                          orders) -> np.ndarray:
    """Certified upper bound on the RDP of one random-allocation epoch of a Gaussian step.

    Add/remove neighbours: the bound holds for both directions (their maximum). See the module
    docstring for each ingredient and its source (Feldman & Shenfeld 2025).

    Parameters
    ----------
    steps : int
        Steps of the epoch, ``t`` in ``[1, 2**53]``.
    selections : int
        Steps each record takes part in, ``k`` in ``[1, t]``.
    noise_multiplier : float
        Noise standard deviation over the sensitivity, ``sigma > 0``.
    orders : array_like
        Rényi orders ``> 1``. Non-integer orders get the value at ``ceil(alpha)``; orders above
        :data:`MAX_EXACT_ORDER` get ``alpha / (2 sigma^2)`` (the Gaussian's RDP, still a bound),
        and so do all orders where ``sigma`` lies outside ``[1e-100, 1e100]`` (``inf`` where
        ``alpha / (2 sigma^2)`` exceeds the float range).

    Returns
    -------
    numpy.ndarray
        One RDP upper bound per order.
    """
    steps, selections = _check_steps_selections(steps, selections)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    orders = check_orders(orders)
    per_round = steps // selections
    return selections * _cached_single_rdp(per_round, sigma, orders.tobytes())


def random_allocation_epsilon(steps: int, noise_multiplier: float, delta: float,
                              epochs: int = 1, selections: int = 1, orders=None) -> float:
    """Certified epsilon of ``epochs`` random-allocation epochs (add/remove neighbours).

    The RDP of :func:`random_allocation_rdp` times ``epochs`` (RDP composes additively),
    converted with :func:`accounting.epsilon_from_rdp` (the improved conversion of Canonne,
    Kamath, Steinke 2020).

    Parameters
    ----------
    steps, noise_multiplier, selections
        As for :func:`random_allocation_rdp`.
    delta : float
        Target delta in ``(0, 1)``.
    epochs : int
        Number of epochs, ``>= 1``.
    orders : array_like, optional
        Rényi orders; default :data:`accounting.DEFAULT_ORDERS` capped at 256.
    """
    epochs = check_positive_int(epochs, "epochs")
    delta = check_delta(delta)
    if orders is None:
        orders = DEFAULT_ORDERS[DEFAULT_ORDERS <= 256]
    orders = check_orders(orders)
    rdp = random_allocation_rdp(steps, selections, noise_multiplier, orders)
    with np.errstate(over="ignore", invalid="ignore"):
        # epochs beyond the float range count as inf; an RDP of 0 stays 0 (not inf * 0 = NaN)
        total = np.where(rdp > 0.0, count_as_float(epochs) * rdp, 0.0)
    epsilon, _ = epsilon_from_rdp(total, orders, delta)
    return float(epsilon)


@dataclasses.dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte-Carlo **estimate** of epsilon: not a bound, never a privacy guarantee.

    Attributes
    ----------
    epsilon_estimate : float
        Epsilon at which the sample mean of delta(epsilon) meets the target.
    epsilon_low, epsilon_high : float
        Epsilon at which the upper / lower confidence limits of delta(epsilon) meet the target
        (a pointwise normal-approximation interval of the sample mean).
    confidence : float
        Two-sided confidence level of the interval.
    samples : int
        Privacy-loss samples per direction.
    direction : str
        ``"remove"`` or ``"add"``: the direction that gave the larger estimate.
    is_bound : bool
        Always ``False``.
    """

    epsilon_estimate: float
    epsilon_low: float
    epsilon_high: float
    confidence: float
    samples: int
    direction: str
    is_bound: bool = False


def _sample_losses(steps, sigma, epochs, samples, rng, direction) -> np.ndarray:
    """Privacy losses of ``epochs`` epochs, summed, for ``samples`` draws (chunked)."""
    total = np.zeros(samples)
    chunk = max(1, 2**20 // steps)
    inv = 1.0 / sigma**2
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        acc = np.zeros(n)
        for _ in range(epochs):
            x = sigma * rng.standard_normal((n, steps))
            if direction == "remove":
                x[:, 0] += 1.0  # x ~ P; by symmetry the record sits in the first step
            log_y = (x - 0.5) * inv
            if steps == 1:
                log_r = log_y[:, 0]
            else:  # a plain row-wise logsumexp: the terms are finite, no need for scipy's checks
                top = log_y.max(axis=1)
                log_r = top + np.log(np.exp(log_y - top[:, None]).sum(axis=1)) - math.log(steps)
            acc += log_r if direction == "remove" else -log_r
        total[start:start + n] = acc
    return total


def _mc_epsilon(losses: np.ndarray, delta: float, z: float) -> tuple[float, float, float]:
    """Epsilons where the mean, upper and lower limits of delta(eps) meet ``delta``."""
    n = losses.shape[0]

    def stats(eps):
        values = -np.expm1(np.minimum(eps - losses, 0.0))
        mean = float(values.mean())
        se = float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else 1.0
        return mean, se

    def solve(shift):
        lo, hi = 0.0, max(1.0, float(losses.max()))
        if stats(lo)[0] + shift * stats(lo)[1] <= delta:
            return 0.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            mean, se = stats(mid)
            if mean + shift * se > delta:
                lo = mid
            else:
                hi = mid
        return hi

    return solve(0.0), solve(-z), solve(z)


def random_allocation_monte_carlo(steps: int, noise_multiplier: float, delta: float,
                                  epochs: int = 1, samples: int = 100_000, seed=None,
                                  confidence: float = 0.95) -> MonteCarloEstimate:
    """Monte-Carlo **estimate** of the epsilon of random allocation (``k = 1``, add/remove).

    Chua et al. 2025 ("Balls-and-bins sampling for DP-SGD", Sec. 4): sample the privacy loss
    of the dominating pair (``x ~ P``, loss ``log R(x)`` for remove; ``x ~ Q``, loss
    ``-log R(x)`` for add), summed over epochs; estimate ``delta(eps) = E[(1 - e^(eps - L))+]``
    by the sample mean and invert it. The result is an estimate with a confidence interval,
    **not a bound**; use :func:`random_allocation_epsilon` for a guarantee.

    Parameters
    ----------
    steps : int
        Steps per epoch, ``t`` in ``[1, 2**20]`` (and ``t * samples * epochs <=
        MAX_MONTE_CARLO_WORK = 1e8``).
    noise_multiplier : float
        Noise multiplier in ``[1e-100, 1e100]`` (the sampled losses scale as ``sigma^-2``).
    delta, epochs
        As for :func:`random_allocation_epsilon`.
    samples : int
        Samples per direction, in ``[2, 1_000_000]`` (memory is ``8 * samples`` bytes plus a
        chunk of about 8 MiB).
    seed : int or numpy.random.Generator, optional
        Randomness.
    confidence : float
        Two-sided confidence level in ``(0, 1)`` of the interval.
    """
    steps = check_positive_int(steps, "steps", _MONTE_CARLO_MAX_STEPS)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    if not _SIGMA_RANGE[0] <= sigma <= _SIGMA_RANGE[1]:
        raise ValueError("noise_multiplier must lie in [1e-100, 1e100] for the Monte-Carlo "
                         f"estimate (its losses scale as sigma^-2), got {noise_multiplier!r}")
    delta = check_delta(delta)
    epochs = check_positive_int(epochs, "epochs", MAX_MONTE_CARLO_WORK)
    samples = check_positive_int(samples, "samples", _MONTE_CARLO_MAX_SAMPLES)
    if samples < 2:
        raise ValueError(f"samples must be a whole number in [2, {_MONTE_CARLO_MAX_SAMPLES}], "
                         f"got {samples!r}")
    confidence = check_delta(confidence, "confidence")
    if steps * samples * epochs > MAX_MONTE_CARLO_WORK:  # exact: Python ints
        raise ValueError(f"steps * samples * epochs must be <= {MAX_MONTE_CARLO_WORK:.0e} "
                         f"(MAX_MONTE_CARLO_WORK: the work is proportional to it), got "
                         f"{steps} * {samples} * {epochs}")
    rng = np.random.default_rng(seed)
    z = float(_scipy.special.ndtri(0.5 + confidence / 2.0))
    best = None
    for direction in ("remove", "add"):
        losses = _sample_losses(steps, sigma, epochs, samples, rng, direction)
        estimate = _mc_epsilon(losses, delta, z)
        if best is None or estimate[0] > best[0][0]:
            best = (estimate, direction)
    (mean, low, high), direction = best
    return MonteCarloEstimate(mean, low, high, confidence, samples, direction)
