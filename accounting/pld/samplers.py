"""Dominating pairs of the samplers beyond Poisson: mixtures of Gaussians, fixed-size batches
without replacement, truncated Poisson.

Each step event of :mod:`accounting.events` that :class:`accounting.pld.PldAccountant` keeps whole
is turned by :func:`step_pairs` into one ``(upper, lower)`` pair of pairs per neighbouring
direction: ``upper`` dominates the step (its composed hockey-stick divergence bounds the true one
from above), ``lower`` is the pair of output laws of one fixed pair of neighbouring data sets
(composing it bounds the true divergence from below). Conventions follow
:mod:`accounting.pld.privacy_loss`: ``N(m) = N(m, s^2)`` and every privacy loss
``log P(x) / Q(x)`` increases with ``x``.

* :class:`~accounting.events.MixtureOfGaussians` ``(s, c, p)`` (add/remove; Choquette-Choo,
  Ganesh, Steinke, Thakurta 2023, "Privacy amplification for matrix mechanisms",
  arXiv:2310.15526, the mechanism and its dominating pair; dp_accounting's
  ``MixtureGaussianPrivacyLoss``): :class:`GaussianMixturePair`, remove
  ``P = sum_i p_i N(c_i)``, ``Q = N(0)``; add ``P = N(0)``, ``Q = sum_i p_i N(-c_i)`` (the
  mirror image of dp_accounting's). The mechanism's own output laws: the pair is exact, so it is
  its own lower pair.
* :class:`~accounting.events.SampledWithoutReplacement` ``(n, b, Gaussian(s))`` (replace-one):
  Zhu, Dong, Wang 2022 ("Optimal accounting of differential privacy via characteristic
  function", AISTATS, Theorem 10): if ``(P, Q)`` dominates ``M`` for replace-one neighbours,
  then with ``gamma = b / n`` the sampled mechanism's hockey-stick divergence of order
  ``alpha >= 1`` is at most that of ``(gamma P + (1 - gamma) Q, Q)``, and that of order
  ``alpha < 1`` at most that of ``(P, (1 - gamma) P + gamma Q)``. With the Gaussian's
  ``(N(1), N(0))`` (``s`` against the replace-one sensitivity) the first is the remove pair
  ``R = ((1 - gamma) N(0) + gamma N(1), N(0))`` and the second is ``R`` swapped (mirrored).
  The relation is symmetric, so these bounds hold for both orders of every pair of neighbours;
  but a pair dominates under composition only if it bounds *every* order ``alpha``, and ``R``
  alone does not (for ``alpha < 1`` the swapped pair is larger; composing ``R`` alone can fall
  below what an analyst who picks, step by step, which of two records holds the unit vector
  attains). The pair composed here is therefore the *symmetrised* pair
  (:class:`SymmetrisedPair`; Zhu, Dong, Wang 2022, Section 5; Dong, Roth, Su 2022,
  Theorem 4.2, the operator ``C_gamma``): the positive losses of ``R``, their mirror image with
  ``P`` and ``Q`` swapped, and an atom at loss 0; its divergence equals ``R``'s for every
  ``alpha >= 1`` (one step: exactly the remove pair's ``delta``) and the swapped pair's below.
  Lower pair: ``R`` itself, the output laws of a query of replace-one sensitivity 1 whose
  records contribute 0 or the unit vector (all others 0, the replaced record 1 against 0).
* :class:`~accounting.events.TruncatedPoissonGaussian` ``(n, q, B, s)`` (add/remove;
  dp_accounting 0.6 ``from_truncated_subsampled_gaussian_mechanism``, arXiv:2508.15089): with
  ``K ~ Binomial(n - 1, q)`` the other records sampled, whether ``K >= B`` (truncation) is
  revealed; with probability ``p_t = P(K >= B)`` the step is dominated by the replace pair at
  noise ``s / 2`` and rate ``q' = B P(Binomial(n, q) > B) / (n p_t)`` (the record, when kept,
  displaces another), else by the Poisson pair ``(q, s)``: a mixture of pairs whose component
  is revealed (:class:`MixedPair`). Lower pair: all other records contributing 0, the record
  the unit vector; it survives with probability
  ``r = q E[min(1, B / (1 + K))] = q P(K <= B - 1) + (B / n) P(Binomial(n, q) > B)``, so the
  outputs are exactly the Poisson pair at rate ``r`` and noise ``s``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from accounting import _scipy
from accounting.accountant import UnsupportedEventError
from accounting.events import (
    Event,
    MixtureOfGaussians,
    SampledWithoutReplacement,
    TruncatedPoissonGaussian,
)
from accounting.pld.privacy_loss import (
    _EPS,
    CompositePair,
    DiscretePld,
    DominatingPair,
    GridTooLarge,
    _grid_ends,
    _interval_masses,
    _mixture_cdfs,
    dominated_pmf,
    dominating_pmf,
    loss_extent,
    point_work,
    split_to_upper,
)

__all__ = [
    "GaussianMixturePair",
    "MixedPair",
    "SymmetrisedPair",
    "mixture_components",
    "step_mu_squared",
    "step_pairs",
    "truncation_parameters",
]

#: Entries (points times components) of one block of a mixture's loss evaluation: bounds the
#: memory of a mixture of up to 4096 components.
_BLOCK = 1 << 18
#: Newton iterations allowed to the mixture loss's inverse (convex: it converges monotonically
#: from the right end of its bracket, quadratically near the root).
_MAX_NEWTON = 200
#: Relative allowance on scipy's binomial tails (truncation probabilities): a mixture weight is
#: taken this much lower, a sampling rate this much higher, and the weight freed is given to a
#: fully revealing component (loss ``+inf``), so the pair composed still dominates.
_BINOMIAL_SHADE = 2e-13


def mixture_components(event: MixtureOfGaussians) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Distinct sensitivities (increasing) and their probabilities (normalised to sum 1, zero
    weights dropped) of a mixture event."""
    merged: dict[float, float] = {}
    for sensitivity, probability in zip(event.sensitivities, event.probabilities, strict=True):
        if probability > 0.0:
            merged[sensitivity] = merged.get(sensitivity, 0.0) + probability
    total = math.fsum(merged.values())
    sensitivities = tuple(sorted(merged))
    return sensitivities, tuple(merged[c] / total for c in sensitivities)


@dataclass(frozen=True)
class GaussianMixturePair:
    """The mixture-of-Gaussians pair: remove ``P = sum_i p_i N(c_i)``, ``Q = N(0)``; add
    ``P = N(0)``, ``Q = sum_i p_i N(-c_i)`` (common scale ``noise_multiplier``; ``c_i >= 0``
    distinct and increasing, ``p_i > 0`` summing to 1, at least one ``c_i > 0``).

    With ``u = x / s``, ``b_i = c_i / s`` and ``f(u) = log sum_i p_i exp(b_i u - b_i^2 / 2)``
    (convex and increasing), the remove loss is ``f(x / s)`` and the add loss ``-f(-x / s)``.
    """

    noise_multiplier: float
    sensitivities: tuple[float, ...]
    probabilities: tuple[float, ...]
    direction: str

    @functools.cached_property
    def _parts(self):
        sigma = self.noise_multiplier
        with np.errstate(over="ignore"):
            scaled = np.asarray(self.sensitivities, dtype=float) / sigma
        log_weights = np.log(np.asarray(self.probabilities, dtype=float))
        zero = scaled == 0.0
        log_zero = float(log_weights[zero][0]) if zero.any() else -math.inf
        weight_zero = float(np.asarray(self.probabilities)[zero].sum())
        return scaled, log_weights, log_zero, weight_zero

    @property
    def point_work(self) -> float:
        """Work units of one point: normal CDFs of every component and the Newton inverse."""
        return 10.0 + 12.0 * len(self.sensitivities)

    @property
    def p_components(self) -> tuple[tuple[float, float], ...]:
        """``(weight, mean)`` of the components of ``P``."""
        if self.direction == "add":
            return ((1.0, 0.0),)
        return tuple(zip(self.probabilities, self.sensitivities, strict=True))

    @property
    def q_components(self) -> tuple[tuple[float, float], ...]:
        """``(weight, mean)`` of the components of ``Q``."""
        if self.direction == "remove":
            return ((1.0, 0.0),)
        return tuple((p, -c) for p, c in zip(self.probabilities, self.sensitivities, strict=True))

    @property
    def loss_range(self) -> tuple[float, float]:
        """Infimum and supremum of the privacy loss: remove ``(log p_0, inf)`` with ``p_0`` the
        weight of a zero sensitivity (``-inf`` if none); add ``(-inf, -log p_0)``."""
        log_zero = self._parts[2]
        if self.direction == "remove":
            return log_zero, math.inf
        return -math.inf, -log_zero

    def _log_mgf(self, u: np.ndarray, slope: bool = False):
        """``f(u)`` (and ``f'(u)``), in blocks of at most ``_BLOCK`` entries."""
        scaled, log_weights, _, _ = self._parts
        u = np.asarray(u, dtype=float)
        flat = u.reshape(-1)
        values = np.empty(flat.size)
        slopes = np.empty(flat.size) if slope else None
        positive = scaled > 0.0
        rows = max(1, _BLOCK // scaled.size)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for start in range(0, flat.size, rows):
                block = flat[start:start + rows, None]
                # b (u - b / 2): no overflow of b^2 before the product does
                exponent = np.where(positive, scaled * (block - 0.5 * scaled), 0.0)
                exponent = exponent + log_weights
                top = exponent.max(axis=1)
                shift = np.where(np.isfinite(top), top, 0.0)
                terms = np.exp(exponent - shift[:, None])
                total = terms.sum(axis=1)
                values[start:start + rows] = np.where(np.isfinite(top), shift + np.log(total),
                                                      top)
                if slope:
                    slopes[start:start + rows] = (terms @ scaled) / total
        if slope:
            return values.reshape(u.shape), slopes.reshape(u.shape)
        return values.reshape(u.shape)

    def _inverse_mgf(self, level: np.ndarray) -> np.ndarray:
        """The ``u`` with ``f(u) = level`` (``level`` above ``log p_0``, finite).

        Bracket: with ``p_0`` the zero sensitivity's weight, ``z_i = b_i u - b_i^2 / 2`` and
        ``g = log(e^level - p_0)``, ``log(p_0 + max_i p_i e^z_i) <= f(u) <=
        log(p_0 + (1 - p_0) max_i e^z_i)``, so the root lies in ``[min_i (g - log(1 - p_0)) /
        b_i + b_i / 2, min_i (g - log p_i) / b_i + b_i / 2]``. Newton's iterates from the right
        end decrease monotonically to the root (``f`` is convex and increasing).
        """
        scaled, log_weights, log_zero, weight_zero = self._parts
        positive = scaled > 0.0
        b = scaled[positive]
        log_p = log_weights[positive]
        with np.errstate(over="ignore", divide="ignore"):
            gap = level + np.log1p(-np.exp(log_zero - level)) if weight_zero > 0 else level
            # a zero-sensitivity weight that rounds to 1 leaves log(1 - p_0) = -inf: the low end
            # of the bracket is then -inf (still a bracket)
            log_rest = (math.log1p(-weight_zero) if 0 < weight_zero < 1
                        else (-math.inf if weight_zero >= 1 else 0.0))
        low = np.empty(level.shape)
        high = np.empty(level.shape)
        rows = max(1, _BLOCK // b.size)
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, level.size, rows):
                part = gap[start:start + rows, None]
                low[start:start + rows] = ((part - log_rest) / b + 0.5 * b).min(axis=1)
                high[start:start + rows] = ((part - log_p) / b + 0.5 * b).min(axis=1)
        u = high
        active = np.flatnonzero(np.isfinite(u))
        for _ in range(_MAX_NEWTON):
            if not active.size:
                break
            value, slope = self._log_mgf(u[active], slope=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                move = (value - level[active]) / slope
            move = np.where(move > 0.0, move, 0.0)  # a rounding step left of the root: done
            moved = np.maximum(u[active] - move, low[active])
            done = ~(move > 4.0 * _EPS * np.maximum(1.0, np.abs(moved)))
            u[active] = moved
            active = active[~done]
        return u

    def loss(self, x: np.ndarray) -> np.ndarray:
        """Privacy loss ``log P(x) / Q(x)`` (increasing in ``x``)."""
        x = np.asarray(x, dtype=float)
        sigma = self.noise_multiplier
        with np.errstate(over="ignore"):
            if self.direction == "remove":
                return self._log_mgf(x / sigma)
            return -self._log_mgf(-x / sigma)

    def inverse_loss(self, loss: np.ndarray) -> np.ndarray:
        """The ``x`` with ``L(x) = loss``; ``-inf`` / ``+inf`` outside the loss range."""
        loss = np.asarray(loss, dtype=float)
        low, high = self.loss_range
        inside = (loss > low) & (loss < high) & np.isfinite(loss)
        x = np.where(loss <= low, -np.inf, np.inf)
        sigma = self.noise_multiplier
        with np.errstate(over="ignore"):
            if self.direction == "remove":
                x[inside] = sigma * self._inverse_mgf(loss[inside])
            else:
                x[inside] = -sigma * self._inverse_mgf(-loss[inside])
        return x


class MixedPair(CompositePair):
    """A mixture of dominating pairs whose component is revealed: ``P = sum_j w_j P_j`` and
    ``Q = sum_j w_j Q_j`` on disjoint copies of the output space, plus weight
    ``infinity_weight`` on a fully revealing component (``P``-loss ``+inf``).

    Its privacy-loss law under ``P`` is the ``w``-mixture of the components' (and both
    discretisations mix with the same weights on a common grid); the fully revealing component
    absorbs what the weights were lowered by, since it can simulate any pair.
    """

    def __init__(self, components, infinity_weight: float = 0.0):
        self.components = tuple((float(w), pair) for w, pair in components if w > 0.0)
        self.infinity_weight = float(infinity_weight)
        self.point_work = float(sum(point_work(pair) for _, pair in self.components))

    def __repr__(self) -> str:
        return f"MixedPair({self.components!r}, infinity_weight={self.infinity_weight!r})"

    def loss_extent(self, tail: float) -> tuple[float, float]:
        ends = [loss_extent(pair, tail) for _, pair in self.components]
        return min(low for low, _ in ends), max(high for _, high in ends)

    def _ends(self, step, tail, centred, max_points):
        ends = [_grid_ends(pair, step, tail, centred, None) for _, pair in self.components]
        first, last = min(e[0] for e in ends), max(e[1] for e in ends)
        points = float(last - first + 1)
        if max_points is not None and not points <= max_points:
            raise GridTooLarge(
                f"value_discretization={step:g} needs {points:.3g} points for one step's privacy "
                f"loss (at most {max_points:.0f} allowed); use a coarser value_discretization",
                points, max_points,
            )
        return first, last

    def grid_size(self, step: float, tail: float) -> float:
        try:
            first, last = self._ends(step, tail, False, None)
        except GridTooLarge:
            return math.inf
        return float(last - first + 1)

    def _mix(self, step, tail, max_points, centred):
        first, last = self._ends(step, tail, centred, max_points)
        masses = np.zeros(last - first + 1)
        q_masses = np.zeros(last - first + 1) if centred else None
        infinity = self.infinity_weight
        build = dominated_pmf if centred else dominating_pmf
        for weight, pair in self.components:
            part = build(pair, step, tail)
            where = slice(part.first_index - first, part.first_index - first + part.masses.size)
            masses[where] += weight * part.masses
            if centred:
                q_masses[where] += weight * part.q_masses
            infinity += weight * part.infinity_mass
        if centred:
            # products rounded: P never over-, Q never understated
            return DiscretePld(step, first, masses * (1.0 - 4.0 * _EPS), 0.0,
                               q_masses * (1.0 + 4.0 * _EPS))
        return DiscretePld(step, first, masses * (1.0 + 4.0 * _EPS), infinity * (1.0 + 4.0 * _EPS))

    def dominating_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        return self._mix(step, tail, max_points, centred=False)

    def dominated_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        return self._mix(step, tail, max_points, centred=True)


class SymmetrisedPair(CompositePair):
    """The symmetrised pair of ``base`` (a pair with increasing loss that takes the value 0):
    ``P~ = P`` and ``Q~ = Q`` where ``base``'s loss is positive, the same region again with
    ``P`` and ``Q`` swapped (loss ``-L``), and an atom of weight ``1 - P(L > 0) - Q(L > 0)`` at
    loss 0 (Zhu, Dong, Wang 2022, Section 5).

    Its hockey-stick divergence is ``base``'s for ``alpha >= 1`` and the swapped pair's for
    ``alpha < 1``: the dominating pair of a symmetric relation whose bound for ``alpha >= 1``
    is ``base``'s. Only its dominating (upper) discretisation is built: it is not the output
    law of any pair of data sets, so no lower bound is taken from it.
    """

    def __init__(self, base):
        self.base = base
        self.point_work = point_work(base)

    def __repr__(self) -> str:
        return f"SymmetrisedPair({self.base!r})"

    def loss_extent(self, tail: float) -> tuple[float, float]:
        # Q < P where the loss is positive: the mirrored tail holds less than P's
        high = loss_extent(self.base, tail)[1]
        return -high, high

    def _last(self, step, tail, max_points):
        high = self.loss_extent(tail)[1]
        with np.errstate(over="ignore", invalid="ignore"):
            last_float = max(np.ceil(high / step), 1.0)
        points = float(2.0 * last_float + 1.0)
        limit = math.inf if max_points is None else max_points
        if not points <= limit:
            raise GridTooLarge(
                f"value_discretization={step:g} needs {points:.3g} points for one step's privacy "
                f"loss (at most {limit:.0f} allowed); use a coarser value_discretization",
                points, limit,
            )
        return int(last_float)

    def grid_size(self, step: float, tail: float) -> float:
        try:
            return float(2 * self._last(step, tail, None) + 1)
        except GridTooLarge:
            return math.inf

    def dominating_pmf(self, step: float, tail: float, max_points) -> DiscretePld:
        last = self._last(step, tail, max_points)
        grid = np.arange(0, last + 1) * step
        base = self.base
        edges = base.inverse_loss(grid)
        p_cells, _, q_cells, _ = _interval_masses(base, edges)
        masses = np.zeros(2 * last + 1)  # index i holds loss (i - last) step
        # positive losses: cells [k step, (k + 1) step] with base's P and Q masses
        to_upper = split_to_upper(grid[:-1], p_cells, q_cells, step)
        masses[last:-1] += p_cells - to_upper
        masses[last + 1:] += to_upper
        # their mirror image: cells [-(k + 1) step, -k step] holding Q's mass under P~
        mirrored = split_to_upper(-grid[1:], q_cells, p_cells, step)
        masses[last - 1::-1] += q_cells - mirrored
        masses[last:0:-1] += mirrored
        sigma = base.noise_multiplier
        _, p_above = _mixture_cdfs(base.p_components, sigma, edges[[0, -1]])
        _, q_above = _mixture_cdfs(base.q_components, sigma, edges[[0, -1]])
        # the atom at loss 0, rounded up (more mass never lowers a hockey-stick divergence)
        masses[last] += max(1.0 - float(p_above[0]) - float(q_above[0]), 0.0) + 8.0 * _EPS
        # Q's tail beyond the grid lies below its first point under P~: moved up to it
        masses[0] += float(q_above[1])
        return DiscretePld(step, -last, masses, infinity_mass=float(p_above[1]))


def truncation_parameters(dataset_size: int, sample_rate: float,
                          max_batch_size: int) -> tuple[float, float, float]:
    """``(p_t, q', r)`` of a truncated Poisson step (see the module docstring): the truncation
    probability ``P(Binomial(n - 1, q) >= B)``, the replace pair's rate ``q'`` (0 where
    ``p_t = 0``) and the record's survival probability ``r`` when all others contribute 0.
    """
    n, q, cap = dataset_size, sample_rate, max_batch_size
    if cap >= n or q == 0.0:  # at most n - 1 others: never B of them
        return 0.0, 0.0, q
    special = _scipy.special
    if q == 1.0:
        truncation, kept, over = 1.0, 0.0, 1.0
    else:
        # binomial tails as regularised incomplete beta functions, P(Binomial(m, q) >= k) =
        # I_q(k, m - k + 1) (scipy's bdtrc loses ~1e-10 here; betainc keeps ~1e-14)
        truncation = float(special.betainc(cap, n - cap, q))
        kept = float(special.betaincc(cap, n - cap, q))
        over = float(special.betainc(cap + 1, n - cap, q))
    share = cap / n
    survival = q * kept + share * over
    rate = min(share * over / truncation, 1.0) if truncation > 0.0 else 0.0
    return truncation, rate, min(survival, q)


def _truncated_pairs(event: TruncatedPoissonGaussian):
    truncation, rate, survival = truncation_parameters(
        event.dataset_size, event.sample_rate, event.max_batch_size)
    s = event.noise_multiplier
    shade = _BINOMIAL_SHADE
    replace = DominatingPair(min(rate * (1.0 + shade), 1.0), 0.5 * s, "replace")
    keep = (1.0 - truncation) * (1.0 - shade)
    cut = truncation * (1.0 - shade)
    spare = max(1.0 - keep - cut, 0.0)
    lower_rate = survival * (1.0 - shade)
    out = []
    for direction in ("remove", "add"):
        upper = MixedPair(((cut, replace), (keep, DominatingPair(event.sample_rate, s, direction))),
                          spare)
        out.append((direction, upper, DominatingPair(lower_rate, s, direction)))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def step_pairs(event: Event, relation: str):
    """``((group, upper, lower), ...)`` of one step event kept whole by the PLD accountant
    (see the module docstring); ``group`` is the neighbouring direction it is composed in
    (``"remove"``/``"add"`` for add/remove, ``"replace"`` for replace-one)."""
    if isinstance(event, MixtureOfGaussians):
        sensitivities, probabilities = mixture_components(event)
        pairs = [GaussianMixturePair(event.noise_multiplier, sensitivities, probabilities, d)
                 for d in ("remove", "add")]
        return tuple((pair.direction, pair, pair) for pair in pairs)
    if isinstance(event, SampledWithoutReplacement):
        remove = DominatingPair(event.sample_rate, event.event.noise_multiplier, "remove")
        return (("replace", SymmetrisedPair(remove), remove),)
    if isinstance(event, TruncatedPoissonGaussian):
        return _truncated_pairs(event)
    from accounting.events import RandomAllocation
    if isinstance(event, RandomAllocation):  # one round of one out of t (add/remove)
        from accounting.pld.random_allocation import random_allocation_pairs
        return random_allocation_pairs(event)
    raise UnsupportedEventError(f"{type(event).__name__} events are not supported")


@functools.lru_cache(maxsize=256)
def step_mu_squared(event: Event, relation: str) -> float:
    """Twice the largest Kullback-Leibler divergence ``E_P[L]`` of a step's dominating pairs,
    from a coarse discretisation (at most about 4096 points), saturated at ``1e300``: the
    per-step ``mu^2`` of the Gaussian-DP estimate that steers the grid search (never the
    bounds). For a Gaussian ``2 KL = mu^2``; for a subsampled step it is the chi-square
    divergence to second order, and unlike it does not grow exponentially in ``1 / sigma^2``.
    """
    out = 0.0
    for _, upper, _ in step_pairs(event, relation):
        low, high = loss_extent(upper, 1e-12)
        if not (math.isfinite(low) and math.isfinite(high) and high - low < 1e100):
            return 1e300
        step = max((high - low) / 4096.0, 1e-4)
        try:
            pmf = dominating_pmf(upper, step, 1e-12, max_points=1 << 14)
        except GridTooLarge:
            return 1e300
        mean = float(np.dot(pmf.losses, pmf.masses))
        out = max(out, 2.0 * mean if mean > 0 else 0.0)
    return float(min(out, 1e300))
