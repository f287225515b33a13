"""Accountants of Gaussian steps: the event reduction they share.

The RDP, moments and PLD accountants all track a multiset of steps ``(q, sigma) -> count``
(Poisson-subsampled Gaussians), plus a multiset of other step events they handle whole (fixed-size
batches, mixtures of Gaussians, random allocation, ...: ``event -> count``). This module reduces
an event tree to those multisets (a Gaussian alone is a step at ``q = 1``; ``SelfComposed``
multiplies counts; ``Composed`` adds them; a shuffled epoch is its step once, see
:class:`accounting.events.ShuffledEpoch`) and keeps them, with a flag for non-private releases.
Each accountant says which leaves it accepts (:meth:`GaussianStepsAccountant._leaf`).
"""

from __future__ import annotations

from accounting._validation import count_as_float
from accounting.accountant import Accountant, UnsupportedEventError
from accounting.events import (
    Composed,
    Event,
    Gaussian,
    NonPrivate,
    NoOp,
    PoissonSampled,
    SampledWithoutReplacement,
    SelfComposed,
    ShuffledEpoch,
)
from accounting.gdp import step_total_variation

__all__ = ["GaussianStepsAccountant", "gaussian_steps", "poisson_gaussian_leaf"]

# key of a non-private release in a plan
_NON_PRIVATE = "non_private"


def poisson_gaussian_leaf(item: Event, times: int) -> list[tuple[object, int]]:
    """A Gaussian or Poisson-sampled Gaussian step as ``[((q, sigma), times)]``."""
    if isinstance(item, Gaussian):
        return [((1.0, item.noise_multiplier), times)]
    if isinstance(item, PoissonSampled) and isinstance(item.event, Gaussian):
        return [((item.sample_rate, item.event.noise_multiplier), times)]
    if isinstance(item, PoissonSampled):
        raise UnsupportedEventError(
            f"Poisson sampling of {type(item.event).__name__} is not supported (only of "
            "Gaussian, NoOp or NonPrivate)"
        )
    raise UnsupportedEventError(f"{type(item).__name__} events are not supported")


def gaussian_steps(
    event: Event, count: int, leaf=poisson_gaussian_leaf
) -> list[tuple[object, int]]:
    """``event`` composed ``count`` times as ``[(key, count), ...]``.

    A key is ``(q, sigma)`` for a (Poisson-sampled) Gaussian step, ``"non_private"``, or what
    ``leaf(step_event, count)`` returns for the step events it accepts (it raises
    :class:`UnsupportedEventError` for the others). Steps that cannot touch the data (no-ops,
    samples of rate 0 or size 0) are dropped here.
    """
    plan: list[tuple[object, int]] = []
    stack = [(event, count)]
    while stack:
        item, times = stack.pop()
        if isinstance(item, SelfComposed):
            stack.append((item.event, times * item.count))
        elif isinstance(item, Composed):
            stack.extend((child, times) for child in reversed(item.events))
        elif isinstance(item, ShuffledEpoch):
            stack.append((item.event, times))
        elif isinstance(item, NonPrivate):
            plan.append((_NON_PRIVATE, times))
        elif isinstance(item, NoOp):
            continue
        elif isinstance(item, (PoissonSampled, SampledWithoutReplacement)) and isinstance(
            item.event, (NoOp, NonPrivate)
        ):
            if item.sample_rate > 0.0 and isinstance(item.event, NonPrivate):
                plan.append((_NON_PRIVATE, times))
        else:
            plan.extend(leaf(item, times))
    return plan


class GaussianStepsAccountant(Accountant):
    """Keeps the composed steps as ``(q, sigma) -> count`` plus a non-private flag.

    Steps at ``q = 0`` and with count 0 spend nothing and are not kept (they stay in
    :attr:`history`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._steps_by_pair: dict[tuple[float, float], int] = {}
        # step events kept whole (fixed-size batches, mixtures, ...), see _leaf
        self._other_steps: dict[Event, int] = {}
        self._step_count = 0
        self._non_private = False

    def _leaf(self, item: Event, times: int) -> list[tuple[object, int]]:
        """Plan entries of one step event, or :class:`UnsupportedEventError`.

        The default accepts (Poisson-sampled) Gaussian steps; accountants that handle more
        return ``[(event, times)]`` for the step events they keep whole.
        """
        return poisson_gaussian_leaf(item, times)

    def _plan(self, event: Event, count: int) -> list[tuple[object, int]]:
        return gaussian_steps(event, count, self._leaf)

    def _apply(self, plan: list[tuple[object, int]]) -> None:
        for key, times in plan:
            if not times:
                continue
            self._step_count += times
            if key == _NON_PRIVATE:
                self._non_private = True
            elif isinstance(key, Event):
                self._other_steps[key] = self._other_steps.get(key, 0) + times
            elif key[0] > 0.0:
                self._steps_by_pair[key] = self._steps_by_pair.get(key, 0) + times

    @property
    def _spends_nothing(self) -> bool:
        """Whether nothing composed so far can depend on the data."""
        return not (self._steps_by_pair or self._other_steps or self._non_private)

    @property
    def steps(self) -> int:
        """Total number of steps composed (every Gaussian or non-private release counted)."""
        return self._step_count

    def _tv_bound(self) -> float:
        """Upper bound on the total variation distance of everything composed.

        One step's is ``q (2 Phi(1 / (2 sigma)) - 1)`` and total variation is subadditive over
        composition; ``(0, tv)``-DP holds with ``tv`` this bound.
        """
        if self._non_private or self._other_steps:
            return 1.0
        total = 0.0
        for (sample_rate, noise_multiplier), steps in self._steps_by_pair.items():
            step_tv = float(step_total_variation(sample_rate, noise_multiplier))
            total += count_as_float(steps) * step_tv if step_tv > 0.0 else 0.0
        return min(1.0, total)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, compositions={len(self._records)})"
