"""The mpmath integration engine behind ``log_a_integral`` and ``log_moment``.

:func:`log_mean_power` computes ``log E_{mu0}[r^beta]`` for ``beta > 1`` or ``beta < 0``, with
``r = mu / mu0`` the likelihood ratio of the Poisson-subsampled Gaussian (notation of
:mod:`accounting.reference`), as ``log1p`` of the non-negative integral
``E_{mu0}[r^beta - 1 - beta (r - 1)]``.

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
from collections.abc import Callable

import mpmath
from mpmath.calculus.quadrature import GaussLegendre, TanhSinh

__all__ = ["log_mean_power"]

# The series of (1 + y)^beta - 1 - beta y is used where |y| and |beta y| are below this.
_SERIES_RADIUS = 2.0**-8
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Largest change (in nats) of the integrand's bound across one quadrature piece.
_MAX_PIECE_DROP = 40.0
# Largest |t| analysed in floating point; the Gaussian factor is exp(-5e199) beyond it.
_T_MAX_FLOAT = 1e100


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


def log_mean_power(q: mpmath.mpf, sigma: mpmath.mpf, beta: mpmath.mpf) -> mpmath.mpf:
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
