"""Accountants of Poisson-subsampled Gaussian steps: the event reduction they share.

The RDP, moments and PLD accountants all track a multiset of steps ``(q, sigma) -> count``.
This module reduces an event tree to that multiset (a Gaussian alone is a step at ``q = 1``;
``PoissonSampled`` must wrap a Gaussian, ``NoOp`` or ``NonPrivate``; ``SelfComposed`` multiplies
counts; ``Composed`` adds them) and keeps it, with a flag for non-private releases.
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
    SelfComposed,
)
from accounting.gdp import step_total_variation

__all__ = ["GaussianStepsAccountant", "gaussian_steps"]

# key of a non-private release in a plan
_NON_PRIVATE = "non_private"


def gaussian_steps(event: Event, count: int) -> list[tuple[object, int]]:
    """``event`` composed ``count`` times as ``[((q, sigma) or "non_private", count), ...]``.

    Raises :class:`UnsupportedEventError` naming the first part of ``event`` that is not a
    (Poisson-sampled) Gaussian step, a no-op or a non-private release.
    """
    plan: list[tuple[object, int]] = []
    stack = [(event, count)]
    while stack:
        item, times = stack.pop()
        if isinstance(item, PoissonSampled):
            inner = item.event
            if isinstance(inner, Gaussian):
                plan.append(((item.sample_rate, inner.noise_multiplier), times))
            elif isinstance(inner, NonPrivate):
                if item.sample_rate > 0.0:
                    plan.append((_NON_PRIVATE, times))
            elif not isinstance(inner, NoOp):
                raise UnsupportedEventError(
                    f"Poisson sampling of {type(inner).__name__} is not supported (only of "
                    "Gaussian, NoOp or NonPrivate)"
                )
        elif isinstance(item, Gaussian):
            plan.append(((1.0, item.noise_multiplier), times))
        elif isinstance(item, SelfComposed):
            stack.append((item.event, times * item.count))
        elif isinstance(item, Composed):
            stack.extend((child, times) for child in reversed(item.events))
        elif isinstance(item, NonPrivate):
            plan.append((_NON_PRIVATE, times))
        elif not isinstance(item, NoOp):
            raise UnsupportedEventError(f"{type(item).__name__} events are not supported")
    return plan


class GaussianStepsAccountant(Accountant):
    """Keeps the composed steps as ``(q, sigma) -> count`` plus a non-private flag.

    Steps at ``q = 0`` and with count 0 spend nothing and are not kept (they stay in
    :attr:`history`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._steps_by_pair: dict[tuple[float, float], int] = {}
        self._step_count = 0
        self._non_private = False

    def _plan(self, event: Event, count: int) -> list[tuple[object, int]]:
        return gaussian_steps(event, count)

    def _apply(self, plan: list[tuple[object, int]]) -> None:
        for key, times in plan:
            if not times:
                continue
            self._step_count += times
            if key == _NON_PRIVATE:
                self._non_private = True
            elif key[0] > 0.0:
                self._steps_by_pair[key] = self._steps_by_pair.get(key, 0) + times

    @property
    def steps(self) -> int:
        """Total number of steps composed (every Gaussian or non-private release counted)."""
        return self._step_count

    def _tv_bound(self) -> float:
        """Upper bound on the total variation distance of everything composed.

        One step's is ``q (2 Phi(1 / (2 sigma)) - 1)`` and total variation is subadditive over
        composition; ``(0, tv)``-DP holds with ``tv`` this bound.
        """
        if self._non_private:
            return 1.0
        total = 0.0
        for (sample_rate, noise_multiplier), steps in self._steps_by_pair.items():
            step_tv = float(step_total_variation(sample_rate, noise_multiplier))
            total += count_as_float(steps) * step_tv if step_tv > 0.0 else 0.0
        return min(1.0, total)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, compositions={len(self._records)})"
