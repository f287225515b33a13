"""Privacy loss of one Poisson-subsampled Gaussian step, discretised on a uniform grid.

A DP-SGD step with sample rate ``q`` and noise multiplier ``sigma`` is dominated, for each
neighbouring relation, by a pair of one-dimensional Gaussian mixtures ``(P, Q)`` (Zhu, Dong, Wang
2022, "Optimal accounting of differential privacy via characteristic function", Section 6;
Koskela, Jälkö, Honkela 2020; the pairs used by dp_accounting). With ``N(m) = N(m, sigma^2)``:

* ``"remove"``:  ``P = (1 - q) N(0) + q N(1)``, ``Q = N(0)``;
* ``"add"``:     ``P = N(0)``, ``Q = (1 - q) N(0) + q N(-1)``;
* ``"replace"``: ``P = (1 - q) N(0) + q N(1)``, ``Q = (1 - q) N(0) + q N(-1)``.

(These are the dp_accounting pairs mirrored by ``x -> -x`` so that every privacy loss
``L(x) = log P(x) / Q(x)`` increases with ``x``.) The hockey-stick divergence of the pair is
``delta(eps) = E_P[(1 - exp(eps - L))_+]``, which only needs the law of ``L`` under ``P``.

Two discretisations on the grid ``{k * step}`` bracket the pair (Doroshenko, Ghazi, Kamath,
Kumar, Manurangsi 2022, "Connect the dots: tighter discrete approximations of privacy loss
distributions"):

* :func:`dominating_pmf` ("connect the dots"): the loss mass of each cell ``[a, b]`` is split
  between ``a`` and ``b`` keeping both its ``P`` and its ``Q`` mass. The original pair is the
  merge (a post-processing) of the split one, so the split pair dominates it; its ``delta(eps)``
  equals the true one at grid points and is linear in ``exp(eps)`` between them. Mass below the
  grid is moved up to the grid's first point and mass above it goes to ``+inf``: both only make
  ``delta`` larger.
* :func:`dominated_pmf`: the cell ``[(k - 1/2) step, (k + 1/2) step]`` is merged into one atom
  (a post-processing, hence dominated) and placed at ``k step``; both its ``P`` and its ``Q``
  mass are kept. Composing the two laws separately gives the laws of the summed grid index under
  ``P`` and under ``Q``, again a post-processing of the composed outputs, so
  ``P(S >= s) - exp(eps) Q(S >= s)`` is at most the true ``delta(eps)`` for every threshold ``s``
  (no correction for where inside its cell a merged loss lies is needed). Tails are dropped
  (a restriction to an event), and each mass is rounded down (``P``) or up (``Q``) by its
  floating-point error bound, which also only lowers that difference.

Every interval probability is a difference of normal CDFs taken on the side of the mean where
it keeps its relative precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accounting import _scipy

__all__ = [
    "RELATIONS",
    "CompositePair",
    "DiscretePld",
    "DominatingPair",
    "GridTooLarge",
    "dominated_pmf",
    "dominating_pairs",
    "dominating_pmf",
    "grid_size",
    "loss_extent",
    "point_work",
    "split_to_upper",
]

#: Neighbouring relations understood by :func:`dominating_pairs`.
RELATIONS: tuple[str, ...] = ("add_remove", "replace_one")

_EPS = np.finfo(float).eps
#: Smallest normal-CDF value whose rounding bound ``8 eps value`` is trusted (the normal
#: floats end at 2.2e-308; scipy's ndtr underflows below about 1e-316).
_SMALLEST_TRUSTED = 1e-290


class GridTooLarge(ValueError):
    """A discretisation or composition would need more grid points than allowed.

    ``points`` is the number it would need (a float: it may be astronomically large), ``limit``
    the number allowed.
    """

    def __init__(self, message: str, points: float, limit: float):
        super().__init__(message)
        self.points, self.limit = float(points), float(limit)


def _scaled_offset(x: np.ndarray, sigma: float) -> np.ndarray:
    """``(2 x - 1) / (2 sigma^2)``, dividing by ``sigma`` twice: ``sigma^2`` itself under- or
    overflows for ``sigma`` beyond ``1e-154 .. 1e154``, whereas this only saturates to
    ``+-inf`` or ``0`` where the result does."""
    with np.errstate(over="ignore"):
        return (2.0 * x - 1.0) / sigma / (2.0 * sigma)


@dataclass(frozen=True)
class DominatingPair:
    """A pair of Gaussian mixtures ``P, Q`` with common scale ``sigma``; loss increases in x.

    ``direction`` is ``"remove"``, ``"add"`` or ``"replace"`` (see the module docstring).
    """

    sample_rate: float
    noise_multiplier: float
    direction: str

    @property
    def p_components(self) -> tuple[tuple[float, float], ...]:
        """``(weight, mean)`` of the components of ``P``."""
        q = self.sample_rate
        if self.direction == "add":
            return ((1.0, 0.0),)
        return tuple(c for c in ((1.0 - q, 0.0), (q, 1.0)) if c[0] > 0)

    @property
    def q_components(self) -> tuple[tuple[float, float], ...]:
        """``(weight, mean)`` of the components of ``Q``."""
        q = self.sample_rate
        if self.direction == "remove":
            return ((1.0, 0.0),)
        return tuple(c for c in ((1.0 - q, 0.0), (q, -1.0)) if c[0] > 0)

    @property
    def loss_range(self) -> tuple[float, float]:
        """Infimum and supremum of the privacy loss."""
        log_keep = float(np.log1p(-self.sample_rate)) if self.sample_rate < 1 else -np.inf
        if self.direction == "remove":
            return log_keep, np.inf
        if self.direction == "add":
            return -np.inf, -log_keep
        return -np.inf, np.inf

    def loss(self, x: np.ndarray) -> np.ndarray:
        """Privacy loss ``log P(x) / Q(x)`` (increasing in ``x``)."""
        x = np.asarray(x, dtype=float)
        sigma = self.noise_multiplier
        if self.direction == "remove":
            return _log_mixture_ratio(self.sample_rate, _scaled_offset(x, sigma))
        if self.direction == "add":
            return -_log_mixture_ratio(self.sample_rate, _scaled_offset(-x, sigma))
        return _log_mixture_ratio(self.sample_rate, _scaled_offset(x, sigma)) - (
            _log_mixture_ratio(self.sample_rate, _scaled_offset(-x, sigma))
        )

    def inverse_loss(self, loss: np.ndarray) -> np.ndarray:
        """The ``x`` with ``L(x) = loss``; ``-inf`` / ``+inf`` outside the loss range."""
        loss = np.asarray(loss, dtype=float)
        low, high = self.loss_range
        inside = (loss > low) & (loss < high)
        x = np.where(loss <= low, -np.inf, np.inf)
        ell = loss[inside]
        sigma = self.noise_multiplier
        q = self.sample_rate
        # exp(L) = 1 - q + q exp(t), t = (2x - 1) / (2 sigma^2); sigma (sigma t) saturates to
        # +-inf only where x itself is out of range (sigma^2 alone may overflow before)
        with np.errstate(over="ignore"):
            if self.direction == "remove":
                x[inside] = sigma * (sigma * _log_excess_ratio(ell, q)) + 0.5
            elif self.direction == "add":
                x[inside] = -(sigma * (sigma * _log_excess_ratio(-ell, q)) + 0.5)
            elif q == 1.0:  # N(1) against N(-1): L = 2 x / sigma^2
                x[inside] = sigma * (sigma * ell) / 2.0
            else:
                x[inside] = self._replace_inverse(ell)
        return x

    def _replace_inverse(self, loss: np.ndarray) -> np.ndarray:
        """Closed-form inverse of the replace pair's loss.

        With ``u = exp(x / sigma^2)``, ``a = 1 - q`` and ``c = q exp(-1 / (2 sigma^2))`` the
        loss is ``L = log(u (a + c u) / (a u + c))``; the positive root of the quadratic
        ``c u^2 + a (1 - e^L) u - c e^L = 0`` gives
        ``x = sigma^2 (L / 2 + asinh(a sinh(L / 2) / c))`` (odd in ``L``, as the loss is in
        ``x``). The ``asinh`` argument is formed in log space: ``c`` underflows for small sigma.
        """
        sigma = self.noise_multiplier
        q = self.sample_rate
        half = 0.5 * np.abs(loss)
        # log(a sinh(L / 2) / q), with log sinh(y) = y + log(-expm1(-2 y)) - log 2
        with np.errstate(divide="ignore"):
            rest = (math.log1p(-q) - math.log(q) + half + np.log(-np.expm1(-2.0 * half))
                    - math.log(2.0))
        with np.errstate(invalid="ignore"):  # -inf + inf at L = 0: x = 0 there (below)
            log_z = rest + _inverse_two_variances(sigma)  # log(a sinh(L / 2) / c)
        log_z[half == 0.0] = -np.inf
        # asinh(z) = log(2 z) + 1 / (4 z^2) + ...: the correction is below rounding from z = 1e8;
        # there sigma^2 / (2 sigma^2) = 1/2 is taken exactly (1 / sigma^2 may overflow)
        big = log_z > 18.5
        x = np.empty_like(half)
        with np.errstate(over="ignore"):
            x[big] = sigma * (sigma * (half[big] + rest[big] + math.log(2.0))) + 0.5
            x[~big] = sigma * (sigma * (half[~big] + np.arcsinh(np.exp(log_z[~big]))))
        return np.copysign(x, loss)


def _inverse_two_variances(sigma: float) -> float:
    """``1 / (2 sigma^2)`` without overflow of ``sigma^2`` (``inf`` where it saturates)."""
    with np.errstate(over="ignore"):
        return float(np.float64(0.5) / sigma / sigma)


class CompositePair:
    """A dominating pair that is not a single pair of Gaussian mixtures in ``x`` (a mixture of
    pairs whose component is revealed, a symmetrised pair, see :mod:`accounting.pld.samplers`):
    it builds its own discretisations, and :func:`loss_extent`, :func:`grid_size`,
    :func:`dominating_pmf` and :func:`dominated_pmf` hand it over to these methods."""

    #: Work units of one point of its per-step discretisation (see ``point_work``).
    point_work: float = 10.0

    def loss_extent(self, tail: float) -> tuple[float, float]:
        raise NotImplementedError

    def grid_size(self, step: float, tail: float) -> float:
        raise NotImplementedError

    def dominating_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        raise NotImplementedError

    def dominated_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        raise NotImplementedError


#: Work units of one point of a Poisson pair's per-step discretisation (normal CDFs and the
#: loss inverse; the replace pair's closed-form inverse takes a few more transcendentals).
_POINT_WORK = {"remove": 10.0, "add": 10.0, "replace": 15.0}


def point_work(pair) -> float:
    """Work units of one point of ``pair``'s per-step discretisation (pricing only)."""
    work = getattr(pair, "point_work", None)
    return float(work) if work is not None else _POINT_WORK[pair.direction]


def dominating_pairs(sample_rate: float, noise_multiplier: float, relation: str):
    """The dominating pairs to compose for ``relation``; the answer is the worst of them.

    ``"add_remove"`` needs both the add and the remove pair (the neighbouring direction is fixed
    for a whole run, so each is composed separately); with ``q = 1`` they coincide and one is
    returned. ``"replace_one"`` is symmetric and needs one.
    """
    if relation == "replace_one":
        return (DominatingPair(sample_rate, noise_multiplier, "replace"),)
    if relation != "add_remove":
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if sample_rate == 1.0:
        return (DominatingPair(sample_rate, noise_multiplier, "remove"),)
    return (
        DominatingPair(sample_rate, noise_multiplier, "remove"),
        DominatingPair(sample_rate, noise_multiplier, "add"),
    )


@dataclass(frozen=True)
class DiscretePld:
    """Masses under ``P`` of a privacy loss on the grid ``(first_index + i) * step``.

    ``infinity_mass`` is ``P``-mass at loss ``+inf`` (counted in full by every ``delta``).
    ``q_masses`` (dominated discretisations only): the ``Q``-masses of the same atoms, whose
    losses ``log(masses / q_masses)`` need not lie on the grid.
    """

    step: float
    first_index: int
    masses: np.ndarray
    infinity_mass: float = 0.0
    q_masses: np.ndarray | None = None

    @property
    def indices(self) -> np.ndarray:
        """Integer grid index of every atom."""
        return self.first_index + np.arange(self.masses.size)

    @property
    def losses(self) -> np.ndarray:
        """Loss value of every atom."""
        return self.indices * self.step


def _log_mixture_ratio(q: float, t: np.ndarray) -> np.ndarray:
    """``log(1 - q + q exp(t))`` without overflow or cancellation."""
    t = np.asarray(t, dtype=float)
    if q == 1.0:
        return t.copy()
    out = np.empty_like(t)
    small = t < 0
    out[small] = np.log1p(q * np.expm1(t[small]))
    big = ~small
    out[big] = t[big] + np.log(q + (1.0 - q) * np.exp(-t[big]))
    return out


def _log_excess_ratio(loss: np.ndarray, q: float) -> np.ndarray:
    """``t`` solving ``log(1 - q + q exp(t)) = loss``, i.e. ``log1p(expm1(loss) / q)``."""
    if q == 1.0:
        return loss.copy()
    out = np.empty_like(loss)
    small = loss < 1.0
    with np.errstate(over="ignore"):
        ratio = np.expm1(loss[small]) / q
    # the ratio overflows only for a subnormal q: log(expm1(loss)) - log(q) is then exact to
    # rounding (the 1 of log1p is below it)
    huge = ~np.isfinite(ratio)
    ratio[huge] = 1.0
    ratio = np.log1p(ratio)
    ratio[huge] = np.log(np.expm1(loss[small][huge])) - np.log(q)
    out[small] = ratio
    big = ~small
    # exp(loss) - 1 + q over q, kept in log space for large losses
    out[big] = loss[big] - np.log(q) + np.log1p(-(1.0 - q) * np.exp(-loss[big]))
    return out


def _mixture_cdfs(components, sigma: float, x: np.ndarray):
    """Lower and upper CDFs ``(F(x), 1 - F(x))`` of a Gaussian mixture, each accurate in its
    own tail (both computed from ``ndtr`` of the side that does not cancel)."""
    lower = np.zeros(x.shape)
    upper = np.zeros(x.shape)
    for weight, mean in components:
        z = (x - mean) / sigma
        lower += weight * _scipy.special.ndtr(z)
        upper += weight * _scipy.special.ndtr(-z)
    return lower, upper


def _mixture_mean(components) -> float:
    """Mean of a Gaussian mixture: a point in its bulk (between the extreme component means)."""
    return float(sum(weight * mean for weight, mean in components))


def _interval_masses(pair, edges: np.ndarray):
    """``P`` and ``Q`` masses of the cells ``[edges[i], edges[i + 1]]`` (``edges`` increasing),
    each with a bound on its rounding error: ``(p_cells, p_error, q_cells, q_error)``.

    Cells left of ``P``'s mean are differences of lower CDFs, the others of upper CDFs, so
    that tail cells keep their relative precision (any split point in the bulk does that, and
    each cell's error bound is taken from the CDF it actually uses); each side is evaluated
    only where it is used, and the normal CDF of each component mean once for both mixtures
    (summed as it is made: the memory is that of a few cell arrays whatever the number of
    components of a mixture pair).
    """
    sigma = pair.noise_multiplier
    cells = edges.size - 1
    split = int(np.searchsorted(edges, _mixture_mean(pair.p_components), "right"))
    split = min(max(split, 0), cells)
    left, right = edges[: split + 1], edges[split:]
    weights: dict[float, list[float]] = {}  # mean -> [weight in P, weight in Q], in order met
    for weight, mean in pair.p_components:
        weights.setdefault(mean, [0.0, 0.0])[0] += weight
    for weight, mean in pair.q_components:
        weights.setdefault(mean, [0.0, 0.0])[1] += weight
    sums: list = [None, None]  # per mixture: [lower CDF sum, upper CDF sum]
    for mean, pair_weights in weights.items():
        lower_cdf = _scipy.special.ndtr((left - mean) / sigma)
        upper_cdf = _scipy.special.ndtr((mean - right) / sigma)
        for side, weight in enumerate(pair_weights):
            if weight == 0.0:
                continue
            if sums[side] is None:
                sums[side] = [weight * lower_cdf, weight * upper_cdf]
            else:
                sums[side][0] += weight * lower_cdf
                sums[side][1] += weight * upper_cdf

    def masses_of(lower, upper):
        masses = np.empty(cells)
        scale = np.empty(cells)
        masses[:split] = lower[1:] - lower[:-1]
        scale[:split] = lower[1:]
        masses[split:] = upper[:-1] - upper[1:]
        scale[split:] = upper[:-1]
        return np.maximum(masses, 0.0), 8.0 * _EPS * scale

    return (*masses_of(*sums[0]), *masses_of(*sums[1]))


def loss_extent(pair: DominatingPair, tail: float) -> tuple[float, float]:
    """Losses beyond which ``P`` puts at most ``tail`` mass on each side (``tail`` is floored at
    ``1e-300``: a larger tail only moves more mass to the safe side, see :func:`dominating_pmf`).

    Either end is ``+-inf`` where the loss there overflows (noise multipliers below about
    ``1e-154``): no grid can hold such a loss.
    """
    if isinstance(pair, CompositePair):
        return pair.loss_extent(tail)
    z = -float(_scipy.special.ndtri(max(tail, 1e-300)))
    means = [mean for _, mean in pair.p_components]
    sigma = pair.noise_multiplier
    with np.errstate(over="ignore"):
        x_low, x_high = np.array([min(means), max(means)]) + np.array([-z, z]) * sigma
    low, high = pair.loss(np.array([x_low, x_high]))
    range_low, range_high = pair.loss_range
    return max(float(low), range_low), min(float(high), range_high)


def grid_size(pair: DominatingPair, step: float, tail: float) -> float:
    """Number of points of :func:`dominating_pmf`'s grid (``inf`` where no grid of this
    spacing holds the losses), without building it."""
    if isinstance(pair, CompositePair):
        return pair.grid_size(step, tail)
    try:
        first, last = _grid_ends(pair, step, tail, False, None)
    except GridTooLarge:
        return math.inf
    return float(last - first + 1)


def _grid_ends(pair: DominatingPair, step: float, tail: float, centred: bool, max_points):
    """First and last grid index of a discretisation (``centred``: the cells centred on the grid
    points of :func:`dominated_pmf`), checked against ``max_points`` before anything is
    allocated."""
    low, high = loss_extent(pair, tail)
    with np.errstate(over="ignore", invalid="ignore"):
        if centred:
            first_float = np.ceil(low / step - 0.5)
            last_float = max(np.floor(high / step + 0.5), first_float)
        else:
            first_float = np.floor(low / step)
            last_float = max(np.ceil(high / step), first_float + 1.0)
    points = float(last_float - first_float + 1.0)
    limit = math.inf if max_points is None else max_points
    if not points <= limit:  # also NaN and inf: a loss no grid of this spacing holds
        raise GridTooLarge(
            f"value_discretization={step:g} needs {points:.3g} points for one step's privacy "
            f"loss (at most {limit:.0f} allowed); use a coarser value_discretization",
            points, limit,
        )
    return int(first_float), int(last_float)


def split_to_upper(lower_losses: np.ndarray, p_cells: np.ndarray, q_cells: np.ndarray,
                   step: float) -> np.ndarray:
    """``P``-mass of each loss cell ``[a, a + step]`` moved to its upper end by the
    connect-the-dots split (the rest goes to ``a``), keeping the cell's ``P`` and ``Q`` masses.

    To ``b = a + step``: ``(e^-a P - Q) / (e^-a - e^-b)``; clipped to ``[0, P]``, and all of
    ``P`` where it cannot be resolved in floating point (moving loss up is safe).
    """
    scale = -np.expm1(-step)  # 1 - e^-step = (e^-a - e^-b) e^a
    with np.errstate(over="ignore", invalid="ignore"):
        to_upper = (p_cells - np.exp(lower_losses) * q_cells) / scale
    return np.clip(np.where(np.isnan(to_upper), p_cells, to_upper), 0.0, p_cells)


def dominating_pmf(
    pair: DominatingPair, step: float, tail: float, max_points: float | None = None
) -> DiscretePld:
    """Connect-the-dots discretisation whose ``delta`` upper-bounds the pair's, composed or not.

    Parameters
    ----------
    pair : DominatingPair
    step : float
        Grid spacing of the privacy loss.
    tail : float
        ``P``-mass allowed beyond the grid on each side (the upper part goes to ``+inf``, the
        lower part to the grid's first point).
    max_points : float, optional
        Raise :class:`GridTooLarge` (before allocating) if the grid would need more points.

    Notes
    -----
    Moving loss mass up never lowers a hockey-stick divergence, composed or not (``(1 - exp(eps
    - L))_+`` increases with every step's ``L``). So where a cell's split cannot be resolved in
    floating point (``exp(a)`` overflows beyond losses of 709) its whole mass goes to its upper
    end, which is safe.
    """
    if isinstance(pair, CompositePair):
        return pair.dominating_pmf(step, tail, max_points)
    first, last = _grid_ends(pair, step, tail, False, max_points)
    grid = np.arange(first, last + 1) * step
    edges = pair.inverse_loss(grid)
    sigma = pair.noise_multiplier
    p_cells, _, q_cells, _ = _interval_masses(pair, edges)
    to_upper = split_to_upper(grid[:-1], p_cells, q_cells, step)
    masses = np.zeros(grid.size)
    masses[:-1] += p_cells - to_upper
    masses[1:] += to_upper
    below, _ = _mixture_cdfs(pair.p_components, sigma, edges[:1])
    _, above = _mixture_cdfs(pair.p_components, sigma, edges[-1:])
    masses[0] += float(below[0])
    return DiscretePld(step, first, masses, infinity_mass=float(above[0]))


def dominated_pmf(
    pair: DominatingPair, step: float, tail: float, max_points: float | None = None
) -> DiscretePld:
    """Merged-cell discretisation: ``P`` and ``Q`` masses of the loss cells centred on the
    grid, whose composed threshold divergences lower-bound the pair's ``delta``; see the module
    docstring.

    Parameters
    ----------
    pair : DominatingPair
    step : float
        Grid spacing of the privacy loss.
    tail : float
        ``P``-mass dropped beyond the grid on each side.
    max_points : float, optional
        Raise :class:`GridTooLarge` (before allocating) if the grid would need more points.
    """
    if isinstance(pair, CompositePair):
        return pair.dominated_pmf(step, tail, max_points)
    first, last = _grid_ends(pair, step, tail, True, max_points)
    edges = pair.inverse_loss((np.arange(first, last + 2) - 0.5) * step)
    p_cells, p_error, q_cells, q_error = _interval_masses(pair, edges)
    # rounded so that P is never over- and Q never under-stated
    masses = np.maximum(p_cells - p_error, 0.0)
    q_masses = q_cells + q_error
    # A Q mass taken from a normal CDF below the normal floats (beyond losses of ~700) may
    # have underflowed, and no rounding bound covers that: such cells are dropped from both
    # laws (a restriction to an event, as for the tails), never kept with Q understated.
    untrusted = q_error < 8.0 * _EPS * _SMALLEST_TRUSTED
    masses[untrusted] = 0.0
    q_masses[untrusted] = 0.0
    return DiscretePld(step, first, masses, 0.0, q_masses)
