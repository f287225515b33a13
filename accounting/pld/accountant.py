"""Tight accountant: privacy loss distributions with certified upper and lower epsilon.

Every composed step is discretised twice on a grid of spacing ``value_discretization``
(:mod:`accounting.pld.privacy_loss`): a *dominating* ("connect the dots") discretisation whose
composed hockey-stick divergence is at least the true one, and a *dominated* (merged-cell)
discretisation whose composed ``P`` and ``Q`` laws give threshold divergences
``P(S >= s) - exp(eps) Q(S >= s)`` that are at most the true one. Both are composed by FFT
(:mod:`accounting.pld.composition`), so the true ``delta(epsilon)`` - and the true
``epsilon(delta)`` - of the Poisson-subsampled Gaussian is bracketed:
``lower <= true <= upper``. Both sides err by second-order terms in the grid spacing (a
threshold on the grid-placed loss is nearly the best test), so the bracket narrows like
``step^2``.

For add/remove neighbours both dominating pairs (add and remove) are composed and the worse is
reported; replace-one has one symmetric pair. Besides Poisson-sampled Gaussian steps
(``(q, sigma)``), mixtures of Gaussians and truncated Poisson steps (add/remove) and fixed-size
batches without replacement (replace-one) are composed with their own dominating pairs, and
with a lower pair each (the output laws of one pair of neighbouring data sets) for the lower
end: see :mod:`accounting.pld.samplers`. Without an explicit ``value_discretization`` the
grid is searched (finer, then coarser) until the bracket meets the tolerance or a fixed work
budget is spent; every grid's bracket is certified, so the tightest combination is returned.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import NamedTuple

import numpy as np

from accounting._gaussian_steps import _NON_PRIVATE, GaussianStepsAccountant, poisson_gaussian_leaf
from accounting._tuning import PLD_HEAVY_TAIL_STEP_FACTOR, PLD_INITIAL_STEP_FACTOR
from accounting._validation import check_delta, check_epsilon, check_positive
from accounting.accountant import TightAccountant, UnsupportedEventError
from accounting.events import (
    Event,
    Gaussian,
    MixtureOfGaussians,
    RandomAllocation,
    SampledWithoutReplacement,
    TruncatedPoissonGaussian,
)
from accounting.gdp import mu_epsilon
from accounting.pld.composition import (
    ThresholdBound,
    choose_tilt,
    compose_plds,
    compose_tilted,
    untilted,
    window_points,
)
from accounting.pld.levels import (
    LevelsTooCostly,
    compose_levels,
    first_levels_step,
    levels_plan,
)
from accounting.pld.privacy_loss import (
    RELATIONS,
    DiscretePld,
    GridTooLarge,
    dominated_pmf,
    dominating_pairs,
    dominating_pmf,
    grid_size,
    loss_extent,
    point_work,
)
from accounting.pld.samplers import (
    mixture_components,
    step_mu_squared,
    step_pairs,
    truncation_parameters,
)
from accounting.rdp.accountant import RdpAccountant

__all__ = ["DeltaBounds", "EpsilonBounds", "PldAccountant", "ToleranceNotMetWarning"]

#: Mass allowed beyond each end of the FFT window, once the tilt is undone at the anchor: this
#: share of the delta at stake (it is carried into the bounds, where it moves delta by a few
#: parts in 1e9 even where the delta at stake is RDP's, 10-100 times the true one), and never
#: less than ``_WINDOW_TAIL``, the fixed tail of old (below delta 1e-9 the window is as before).
_WINDOW_TAIL_SHARE = 1e-9
_WINDOW_TAIL = 1e-18
#: Share of the delta at stake left out by the truncation of the per-step losses, over all
#: steps together (the lower tails move up to the grid's first point, the upper tails to +inf):
#: it moves epsilon by about this share / (d log delta / d epsilon) (for subsampling, q times
#: that: the upper tail is the sampled component's), far inside the narrowest bracket the
#: accountant aims at, while the per-step grids end at ~8 instead of ~9 standard deviations.
_TRUNCATION_SHARE = 1e-5
#: The same share for delta queries, whose delta at stake is only bounded (by RDP's delta, often
#: 10-100 times the true one): smaller, so that the truncation stays negligible next to delta.
_DELTA_TRUNCATION_SHARE = 1e-9
#: The delta scale assumed where none is known (a truncation of 1e-18 in all).
_UNKNOWN_DELTA_SCALE = 1e-9
#: A direction is recomposed in extended precision where its double-precision rounding
#: allowance at the anchor exceeds this share of the delta at stake.
_EXTENDED_TRIGGER = 1e-3
#: Least rounding bound per composed step (in units of the double unit roundoff) seen in
#: double-precision compositions of a normalised tilted law (about 200 at 1e9 steps of
#: settings A's and C's steps, by one FFT or by squaring): the prediction of
#: ``_rounding_predicted_large`` takes a quarter of it, and asks for 4 times the margin.
_ROUNDING_PER_STEP = 50.0
_PREDICTION_MARGIN = 4.0
_U = float(np.finfo(float).eps)
#: Noise multiplier from which a long run's first grid is sized for the squaring composition
#: (below it the loss tails are too heavy for its short grids; see ``_light_tailed``).
_LIGHT_TAIL_NOISE = 0.8
#: Per-step loss reach over its spread from which the tails count as heavy whatever the noise:
#: at small sample rates one step's loss is a spike at zero and a tail reaching thousands of
#: spreads, which the squaring's short grids cannot hold until many steps are composed.
_LIGHT_TAIL_REACH = 500.0
#: Composed steps from which heavy-tailed runs may compose by squaring too (their first grid
#: then sized for it, see :data:`accounting._tuning.PLD_HEAVY_TAIL_STEP_FACTOR`).
_HEAVY_TAIL_SQUARING_STEPS = 1 << 20
#: A refined grid's spacing over the one predicted to meet the target exactly (the bracket
#: narrowing like the spacing squared): it aims at about 0.56 of the target.
_REFINE_AIM = 0.75
#: Largest composed grid (FFT length) of any query, automatic or set by value_discretization:
#: it bounds the memory of one composition (a few hundred MB).
_MAX_GRID_POINTS = 1 << 21
#: Automatic grids stop refining before a grid predicted to be longer than this.
_REFINE_GRID_LIMIT = _MAX_GRID_POINTS
#: Where the first guess at a grid is too long, the search starts from one of about this length
#: (cheap to compose; finer grids follow while the work allows).
_PROBE_POINTS = 1 << 16
#: Largest number of points of the per-step losses of one dominating pair, summed over the
#: distinct (sample rate, noise) pairs composed.
_MAX_STEP_POINTS = 1 << 20
#: Work allowed to one query, in units of one point of one FFT transform: the
#: automatic search stops refining, and optional recompositions are skipped, past it.
_WORK_BUDGET = 3e7
#: Cost of a forward transform in extended precision relative to double.
_EXTENDED_WORK = 5.0
#: Whether NumPy's long double is wider than double here (x86: 64-bit mantissa; elsewhere it
#: may be double itself, and extended precision would change nothing).
_HAS_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(float).eps
#: Composing more steps than this leaves the FFT's rounding bound (about ``T u`` relative,
#: ``u`` the unit roundoff of the widest precision available) above 1e-4: the PLD is not
#: attempted and RDP's bound is reported.
_MAX_COMPOSED_STEPS = 1e-4 / float(np.finfo(np.longdouble if _HAS_EXTENDED else float).eps)
#: Per-step losses beyond this magnitude (noise multipliers below about 1e-50) are not put on a
#: grid: their squares and tilts would overflow. RDP's bound is reported instead.
_MAX_LOSS = 1e100


class ToleranceNotMetWarning(RuntimeWarning):
    """An automatic PLD grid did not reach the requested bracket width; the bracket returned is
    certified but wider (see ``EpsilonBounds.tolerance_met``)."""


class _EpsilonFields(NamedTuple):
    lower: float
    upper: float
    value_discretization: float


class _DeltaFields(NamedTuple):
    lower: float
    upper: float
    value_discretization: float


class _Flagged:
    """``tolerance_met`` and ``target_width`` kept beside the three tuple fields, so unpacking
    (``lower, upper, grid = bounds``), indexing and equality see the three fields only."""

    #: whether the bracket met its target (class defaults: a tuple built by ``_make``)
    tolerance_met: bool = True
    #: the epsilon-bracket width aimed at (``inf`` for a fixed ``value_discretization``)
    target_width: float = math.inf

    def __new__(cls, lower, upper, value_discretization, tolerance_met=True,
                target_width=math.inf):
        self = super().__new__(cls, lower, upper, value_discretization)
        self.tolerance_met = bool(tolerance_met)
        self.target_width = float(target_width)
        return self

    def __repr__(self) -> str:
        pairs = zip(self._fields, self, strict=True)
        fields = ", ".join(f"{name}={value!r}" for name, value in pairs)
        flag = "" if self.tolerance_met else ", tolerance_met=False"
        return f"{type(self).__name__}({fields}{flag})"


class EpsilonBounds(_Flagged, _EpsilonFields):
    """Certified bracket ``lower <= epsilon <= upper`` at one ``delta``.

    A 3-tuple ``(lower, upper, value_discretization)``; ``value_discretization`` is the grid of
    the upper bound (``0.0`` where that bound is not a grid's: RDP's, or an exact 0). Two
    attributes beside the fields (not part of unpacking or equality): ``tolerance_met`` is
    ``False`` where an automatic grid did not reach ``target_width`` or no grid could be
    composed (a :class:`ToleranceNotMetWarning` is issued then too); the bracket is certified
    either way.
    """

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower


class DeltaBounds(_Flagged, _DeltaFields):
    """Certified bracket ``lower <= delta <= upper`` at one ``epsilon``.

    A 3-tuple like :class:`EpsilonBounds`, with the same ``tolerance_met`` and ``target_width``
    (an epsilon width: how far below ``epsilon`` the lower curve reaches ``upper``).
    """


class _OverBudget(Exception):
    """Work refused by the query's budget; ``factor`` is how far it was over."""

    def __init__(self, factor: float):
        super().__init__(factor)
        self.factor = factor


class _Unresolvable(Exception):
    """No grid can hold these losses, or the composition's rounding would swamp any answer."""


class _Work:
    """The work budget of the current query, shared by the compositions it builds.

    ``strict``: work that does not fit raises :class:`_OverBudget` (the automatic search then
    picks a coarser grid); otherwise only ``optional`` work is refused.
    """

    def __init__(self):
        self.left, self.strict = math.inf, False

    def reset(self, units: float, strict: bool) -> None:
        self.left, self.strict = units, strict

    def take(self, units: float, optional: bool = False, reserve: float = 1.0) -> None:
        """Spend ``units``, refused where ``reserve`` times as many (work to follow) are not
        left."""
        if units * reserve > self.left and (optional or self.strict):
            raise _OverBudget(units * reserve / max(self.left, 1.0))
        self.left -= units

    def admit(self, optional: bool = False, reserve: float = 1.0):
        """A callback for :func:`accounting.pld.composition.compose_tilted`."""

        def admit(size, transforms, extended):
            units = size * (transforms * (_EXTENDED_WORK if extended else 1.0) + 1.0)
            self.take(units, optional, reserve)

        return admit


def _zero_floor(value: float) -> float:
    """``value`` if positive, else ``0.0`` (never ``-0.0``)."""
    return float(value) if value > 0 else 0.0


def _loss_reach(sample_rate: float, noise_multiplier: float) -> float:
    """Privacy loss ``log(1 + q exp(8 / sigma))`` of one step at a noise draw eight standard
    deviations out: how far the per-step loss's upper tail reaches (a proxy, steering only the
    choice of grids; it saturates instead of overflowing)."""
    return math.log1p(sample_rate * math.exp(min(8.0 / noise_multiplier, 700.0)))


def _pair_spread(sample_rate: float, noise_multiplier: float) -> float:
    """Per-step loss standard deviation ``q sqrt(exp(1/sigma^2) - 1)`` of a subsampled
    Gaussian, saturating instead of overflowing (at least ``1e-12``)."""
    growth = math.expm1(min(_inverse_variance(noise_multiplier), 700.0))
    return max(sample_rate * math.sqrt(min(growth, 1e300)), 1e-12)


def _inverse_variance(noise_multiplier: float) -> float:
    """``1 / sigma^2``, saturated at ``e^700`` (no overflow, nor a division by ``0.0 ** 2``)."""
    return math.exp(min(-2.0 * math.log(noise_multiplier), 700.0))


class _Direction:
    """One neighbouring direction's composed laws on one grid: the upper law (of the dominating
    pairs) at once, the lower (threshold) laws (of the lower pairs: output laws of one pair of
    neighbouring data sets, the dominating pair itself where it is attained) when first asked
    for, since one direction's lower bound already bounds the worst direction's epsilon from
    below. ``entries`` are ``(upper pair, lower pair, count)``."""

    def __init__(self, entries, step: float, tail: float, anchor: float, delta_scale: float,
                 work: _Work, optional: bool, reserve: float, relative_accuracy: float | None,
                 extended_first: bool = False):
        self._entries, self._step, self._tail, self._work = entries, step, tail, work
        # work to keep for what follows this upper law: its lower laws (two more compositions
        # of about its size) and those of the directions still to come
        self._reserve = reserve
        self._lower: ThresholdBound | None = None
        # the per-step grids, priced before they are built
        sizes = [grid_size(pair, step, tail) for pair, _, _ in entries]
        if not sum(sizes) <= _MAX_STEP_POINTS:
            raise GridTooLarge(
                f"value_discretization={step:g} needs {sum(sizes):.3g} points for one step's "
                f"privacy losses (at most {_MAX_STEP_POINTS} allowed)",
                sum(sizes), _MAX_STEP_POINTS,
            )
        work.take(sum(point_work(pair) * size
                      for (pair, _, _), size in zip(entries, sizes, strict=True)), optional)
        upper_groups = [(dominating_pmf(pair, step, tail), count) for pair, _, count in entries]
        self._tilt, excess = choose_tilt(upper_groups, anchor)
        # window tails worth a share of delta at the anchor once the tilt is undone: the
        # Chernoff window of heavy tails grows with log(1 / tail), so no tighter than needed
        at_anchor = max(_WINDOW_TAIL_SHARE * delta_scale, _WINDOW_TAIL)
        self._budget = min(at_anchor * math.exp(min(-excess, 500.0)), 1e-12)
        self._extended = False
        # many steps: squaring on coarsening grids costs O(log T) products where one FFT over
        # the whole composed law grows like sqrt(T)
        self._levels = levels_plan(
            upper_groups, lambda: window_points(upper_groups, self._budget, self._tilt),
            relative_accuracy,
        )
        # another direction of this grid needed the extended transforms: this one starts there
        # (the same steps and grid: the same rounding); so does a law whose rounding bound is
        # predicted to swamp delta (composing it in double first would be wasted)
        steps = sum(count for _, _, count in entries)
        if _HAS_EXTENDED and (extended_first or _rounding_predicted_large(
                steps, excess, self._tilt, delta_scale, anchor, relative_accuracy)):
            self._extended = True
            try:
                self.upper = self._compose_upper(upper_groups, True, reserve)
                return
            except _OverBudget:
                self._extended = False
        self.upper = self._compose_upper(upper_groups, optional, reserve)
        # Where the tilt cannot make the FFT's worst-case rounding small next to delta (heavy
        # tails, tiny delta), the transforms and their powers are redone with a 64-bit
        # mantissa: the allowance drops ~2000-fold (skipped where the work budget is spent)
        rounding = float(self.upper.allowance(anchor))
        if _HAS_EXTENDED and rounding > _EXTENDED_TRIGGER * delta_scale \
                and not self._rounding_negligible(delta_scale, anchor, relative_accuracy):
            self._extended = True
            try:
                self.upper = self._compose_upper(upper_groups, True, reserve)
            except _OverBudget:
                self._extended = False

    @property
    def extended(self) -> bool:
        """Whether the laws are composed with the extended (64-bit mantissa) transforms."""
        return self._extended

    def _rounding_negligible(self, delta: float, anchor: float,
                             relative_accuracy: float | None) -> bool:
        """Whether a squared law's allowance moves its upper epsilon at ``delta`` by under a
        tenth of the bracket aimed at (then extended precision would buy nothing). One FFT's
        allowance is small enough to test against delta alone."""
        if self._levels is None or relative_accuracy is None:
            return False
        bare = dataclasses.replace(self.upper, log_allowance=-math.inf)
        shift = self.upper.epsilon_upper(delta) - bare.epsilon_upper(delta)
        return shift <= 0.1 * relative_accuracy * max(anchor, 1e-3)

    def _compose_upper(self, groups, optional: bool, reserve: float):
        if self._levels is not None:
            points, units = self._levels
            self._work.admit(optional, reserve)(units, 0, self._extended)
            try:
                law = compose_levels(groups, self._tilt, "upper", points, wide=self._extended)
                return untilted(law, clip_negative=True)
            except LevelsTooCostly:  # tails too heavy for short grids: one FFT instead
                self._levels = None
        return compose_plds(
            groups, self._budget, clip_negative=True, tilt=self._tilt, extended=self._extended,
            max_size=_MAX_GRID_POINTS, admit=self._work.admit(optional, reserve),
        )

    def _threshold_bound(self, admit) -> ThresholdBound:
        if admit is not None:  # priced like the upper law's per-step grids
            self._work.take(sum(
                point_work(pair) * grid_size(pair, self._step, self._tail)
                for _, pair, _ in self._entries
            ), optional=self._work.strict)
        merged = [
            (dominated_pmf(pair, self._step, self._tail, max_points=_MAX_STEP_POINTS), count)
            for _, pair, count in self._entries
        ]
        q_groups = [
            (DiscretePld(self._step, pld.first_index, pld.q_masses), count)
            for pld, count in merged
        ]
        # Q = P exp(-loss): tilting it by one more puts it where the tilted P is
        if self._levels is not None:
            points, units = self._levels
            if admit is not None:
                admit(2.0 * units, 0, self._extended)
            try:
                return ThresholdBound(*compose_levels(
                    merged, self._tilt, "lower", points, wide=self._extended, q_groups=q_groups
                ))
            except LevelsTooCostly:  # one FFT instead (any valid lower bound will do)
                pass
        compose = {"extended": self._extended, "max_size": _MAX_GRID_POINTS, "admit": admit}
        return ThresholdBound(
            compose_tilted(merged, self._budget, tilt=self._tilt, **compose),
            compose_tilted(q_groups, self._budget, tilt=self._tilt + 1.0, **compose),
        )

    @property
    def lower(self) -> ThresholdBound:
        """Threshold bounds from the merged-cell laws under ``P`` and ``Q`` (outside any work
        budget)."""
        if self._lower is None:
            self._lower = self._threshold_bound(admit=None)
        return self._lower

    def _budgeted_lower(self) -> ThresholdBound | None:
        """:attr:`lower` within the query's work budget; ``None`` where an automatic search
        cannot afford it (the refusal is not kept: a later query may afford it)."""
        if self._lower is None:
            try:
                self._lower = self._threshold_bound(
                    admit=self._work.admit(optional=self._work.strict)
                )
            except (_OverBudget, GridTooLarge):
                return None
        return self._lower

    # A NaN (an overflow somewhere) counts as knowing nothing: -inf or 0 for a lower bound, inf
    # or 1 for an upper one (comparisons with NaN are false).
    def epsilon_lower(self, delta: float) -> float:
        lower = self._budgeted_lower()
        value = -math.inf if lower is None else lower.epsilon_lower(delta)
        return value if value > -math.inf else -math.inf

    def delta_lower(self, epsilon: float) -> float:
        lower = self._budgeted_lower()
        value = 0.0 if lower is None else lower.delta_lower(epsilon)
        return value if value > 0 else 0.0

    def epsilon_upper(self, delta: float) -> float:
        spare = delta - self.upper.infinity_mass
        value = self.upper.epsilon_upper(spare) if spare > 0 else math.inf
        return value if value < math.inf else math.inf

    def delta_upper(self, epsilon: float) -> float:
        upper = self.upper
        value = upper.hockey_stick(epsilon) + float(upper.allowance(epsilon)) + upper.infinity_mass
        return value if value < 1.0 else 1.0


def _rounding_predicted_large(steps: float, excess: float, tilt: float, delta: float,
                              anchor: float, relative_accuracy: float | None) -> bool:
    """Whether a double-precision composition of ``steps`` steps is predicted to need the
    extended transforms anyway: its rounding bound at the anchor, at least about
    ``_ROUNDING_PER_STEP u`` per step of the tilted law times ``exp(excess)`` (the tilted law's
    scale there, :func:`accounting.pld.composition.choose_tilt`), moving the upper epsilon by
    over ``_PREDICTION_MARGIN`` times what :meth:`_Direction._rounding_negligible` allows. Only
    time depends on it: a law composed in extended precision is as valid."""
    allowance = _ROUNDING_PER_STEP * _U * steps * math.exp(min(excess, 700.0))
    if not allowance > _PREDICTION_MARGIN * _EXTENDED_TRIGGER * delta:
        return False
    if relative_accuracy is None or not tilt > 0.0:
        return True
    # the allowance decays like exp(-tilt eps) beyond the anchor: the bound rises until it
    # has decayed below delta's share
    shift = math.log1p(allowance / delta) / tilt
    return shift > _PREDICTION_MARGIN * 0.1 * relative_accuracy * max(anchor, 1e-3)


def _worst_lower(directions, uppers, lower_of, enough: float) -> float:
    """Largest lower bound over ``directions`` (visited by decreasing upper bound), skipping
    those whose upper bound cannot beat the lower bound in hand and stopping once
    ``max(uppers) - lower <= enough``: any direction's lower bound bounds the worst one's."""
    lower = -math.inf
    for index in np.argsort(uppers)[::-1]:
        if uppers[index] <= lower or max(uppers) - lower <= enough:
            break
        lower = max(lower, lower_of(directions[index]))
    return lower


class _Composition:
    """Upper and lower composed laws of every dominating pair on one grid, each tilted towards
    losses near ``anchor`` (a guess at the answer, ideally just below it). ``delta_scale`` is
    the delta at stake: it decides where extended precision is needed. The per-step truncation
    leaves out ``truncated`` ``P``-mass over all steps together (counted in the bounds). ``work``
    is the accountant's budget (``optional``: this grid may be refused, see :class:`_Work`).

    For an epsilon query at ``delta_scale`` (``epsilon_query``), each direction after the first
    is anchored no higher than the largest upper epsilon bound of those before it (and no lower
    than half the anchor, in case that direction is the larger one): only up to there does its
    bound count (the certified bound is the largest direction's), and an anchor far above its
    own epsilon (a guess from RDP or Gaussian DP, high under heavy tails) tilts its law so hard
    that its bound cannot come below the anchor."""

    def __init__(self, pairs_and_counts, step: float, anchor: float, delta_scale: float,
                 truncated: float, work: _Work, optional: bool = False,
                 relative_accuracy: float | None = 1e-3, epsilon_query: bool = False,
                 extended_first: bool = False):
        tail = _step_tail(pairs_and_counts, truncated)
        self.step = step
        by_direction: dict[str, list] = {}
        for group, upper, lower, count in pairs_and_counts:
            by_direction.setdefault(group, []).append((upper, lower, count))
        count = len(by_direction)
        self.directions: list[_Direction] = []
        reached = -math.inf  # largest upper epsilon bound of the directions composed so far
        for index, entries in enumerate(by_direction.values()):
            direction_anchor = max(min(anchor, reached), 0.5 * anchor) \
                if 0.0 < reached < math.inf else anchor
            self.directions.append(_Direction(
                entries, step, tail, direction_anchor, delta_scale, work, optional,
                reserve=3.0 * (count - index), relative_accuracy=relative_accuracy,
                extended_first=extended_first
                or any(direction.extended for direction in self.directions),
            ))
            if epsilon_query and index + 1 < count:
                reached = max(reached, self.directions[-1].epsilon_upper(delta_scale))

    @property
    def grid_points(self) -> int:
        """Points of the largest composed upper law (about its FFT length)."""
        return max(direction.upper.masses.size for direction in self.directions)

    def epsilon_bounds(self, delta: float, enough=0.0) -> tuple[float, float]:
        """Certified ``(lower, upper)`` epsilon; lower bounds of further directions are skipped
        once the width is at most ``enough`` (a number, or a function of the upper bound)."""
        uppers = [direction.epsilon_upper(delta) for direction in self.directions]
        if callable(enough):
            enough = enough(max(uppers))
        lower = _worst_lower(self.directions, uppers, lambda d: d.epsilon_lower(delta), enough)
        return _zero_floor(lower), _zero_floor(max(uppers))

    def delta_bounds(self, epsilon: float) -> tuple[float, float]:
        uppers = [direction.delta_upper(epsilon) for direction in self.directions]
        lower = _worst_lower(self.directions, uppers, lambda d: d.delta_lower(epsilon), 0.0)
        return _zero_floor(lower), min(max(uppers), 1.0)


def _step_tail(pairs_and_counts, truncated: float) -> float:
    """``P``-mass left out of each step's loss on each side, ``truncated`` over all steps
    (see :class:`_Composition`)."""
    total_steps = sum(entry[-1] for entry in pairs_and_counts)
    return max(max(truncated, 1e-300) / max(total_steps, 1), 1e-300)


class PldAccountant(GaussianStepsAccountant, TightAccountant):
    """Privacy-loss-distribution accountant with certified bounds on epsilon and delta.

    Parameters
    ----------
    value_discretization : float, optional
        Grid spacing of the privacy loss. If omitted, the grid is searched per query for a
        bracket within the tolerances below. A set spacing must fit the grid limits (see
        Notes): a finer one raises ``ValueError`` naming ``value_discretization``, the limit
        and the smallest spacing that fits.
    tolerance : float
        Absolute target width of the epsilon bracket on an automatic grid (default ``1e-3``);
        the bounds are certified whatever width is reached. ``math.inf`` (with a
        ``relative_tolerance``) leaves the relative target alone.
    relative_tolerance : float, optional
        Relative target width (default: ``tolerance``). The target is
        ``min(tolerance, relative_tolerance * max(epsilon, min(tolerance, 1)))`` with
        ``epsilon`` the bracket's upper end: by default ``1e-3`` wide from ``epsilon = 1`` on
        and ``max(1e-3 epsilon, 1e-6)`` below, so that a small epsilon is as precise as a large
        one. ``relative_tolerance=1`` gives the absolute target alone;
        ``tolerance=math.inf, relative_tolerance=1e-2`` a width of 1% of epsilon (of 0.01
        below ``epsilon = 1``).
    neighboring : {"add_remove", "replace_one"}
        Neighbouring relation. ``"add_remove"`` takes the worse of the add and remove
        dominating pairs; ``"replace_one"`` uses the symmetric pair
        ``(1 - q) N(0) + q N(1)`` vs ``(1 - q) N(0) + q N(-1)`` (per-example norm 1, so two
        neighbouring sums differ by up to 2). ``MixtureOfGaussians``,
        ``TruncatedPoissonGaussian`` and ``RandomAllocation`` (Feldman and Shenfeld 2025's
        dominating pair, :mod:`accounting.pld.random_allocation`) steps need ``"add_remove"``,
        ``SampledWithoutReplacement`` of a Gaussian needs ``"replace_one"`` (its noise measured
        against the replace-one sensitivity, dp_accounting's convention).

    Notes
    -----
    ``get_epsilon`` / ``get_delta`` return the certified upper bounds. The bounds cover the
    discretisation, the truncation of the per-step losses, the FFT window and a worst-case
    bound on the FFT's floating-point error (see :func:`accounting.pld.composition.compose_plds`).
    The composed laws are exponentially tilted towards the answer (the Gaussian-DP estimate
    first, then each grid's certified lower bound), which makes that error relative to the tail
    mass: brackets stay narrow down to ``delta`` of ``1e-14`` and below. Where the tilt cannot
    do that (heavy loss tails at tiny ``delta``), a direction is recomposed in ``longdouble``;
    a grid whose upper bound is still infinite is recomposed anchored higher. The RDP
    accountant's bound (also certified) caps the upper bound for add/remove neighbours where it
    can account for every composed step event; otherwise (and for replace-one) nothing caps it.
    Fixed-size batches compose a symmetrised pair (composing their one-step worst pair alone is
    not a bound under composition) and truncated Poisson steps a lower pair weaker than their
    dominating pair, so their brackets can be wide (``tolerance_met`` ``False``); both ends are
    certified.

    Automatic grids: refined from a first guess while the bracket narrows, then - where the
    tolerance is still not met, e.g. when floating-point rounding swamps a tiny ``delta`` on fine
    grids - coarsened; every grid's bounds are certified, and the largest lower and smallest
    upper bound are returned. The search stops when the tolerance is met or a fixed work
    budget is spent (``3e7`` points of FFTs, extended-precision transforms and per-step grids
    weighted by their cost), so any query ends in bounded time and memory; a bracket wider
    than its target has ``tolerance_met`` ``False`` and issues a
    :class:`ToleranceNotMetWarning` (tiny tolerances, epsilon in the thousands where relative
    precision runs out, 1e9 steps and more).

    Limits: a composed grid has at most ``2**21`` points, one step's losses at most ``2**20``
    (summed over the distinct sample rates and noises composed); automatic grids are chosen
    within them, and a set ``value_discretization`` must fit them (and be at most ``1e100``).
    Where per-step losses exceed ``1e100`` (noise multipliers below about ``1e-50``; below
    ``1e-154`` they overflow) or more than about ``1e15`` steps are composed (the FFT's rounding,
    ``T`` times the unit roundoff, would swamp any answer), no PLD is composed: the bracket is
    ``[0, RDP's epsilon]`` (``inf`` for replace-one) with ``tolerance_met`` ``False``. Where
    RDP's epsilon (or delta) is 0, so is the bracket, at once.

    Examples
    --------
    >>> acc = PldAccountant().compose(250 / 60000, 1.3, 3600)
    >>> bounds = acc.get_epsilon_bounds(1e-5)
    >>> bounds.lower <= 0.853 <= bounds.upper, bounds.width <= 1e-3
    (True, True)
    >>> lower, upper, grid = bounds
    """

    def __init__(
        self,
        value_discretization: float | None = None,
        tolerance: float = 1e-3,
        neighboring: str = "add_remove",
        relative_tolerance: float | None = None,
    ):
        super().__init__()
        if value_discretization is not None:
            value_discretization = check_positive(value_discretization, "value_discretization")
            if value_discretization > _MAX_LOSS:
                raise ValueError(
                    f"value_discretization must be at most {_MAX_LOSS:g} (a grid point beyond "
                    f"it overflows once squared), got {value_discretization!r}"
                )
        self._value_discretization = value_discretization
        # an infinite absolute tolerance leaves the relative one alone (if one is given)
        self._tolerance = (
            math.inf if tolerance == math.inf and relative_tolerance is not None
            else check_positive(tolerance, "tolerance")
        )
        self._relative_tolerance = (
            self._tolerance if relative_tolerance is None
            else check_positive(relative_tolerance, "relative_tolerance")
        )
        if neighboring not in RELATIONS:
            raise ValueError(f"neighboring must be one of {RELATIONS}, got {neighboring!r}")
        self._neighboring = neighboring
        # keyed by the composed steps too, so composing more never reuses a stale grid
        self._compositions: dict[tuple, _Composition] = {}
        # the bracket's target relative to epsilon, set per query (sizes squaring grids)
        self._relative_accuracy = 1e-3
        self._work = _Work()
        # one neighbouring direction only (noise calibration's trials steer by the direction
        # that dominates; their answer is certified over every direction): None for all
        self._only_direction: str | None = None
        # P-mass the per-step truncation leaves out over all steps, whether the query is one
        # of epsilon, and whether a grid of its search needed extended precision (set by each
        # query)
        self._truncated = 0.0
        self._epsilon_query = False
        self._extended_seen = False

    name = "pld"

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the bounds."""
        return self._neighboring

    def _options(self) -> dict:
        return {
            "value_discretization": self._value_discretization,
            "tolerance": self._tolerance,
            "neighboring": self._neighboring,
            "relative_tolerance": self._relative_tolerance,
        }

    def _target_width(self, epsilon: float) -> float:
        """Width aimed at for an epsilon near ``epsilon`` (see ``relative_tolerance``)."""
        floor = min(self._tolerance, 1.0)
        scale = max(epsilon, floor) if epsilon == epsilon else floor
        return min(self._tolerance, self._relative_tolerance * scale)

    # ----------------------------------------------------------------- composed steps
    def _leaf(self, item: Event, times: int) -> list[tuple[object, int]]:
        """Poisson-sampled Gaussian steps as ``(q, sigma)``; mixtures of Gaussians and truncated
        Poisson steps (add/remove) and fixed-size batches (replace-one) kept whole, except
        where they are exactly a ``(q, sigma)`` step (see :mod:`accounting.pld.samplers`)."""
        if isinstance(item, MixtureOfGaussians):
            return self._mixture_leaf(item, times)
        if isinstance(item, SampledWithoutReplacement):
            return self._without_replacement_leaf(item, times)
        if isinstance(item, TruncatedPoissonGaussian):
            return self._truncated_leaf(item, times)
        from accounting.events import RandomAllocation
        if isinstance(item, RandomAllocation):  # rounds of one out of t_j (add/remove)
            from accounting.pld.random_allocation import allocation_leaf
            return allocation_leaf(item, times, self._neighboring)
        return poisson_gaussian_leaf(item, times)

    def _needs_add_remove(self, item: Event) -> None:
        if self._neighboring != "add_remove":
            raise UnsupportedEventError(
                f"{type(item).__name__} is accounted for add/remove neighbours: it needs "
                'PldAccountant(neighboring="add_remove")'
            )

    def _mixture_leaf(self, item: MixtureOfGaussians, times: int):
        self._needs_add_remove(item)
        sensitivities, probabilities = mixture_components(item)
        positive = [c for c in sensitivities if c > 0.0]
        if not positive:  # every component is N(0): the output does not depend on the record
            return [((0.0, item.noise_multiplier), times)]  # a step at rate 0: spends nothing
        if len(positive) == 1:
            # (1 - q) N(0) + q N(c) against N(0) is the Poisson pair (q, s / c) scaled by c
            with np.errstate(over="ignore", under="ignore"):
                noise = item.noise_multiplier / positive[0]
            if 1e-300 < noise < math.inf:
                return [((probabilities[-1], float(noise)), times)]
        return [(MixtureOfGaussians(item.noise_multiplier, sensitivities, probabilities), times)]

    def _without_replacement_leaf(self, item: SampledWithoutReplacement, times: int):
        if self._neighboring != "replace_one":
            raise UnsupportedEventError(
                "sampling without replacement is accounted for replace-one neighbours: it needs "
                'PldAccountant(neighboring="replace_one")'
            )
        if not isinstance(item.event, Gaussian):
            raise UnsupportedEventError(
                "sampling without replacement is supported only of a Gaussian (or NoOp or "
                f"NonPrivate) event, got {type(item.event).__name__}"
            )
        if item.sample_size == 0:
            return [((0.0, item.event.noise_multiplier), times)]
        noise = 2.0 * item.event.noise_multiplier
        if item.sample_size == item.dataset_size and noise < math.inf:
            # the Gaussian itself: N(1) against N(0) at s is the replace pair (1, 2 s)
            return [((1.0, noise), times)]
        return [(item, times)]

    def _truncated_leaf(self, item: TruncatedPoissonGaussian, times: int):
        self._needs_add_remove(item)
        if item.sample_rate == 0.0 or item.max_batch_size == 0:  # an empty batch
            return [((0.0, item.noise_multiplier), times)]
        truncation, _, _ = truncation_parameters(item.dataset_size, item.sample_rate,
                                                 item.max_batch_size)
        if truncation == 0.0:  # never truncated: the Poisson step
            return [((item.sample_rate, item.noise_multiplier), times)]
        if not 0.5 * item.noise_multiplier > 0.0:  # half the noise underflows: no privacy
            return [(_NON_PRIVATE, times)]
        return [(item, times)]

    # ----------------------------------------------------------------- grid selection
    def _pairs_and_counts(self):
        """``(group, upper pair, lower pair, count)`` of every composed step kind."""
        entries = []
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            for pair in dominating_pairs(sample_rate, noise_multiplier, self._neighboring):
                entries.append((pair.direction, pair, pair, count))
        for event, count in self._other_steps.items():
            for group, upper, lower in step_pairs(event, self._neighboring):
                entries.append((group, upper, lower, count))
        if self._only_direction is not None:
            # where no step has that direction (a full batch's single pair stands for both),
            # every pair
            entries = [entry for entry in entries if entry[0] == self._only_direction] or entries
        return entries

    def _step_kinds(self):
        """Every composed step kind with its count: ``(q, sigma)`` keys and step events."""
        return [*self._steps_by_pair.items(), *self._other_steps.items()]


    def _composition(self, step: float, anchor: float, delta_scale: float,
                     optional: bool = False) -> _Composition:
        key = (tuple(self._step_kinds()), step, anchor, delta_scale, self._truncated,
               self._epsilon_query, self._relative_accuracy, self._only_direction)
        if key not in self._compositions:
            # bound the memory held by earlier grids
            while len(self._compositions) >= 3 or (
                self._compositions
                and sum(c.grid_points for c in self._compositions.values()) > _MAX_GRID_POINTS
            ):
                self._compositions.pop(next(iter(self._compositions)))
            # heavy-tailed steps square only where one FFT is out of reach (the squaring often
            # gives up on them, after work the one FFT could have used)
            squaring = self._light_tailed() or sum(
                count for _, count in self._step_kinds()) >= _HEAVY_TAIL_SQUARING_STEPS
            self._compositions[key] = _Composition(
                self._pairs_and_counts(), step, anchor, delta_scale, self._truncated, self._work,
                optional,
                self._relative_accuracy if squaring else None, self._epsilon_query,
                self._extended_seen,
            )
        composition = self._compositions[key]
        # a search's further grids of the same steps round alike: they start in extended
        # precision once one grid needed it (instead of composing in double first)
        self._extended_seen |= any(direction.extended for direction in composition.directions)
        return composition

    def _too_many_steps(self) -> bool:
        """Whether more steps are composed than the FFT's rounding allows (see
        ``_MAX_COMPOSED_STEPS``): no PLD is attempted then."""
        return sum(count for _, count in self._step_kinds()) > _MAX_COMPOSED_STEPS

    def _smallest_step(self) -> float:
        """The finest spacing whose per-step losses fit ``_MAX_STEP_POINTS`` (with room for the
        two end points of every pair); :class:`_Unresolvable` where a loss overflows."""
        entries = self._pairs_and_counts()
        tail = _step_tail(entries, self._truncated)
        spans: dict[str, float] = {}
        for group, upper, lower, _ in entries:
            for pair in {id(upper): upper, id(lower): lower}.values():
                low, high = loss_extent(pair, tail)
                if not max(-low, high) <= _MAX_LOSS:
                    raise _Unresolvable
            low, high = loss_extent(upper, tail)
            spans[group] = spans.get(group, 0.0) + (high - low)
        room = _MAX_STEP_POINTS - 4 * len(entries)
        return max(spans.values()) / room

    def _step_spreads(self):
        """``(spread, count)`` of every composed step kind: the per-step loss standard deviation
        ``q sqrt(exp(1/sigma^2) - 1)`` (for other step events the square root of twice their KL
        divergence, :func:`accounting.pld.samplers.step_mu_squared`), saturating instead of
        overflowing for extreme noise multipliers."""
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            yield _pair_spread(sample_rate, noise_multiplier), count
        for event, count in self._other_steps.items():
            yield max(math.sqrt(step_mu_squared(event, self._neighboring)), 1e-12), count

    def _light_tailed(self) -> bool:
        """Whether every composed step is a subsampled Gaussian of noise at least
        ``_LIGHT_TAIL_NOISE`` whose loss reach (:func:`_loss_reach`) is at most
        ``_LIGHT_TAIL_REACH`` per-step spreads: otherwise the loss tails do not thin out on the
        squaring's short grids, the squaring falls back to one FFT, and its first grid is the
        one-FFT guess."""
        return not self._other_steps and all(
            noise >= _LIGHT_TAIL_NOISE
            and _loss_reach(rate, noise) <= _LIGHT_TAIL_REACH * _pair_spread(rate, noise)
            for rate, noise in self._steps_by_pair)

    def _smallest_spread(self) -> float:
        """Smallest per-step loss standard deviation among the composed step kinds (capped at
        0.05, as :meth:`_initial_step`'s spacing)."""
        return float(min([0.05, *(spread for spread, _ in self._step_spreads())]))

    def _initial_step(self, target: float) -> float:
        """A first grid spacing from the bracket's second-order behaviour.

        The bracket's width grows like ``sqrt(T) step^2 / s`` for a per-step loss of standard
        deviation ``s`` (:meth:`_step_spreads`); the factor is
        :data:`accounting._tuning.PLD_INITIAL_STEP_FACTOR` (the search corrects it where it is
        off).
        """
        scale = PLD_INITIAL_STEP_FACTOR * target
        return float(min([0.05, *(math.sqrt(scale * spread / math.sqrt(float(count)))
                                  for spread, count in self._step_spreads())]))

    def _first_anchor(self, delta: float, rdp_epsilon: float) -> float:
        """A first guess at epsilon: the Gaussian-DP (CLT) estimate
        ``mu = q sqrt(T (exp(1/sigma^2) - 1))`` (mu^2 adding over the steps; other step events
        add ``T`` times twice their KL divergence), capped by RDP's epsilon.

        Only the accuracy of the bounds depends on it, never their validity; it is computed here
        (saturating, never raising) for any noise multiplier.
        """
        mu_squared = 0.0
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            growth = math.expm1(min(_inverse_variance(noise_multiplier), 700.0))
            mu_squared += min(sample_rate * sample_rate * float(count) * growth, 1e300)
        for event, count in self._other_steps.items():
            mu_squared += min(float(count) * step_mu_squared(event, self._neighboring), 1e300)
        try:
            guess = mu_epsilon(math.sqrt(min(mu_squared, 1e300)), delta)
        except (ArithmeticError, ValueError):  # only a guess: RDP's bound will do
            guess = math.inf
        guess = min(guess, rdp_epsilon)
        return float(guess) if math.isfinite(guess) else 1.0

    def _search(self, query, anchor: float, delta_scale: float, *, follow_lower: bool,
                ceiling: float, target, epsilon_units: bool, first_only: bool = False,
                truncation_share: float = _TRUNCATION_SHARE):
        """Run ``query(composition) -> (lower, upper, width)`` on one grid or a search of grids;
        returns ``(lower, upper, step, met)``: the largest lower and smallest upper bound seen,
        the spacing of the grid of that upper bound, and whether ``width <= target(upper)``.

        ``anchor`` is where the composed laws are made accurate (see
        :func:`accounting.pld.composition.choose_tilt`); with ``follow_lower`` each further grid
        is anchored at the certified lower bound in hand, and a grid whose upper bound is
        infinite (the answer lies far above the anchor, where the tilted law is not accurate
        enough) is recomposed anchored higher, towards ``ceiling`` (a known upper bound).
        ``delta_scale`` is the delta at stake (see :class:`_Composition`); the per-step
        truncation leaves out ``truncation_share`` of it over all steps. ``width`` is an
        epsilon width: for epsilon queries (``epsilon_units``) that of the combined bracket.
        ``first_only`` stops after the automatic search's first grid (composed as the full
        search composes it: the same spacing and anchor). Raises :class:`_Unresolvable` where no
        grid can be composed.
        """
        fixed = self._value_discretization
        self._work.reset(_WORK_BUDGET, strict=fixed is None)
        if self._too_many_steps():
            raise _Unresolvable
        self._truncated = truncation_share * delta_scale
        self._epsilon_query = epsilon_units
        self._extended_seen = False
        smallest = self._smallest_step()
        best = [-math.inf, math.inf, 0.0, math.inf]  # lower, upper, its step, width
        where = {"anchor": anchor}
        scale = max(anchor, min(self._tolerance, 1.0)) if anchor == anchor else 1.0
        # a grid set by the user is the grid: no squaring on coarser ones
        self._relative_accuracy = (
            None if fixed is not None
            else float(min(max(target(anchor) / scale, 1e-9), 1.0)) if epsilon_units else 1e-3
        )

        def record(result, step) -> bool:
            improved = False
            if result[0] > best[0]:
                best[0], improved = result[0], True
            if result[1] < best[1]:
                best[1], best[2], improved = result[1], step, True
            best[3] = best[1] - best[0] if epsilon_units else min(best[3], result[2])
            if follow_lower and best[0] > 0:
                where["anchor"] = best[0]
            return improved

        def met() -> bool:
            return best[3] <= target(best[1])

        def run(step: float):
            """The query on one grid, recomposed anchored higher while its upper bound is
            infinite (while at least half the work is left for other grids); returns the
            result, the last composition and the work of the first."""
            left = self._work.left
            anchor = where["anchor"]
            composition = self._composition(step, anchor, delta_scale)
            result = query(composition)
            cost = max(left - self._work.left, 1.0)
            for _ in range(3):
                if math.isfinite(result[1]) or not follow_lower:
                    break
                base = max(anchor, 1e-3 * ceiling if math.isfinite(ceiling) else 1e-2)
                higher = math.sqrt(base * ceiling) if math.isfinite(ceiling) else 4.0 * base
                if not higher > anchor:
                    break
                anchor = higher
                if self._work.left < 0.5 * _WORK_BUDGET:
                    break
                try:
                    composition = self._composition(step, anchor, delta_scale, optional=True)
                except (_OverBudget, GridTooLarge):
                    break
                again = query(composition)
                result = (max(result[0], again[0]), min(result[1], again[1]),
                          min(result[2], again[2]))
            return result, composition, cost

        if fixed is not None:
            if fixed < smallest:
                raise ValueError(
                    f"value_discretization={fixed:g} needs more than {_MAX_STEP_POINTS} points "
                    f"for one step's privacy loss; the smallest that fits is {smallest:.3g}"
                )
            try:
                result = run(fixed)[0]
            except GridTooLarge as error:
                if not math.isfinite(error.points):
                    raise _Unresolvable from None
                raise GridTooLarge(
                    f"{error} (the smallest value_discretization that fits is about "
                    f"{fixed * error.points / error.limit:.3g})", error.points, error.limit,
                ) from None
            record(result, fixed)
            return best[0], best[1], best[2], True

        # first grid: the guess, coarsened until it fits the grid limit and the budget
        # (the guess aims at the absolute tolerance; a relative target is reached by refining)
        aim = self._tolerance if self._tolerance < math.inf else target(where["anchor"])
        step = max(self._initial_step(aim), smallest)
        total = sum(count for _, count in self._step_kinds())
        if epsilon_units:
            # long runs compose by squaring where cheaper (see accounting.pld.levels)
            guess = first_levels_step(self._smallest_spread(), total, self._relative_accuracy)
            if guess is not None and self._light_tailed():
                step = max(guess, smallest)
            elif guess is not None and total >= _HEAVY_TAIL_SQUARING_STEPS:
                # heavy tails square too this long: the per-step grid's share of the bracket is
                # relative to epsilon whatever T, where the one-FFT guess assumes sqrt(T) h^2
                relative = min(target(where["anchor"]) / max(where["anchor"], 1e-300), 1.0)
                squared = first_levels_step(self._smallest_spread(), total, relative)
                step = max(min(step, PLD_HEAVY_TAIL_STEP_FACTOR * squared), smallest)
        for _ in range(64):
            try:
                result, composition, cost = run(step)
                break
            except GridTooLarge as error:
                if not math.isfinite(error.points):
                    raise _Unresolvable from None
                step *= max(1.25 * error.points / _PROBE_POINTS, 1.25)
            except _OverBudget as error:
                step *= max(1.25 * error.factor, 1.25)
        else:
            raise _Unresolvable
        first_step, first_cost = step, cost
        record(result, step)
        if first_only:
            return best[0], best[1], best[2], met()
        # finer grids while the bracket narrows like step^2 (not where rounding or the tails
        # dominate) and the work allows
        while not met():
            width = result[2]
            if not (math.isfinite(width) and width > 0):
                break
            # aimed well inside the target: part of a squared composition's width (its
            # regridding) does not shrink with the step, and a third grid costs more than a
            # finer second one
            ratio = min(max(math.sqrt(target(best[1]) / width) * _REFINE_AIM, 0.1), 0.7)
            # no finer than the grid limit and the work left allow (a grid's work grows like
            # its length, about 1 / step)
            ratio = max(ratio, 1.25 * composition.grid_points / _REFINE_GRID_LIMIT,
                        1.1 * cost / max(self._work.left, 1.0))
            if ratio > 0.8:
                break  # too costly a grid for an automatic choice
            try:
                try:
                    again, composition, cost = run(step * ratio)
                except GridTooLarge as error:  # longer than predicted: as long as allowed
                    ratio *= 1.1 * error.points / error.limit
                    if not ratio <= 0.8:
                        break
                    again, composition, cost = run(step * ratio)
            except (GridTooLarge, _OverBudget):
                break
            step *= ratio
            record(again, step)
            if not again[2] < 0.8 * width:
                break
            result = again
        # coarser grids where fine ones fall short: at a tiny delta the rounding allowance of
        # a long FFT can swamp delta where a short one does not
        coarse, cost = first_step, first_cost
        for _ in range(6):
            if met():
                break
            coarse, cost = coarse * 4.0, cost / 4.0
            if cost > self._work.left:
                break
            try:
                again, _, cost = run(coarse)
            except (GridTooLarge, _OverBudget):
                break
            if not record(again, coarse):
                break
        return best[0], best[1], best[2], met()

    # ----------------------------------------------------------------- queries
    def get_epsilon_bounds(self, delta: float) -> EpsilonBounds:
        """Certified ``(lower, upper)`` bracket of epsilon at ``delta``.

        Parameters
        ----------
        delta : float
            Target delta in ``(0, 1)``.
        """
        return self._epsilon_bounds(check_delta(delta), upper_only=False)

    def _restricted_to(self, direction: str) -> PldAccountant:
        """This accountant, composing only the neighbouring ``direction`` (``"remove"``,
        ``"add"`` or ``"replace"``) of every step: noise calibration's trials steer by the
        dominating direction alone (the answer is then certified over every direction)."""
        if direction not in ("remove", "add", "replace"):
            raise ValueError(f"direction must be 'remove', 'add' or 'replace', got {direction!r}")
        self._only_direction = direction
        return self

    def _first_grid_epsilon(self, delta: float) -> float:
        """The upper bound of the automatic search's first grid alone (no lower laws, no
        further grids), or ``inf``.

        The automatic search's upper end is the least over the grids it visits, the first among
        them, and RDP's epsilon: this is never below what :meth:`get_epsilon_bounds` reports,
        at a fraction of its work. Calibration certifies a noise with it. ``inf`` where the
        first grid's upper bound is infinite at its first anchor (the full search then recomposes
        anchored higher, after its lower laws: not the same work).
        """
        if self._value_discretization is not None:
            raise ValueError("only an automatic grid (tolerance=...) has a first grid")
        return self._epsilon_bounds(check_delta(delta), upper_only=True, first_only=True).upper

    def _epsilon_bounds(self, delta: float, upper_only: bool,
                        first_only: bool = False) -> EpsilonBounds:
        """:meth:`get_epsilon_bounds`; ``upper_only`` (a set grid: the lower bound steers
        nothing) skips the lower laws and reports 0 as the lower end; ``first_only`` stops an
        automatic search after its first grid (see :meth:`_first_grid_epsilon`)."""
        fixed = self._value_discretization
        if self._non_private:  # no guarantee at all
            return EpsilonBounds(math.inf, math.inf, fixed or 0.0)
        if self._spends_nothing:
            return EpsilonBounds(0.0, 0.0, fixed or 0.0)
        # RDP's bound of random allocation costs more than its PLD: asked for only if needed
        lazy = self._costly_rdp() and not self._too_many_steps()
        rdp_epsilon = math.inf if lazy else self._rdp_epsilon(delta)
        if rdp_epsilon == 0.0:  # certified by RDP: nothing left to bracket
            return EpsilonBounds(0.0, 0.0, fixed or 0.0)
        if self._too_many_steps():
            _warn_wide(f"epsilon in [0, {rdp_epsilon:.6g}]", self._tolerance, False)
            return EpsilonBounds(0.0, rdp_epsilon, 0.0, False, self._tolerance)

        def query(composition):
            # on an automatic grid, a bracket within the tolerance is enough
            enough = math.inf if upper_only else 0.0 if fixed else self._target_width
            lower, upper = composition.epsilon_bounds(delta, enough)
            return lower, upper, upper - lower

        anchor = self._first_anchor(delta, rdp_epsilon)
        try:
            lower, upper, step, met = self._search(
                query, anchor, delta, follow_lower=not first_only, ceiling=rdp_epsilon,
                target=self._target_width, epsilon_units=True, first_only=first_only,
            )
        except _Unresolvable:
            lower, upper, step, met = None, math.inf, 0.0, False
        composed, lower = lower is not None, lower or 0.0
        if lazy and not (upper < math.inf and met and upper - lower <= self._target_width(upper)):
            rdp_epsilon = self._rdp_epsilon(delta)
        upper = min(upper, rdp_epsilon)
        target = math.inf if fixed else self._target_width(upper)
        met = met and upper - lower <= target
        if not met and not first_only:
            _warn_wide(f"epsilon in [{lower:.6g}, {upper:.6g}]", target, composed)
        return EpsilonBounds(_zero_floor(lower), upper, step, met, target)

    def get_delta_bounds(self, epsilon: float) -> DeltaBounds:
        """Certified ``(lower, upper)`` bracket of delta at ``epsilon``.

        Automatic grids aim at an epsilon-bracket of the target width near this delta.
        """
        epsilon = check_epsilon(epsilon)
        fixed = self._value_discretization
        if self._non_private:
            return DeltaBounds(1.0, 1.0, fixed or 0.0)
        if self._spends_nothing:
            return DeltaBounds(0.0, 0.0, fixed or 0.0)
        rdp_delta = self._rdp_delta(epsilon)
        if rdp_delta == 0.0:
            return DeltaBounds(0.0, 0.0, fixed or 0.0)
        if self._too_many_steps():
            _warn_wide(f"delta in [0, {rdp_delta:.6g}]", self._tolerance, False)
            return DeltaBounds(0.0, rdp_delta, 0.0, False, self._tolerance)

        def query(composition):
            lower, upper = composition.delta_bounds(epsilon)
            if upper <= 0:
                return lower, upper, 0.0
            # express the width in epsilon: where does the lower curve reach the upper delta?
            epsilon_lower, _ = composition.epsilon_bounds(min(upper, 1.0))
            return lower, upper, max(epsilon - epsilon_lower, 0.0)

        # RDP's delta is at least the true one: a safe scale for the truncation
        scale = rdp_delta if rdp_delta < 1.0 else _UNKNOWN_DELTA_SCALE
        target = math.inf if fixed else self._target_width(epsilon)
        try:
            lower, upper, step, met = self._search(
                query, epsilon, scale, follow_lower=False, ceiling=math.inf,
                target=lambda _: target, epsilon_units=False,
                truncation_share=_DELTA_TRUNCATION_SHARE,
            )
        except _Unresolvable:
            lower, upper, step, met = None, 1.0, 0.0, False
        composed, lower = lower is not None, lower or 0.0
        if not met:
            _warn_wide(f"delta in [{lower:.6g}, {min(upper, rdp_delta):.6g}]", target, composed)
        return DeltaBounds(_zero_floor(lower), min(upper, rdp_delta), step, met, target)

    def _costly_rdp(self) -> bool:
        """Whether RDP's bound (the cap) costs more than the PLD itself: random allocation's
        series over every order."""
        return any(isinstance(event, RandomAllocation) for event in self._other_steps)

    def _rdp_accountant(self) -> RdpAccountant | None:
        """An RDP accountant over the same steps (add/remove only: RDP's relation here), or
        ``None`` where RDP cannot account for every composed step event (no cap then)."""
        if self._neighboring != "add_remove":
            return None
        rdp = RdpAccountant()
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            rdp.compose(sample_rate, noise_multiplier, count)
        for event, count in self._other_steps.items():
            if not rdp.supports(event):
                return None
            rdp.compose(event, count)
        return rdp

    def _rdp_epsilon(self, delta: float) -> float:
        """RDP's epsilon, also a certified upper bound: it caps the PLD one where the PLD's
        rounding allowance exceeds a very small delta (``inf`` where it cannot be had)."""
        try:
            rdp = self._rdp_accountant()
            return math.inf if rdp is None else float(rdp.get_epsilon(delta))
        except (ArithmeticError, ValueError):  # no cap is still certified
            return math.inf

    def _rdp_delta(self, epsilon: float) -> float:
        try:
            rdp = self._rdp_accountant()
            return 1.0 if rdp is None else float(rdp.get_delta(epsilon))
        except (ArithmeticError, ValueError):
            return 1.0

    def get_epsilon(self, delta: float) -> float:
        """Certified upper bound on epsilon at ``delta`` (``inf`` if not resolvable)."""
        # on a set grid the lower laws would only be reported: not composed
        return self._epsilon_bounds(check_delta(delta),
                                    upper_only=self._value_discretization is not None).upper

    def get_delta(self, epsilon: float) -> float:
        """Certified upper bound on delta at ``epsilon``."""
        return self.get_delta_bounds(epsilon).upper


def _warn_wide(bracket: str, target: float, composed: bool) -> None:
    """Issue a :class:`ToleranceNotMetWarning` for a bracket wider than its target."""
    how = (
        "the tightest bracket within the grid and work limits" if composed
        else "no grid could be composed (see PldAccountant's limits): the bound is RDP's"
    )
    warnings.warn(
        f"PLD {bracket} is wider than the target width {target:.3g}; {how}. It is certified.",
        ToleranceNotMetWarning, stacklevel=3,
    )
