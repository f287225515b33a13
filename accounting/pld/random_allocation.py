"""Random allocation ("balls in bins") of a Gaussian step: certified privacy-loss distributions.

One epoch of ``t`` Gaussian steps (noise ``sigma``, sensitivity 1) in which every record takes
part in exactly one step, chosen uniformly at random. **Add/remove neighbours.**

Dominating pair (Feldman & Shenfeld 2025, "Privacy amplification by random allocation",
arXiv:2502.08202, their reduction of random allocation to the pair below, for adaptive steps;
the same pair is the one of Feldman & Shenfeld 2026, "Efficient privacy loss accounting for
subsampling and random allocation", arXiv:2602.17284, and of the ``pld-accounting`` package).
With ``A = N(1, sigma^2)``, ``B = N(0, sigma^2)`` and ``e_i`` the unit vectors of ``R^t``,

    P = (1/t) sum_i A at coordinate i, B elsewhere,     Q = B^t,

and the privacy loss is ``log P(x)/Q(x) = log((1/t) sum_i Y_i)`` with ``Y_i = dA/dB(x_i) =
exp((x_i - 1/2) / sigma^2)``. *Remove* is the pair ``(P, Q)``: under ``P`` (by symmetry the
record sits in step 1) ``Y_1`` has law ``A`` and ``Y_2..Y_t`` law ``B``. *Add* is ``(Q, P)``:
the loss ``-log((1/t) sum_i Y_i)`` under ``Q``, all ``Y_i`` of law ``B``. The pair is attained
(the outputs of a record that contributes the unit vector while every other record contributes
0), so it gives the lower end of the bracket too.

Upper law (a pair that dominates ``(P, Q)`` for every hockey-stick order). The one-coordinate
pair ``(A, B)`` is discretised in likelihood-ratio space: on the grid ``Y in {0, h, 2h, ...,
Kh}`` each cell ``[a, b]`` of ``Y`` keeps its ``A``- and ``B``-masses ``(alpha, beta)`` split
between its ends with ``B'(b) = (alpha - a beta) / (b - a)``, ``B'(a) = beta - B'(b)`` and
``A'(y) = y B'(y)``; the cell ``[Kh, inf)`` keeps ``beta`` at ``Kh`` and puts
``alpha - Kh beta`` of ``A'`` at ``Y = inf``. The split is a mean-preserving spread of ``Y``
under ``B`` (the connect-the-dots construction of Doroshenko, Ghazi, Kamath, Kumar, Manurangsi
2022 carried out in ``Y`` instead of ``log Y``), so ``E_B[(Y - g)_+]`` grows for every ``g``:
``(A', B')`` dominates ``(A, B)``, hence (Blackwell) ``(A, B)`` is a post-processing of it.
Applied coordinate by coordinate, the same kernel maps ``(P', Q')``, the pair built from
``(A', B')`` as above, onto ``(P, Q)``: ``(P', Q')`` dominates the epoch, and its loss is again
``+-log((1/t) sum_i Y'_i)``. The law of ``S = sum_i Y'_i`` (``A' * B'^(t-1)`` for remove,
``B'^t`` for add) lives on the grid ``h Z`` and is composed by FFT with a certified error bound
(:func:`accounting.pld.composition.compose_tilted`); each atom of ``S`` is then split between the
two neighbouring points of the loss grid by connect-the-dots (a mean-preserving spread of
``exp(-loss)``, which can only raise every composed hockey-stick divergence).

Rounding. Every bound is ``E[f(Y_1, .., Y_t)]`` for some ``f`` in ``[0, 1]`` monotone in each
coordinate (non-decreasing for remove, non-increasing for add), and ``E_mu[f] = int mu(f > v)
dv`` over up- (down-) sets: a coordinate law whose survival function (CDF) is larger everywhere
only raises it. So each coordinate's floating-point error is carried as a sup-norm bound on its
survival function (the split's share has its masses' error over ``h``; the cell masses
telescope), added as mass at ``Y = inf`` (remove) or ``Y = 0`` (add); the FFT's L1 error bound
and the truncations go to loss ``+inf``. The composed ``delta(eps) = E[(1 - e^(eps - L))_+]`` is
non-decreasing in each epoch's loss and at most 1 per unit of mass, so all of this is safe.
The coordinates' errors are added where they arise (the monotone envelope of their pointwise
bounds), so they hardly move ``delta``; the FFT's, about ``1e-12`` to ``1e-10`` per epoch (redone
in extended precision where it would weigh), goes to ``+inf``: where ``delta / epochs`` is below
about ``1e-9`` the upper end falls back to RDP's bound.

Lower law: rounding each ``Y_i`` down to the grid and summing is a post-processing of the
epoch's outputs, so the laws of ``sum_i floor_h(Y_i)`` under ``P`` and under ``Q``, grouped by
loss cell (atoms beyond the grid clamped to its ends, still a post-processing), give threshold
divergences below the true one; ``P``'s survival function is lowered and ``Q``'s raised by their
error bounds (the FFT's and the coordinates'), so every composed threshold tail errs the safe
way.

``k`` selections out of ``t`` steps are accounted as ``k - r`` epochs of one out of
``floor(t / k)`` steps and ``r = t mod k`` of one out of ``floor(t / k) + 1`` (Feldman &
Shenfeld 2025, the decomposition of ``k``-out-of-``t`` allocation into one-out-of-``t_j``
allocations; the floor/ceil split of ``pld-accounting``): cutting the steps into blocks of sizes
``t_j`` by a random permutation and picking one step per block gives a uniformly random
``k``-subset (its law is permutation invariant), and revealing the blocks only helps an analyst.

Limits: ``2 <= t <= MAX_ALLOCATION_STEPS`` per round and ``sigma`` in ``[0.2, 1e4]``; the grid of
``Y`` has at most ``2**19`` points and the sum's FFT at most ``2**21`` (coarser grids are tried
where a window is longer), so the time and memory of one round's laws are bounded. Outside these
limits :class:`RandomAllocationPair` builds no grid and the accountant reports RDP's bound.
"""

from __future__ import annotations

import functools
import math
import weakref

import numpy as np

from accounting import _scipy
from accounting._caches import register_cache
from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_positive,
    check_positive_int,
)
from accounting.events import Gaussian, RandomAllocation, SelfComposed
from accounting.pld.composition import compose_tilted
from accounting.pld.privacy_loss import (
    _EPS,
    CompositePair,
    DiscretePld,
    DominatingPair,
    GridTooLarge,
    _interval_masses,
)

__all__ = [
    "MAX_ALLOCATION_STEPS",
    "RandomAllocationPair",
    "allocation_leaf",
    "allocation_rounds",
    "random_allocation_pairs",
    "random_allocation_pld_epsilon_bounds",
]

#: Largest number of steps of one round whose PLD is composed; beyond it (rounding of a
#: ``t``-fold FFT power, a window of ``sqrt(t)`` bulk widths) the PLD accountant reports RDP's
#: bound instead.
MAX_ALLOCATION_STEPS = 1 << 24
#: Noise multipliers outside this range get no PLD (the likelihood ratios of one coordinate
#: span more than a grid can hold, or are 1 to rounding); RDP's bound is reported instead.
_SIGMA_RANGE = (0.2, 1e4)
#: Largest number of points of the one-coordinate grid of ``Y`` and of the expected window of
#: the sum (the FFT's is at most ``_MAX_SUM_POINTS``).
_MAX_COORDINATE_POINTS = 1 << 19
#: Largest FFT length of the law of the sum ``S``.
_MAX_SUM_POINTS = 1 << 21
#: Grid spacing of ``Y`` in units of its standard deviation under ``B``: the spread the split
#: adds to each coordinate is second order in it.
_SPACING_PER_STD = 0.01
#: Grid spacing of ``Y`` at most this times ``t^2``: for few steps the sum ``S`` itself must be
#: resolved down to ``t e^-eps`` (an epoch's epsilon shrinks as ``t`` grows).
_SPACING_PER_STEP = 5e-5
#: Bulk standard deviations of ``S`` the sum's window is expected to span (sizes the grid).
_WINDOW_STDS = 20.0
#: Add direction: each ``Y`` is clamped at this times ``t`` (see :class:`_SumLaws`).
_ADD_CLAMP = 30.0
#: The sum's FFT is redone in extended precision where its error bound exceeds this many times
#: the truncation (the PLD accountant truncates ``1e-9`` of ``delta`` over all steps, so this is
#: about ``1e-3 delta`` per composed epoch); the inverse transform stays in double, which bounds
#: the gain (to about ``1e-12`` of error per epoch).
_EXTENDED_TRIGGER = 1e6
#: Whether NumPy's long double is wider than double here.
_HAS_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(float).eps
#: The laws of ``S`` are computed for truncations that are powers of ten (one law serves every
#: larger truncation).
_KEPT_LAWS = 4


def _y_std(sigma: float) -> float:
    """Standard deviation of ``Y = exp(N(-s^2/2, s^2))``, ``s = 1 / sigma``, under ``B``."""
    return math.sqrt(math.expm1(1.0 / sigma**2))


def allocation_rounds(steps: int, selections: int) -> tuple[tuple[int, int], ...]:
    """``((steps of a round, rounds), ...)`` of one epoch of ``selections`` out of ``steps``
    (the floor/ceil decomposition of the module docstring)."""
    base, extra = divmod(steps, selections)
    rounds = [(base, selections - extra)]
    if extra:
        rounds.append((base + 1, extra))
    return tuple(r for r in rounds if r[1] > 0)


class _SumLaws:
    """The one-coordinate pair on the ``Y`` grid and the laws of ``S`` built from it, for one
    ``(t, sigma)`` and one truncation ``tail``."""

    def __init__(self, steps: int, sigma: float, tail: float, direction: str,
                 coarsen: float = 1.0):
        self.steps, self.sigma, self.tail = steps, sigma, tail
        s = 1.0 / sigma
        z = -float(_scipy.special.ndtri(tail / 4.0))
        if direction == "remove":
            # Y above y_top carries A-mass at most tail / 4 (that mass goes to +inf)
            y_top = math.exp(0.5 * s * s + z * s)
        else:
            # add: the loss -log(S / t) falls as Y grows, so clamping Y at y_top (B-mass above
            # it goes to y_top) only raises it; beyond ~30 t a coordinate's loss hardly matters
            y_top = min(math.exp(-0.5 * s * s + z * s), _ADD_CLAMP * steps)
        std = _y_std(sigma)
        # second order in h / std; small t also needs S itself resolved near t e^-eps
        spacing = min(_SPACING_PER_STD * std, _SPACING_PER_STEP * steps * steps)
        # no more points than allowed to the sum's window (the coordinate's range and the bulk)
        window = _WINDOW_STDS * math.sqrt(steps) * std + y_top
        spacing = max(spacing, window / _MAX_COORDINATE_POINTS) * coarsen
        top = int(math.ceil(y_top / spacing))
        self.h = spacing
        self.top = top
        grid = np.arange(top + 1) * spacing
        edges = np.concatenate([_x_edges(grid, sigma), [np.inf]])
        pair = DominatingPair(1.0, sigma, "remove")  # P = N(1) = A, Q = N(0) = B
        alpha, alpha_err, beta, beta_err = _interval_masses(pair, edges)
        self._coordinate(grid, alpha, alpha_err, beta, beta_err)

    def _coordinate(self, grid, alpha, alpha_err, beta, beta_err):
        """The split pair ``(A', B')`` and the floor laws, with sup-norm bounds on the error of
        their survival functions (see :meth:`_compose` for why a sup norm is enough)."""
        h, top = self.h, self.top
        low = grid[:-1]
        a, b = alpha[:-1], beta[:-1]
        # B'(upper end) = (alpha - a beta) / h, clipped to the cell's B-mass
        upper = np.clip((a - low * b) / h, 0.0, b)
        b_prime = np.zeros(top + 1)
        b_prime[:-1] += b - upper
        b_prime[1:] += upper
        b_prime[-1] += beta[-1]
        a_prime = grid * b_prime
        self.a_infinity = (max(float(alpha[-1]) - grid[-1] * float(beta[-1]), 0.0)
                           + float(alpha_err[-1]) + grid[-1] * float(beta_err[-1]))
        # The survival function of B' at y_j is B(Y >= y_j) plus the upper share of the cell
        # below: the cell masses telescope (their CDF errors do not add up to more than a few
        # CDF values' errors, cdf_err), the share carries its own error (the masses' errors
        # over h) - one cell's, not a sum. Those share errors are placed where they arise: a
        # measure whose survival function (remove) or CDF (add) is their monotone envelope.
        split_err = ((alpha_err[:-1] + low * beta_err[:-1]) / h
                     + 8.0 * _EPS * (a + low * b) / h)
        cdf_err = 4.0 * float(max(alpha_err.max(), beta_err.max())) + 16.0 * _EPS
        share_err = np.concatenate([[0.0], split_err])  # at y_j: the share of cell j - 1
        # the telescoped cell masses from y_j up: right of the split point of
        # _interval_masses (x = 1) only the upper CDF at y_j (its own bound, taken twice) and
        # the roundings of the sums; left of it also the CDFs at the split point
        split = int(np.searchsorted(np.concatenate([[-np.inf], _x_edges(grid, self.sigma)]),
                                    1.0, "right")) - 1
        left = np.arange(top + 1) < split + 1
        b_tail = _suffix_max(beta_err) * 2.0 + 24.0 * _EPS * left + 4.0 * _EPS * _suffix_sum(b)
        a_tail = (_suffix_max(alpha_err) * 2.0 + 24.0 * _EPS * left
                  + 4.0 * _EPS * _suffix_sum(a) + 4.0 * _EPS * _suffix_sum(a_prime)[:-1])
        self.b_survival_extra = _survival_envelope(share_err + b_tail)
        self.b_cdf_extra = _cdf_envelope(np.append(split_err, 0.0))
        self.b_eta = cdf_err
        # A'(y) = y B'(y): at y_j, y_j times the share's error, and each cell above keeps its
        # A-mass up to h times its share's error
        cell_part = h * split_err + 8.0 * _EPS * (a + low * b)
        self.a_survival_extra = _survival_envelope(grid * share_err + _suffix_sum(cell_part)
                                                   + a_tail)
        self.a_prime, self.b_prime = a_prime, b_prime
        # floor laws (lower end): cell [kh, (k+1)h) to kh, [Kh, inf) to Kh
        self.a_floor, self.b_floor = alpha, beta
        self.floor_eta = cdf_err

    def _compose(self, groups):
        """Law of the sum of independent coordinates on ``h Z``: ``groups`` are ``(masses,
        count)``. Returns ``(first index, masses, error)``: the masses are the FFT's (negatives
        included) and ``error`` bounds the total absolute error of the composed masses."""
        pld_groups = [(DiscretePld(self.h, 0, masses), count) for masses, count in groups]
        law = compose_tilted(pld_groups, self.tail / 16.0, tilt=0.0, max_size=_MAX_SUM_POINTS)
        if law.error > _EXTENDED_TRIGGER * self.tail and _HAS_EXTENDED:
            # the FFT's rounding would weigh on delta: the transforms and powers again with a
            # 64-bit mantissa (about 2000 times smaller an error)
            law = compose_tilted(pld_groups, self.tail / 16.0, tilt=0.0, extended=True,
                                 max_size=_MAX_SUM_POINTS)
        scale = math.exp(law.log_scale)
        return law.first_index, law.masses * scale, law.error * scale

    # Why survival bounds: every bound below is E[f(Y_1, .., Y_t)] for an f in [0, 1] that is
    # monotone in each coordinate (non-decreasing for remove and the thresholds, non-increasing
    # for add). E_mu[f] = int mu(f > v) dv, and {f > v} is an up- (or down-) set, so replacing
    # one coordinate's law by a measure whose survival function (CDF) is larger everywhere can
    # only raise E[f]; adding a measure whose survival function (CDF) bounds the error pointwise
    # makes it so, coordinate by coordinate.

    @functools.cached_property
    def upper_remove(self):
        """``(first, masses, infinity)`` of ``S`` under ``P'`` (survival bounded above)."""
        first, masses, error = self._compose([
            (self.a_prime + self.a_survival_extra, 1),
            (self.b_prime + self.b_survival_extra, self.steps - 1),
        ])
        return first, masses, self.a_infinity + error

    @functools.cached_property
    def upper_add(self):
        """``(first, masses, infinity)`` of ``S`` under ``Q'`` (CDF bounded above: each
        coordinate's CDF errors are added as mass at or below where they arise, the constant
        part, at most twice the survival's, at ``Y = 0``)."""
        shifted = self.b_prime + self.b_cdf_extra
        shifted[0] += 2.0 * self.b_eta
        first, masses, error = self._compose([(shifted, self.steps)])
        return first, masses, error

    @functools.cached_property
    def floor_p(self):
        """``(first, masses, eta)`` of the floored sum under ``P``: ``eta`` bounds the sup-norm
        error of its survival function and CDF (negatives clipped: twice the FFT's error)."""
        first, masses, error = self._compose([(self.a_floor, 1), (self.b_floor, self.steps - 1)])
        return first, masses, 2.0 * error + 2.02 * self.steps * self.floor_eta

    @functools.cached_property
    def floor_q(self):
        """As :attr:`floor_p`, under ``Q``."""
        first, masses, error = self._compose([(self.b_floor, self.steps)])
        return first, masses, 2.0 * error + 2.02 * self.steps * self.floor_eta


def _x_edges(grid: np.ndarray, sigma: float) -> np.ndarray:
    """The outputs ``x`` with ``Y(x) = grid`` (``-inf`` at ``Y = 0``)."""
    with np.errstate(divide="ignore"):
        return sigma * sigma * np.log(grid) + 0.5


def _suffix_max(values: np.ndarray) -> np.ndarray:
    """``max_(i >= j) values_i`` for ``j = 0 .. len(values) - 1``."""
    return np.maximum.accumulate(values[::-1])[::-1]


def _suffix_sum(values: np.ndarray) -> np.ndarray:
    """``sum_(i >= j) values_i`` for ``j = 0 .. len(values)`` (one longer: 0 at the end)."""
    return np.append(np.cumsum(values[::-1])[::-1], 0.0)


def _survival_envelope(errors: np.ndarray) -> np.ndarray:
    """Masses of the measure on the grid whose survival function at ``y_j`` is
    ``max_(i >= j) errors_i`` (non-increasing, at least ``errors_j``)."""
    envelope = np.maximum.accumulate(errors[::-1])[::-1]
    return envelope - np.append(envelope[1:], 0.0)


def _cdf_envelope(errors: np.ndarray) -> np.ndarray:
    """Masses of the measure on the grid whose CDF at ``y_j`` is ``max_(i <= j) errors_i``."""
    envelope = np.maximum.accumulate(errors)
    return envelope - np.concatenate([[0.0], envelope[:-1]])


def _losses(first: int, size: int, h: float, steps: int, direction: str) -> np.ndarray:
    """Loss of each atom ``S = k h`` (``k = first ..``); ``nan`` where ``S <= 0``."""
    k = first + np.arange(size)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(k > 0, np.log(np.maximum(k, 1) * h) - math.log(steps), np.nan)
    return log_ratio if direction == "remove" else -log_ratio


class RandomAllocationPair(CompositePair):
    """The dominating (and attained) pair of one random-allocation epoch of one out of
    ``steps`` Gaussian steps, in one direction (``"remove"`` or ``"add"``), discretised as the
    module docstring says: :meth:`dominating_pmf` bounds every composed hockey-stick divergence
    from above, :meth:`dominated_pmf` gives threshold laws that bound it from below.

    Parameters
    ----------
    steps : int
        Steps of the round, ``t >= 2``.
    noise_multiplier : float
        ``sigma > 0``.
    direction : {"remove", "add"}

    Notes
    -----
    Outside ``2 <= t <= MAX_ALLOCATION_STEPS`` and ``sigma`` in ``[0.2, 1e4]`` no grid is built:
    :meth:`loss_extent` is infinite and :meth:`dominating_pmf` raises
    :class:`~accounting.pld.privacy_loss.GridTooLarge` (the accountant then reports RDP's bound).
    """

    point_work = 10.0

    def __init__(self, steps: int, noise_multiplier: float, direction: str):
        if direction not in ("remove", "add"):
            raise ValueError(f"direction must be 'remove' or 'add', got {direction!r}")
        self.steps = check_positive_int(steps, "steps")
        self.noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
        self.direction = direction
        self.supported = (2 <= self.steps <= MAX_ALLOCATION_STEPS
                          and _SIGMA_RANGE[0] <= self.noise_multiplier <= _SIGMA_RANGE[1])
        self._laws: dict[float, _SumLaws] = {}
        self._extents: dict[float, tuple[float, float]] = {}
        _LIVE.add(self)

    def clear(self) -> None:
        """Drop the laws kept (recomputed when next asked for)."""
        self._laws.clear()
        self._extents.clear()

    def __repr__(self) -> str:
        return (f"RandomAllocationPair({self.steps}, {self.noise_multiplier!r}, "
                f"{self.direction!r})")

    def _law(self, tail: float) -> _SumLaws:
        """The laws for the largest power of ten at most ``tail`` (a finer one if kept)."""
        bucket = 10.0 ** math.floor(math.log10(max(min(tail, 1e-3), 1e-300)))
        finer = [key for key in self._laws if key <= bucket]
        if finer:
            return self._laws[max(finer)]
        while len(self._laws) >= _KEPT_LAWS:
            self._laws.pop(next(iter(self._laws)))
        coarsen = 1.0
        for _ in range(4):
            law = _SumLaws(self.steps, self.noise_multiplier, bucket, self.direction, coarsen)
            try:  # the sum's window is known once composed: coarser where it is too long
                law.upper_remove if self.direction == "remove" else law.upper_add  # noqa: B018
                break
            except GridTooLarge as error:
                if not math.isfinite(error.points):
                    raise
                coarsen *= 1.25 * error.points / error.limit
        else:
            raise GridTooLarge("the sum's window does not fit", math.inf, _MAX_SUM_POINTS)
        self._laws[bucket] = law
        return law

    def _upper_law(self, tail: float):
        law = self._law(tail)
        first, masses, infinity = (law.upper_remove if self.direction == "remove"
                                   else law.upper_add)
        return law, first, masses, infinity

    def _extent(self, tail: float) -> tuple[float, float]:
        if tail not in self._extents:
            while len(self._extents) >= 8:
                self._extents.pop(next(iter(self._extents)))
            self._extents[tail] = self._find_extent(tail)
        return self._extents[tail]

    def _find_extent(self, tail: float) -> tuple[float, float]:
        law, first, masses, _ = self._upper_law(tail)
        losses = _losses(first, masses.size, law.h, self.steps, self.direction)
        weights = np.maximum(masses, 0.0)
        finite = np.isfinite(losses)
        order = np.argsort(losses[finite])
        sorted_losses = losses[finite][order]
        cumulative = np.cumsum(weights[finite][order])
        total = cumulative[-1]
        low_index = int(np.searchsorted(cumulative, tail, side="right"))
        high_index = int(np.searchsorted(cumulative, total - tail, side="left"))
        low = float(sorted_losses[min(low_index, sorted_losses.size - 1)])
        high = float(sorted_losses[min(high_index, sorted_losses.size - 1)])
        return low, max(high, low)

    def loss_extent(self, tail: float) -> tuple[float, float]:
        if not self.supported:
            return -math.inf, math.inf
        try:
            return self._extent(float(tail))
        except GridTooLarge:
            return -math.inf, math.inf

    def _ends(self, step: float, tail: float, max_points) -> tuple[int, int]:
        low, high = self.loss_extent(tail)
        with np.errstate(over="ignore", invalid="ignore"):
            first_float = np.floor(low / step)
            last_float = max(np.ceil(high / step), first_float) + 1.0
        points = float(last_float - first_float + 1.0)
        limit = math.inf if max_points is None else max_points
        if not points <= limit:
            raise GridTooLarge(
                f"value_discretization={step:g} needs {points:.3g} points for one epoch's "
                f"privacy loss (at most {limit:.0f} allowed); use a coarser "
                "value_discretization", points, limit,
            )
        return int(first_float), int(last_float)

    def grid_size(self, step: float, tail: float) -> float:
        try:
            first, last = self._ends(step, tail, None)
        except GridTooLarge:
            return math.inf
        return float(last - first + 1)

    def dominating_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        first_grid, last_grid = self._ends(step, tail, max_points)
        law, first, masses, infinity = self._upper_law(tail)
        losses = _losses(first, masses.size, law.h, self.steps, self.direction)
        weights = np.maximum(masses, 0.0)
        out = np.zeros(last_grid - first_grid + 1)
        # S <= 0: loss -inf for remove (to the first point), +inf for add
        empty = ~np.isfinite(losses)
        if self.direction == "remove":
            out[0] += float(weights[empty].sum())
        else:
            infinity += float(weights[empty].sum())
        finite = ~empty
        ell, mass = losses[finite], weights[finite]
        index = np.floor(ell / step)
        below = index < first_grid
        above = index >= last_grid
        out[0] += float(mass[below].sum())
        infinity += float(mass[above].sum())
        inside = ~(below | above)
        ell, mass, index = ell[inside], mass[inside], index[inside]
        # connect the dots: the share of each atom moved up, rounded up a little (safe)
        share = np.expm1(index * step - ell) / math.expm1(-step)
        share = np.clip(share * (1.0 + 8.0 * _EPS), 0.0, 1.0)
        cells = (index - first_grid).astype(np.int64)
        out += np.bincount(cells, weights=mass * (1.0 - share), minlength=out.size)[:out.size]
        out[1:] += np.bincount(cells, weights=mass * share, minlength=out.size)[:out.size - 1]
        infinity += 16.0 * _EPS * float(mass.sum())
        return DiscretePld(step, first_grid, out, infinity_mass=min(infinity, 1.0))

    def dominated_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        first_grid, last_grid = self._ends(step, tail, max_points)
        law = self._law(tail)
        p_first, p_masses, p_eta = law.floor_p
        q_first, q_masses, q_eta = law.floor_q
        if self.direction == "add":  # the pair is (Q, P)
            p_first, p_masses, p_eta, q_first, q_masses, q_eta = (
                q_first, q_masses, q_eta, p_first, p_masses, p_eta)
        size = last_grid - first_grid + 1
        merged = []
        for first, masses in ((p_first, p_masses), (q_first, q_masses)):
            losses = _losses(first, masses.size, law.h, self.steps, self.direction)
            # S <= 0 has loss -inf for remove, +inf for add; every atom is clamped to the grid
            # (a post-processing, so nothing is dropped)
            losses = np.where(np.isfinite(losses), losses,
                              -np.inf if self.direction == "remove" else np.inf)
            with np.errstate(invalid="ignore"):
                cells = np.clip(np.round(losses / step) - first_grid, 0, size - 1)
            merged.append(np.bincount(cells.astype(np.int64), weights=np.maximum(masses, 0.0),
                                      minlength=size))
        # P's survival function lowered by its error bound (mass taken from the top), Q's
        # raised (mass added at the top): every composed threshold tail moves the safe way
        p_tail = np.cumsum(merged[0][::-1])[::-1] * (1.0 - 8.0 * _EPS) - p_eta
        p_tail = np.maximum(p_tail, 0.0)
        p_cells = np.maximum(p_tail - np.append(p_tail[1:], 0.0), 0.0)
        q_cells = merged[1] * (1.0 + 8.0 * _EPS)
        q_cells[-1] += q_eta
        return DiscretePld(step, first_grid, p_cells, 0.0, q_cells)


@functools.lru_cache(maxsize=32)
def _pair(steps: int, sigma: float, direction: str) -> RandomAllocationPair:
    return RandomAllocationPair(steps, sigma, direction)


#: Every pair alive (the PLD accountant's caches may hold some): cleared together.
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _clear() -> None:
    _pair.cache_clear()
    for pair in list(_LIVE):
        pair.clear()


register_cache(_clear)


def allocation_leaf(item: RandomAllocation, times: int, neighboring: str):
    """The steps :class:`accounting.PldAccountant` composes for ``times`` epochs of ``item``:
    each round of one out of ``t_j`` steps (see :func:`allocation_rounds`) as a
    ``RandomAllocation(t_j, Gaussian(sigma))`` kept whole, or as the Gaussian itself (a
    ``(1.0, sigma)`` step) where ``t_j = 1``. Add/remove neighbours only."""
    from accounting.accountant import UnsupportedEventError

    if neighboring != "add_remove":
        raise UnsupportedEventError(
            'random allocation is accounted for add/remove neighbours: it needs '
            'PldAccountant(neighboring="add_remove")')
    if not isinstance(item.event, Gaussian):
        raise UnsupportedEventError(
            "random allocation is supported only of a Gaussian event, got "
            f"{type(item.event).__name__}")
    sigma = item.event.noise_multiplier
    out: list[tuple[object, int]] = []
    for steps, rounds in allocation_rounds(item.steps, item.selections):
        if steps == 1:
            out.append(((1.0, sigma), times * rounds))
        else:
            out.append((RandomAllocation(steps, Gaussian(sigma)), times * rounds))
    return out


def random_allocation_pairs(event: RandomAllocation):
    """``((group, upper, lower), ...)`` of one round of one out of ``event.steps`` (see
    :func:`accounting.pld.samplers.step_pairs`); the pair is attained, so it is both."""
    sigma = event.event.noise_multiplier
    return tuple((d, _pair(event.steps, sigma, d), _pair(event.steps, sigma, d))
                 for d in ("remove", "add"))


def random_allocation_pld_epsilon_bounds(steps: int, noise_multiplier: float, delta: float,
                                         epochs: int = 1, selections: int = 1,
                                         tolerance: float = 1e-3):
    """Certified bracket of the epsilon of ``epochs`` random-allocation epochs (add/remove).

    Each epoch runs ``steps`` Gaussian steps of noise ``noise_multiplier`` and places every
    record in ``selections`` of them uniformly at random. The bracket is that of
    :class:`accounting.PldAccountant` composing the pairs of :class:`RandomAllocationPair`
    (Feldman & Shenfeld 2025's dominating pair, attained, so both ends are certified; see the
    module docstring); outside the PLD's limits (``sigma`` outside ``[0.2, 1e4]``, rounds of
    more than ``2**24`` steps) its upper end is the RDP bound of
    :func:`accounting.random_allocation_epsilon`.

    Parameters
    ----------
    steps : int
        Steps per epoch, ``t >= 1``.
    noise_multiplier : float
        Noise standard deviation over the sensitivity, ``> 0``.
    delta : float
        Target delta in ``(0, 1)``.
    epochs : int
        Number of epochs, ``>= 1``.
    selections : int
        Steps each record takes part in per epoch, ``k`` in ``[1, t]``.
    tolerance : float
        Target width of the bracket (see :class:`accounting.PldAccountant`).

    Returns
    -------
    accounting.pld.accountant.EpsilonBounds
        ``(lower, upper, value_discretization)``.
    """
    from accounting.pld.accountant import PldAccountant

    steps = check_positive_int(steps, "steps")
    selections = check_positive_int(selections, "selections", steps)
    epochs = check_positive_int(epochs, "epochs")
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    delta = check_delta(delta)
    tolerance = check_positive(tolerance, "tolerance")
    event = SelfComposed(RandomAllocation(steps, Gaussian(sigma), selections), epochs)
    return PldAccountant(tolerance=tolerance).compose(event).get_epsilon_bounds(delta)
