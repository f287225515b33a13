"""High-precision (mpmath) reference for the Poisson-subsampled Gaussian mechanism.

This module is the ground truth that the tests compare the fast NumPy code against. It trades
speed for an independent, arbitrary-precision evaluation of the same quantities.

Notation. ``mu0 = N(0, sigma^2)``, ``mu1 = N(1, sigma^2)`` and ``mu = (1 - q) mu0 + q mu1`` for a
sample rate ``q`` in ``[0, 1]`` and a noise multiplier ``sigma > 0``. For an order ``alpha > 1``

    A_alpha = E_{z ~ mu0}[(mu(z) / mu0(z))^alpha]
            = E_{z ~ mu0}[((1 - q) + q exp((2 z - 1) / (2 sigma^2)))^alpha],
    RDP(alpha) = log(A_alpha) / (alpha - 1)

(Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
Mechanism", Sec. 3.3). For an integer order the binomial theorem gives the exact finite sum

    A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)).

The moments accountant of Abadi et al. 2016 ("Deep Learning with Differential Privacy") uses,
for an integer ``lambda >= 1``, the log moments ``log E_{mu}[(mu / mu0)^lambda]`` ("add",
equal to ``log A_{lambda + 1}``) and ``log E_{mu0}[(mu0 / mu)^lambda]`` ("remove"), and their
maximum ``alpha(lambda)``.

Two independent evaluation paths are offered:

* :func:`log_a_binomial` sums the binomial expansion in the form
  ``A - 1 = sum_{k >= 2} C(alpha, k) (1 - q)^(alpha - k) q^k expm1(k (k - 1) / (2 sigma^2))``
  (the terms ``k = 0, 1`` without the exponential add up with the others to exactly 1), a sum
  of non-negative terms, so ``log A = log1p(A - 1)`` keeps its relative precision even when
  ``A - 1`` is far below the working precision.
* :func:`log_a_integral` and :func:`log_moment` integrate numerically with ``mpmath.quad``. With
  ``r = mu / mu0`` and ``E_{mu0}[r] = 1``, for any exponent ``beta`` outside ``[0, 1]``

      E_{mu0}[r^beta] - 1 = E_{mu0}[r^beta - 1 - beta (r - 1)],

  and the integrand on the right is non-negative (convexity of ``r -> r^beta``), so it is
  integrated without cancellation. ``beta = alpha`` gives ``A_alpha``, ``beta = lambda + 1`` the
  add moment (``mu r^lambda = mu0 r^(lambda + 1)``) and ``beta = -lambda`` the remove moment
  (``mu0 (mu0 / mu)^lambda = mu0 r^(-lambda)``).

The integration is done in the standardised variable ``t = z / sigma``: with ``s = 1 / sigma``,
``u = s t - s^2 / 2`` and ``y = r - 1 = q expm1(u)``, the integrand is
``phi(t) [(1 + y)^beta - 1 - beta y]`` with ``phi`` the standard normal density. The modes of
the log-integrand ``-t^2 / 2 + beta log(1 + y)`` are located analytically (its derivative
``-t + beta s w(t)``, with ``w`` a logistic function of ``t``, has one or three zeros, all in
``(0, beta s)`` for ``beta > 0``). Breakpoints are spaced geometrically around each mode (on
the scale of the mode's own width, which is at least 1 for ``beta > 0`` and can be much
wider), around the Gaussian centres ``0``, ``s / 2`` and ``s`` of the subtracted terms, and
around the centre of the logistic ``w`` (where ``(1 + y)^beta`` changes its exponential rate
over ``1 / (|beta| s)``); pieces across which the integrand changes by more than ``e^40`` are
split further. Each piece goes to ``mpmath.quad`` (Gauss-Legendre, then tanh-sinh, then a
split, with a conservative error estimate), the tails to ``+-inf`` too. The integrand is
scaled by its largest value on the breakpoints, so that the absolute error target of
``mpmath.quad`` is relative to the integral, and it is evaluated with extra bits for the size
of its exponents (``t^2 / 2`` reaches ``10^10`` for ``alpha = 10^4``, ``sigma = 0.1``). All
work is done with ``digits + 10`` decimal digits; the quadrature must reach an estimated error
below ``2^-(working bits - 30)`` of the integral or :class:`ArithmeticError` is raised.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping

import mpmath
from mpmath.calculus.quadrature import GaussLegendre, TanhSinh

__all__ = [
    "DEFAULT_DIGITS",
    "INTEGRAL_NOISE_RANGE",
    "MAX_DIGITS",
    "MAX_HOCKEY_STICK_EPSILON",
    "MAX_ORDER",
    "hockey_stick_delta",
    "log_a_binomial",
    "log_a_integral",
    "log_moment",
    "moments_epsilon",
    "rdp",
    "rdp_to_epsilon_classic",
    "rdp_to_epsilon_improved",
]

#: Largest epsilon of :func:`hockey_stick_delta`: the bracketing of the loss's root walks out
#: to about ``epsilon sigma^2``, so this bounds its work (every accountant's delta is 0 or
#: vanishing long before).
MAX_HOCKEY_STICK_EPSILON = 1e6

#: Default number of significant decimal digits of the results.
DEFAULT_DIGITS = 50
#: Most significant digits accepted (the cost grows with the square of the precision or faster).
MAX_DIGITS = 100
#: Largest Rényi order the RDP functions accept (``lambda + 1`` for :func:`log_moment`): the
#: binomial sum costs ``alpha`` terms at full precision.
MAX_ORDER = 100_000
#: Noise multipliers ``(smallest, largest)`` accepted by the numerical integration (fractional
#: orders, :func:`log_a_integral`, :func:`log_moment`): its breakpoints are placed in floating
#: point, which fails beyond these. Integer orders by the binomial sum accept any ``sigma > 0``.
INTEGRAL_NOISE_RANGE = (1e-3, 1e6)

# Guard digits carried internally on top of the requested ``digits``.
_GUARD_DIGITS = 10
# The series of (1 + y)^beta - 1 - beta y is used where |y| and |beta y| are below this.
_SERIES_RADIUS = 2.0**-8
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Largest change (in nats) of the integrand's bound across one quadrature piece.
_MAX_PIECE_DROP = 40.0
# Largest |t| analysed in floating point; the Gaussian factor is exp(-5e199) beyond it.
_T_MAX_FLOAT = 1e100
# Orders accepted by the conversions (cheap at any order): accounting.MAX_ORDER, as the fast ones.
_CONVERSION_MAX_ORDER = 1_000_000
# Most doublings when bracketing the privacy loss's root in hockey_stick_delta (enough to reach
# any finite float epsilon at any float sigma).
_MAX_DOUBLINGS = 5000


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _to_mpf(value, name: str) -> mpmath.mpf:
    """Convert a real number to an mpf exactly (a binary float converts without rounding)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, mpmath.mpf):
        return value
    if isinstance(value, numbers.Integral):
        return mpmath.mpf(int(value))
    if isinstance(value, numbers.Real):
        return mpmath.mpf(float(value))
    if isinstance(value, str):
        try:
            return mpmath.mpf(value)
        except ValueError:
            raise ValueError(f"{name} must be a real number, got {value!r}") from None
    raise TypeError(f"{name} must be a real number, got {type(value).__name__}")


def _check_digits(digits) -> int:
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral):
        raise TypeError(f"digits must be an integer, got {digits!r}")
    if not 15 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits must lie in [15, {MAX_DIGITS}] (MAX_DIGITS), got {digits!r}")
    return int(digits)


def _check_q(q) -> mpmath.mpf:
    value = _to_mpf(q, "q")
    if mpmath.isnan(value) or value < 0 or value > 1:
        raise ValueError(f"q (the sample rate) must lie in [0, 1], got {q!r}")
    return value


def _check_sigma(sigma) -> mpmath.mpf:
    value = _to_mpf(sigma, "sigma")
    if not mpmath.isfinite(value) or value <= 0:
        raise ValueError(f"sigma (the noise multiplier) must be finite and > 0, got {sigma!r}")
    return value


def _check_alpha(alpha, limit: float = MAX_ORDER) -> mpmath.mpf:
    value = _to_mpf(alpha, "alpha")
    if not mpmath.isfinite(value) or value <= 1 or value > limit:
        raise ValueError(
            f"alpha (the Renyi order) must lie in (1, {limit:.0e}], got {alpha!r}"
        )
    return value


def _check_integral_sigma(sigma: mpmath.mpf) -> None:
    """The numerical integration's range of noise multipliers (see INTEGRAL_NOISE_RANGE)."""
    low, high = INTEGRAL_NOISE_RANGE
    if not low <= sigma <= high:
        raise ValueError(
            f"sigma must lie in [{low:g}, {high:g}] (INTEGRAL_NOISE_RANGE) for the numerical "
            f"integration (fractional orders, log_moment), got {mpmath.nstr(sigma, 6)}"
        )


def _check_integer(value, name: str, minimum: int) -> int:
    """Return ``value`` as an int after checking it is integral (int, or integral float/mpf)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        real = _to_mpf(value, name)
        if not mpmath.isfinite(real) or real != mpmath.floor(real):
            raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        number = int(real)
    if number < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def _check_delta(delta) -> mpmath.mpf:
    value = _to_mpf(delta, "delta")
    if mpmath.isnan(value) or not 0 < value < 1:
        raise ValueError(f"delta must lie in the open interval (0, 1), got {delta!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Binomial sum (integer orders)
# ---------------------------------------------------------------------------------------------


def _log_a_binomial_mp(q: mpmath.mpf, sigma: mpmath.mpf, n: int) -> mpmath.mpf:
    """``log A_n`` from the non-negative sum for ``A_n - 1``, at the current precision."""
    if q == 0:
        return mpmath.mpf(0)
    c = 1 / (2 * sigma**2)
    if q == 1:
        return n * (n - 1) * c
    one_minus_q = 1 - q
    ratio = q / one_minus_q
    term = one_minus_q**n  # C(n, 0) (1 - q)^n q^0
    total = mpmath.mpf(0)
    for k in range(1, n + 1):
        term = term * ratio * (n - k + 1) / k  # C(n, k) (1 - q)^(n - k) q^k
        if k >= 2:
            total += term * mpmath.expm1(k * (k - 1) * c)
    return mpmath.log1p(total)


def log_a_binomial(q, sigma, alpha: int, digits: int = DEFAULT_DIGITS) -> mpmath.mpf:
    """``log A_alpha`` for an integer order by the exact binomial expansion.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : int
        Integer Rényi order ``>= 2`` (an integral float is accepted).
    digits : int
        Significant decimal digits wanted (``>= 15``); 10 guard digits are added internally.

    Returns
    -------
    mpmath.mpf
        ``log A_alpha`` where (Mironov, Talwar and Zhang 2019, Sec. 3.3)

        ``A_alpha = sum_{k=0}^{alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2))``.

        The sum is evaluated as ``log1p(sum_{k>=2} C(alpha,k) (1-q)^(alpha-k) q^k
        expm1((k^2-k)/(2 sigma^2)))``, whose terms are all non-negative, so the result keeps
        its relative precision even when ``A_alpha - 1`` is tiny. ``q = 0`` gives 0 and
        ``q = 1`` gives ``alpha (alpha - 1) / (2 sigma^2)``.

    Notes
    -----
    The cost is ``alpha`` multiply-adds and exponentials at the working precision (about half
    a second for ``alpha = 10^4`` at 50 digits).
    """
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        q_mp = _check_q(q)
        sigma_mp = _check_sigma(sigma)
        _check_alpha(alpha)
        n = _check_integer(alpha, "alpha", 2)
        return _log_a_binomial_mp(q_mp, sigma_mp, n)


# ---------------------------------------------------------------------------------------------
# Numerical integration (any order; both directions of the moments accountant)
# ---------------------------------------------------------------------------------------------


def _softplus(v: float) -> float:
    """``log(1 + exp(v))`` in floating point without overflow."""
    if v > 0.0:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


def _expit(v: float) -> float:
    """Logistic function ``1 / (1 + exp(-v))`` without overflow."""
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


class _Shape:
    """Floating-point model of the log-integrand, used only to place breakpoints.

    ``log_f(t) = -t^2/2 + beta L(t)`` with ``L = log(1 - q + q e^u)``, ``u = s t - s^2/2``,
    is the log of ``sqrt(2 pi) phi(t) (1 + y)^beta``; ``log_bound(t)`` bounds the log of the
    actual integrand ``phi(t) |(1 + y)^beta - 1 - beta y|`` from above.
    """

    def __init__(self, q: float, s: float, beta: float) -> None:
        self.q = q
        self.s = s
        self.beta = beta
        self.half_s2 = 0.5 * s * s
        self.full = q >= 1.0
        if self.full:
            self.logit_q = math.inf
            self.log_1mq = -math.inf
        else:
            self.logit_q = math.log(q) - math.log1p(-q)
            self.log_1mq = math.log1p(-q)
        self.log_beta_q = math.log(abs(beta) * q)

    def centre(self) -> float:
        """Centre of the logistic ``w`` (where ``q e^u = 1 - q``); inf when ``q = 1``."""
        if self.full:
            return math.inf
        return self.s / 2.0 - self.logit_q / self.s

    def log_ratio(self, t: float) -> float:
        u = self.s * t - self.half_s2
        if self.full:
            return u
        return self.log_1mq + _softplus(u + self.logit_q)

    def weight(self, t: float) -> float:
        """``w = q e^u / (1 - q + q e^u)``, the derivative of ``L`` over ``s``."""
        if self.full:
            return 1.0
        return _expit(self.s * t - self.half_s2 + self.logit_q)

    def log_f(self, t: float) -> float:
        return -0.5 * t * t + self.beta * self.log_ratio(t)

    def slope(self, t: float) -> float:
        return -t + self.beta * self.s * self.weight(t)

    def curvature(self, t: float) -> float:
        if self.full:
            return -1.0
        v = self.s * t - self.half_s2 + self.logit_q
        return -1.0 + self.beta * self.s * self.s * _expit(v) * _expit(-v)

    def log_bound(self, t: float) -> float:
        """Upper bound of ``log(phi(t) g(t))``, using ``|g| <= (1 + y)^beta + 1 + |beta y|``."""
        if not abs(t) < _T_MAX_FLOAT:  # also catches NaN
            return -math.inf
        u = self.s * t - self.half_s2
        if u > 0.0:
            log_abs_x = u + math.log1p(-math.exp(-u)) if u < 40.0 else u
        elif u < 0.0:
            log_abs_x = math.log(-math.expm1(u))
        else:
            log_abs_x = -math.inf
        with_y = _softplus(self.log_beta_q + log_abs_x) if log_abs_x > -math.inf else 0.0
        return -0.5 * t * t - _LOG_SQRT_2PI + _logaddexp(self.beta * self.log_ratio(t), with_y)


def _magnitude_bits(shape: _Shape, t: float) -> int:
    """Bits lost to the size of the exponents ``t^2/2`` and ``beta L(t)`` at ``t``."""
    if not abs(t) < _T_MAX_FLOAT:
        return 0
    size = 0.5 * t * t + abs(shape.beta * shape.log_ratio(t))
    return 4 + max(0, math.frexp(size)[1])


def _bisect(fun: Callable[[float], float], a: float, b: float) -> float:
    """Zero of a function with ``fun(a) >= 0 >= fun(b)``, ``a < b``, to float resolution."""
    for _ in range(2000):
        m = 0.5 * (a + b)
        if not a < m < b:
            break
        if fun(m) > 0.0:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


def _stationary_points(shape: _Shape) -> tuple[list[float], list[float]]:
    """Maxima and minima of ``log_f``: the zeros of ``-t + beta s w(t)``.

    ``w`` increases from 0 to 1, so for ``beta < 0`` the derivative decreases and has one zero
    in ``(beta s, 0)``. For ``beta > 0`` all zeros lie in ``(0, beta s)``; the derivative
    decreases everywhere when ``beta s^2 <= 4`` (one zero), and otherwise decreases, increases
    and decreases again between the two points where ``w (1 - w) = 1 / (beta s^2)``, which
    gives one or three zeros (maximum, minimum, maximum).
    """
    beta, s = shape.beta, shape.s
    if shape.full:
        return [beta * s], []
    if beta < 0.0:
        return [_bisect(shape.slope, beta * s, 0.0)], []
    b_s2 = beta * s * s
    if b_s2 <= 4.0:
        return [_bisect(shape.slope, 0.0, beta * s)], []
    root = math.sqrt(1.0 - 4.0 / b_s2)
    w1 = 2.0 / (b_s2 * (1.0 + root))  # (1 - root) / 2 without cancellation
    v1 = math.log(w1) - math.log1p(-w1)
    t1 = (v1 - shape.logit_q) / s + s / 2.0
    t2 = (-v1 - shape.logit_q) / s + s / 2.0
    f1, f2 = shape.slope(t1), shape.slope(t2)
    maxima: list[float] = []
    minima: list[float] = []
    if f1 < 0.0:
        maxima.append(_bisect(shape.slope, 0.0, t1))
    if f2 > 0.0:
        maxima.append(_bisect(shape.slope, t2, beta * s))
    if f1 < 0.0 < f2:
        minima.append(_bisect(shape.slope, t1, t2))
    if not maxima:  # degenerate: f1 == f2 == 0, a flat inflection
        maxima.append(t1)
    return maxima, minima


def _half_width(shape: _Shape, mode: float, direction: float, limit: float) -> float:
    """Distance from a maximum of ``log_f`` at which it has dropped by 1/2 (one 'sd')."""
    top = shape.log_f(mode)

    def drop(d: float) -> float:
        return top - shape.log_f(mode + direction * d)

    curvature = -shape.curvature(mode)
    d = 1.0 / math.sqrt(curvature) if curvature > 1e-12 else 1.0
    d = min(max(d, 1e-12), limit)
    if drop(d) < 0.5:
        for _ in range(200):
            if drop(d) >= 0.5 or d >= limit:
                break
            d *= 2.0
        if d >= limit:
            return limit
        lo, hi = 0.5 * d, d
    else:
        for _ in range(200):
            if drop(d) < 0.5 or d < 1e-12:
                break
            d *= 0.5
        lo, hi = d, 2.0 * d
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if drop(mid) < 0.5:
            lo = mid
        else:
            hi = mid
    return hi


def _breakpoints(shape: _Shape, negligible: Callable[[float], bool]) -> list[float]:
    """Sorted finite breakpoints covering the integrand's mass (see the module docstring).

    Around each anchor, breakpoints sit at distances ``first * 2^k`` on each side until the
    upper bound of the integrand is negligible there (or a neighbouring stationary point of
    ``log_f`` is reached). Anchors: the maxima of ``log_f`` (``first`` = two of its half-widths
    on that side), the Gaussian centres ``0``, ``s/2``, ``s`` (``first = 2``) and, where
    ``(1 + y)^beta`` changes its rate on a scale below 1/2, the centre of the logistic ``w``
    (``first = 1 / (|beta| s)``, only inside the mass already covered).
    """
    points: list[tuple[float, float]] = []  # (t, gap to its predecessor in its own sequence)

    def sequence(centre: float, first: float, direction: float, limit: float, inside=None):
        previous, dist = 0.0, first
        for _ in range(2000):
            if dist >= limit:
                if math.isfinite(limit):
                    points.append((centre + direction * limit, limit - previous))
                return
            t = centre + direction * dist
            if inside is None or inside(t):
                points.append((t, dist - previous))
            if negligible(t):
                return
            previous, dist = dist, 2.0 * dist

    maxima, minima = _stationary_points(shape)
    stationary = sorted(maxima + minima)
    unit_anchors: list[float] = []  # anchors whose scale is about 1
    for mode in maxima:
        left = [x for x in stationary if x < mode]
        right = [x for x in stationary if x > mode]
        limits = (mode - left[-1] if left else math.inf, right[0] - mode if right else math.inf)
        widths = [
            _half_width(shape, mode, -1.0, limits[0]),
            _half_width(shape, mode, 1.0, limits[1]),
        ]
        points.append((mode, 2.0 * min(widths)))
        for direction, limit, width in zip((-1.0, 1.0), limits, widths, strict=True):
            sequence(mode, 2.0 * width, direction, limit)
        if all(0.5 <= width <= 2.0 for width in widths):
            unit_anchors.append(mode)

    # Gaussian centres of the terms phi and phi * beta y, and the zero of g at y = 0.
    for centre in (0.0, shape.s / 2.0, shape.s):
        if any(abs(centre - anchor) < 1.5 for anchor in unit_anchors):
            continue
        unit_anchors.append(centre)
        points.append((centre, 2.0))
        for direction in (-1.0, 1.0):
            sequence(centre, 2.0, direction, math.inf)

    # Fine breakpoints around the centre of the logistic w, inside the mass found so far.
    low = min(t for t, _ in points)
    high = max(t for t, _ in points)
    t_c = shape.centre()
    d = 1.0 / (max(abs(shape.beta), 1.0) * shape.s)
    if math.isfinite(t_c) and d < 0.5:
        reach = 64.0 / shape.s
        if low - reach <= t_c <= high + reach:

            def inside(t: float) -> bool:
                return low <= t <= high

            if inside(t_c):
                points.append((t_c, d))
            for direction in (-1.0, 1.0):
                sequence(t_c, d, direction, reach, inside)

    # Drop points closer to the previous one than a third of the finer of their two gaps.
    points.sort()
    merged: list[tuple[float, float]] = []
    for t, gap in points:
        if merged and t - merged[-1][0] < min(gap, merged[-1][1]) / 3.0:
            if gap < merged[-1][1]:
                merged[-1] = (merged[-1][0], gap)
            continue
        merged.append((t, gap))
    return [t for t, _ in merged]


class _CautiousGaussLegendre(GaussLegendre):
    """Gauss-Legendre rule for ``mpmath.quad`` with a conservative error estimate.

    mpmath's default estimate extrapolates from the last three degrees assuming regular
    convergence, which can be far too optimistic when a piece is not yet resolved at the low
    degrees (seen on the steep pieces next to the centre of the logistic ``w``). Here the
    estimate is the whole difference between the last two degrees, i.e. the error of the
    previous (half-size) rule, so a piece is accepted only once the smaller rule already
    agrees with the larger one. The standard nodes are cached across calls.
    """

    _nodes_cache: dict = {}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.standard_cache = _CautiousGaussLegendre._nodes_cache

    def estimate_error(self, results, prec, epsilon):
        return abs(results[-1] - results[-2])


class _CautiousTanhSinh(TanhSinh):
    """Tanh-sinh rule for ``mpmath.quad`` with the same conservative error estimate."""

    _nodes_cache: dict = {}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.standard_cache = _CautiousTanhSinh._nodes_cache

    def estimate_error(self, results, prec, epsilon):
        return abs(results[-1] - results[-2])


def _quad_pieces(
    integrand: Callable[[mpmath.mpf], mpmath.mpf], points: list[mpmath.mpf], tolerance
) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Integral over ``[-inf, points..., inf]`` and its estimated (absolute) error.

    Each finite piece goes to ``mpmath.quad`` with Gauss-Legendre (cheapest for these smooth
    integrands, up to 96 nodes); a piece whose error estimate exceeds ``tolerance`` is redone
    with tanh-sinh, and if that fails too it is split in four (up to three times). The two
    infinite tails use tanh-sinh. Both rules use the conservative error estimate above.
    """
    total = mpmath.mpf(0)
    total_error = mpmath.mpf(0)

    def piece(a, b, depth: int) -> None:
        nonlocal total, total_error
        value, error = mpmath.quad(
            integrand, [a, b], method=_CautiousGaussLegendre, maxdegree=6, error=True
        )
        if error > tolerance:
            value, error = mpmath.quad(integrand, [a, b], method=_CautiousTanhSinh, error=True)
        if error > tolerance and depth < 3:
            cuts = [a + (b - a) * k / 4 for k in range(5)]
            for left, right in zip(cuts[:-1], cuts[1:], strict=True):
                piece(left, right, depth + 1)
            return
        total += value
        total_error += error

    for a, b in zip(points[:-1], points[1:], strict=True):
        piece(a, b, 0)
    for tail in ([mpmath.ninf, points[0]], [points[-1], mpmath.inf]):
        value, error = mpmath.quad(integrand, tail, method=_CautiousTanhSinh, error=True)
        total += value
        total_error += error
    return total, total_error


def _log_mean_power(q: mpmath.mpf, sigma: mpmath.mpf, beta: mpmath.mpf) -> mpmath.mpf:
    """``log E_{mu0}[(mu / mu0)^beta]`` for ``beta > 1`` or ``beta < 0`` by ``mpmath.quad``.

    Works at the current precision ``mpmath.mp.prec``; ``0 < q <= 1``.
    """
    ctx = mpmath.mp
    prec = ctx.prec
    s = 1 / sigma
    half_s2 = s * s / 2
    one_minus_q = 1 - q
    shape = _Shape(max(float(q), 1e-300), 1.0 / float(sigma), float(beta))
    # Outside the series region the subtraction (1 + y)^beta - 1 - beta y cancels at most
    # about 17 + log2|beta / (beta - 1)| bits (there |beta y| >= 2^-8).
    extra_bits = 30 + max(0, int(mpmath.mag(beta / (beta - 1))))
    series_radius = mpmath.mpf(_SERIES_RADIUS)
    zero = mpmath.mpf(0)

    def excess(t: mpmath.mpf) -> mpmath.mpf:
        """``g(t) = (1 + y)^beta - 1 - beta y >= 0`` with ``y = q expm1(s t - s^2 / 2)``."""
        work = ctx.prec
        u = s * t - half_s2
        if not u:
            return zero
        # expm1(u) as exp(u) - 1, with enough extra bits for the cancellation when |u| < 1.
        ctx.prec = work + max(0, -ctx.mag(u)) + 8
        try:
            y = q * (ctx.exp(u) - 1)
        finally:
            ctx.prec = work
        beta_y = beta * y
        if abs(beta_y) < series_radius and abs(y) < series_radius:
            # sum_{k >= 2} C(beta, k) y^k; consecutive terms shrink by a factor < 2^-6.
            tolerance = ctx.ldexp(1, -work)
            term = beta_y
            total = zero
            k = 1
            while True:
                term = term * (beta - k) * y / (k + 1)
                k += 1
                total += term
                if abs(term) <= tolerance * abs(total):
                    return total
        ctx.prec = work + extra_bits
        try:
            if abs(y) < 0.5:
                log_ratio = ctx.log(1 + y)  # 1 + y is exact at this precision's +extra_bits
            else:  # keeps 1 - q + q e^u accurate when it is near 0 (q near 1, u << 0)
                log_ratio = ctx.log(one_minus_q + q * ctx.exp(u))
            value = ctx.exp(beta * log_ratio) - 1 - beta_y
        finally:
            ctx.prec = work
        return +value

    def log_integrand(t: mpmath.mpf) -> mpmath.mpf:
        work = ctx.prec
        ctx.prec = work + _magnitude_bits(shape, float(t))
        try:
            g = excess(t)
            return ctx.log(g) - t * t / 2 - _LOG_SQRT_2PI if g > 0 else ctx.ninf
        finally:
            ctx.prec = work

    negligible_nats = prec * math.log(2.0) + 40.0

    # Rough peak from the candidate centres, to decide where the integrand is negligible.
    maxima, _ = _stationary_points(shape)
    candidates = list(maxima) + [0.0, -1.5, 1.5, shape.s, shape.s / 2 - 1.5, shape.s / 2 + 1.5]
    peak = max(float(log_integrand(mpmath.mpf(t))) for t in candidates)
    if peak == -math.inf:
        raise ArithmeticError("the integrand vanishes at every candidate point")

    def negligible(t: float) -> bool:
        return shape.log_bound(t) < peak - negligible_nats

    points = _breakpoints(shape, negligible)
    # Split pieces across which the integrand's bound changes by more than _MAX_PIECE_DROP
    # nats: Gauss-Legendre resolves such steep pieces only with many more nodes.
    refined = [points[0]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        level_a, level_b = shape.log_bound(a), shape.log_bound(b)
        if max(level_a, level_b) >= peak - negligible_nats:
            parts = min(16, math.ceil(abs(level_a - level_b) / _MAX_PIECE_DROP))
            refined.extend(a + (b - a) * k / parts for k in range(1, parts))
        refined.append(b)
    points = [mpmath.mpf(t) for t in refined]
    log_scale = max(peak, max(float(log_integrand(t)) for t in points))
    cut = log_scale - negligible_nats - 20.0
    tolerance = ctx.ldexp(1, -prec)

    for _attempt in range(2):
        with mpmath.extraprec(64):  # |log_scale| may be large; keep its sum exact enough
            scale = mpmath.mpf(log_scale) + mpmath.log(2 * mpmath.pi) / 2

        def integrand(t: mpmath.mpf, scale=scale) -> mpmath.mpf:
            t_float = float(t)
            if shape.log_bound(t_float) < cut:
                return zero
            # exp(-t^2/2 - scale) and (1 + y)^beta are exponentials of arguments up to about
            # |t^2/2| and |beta L| in size, whose ratio is kept: carry that many more bits.
            work = ctx.prec
            ctx.prec = work + _magnitude_bits(shape, t_float)
            try:
                g = excess(t)
                value = ctx.exp(-t * t / 2 - scale) * g if g else zero
            finally:
                ctx.prec = work
            return +value

        value, error = _quad_pieces(integrand, points, tolerance)
        if value > 0 and error <= value * mpmath.ldexp(1, -(prec - 30)):
            return mpmath.log1p(mpmath.exp(log_scale) * value)
        if value > 2**20:  # the scale missed a higher peak: rescale once and retry
            log_scale += float(mpmath.log(value))
            continue
        break
    raise ArithmeticError(
        "mpmath.quad did not converge: estimated error "
        f"{mpmath.nstr(error, 5)} for an integral of {mpmath.nstr(value, 5)} "
        f"(q={q}, sigma={sigma}, beta={beta})"
    )


def log_a_integral(q, sigma, alpha, digits: int = DEFAULT_DIGITS) -> mpmath.mpf:
    """``log A_alpha`` for any real order ``alpha > 1`` by numerical integration.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : float
        Rényi order ``> 1``, integer or fractional.
    digits : int
        Significant decimal digits wanted (``>= 15``); 10 guard digits are added internally.

    Returns
    -------
    mpmath.mpf
        ``log A_alpha`` with ``A_alpha = E_{z~mu0}[((1-q) + q exp((2z-1)/(2 sigma^2)))^alpha]``
        (Mironov, Talwar and Zhang 2019, Sec. 3.3), computed as ``log1p`` of
        ``E_{mu0}[(1 + y)^alpha - 1 - alpha y]`` with ``y = mu/mu0 - 1`` (the integrand is
        non-negative and ``E_{mu0}[y] = 0``). ``q = 0`` gives 0.

    Raises
    ------
    ValueError
        For ``q`` outside ``[0, 1]``, ``sigma <= 0``, ``alpha <= 1`` or ``digits < 15``.
    ArithmeticError
        If the error estimate of ``mpmath.quad`` is not small relative to the result.

    Notes
    -----
    The quadrature targets the full working precision (``digits + 10``) relative to the
    integral and fails loudly if its error estimate exceeds about ``2^30`` units of it, so
    ``A_alpha - 1`` (hence ``log A_alpha``) has about ``digits`` correct significant digits.
    """
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        q_mp = _check_q(q)
        sigma_mp = _check_sigma(sigma)
        alpha_mp = _check_alpha(alpha)
        if q_mp == 0:
            return mpmath.mpf(0)
        _check_integral_sigma(sigma_mp)
        return _log_mean_power(q_mp, sigma_mp, alpha_mp)


def rdp(q, sigma, alpha, digits: int = DEFAULT_DIGITS, method: str = "auto") -> mpmath.mpf:
    """Rényi-DP of order ``alpha`` of one step of the Poisson-subsampled Gaussian mechanism.

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    alpha : float
        Rényi order ``> 1``.
    digits : int
        Significant decimal digits wanted (``>= 15``).
    method : {"auto", "binomial", "integral"}
        ``"auto"`` uses :func:`log_a_binomial` for integral ``alpha`` and
        :func:`log_a_integral` otherwise; the other two force one path (``"binomial"`` needs
        an integral ``alpha``).

    Returns
    -------
    mpmath.mpf
        ``RDP(alpha) = log(A_alpha) / (alpha - 1)`` (Mironov, Talwar and Zhang 2019,
        Sec. 3.3). ``q = 0`` gives 0 and ``q = 1`` gives the Gaussian mechanism's
        ``alpha / (2 sigma^2)`` exactly.
    """
    if method not in ("auto", "binomial", "integral"):
        raise ValueError(f"method must be 'auto', 'binomial' or 'integral', got {method!r}")
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        q_mp = _check_q(q)
        sigma_mp = _check_sigma(sigma)
        alpha_mp = _check_alpha(alpha)
        if q_mp == 0:
            return mpmath.mpf(0)
        if q_mp == 1:
            return alpha_mp / (2 * sigma_mp**2)
        integral_order = alpha_mp == mpmath.floor(alpha_mp)
        if method == "binomial" or (method == "auto" and integral_order):
            n = _check_integer(alpha_mp, "alpha", 2)
            log_a = _log_a_binomial_mp(q_mp, sigma_mp, n)
        else:
            _check_integral_sigma(sigma_mp)
            log_a = _log_mean_power(q_mp, sigma_mp, alpha_mp)
        return log_a / (alpha_mp - 1)


def log_moment(
    q, sigma, lam: int, digits: int = DEFAULT_DIGITS, direction: str = "max"
) -> mpmath.mpf:
    """Log moment of the privacy loss of the moments accountant (Abadi et al. 2016).

    Parameters
    ----------
    q : float
        Sample rate in ``[0, 1]``.
    sigma : float
        Noise multiplier ``> 0``.
    lam : int
        Moment order ``lambda >= 1``.
    digits : int
        Significant decimal digits wanted (``>= 15``).
    direction : {"max", "add", "remove"}
        ``"add"``: ``log E_{z~mu}[(mu(z)/mu0(z))^lambda]`` (``= log A_{lambda+1}``);
        ``"remove"``: ``log E_{z~mu0}[(mu0(z)/mu(z))^lambda]``; ``"max"``: the larger of the
        two, Abadi et al.'s ``alpha(lambda)``.

    Returns
    -------
    mpmath.mpf
        The log moment, computed by numerical integration over the densities, independently
        of the binomial sum: with ``r = mu/mu0`` the add moment is ``E_{mu0}[r^(lambda+1)]``
        (since ``mu r^lambda = mu0 r^(lambda+1)``) and the remove moment is
        ``E_{mu0}[r^(-lambda)]`` (the integrand ``mu0^(lambda+1) / mu^lambda``); each is
        integrated as ``1 + E_{mu0}[r^beta - 1 - beta (r - 1)]`` with a non-negative
        integrand. Mironov, Talwar and Zhang 2019 (Theorem 5) show the add direction
        dominates.
    """
    if direction not in ("max", "add", "remove"):
        raise ValueError(f"direction must be 'max', 'add' or 'remove', got {direction!r}")
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        q_mp = _check_q(q)
        sigma_mp = _check_sigma(sigma)
        n = _check_integer(lam, "lam", 1)
        if n > MAX_ORDER - 1:
            raise ValueError(f"lam must be a whole number in [1, {MAX_ORDER - 1}], got {lam!r}")
        if q_mp == 0:
            return mpmath.mpf(0)
        if q_mp == 1:  # mu = mu1: both directions are the Gaussian's lambda (lambda+1)/(2 sigma^2)
            return n * (n + 1) / (2 * sigma_mp**2)
        _check_integral_sigma(sigma_mp)
        results = []
        if direction in ("add", "max"):
            results.append(_log_mean_power(q_mp, sigma_mp, mpmath.mpf(n + 1)))
        if direction in ("remove", "max"):
            results.append(_log_mean_power(q_mp, sigma_mp, mpmath.mpf(-n)))
        return max(results)


# ---------------------------------------------------------------------------------------------
# Conversions to (epsilon, delta)-DP
# ---------------------------------------------------------------------------------------------


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
    digits = _check_digits(digits)
    items = _moment_items(log_moments_total)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        log_inv_delta = -mpmath.log(_check_delta(delta))
        best: tuple[mpmath.mpf, int] | None = None
        for lam, value in items:
            n = _check_integer(lam, "lambda", 1)
            moment = _to_mpf(value, "log moment")
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
        alpha = _check_alpha(order, _CONVERSION_MAX_ORDER)
        rdp_mp = _to_mpf(value, "rdp_values")
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
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        log_inv_delta = -mpmath.log(_check_delta(delta))
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
    digits = _check_digits(digits)
    with mpmath.workdps(digits + _GUARD_DIGITS):
        log_delta = mpmath.log(_check_delta(delta))
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


# ---------------------------------------------------------------------------------------------
# Hockey-stick divergence of one step (privacy loss distributions)
# ---------------------------------------------------------------------------------------------

#: Components ``(weight factor of q, mean)`` of the pairs of :mod:`accounting.privacy_loss`,
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

    The pairs ``(P, Q)`` are those of :mod:`accounting.privacy_loss` (``"remove"``, ``"add"``,
    ``"replace"``). The loss ``log p / q`` increases in ``x``, so the integrand is positive
    exactly beyond the root ``x*`` of ``log p(x*) / q(x*) = eps``, found by bisection in
    ``mpmath``; ``int_{x*}^inf (p - e^eps q)`` is then integrated with ``mpmath.quad`` on pieces
    one ``sigma`` wide near ``x*`` (Balle and Wang 2018 give the same quantity in closed form
    for ``q = 1``).
    """
    q = _check_q(q)
    sigma = _check_sigma(sigma)
    digits = _check_digits(digits)
    if not isinstance(direction, str) or direction not in _PAIR_MEANS:
        raise ValueError(f"direction must be one of {tuple(_PAIR_MEANS)}, got {direction!r}")
    p_parts, q_parts = _PAIR_MEANS[direction]
    with mpmath.workdps(digits + _GUARD_DIGITS):
        eps = _to_mpf(epsilon, "epsilon")
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
