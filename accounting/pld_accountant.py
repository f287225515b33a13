"""Tight accountant: privacy loss distributions with certified upper and lower epsilon.

Every composed step is discretised twice on a grid of spacing ``value_discretization``
(:mod:`accounting.privacy_loss`): a *dominating* ("connect the dots") discretisation whose
composed hockey-stick divergence is at least the true one, and a *dominated* (merged-cell)
discretisation whose composed ``P`` and ``Q`` laws give threshold divergences
``P(S >= s) - exp(eps) Q(S >= s)`` that are at most the true one. Both are composed by FFT
(:mod:`accounting.pld_composition`), so the true ``delta(epsilon)`` - and the true
``epsilon(delta)`` - of the Poisson-subsampled Gaussian is bracketed:
``lower <= true <= upper``. Both sides err by second-order terms in the grid spacing (a
threshold on the grid-placed loss is nearly the best test), so the bracket narrows like
``step^2``.

For add/remove neighbours both dominating pairs (add and remove) are composed and the worse is
reported; replace-one has one symmetric pair. Without an explicit ``value_discretization`` the
grid is refined until ``upper - lower <= tolerance``.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import NamedTuple

import numpy as np

from accounting._validation import check_delta, check_epsilon, check_positive
from accounting.accountants import RdpAccountant, _ComposingAccountant
from accounting.gdp import _mu_epsilon, gdp_mu
from accounting.pld_composition import (
    ThresholdBound,
    choose_tilt,
    compose_plds,
    compose_tilted,
)
from accounting.privacy_loss import (
    RELATIONS,
    DiscretePld,
    dominated_pmf,
    dominating_pairs,
    dominating_pmf,
)

__all__ = ["DeltaBounds", "EpsilonBounds", "PldAccountant"]

#: Mass allowed beyond each end of the FFT window; it is carried into the bounds.
_WINDOW_TAIL = 1e-18
#: Share of the delta at stake left out by the truncation of the per-step losses, over all
#: steps together (the lower tails move up to the grid's first point, the upper tails to +inf):
#: 1e-9 moves epsilon by about 1e-9 / (d log delta / d epsilon) and cuts the per-step grids
#: 2-4 fold at delta = 1e-5 against a fixed 1e-18 (a subsampled Gaussian's loss tail is long).
_TRUNCATION_SHARE = 1e-9
#: The delta scale assumed where none is known (a truncation of 1e-18 in all).
_UNKNOWN_DELTA_SCALE = 1e-9
#: A direction is recomposed in extended precision where its double-precision rounding
#: allowance at the anchor exceeds this share of the delta at stake.
_EXTENDED_TRIGGER = 1e-3
#: Automatic refinement stops before a grid predicted to need more FFT points than this (the
#: bracket so far is returned, certified; a user-set ``value_discretization`` may go further).
_REFINE_GRID_LIMIT = 1 << 22
#: Whether NumPy's long double is wider than double here (x86: 64-bit mantissa; elsewhere it
#: may be double itself, and extended precision would change nothing).
_HAS_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(float).eps

class EpsilonBounds(NamedTuple):
    """Certified bracket ``lower <= epsilon <= upper`` at one ``delta``."""

    lower: float
    upper: float
    value_discretization: float

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower


class DeltaBounds(NamedTuple):
    """Certified bracket ``lower <= delta <= upper`` at one ``epsilon``."""

    lower: float
    upper: float
    value_discretization: float


class _Direction:
    """One dominating pair's composed laws on one grid: the upper law at once, the lower
    (threshold) laws when first asked for, since one direction's lower bound already bounds
    the worst direction's epsilon from below."""

    def __init__(self, entries, step: float, tail: float, anchor: float, delta_scale: float):
        self._entries, self._step, self._tail = entries, step, tail
        upper_groups = [(dominating_pmf(pair, step, tail), count) for pair, count in entries]
        self._tilt, excess = choose_tilt(upper_groups, anchor)
        # window tails worth _WINDOW_TAIL at the anchor once the tilt is undone
        self._budget = min(_WINDOW_TAIL * math.exp(min(-excess, 500.0)), 1e-12)
        self._extended = False
        self.upper = self._compose_upper(upper_groups)
        # Where the tilt cannot make the FFT's worst-case rounding small next to delta (heavy
        # tails, tiny delta), the transforms and their powers are redone with a 64-bit
        # mantissa: the allowance drops ~2000-fold
        rounding = float(self.upper.allowance(anchor))
        if _HAS_EXTENDED and rounding > _EXTENDED_TRIGGER * delta_scale:
            self._extended = True
            self.upper = self._compose_upper(upper_groups)

    def _compose_upper(self, groups):
        return compose_plds(
            groups, self._budget, clip_negative=True, tilt=self._tilt, extended=self._extended
        )

    @cached_property
    def lower(self) -> ThresholdBound:
        """Threshold bounds from the merged-cell laws under ``P`` and ``Q``."""
        merged = [
            (dominated_pmf(pair, self._step, self._tail), count) for pair, count in self._entries
        ]
        q_groups = [
            (DiscretePld(self._step, pld.first_index, pld.q_masses), count)
            for pld, count in merged
        ]
        # Q = P exp(-loss): tilting it by one more puts it where the tilted P is
        return ThresholdBound(
            compose_tilted(merged, self._budget, tilt=self._tilt, extended=self._extended),
            compose_tilted(q_groups, self._budget, tilt=self._tilt + 1.0, extended=self._extended),
        )

    def epsilon_upper(self, delta: float) -> float:
        spare = delta - self.upper.infinity_mass
        return self.upper.epsilon_upper(spare) if spare > 0 else math.inf

    def delta_upper(self, epsilon: float) -> float:
        upper = self.upper
        return upper.hockey_stick(epsilon) + float(upper.allowance(epsilon)) + upper.infinity_mass


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
    the delta at stake: the per-step truncation leaves out a ``_TRUNCATION_SHARE`` of it over all
    steps (counted in the bounds), and it decides where extended precision is needed."""

    def __init__(self, pairs_and_counts, step: float, anchor: float, delta_scale: float):
        total_steps = sum(count for _, count in pairs_and_counts)
        tail = max(_TRUNCATION_SHARE * delta_scale, 1e-300) / max(total_steps, 1)
        self.step = step
        by_direction: dict[str, list] = {}
        for pair, count in pairs_and_counts:
            by_direction.setdefault(pair.direction, []).append((pair, count))
        self.directions = [
            _Direction(entries, step, tail, anchor, delta_scale)
            for entries in by_direction.values()
        ]

    @property
    def grid_points(self) -> int:
        """Points of the largest composed upper law (about its FFT length)."""
        return max(direction.upper.masses.size for direction in self.directions)

    def epsilon_bounds(self, delta: float, enough: float = 0.0) -> tuple[float, float]:
        """Certified ``(lower, upper)`` epsilon; lower bounds of further directions are skipped
        once the width is at most ``enough``."""
        uppers = [direction.epsilon_upper(delta) for direction in self.directions]
        lower = _worst_lower(
            self.directions, uppers, lambda d: d.lower.epsilon_lower(delta), enough
        )
        return max(lower, 0.0), max(max(uppers), 0.0)

    def delta_bounds(self, epsilon: float) -> tuple[float, float]:
        uppers = [direction.delta_upper(epsilon) for direction in self.directions]
        lower = _worst_lower(self.directions, uppers, lambda d: d.lower.delta_lower(epsilon), 0.0)
        return max(lower, 0.0), min(max(uppers), 1.0)


class PldAccountant(_ComposingAccountant):
    """Privacy-loss-distribution accountant with certified bounds on epsilon and delta.

    Parameters
    ----------
    value_discretization : float, optional
        Grid spacing of the privacy loss. If omitted, the grid is refined per query until
        ``upper - lower <= tolerance``.
    tolerance : float
        Target width of the epsilon bracket when the grid is chosen automatically
        (default ``1e-3``); the reported bounds are certified whatever width is reached.
    neighboring : {"add_remove", "replace_one"}
        Neighbouring relation. ``"add_remove"`` takes the worse of the add and remove
        dominating pairs; ``"replace_one"`` uses the symmetric pair
        ``(1 - q) N(0) + q N(1)`` vs ``(1 - q) N(0) + q N(-1)`` (per-example norm 1, so two
        neighbouring sums differ by up to 2).

    Notes
    -----
    ``get_epsilon`` / ``get_delta`` return the certified upper bounds. The bounds cover the
    discretisation, the truncation of the per-step losses, the FFT window and a worst-case
    bound on the FFT's floating-point error (see :func:`accounting.pld_composition.compose_plds`).
    The composed laws are exponentially tilted towards the answer (the Gaussian-DP estimate
    first, then each grid's certified lower bound), which makes that error relative to the tail
    mass: brackets stay narrow down to ``delta`` of ``1e-14`` and below. Where the tilt cannot
    do that (heavy loss tails at tiny ``delta``), a direction is recomposed in ``longdouble``;
    a grid whose upper bound is still infinite is recomposed anchored higher. If the PLD upper
    bound is not resolvable (infinite), the RDP accountant's epsilon (also certified) is
    reported instead for add/remove neighbours; for replace-one it stays ``inf``. Automatic
    grids stop refining before 4M points (``tolerance`` is then not met; the bounds hold).

    Examples
    --------
    >>> acc = PldAccountant().compose(250 / 60000, 1.3, 3600)
    >>> bounds = acc.get_epsilon_bounds(1e-5)
    >>> bounds.lower <= 0.853 <= bounds.upper, bounds.width <= 1e-3
    (True, True)
    """

    def __init__(
        self,
        value_discretization: float | None = None,
        tolerance: float = 1e-3,
        neighboring: str = "add_remove",
    ):
        super().__init__(np.zeros(0))
        if value_discretization is not None:
            value_discretization = check_positive(value_discretization, "value_discretization")
        self._value_discretization = value_discretization
        self._tolerance = check_positive(tolerance, "tolerance")
        if neighboring not in RELATIONS:
            raise ValueError(f"neighboring must be one of {RELATIONS}, got {neighboring!r}")
        self._neighboring = neighboring
        # keyed by the composed steps too, so composing more never reuses a stale grid
        self._compositions: dict[tuple, _Composition] = {}

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the bounds."""
        return self._neighboring

    # ----------------------------------------------------------------- grid selection
    def _pairs_and_counts(self):
        entries = []
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            for pair in dominating_pairs(sample_rate, noise_multiplier, self._neighboring):
                entries.append((pair, count))
        return entries

    def _composition(self, step: float, anchor: float, delta_scale: float) -> _Composition:
        key = (tuple(self._steps_by_pair.items()), step, anchor, delta_scale)
        if key not in self._compositions:
            while len(self._compositions) >= 3:  # bound the memory held by finer grids
                self._compositions.pop(next(iter(self._compositions)))
            self._compositions[key] = _Composition(
                self._pairs_and_counts(), step, anchor, delta_scale
            )
        return self._compositions[key]

    def _initial_step(self) -> float:
        """A first grid spacing from the bracket's second-order behaviour.

        The bracket's width grows like ``sqrt(T) step^2 / s`` for a per-step loss of standard
        deviation ``s = q sqrt(exp(1/sigma^2) - 1)``; the constant 1.5 was fitted on the four
        settings of the benchmark (the refinement corrects it where it is off).
        """
        worst = math.inf
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            growth = math.expm1(min(1.0 / noise_multiplier**2, 700.0))
            spread = max(sample_rate * math.sqrt(min(growth, 1e300)), 1e-12)
            step = math.sqrt(1.5 * self._tolerance * spread / math.sqrt(count))
            worst = min(worst, step)
        return float(min(worst, 0.05))

    def _refine(
        self, query, anchor: float, follow_lower: bool, delta_scale: float,
        ceiling: float = math.inf,
    ):
        """Run ``query(composition) -> (lower, upper, width)`` on finer grids until the
        width meets the tolerance (or stops shrinking); returns the narrowest result and its
        spacing. ``anchor`` is where the composed laws are made accurate (see
        :func:`accounting.pld_composition.choose_tilt`); with ``follow_lower`` each finer grid
        is anchored at the previous grid's certified lower bound, and a grid whose upper bound
        is infinite (the answer lies far above the anchor, where the tilted law is not accurate
        enough) is recomposed anchored higher, towards ``ceiling`` (a known upper bound).
        ``delta_scale`` is the delta at stake (see :class:`_Composition`)."""

        def run(step: float, anchor: float):
            composition = self._composition(step, anchor, delta_scale)
            result = query(composition)
            for _ in range(3):
                if math.isfinite(result[1]) or not follow_lower:
                    break
                base = max(anchor, 1e-3 * ceiling if math.isfinite(ceiling) else 1e-2)
                higher = math.sqrt(base * ceiling) if math.isfinite(ceiling) else 4.0 * base
                if not higher > anchor:
                    break
                anchor = higher
                composition = self._composition(step, anchor, delta_scale)
                result = query(composition)
            return result, anchor, composition

        if self._value_discretization is not None:
            step = self._value_discretization
            return run(step, anchor)[0], step
        step = self._initial_step()
        for _ in range(12):  # a grid too large for memory: start coarser (still certified)
            try:
                self._composition(step, anchor, delta_scale)
                break
            except ValueError:
                step *= 4.0
        best = None
        for _ in range(8):
            try:
                result, anchor, composition = run(step, anchor)
            except ValueError:
                if best is None:
                    raise
                break  # grid too large: keep the best (certified) answer so far
            width = result[2]
            if best is not None and not width < 0.8 * best[0][2]:
                break  # the width no longer shrinks with the grid: rounding or tails dominate
            best = (result, step)
            if not width > self._tolerance or not math.isfinite(width):
                break
            if follow_lower and result[0] > 0:
                anchor = result[0]
            ratio = min(max(math.sqrt(self._tolerance / width) * 0.9, 0.1), 0.7)
            if composition.grid_points / ratio > _REFINE_GRID_LIMIT:
                break  # too costly a grid for an automatic choice
            step *= ratio
        return best

    def _first_anchor(self, delta: float, rdp_epsilon: float) -> float:
        """A first guess at epsilon: the Gaussian-DP (CLT) estimate, capped by RDP's epsilon.

        Only the accuracy of the bounds depends on it, never their validity."""
        mu_squared = sum(  # mu-GDP composes as the root of the sum of squares
            gdp_mu(sample_rate, noise_multiplier, count) ** 2
            for (sample_rate, noise_multiplier), count in self._steps_by_pair.items()
        )
        guess = _mu_epsilon(math.sqrt(min(mu_squared, 1e300)), delta)
        return float(min(guess, rdp_epsilon)) if math.isfinite(rdp_epsilon) else float(guess)

    # ----------------------------------------------------------------- queries
    def get_epsilon_bounds(self, delta: float) -> EpsilonBounds:
        """Certified ``(lower, upper)`` bracket of epsilon at ``delta``.

        Parameters
        ----------
        delta : float
            Target delta in ``(0, 1)``.
        """
        delta = check_delta(delta)
        if not self._steps_by_pair:
            return EpsilonBounds(0.0, 0.0, self._value_discretization or 0.0)

        # on an automatic grid, a bracket within the tolerance is enough
        enough = self._tolerance if self._value_discretization is None else 0.0

        def query(composition):
            lower, upper = composition.epsilon_bounds(delta, enough)
            return lower, upper, upper - lower

        rdp_epsilon = self._rdp_epsilon(delta)
        anchor = self._first_anchor(delta, rdp_epsilon)
        (lower, upper, _), step = self._refine(
            query, anchor, follow_lower=True, delta_scale=delta, ceiling=rdp_epsilon
        )
        return EpsilonBounds(lower, min(upper, rdp_epsilon), step)

    def get_delta_bounds(self, epsilon: float) -> DeltaBounds:
        """Certified ``(lower, upper)`` bracket of delta at ``epsilon``.

        Automatic grids aim at an epsilon-bracket of width ``tolerance`` near this delta.
        """
        epsilon = check_epsilon(epsilon)
        if not self._steps_by_pair:
            return DeltaBounds(0.0, 0.0, self._value_discretization or 0.0)

        def query(composition):
            lower, upper = composition.delta_bounds(epsilon)
            if upper <= 0 or upper >= 1:
                return lower, upper, 0.0
            # express the width in epsilon: where does the lower curve reach the upper delta?
            epsilon_lower, _ = composition.epsilon_bounds(upper)
            return lower, upper, max(epsilon - epsilon_lower, 0.0)

        rdp_delta = self._rdp_delta(epsilon)
        # RDP's delta is at least the true one: a safe scale for the truncation
        scale = rdp_delta if rdp_delta < 1.0 else _UNKNOWN_DELTA_SCALE
        (lower, upper, _), step = self._refine(
            query, epsilon, follow_lower=False, delta_scale=scale
        )
        return DeltaBounds(lower, min(upper, rdp_delta), step)

    def _rdp_accountant(self) -> RdpAccountant:
        """An RDP accountant over the same steps (add/remove only: RDP's relation here)."""
        rdp = RdpAccountant()
        for (sample_rate, noise_multiplier), count in self._steps_by_pair.items():
            rdp.compose(sample_rate, noise_multiplier, count)
        return rdp

    def _rdp_epsilon(self, delta: float) -> float:
        """RDP's epsilon, also a certified upper bound: it caps the PLD one where the PLD's
        rounding allowance exceeds a very small delta."""
        if self._neighboring != "add_remove":
            return math.inf
        return self._rdp_accountant().get_epsilon(delta)

    def _rdp_delta(self, epsilon: float) -> float:
        if self._neighboring != "add_remove":
            return 1.0
        return self._rdp_accountant().get_delta(epsilon)

    def get_epsilon(self, delta: float) -> float:
        """Certified upper bound on epsilon at ``delta`` (``inf`` if not resolvable)."""
        return self.get_epsilon_bounds(delta).upper

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """``(epsilon, nan)``: the PLD accountant has no Rényi order."""
        return self.get_epsilon(delta), math.nan

    def get_delta(self, epsilon: float) -> float:
        """Certified upper bound on delta at ``epsilon``."""
        return self.get_delta_bounds(epsilon).upper

