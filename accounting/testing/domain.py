"""The inputs an accountant under test claims to support: one immutable :class:`Domain`.

A framework whose RDP exists only at integer orders, or only for ``0 < q < 1``, declares so and
the kit draws only inside that domain; checks that need an input outside it (the ``q = 1``
closed form, ``epsilon(q=1)``, the one-step hockey-stick check when ``steps = 1`` is excluded)
are reported as skipped, never as passed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = ["RELATIONS", "Domain", "Range"]

#: Neighbouring relations a :class:`Domain` can declare.
RELATIONS: tuple[str, ...] = ("add_remove", "replace_one")

OrderSpec = Literal["any", "integer"]


class Range(NamedTuple):
    """An interval from ``low`` to ``high`` whose ends are each closed or open."""

    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def intersect(self, low: float, high: float) -> Range | None:
        """The part of ``[low, high]`` inside the interval (``None`` when empty)."""
        lo, hi = max(low, self.low), min(high, self.high)
        lo_closed = self.low_closed or lo > self.low
        hi_closed = self.high_closed or hi < self.high
        part = Range(lo, hi, lo_closed, hi_closed)
        # empty also where no float lies strictly inside open ends, such as (0, 5e-324)
        first = lo if lo_closed else math.nextafter(lo, math.inf)
        if lo > hi or not part.contains(first):
            return None
        return part

    def clamp(self, value: float) -> float:
        """``value`` moved to the nearest point of the interval (open ends: one ulp inside)."""
        if value < self.low or (value == self.low and not self.low_closed):
            value = self.low if self.low_closed else math.nextafter(self.low, math.inf)
        if value > self.high or (value == self.high and not self.high_closed):
            value = self.high if self.high_closed else math.nextafter(self.high, -math.inf)
        return value

    def edges(self) -> list[float]:
        """The closed, finite ends (the exact edges a strategy should draw often)."""
        ends = [self.low] if self.low_closed and math.isfinite(self.low) else []
        if self.high_closed and math.isfinite(self.high) and self.high != self.low:
            ends.append(self.high)
        return ends

    def __str__(self) -> str:
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"


def _real(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Domain.{field}: expected real numbers, got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"Domain.{field}: NaN is not a bound")
    return number


def _pair(value: object, field: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"Domain.{field}: expected a pair (low, high), got {value!r}")
    low, high = (_real(item, field) for item in value)
    if low > high:
        raise ValueError(f"Domain.{field}: low {low:g} exceeds high {high:g}")
    return low, high


@dataclass(frozen=True)
class Domain:
    """The inputs an accountant supports; :func:`~accounting.testing.verify_accountant` and
    every check and strategy of :mod:`accounting.testing` draw only inside it.

    Every field defaults to "anything valid", in which case each check draws its usual ranges
    (exactly as without a domain). A declared range is intersected with each check's usual
    range; where the two do not meet, the check draws from the declared range itself.

    Parameters
    ----------
    orders : {"any", "integer"} or sequence of float
        Rényi orders: ``"any"`` (integer and fractional orders ``> 1``), ``"integer"``
        (``2, 3, ...``), or the accountant's explicit grid, from which RDP checks draw their
        orders and which the epsilon and delta reference checks minimise over (with ``"any"``
        they assume :data:`accounting.DEFAULT_ORDERS`; with ``"integer"`` they are skipped).
    q : (float, float)
        Sample rates, within ``[0, 1]``; default ``(0, 1)``.
    q_closed : (bool, bool)
        Whether each end of ``q`` is included; ``(False, False)`` excludes ``q = 0`` and
        ``q = 1``, which skips the ``q = 0``/``q = 1`` closed forms and ``epsilon(q=1)`` bound.
    sigma : (float, float)
        Noise multipliers, closed; a lower end of 0 is open. Default ``(0, inf)``.
    steps : (int, int or inf)
        Step counts, closed, from 1. Default ``(1, inf)``.
    delta : (float, float)
        Target deltas within ``[0, 1]``; an end at 0 or 1 is open. Default ``(0, 1)``.
    epsilon : (float, float or inf)
        Target epsilons of delta functions, closed, from 0. Default ``(0, inf)``.
    relation : {"add_remove", "replace_one"}
        Neighbouring relation. Under ``"replace_one"`` the RDP reference (an add/remove
        quantity) is skipped, the RDP bound at ``q = 1`` becomes the replace-one Gaussian's
        ``2 alpha / sigma^2``, and epsilon and delta functions are checked at one step against
        :func:`accounting.reference.hockey_stick_delta` with ``direction="replace"``.

    Raises
    ------
    TypeError
        A field of the wrong type (the message names the field).
    ValueError
        A field out of range or empty (the message names the field).

    Examples
    --------
    >>> Domain(orders="integer", q=(0, 1), q_closed=(False, False)).q_range
    Range(low=0.0, high=1.0, low_closed=False, high_closed=False)
    >>> Domain(sigma=(-1, 2))
    Traceback (most recent call last):
    ...
    ValueError: Domain.sigma: noise multipliers must be > 0, got low -1
    """

    orders: OrderSpec | Sequence[float] = "any"
    q: tuple[float, float] = (0.0, 1.0)
    q_closed: tuple[bool, bool] = (True, True)
    sigma: tuple[float, float] = (0.0, math.inf)
    steps: tuple[float, float] = (1, math.inf)
    delta: tuple[float, float] = (0.0, 1.0)
    epsilon: tuple[float, float] = (0.0, math.inf)
    relation: Literal["add_remove", "replace_one"] = "add_remove"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "orders", _orders(self.orders))
        q_low, q_high = _pair(self.q, "q")
        if not 0.0 <= q_low <= q_high <= 1.0:
            raise ValueError(f"Domain.q: sample rates must lie in [0, 1], got {self.q!r}")
        closed = self.q_closed
        if (
            isinstance(closed, (str, bytes))
            or not isinstance(closed, Sequence)
            or len(closed) != 2
            or not all(isinstance(end, bool) for end in closed)
        ):
            raise TypeError(f"Domain.q_closed: expected two bools, got {closed!r}")
        set_(self, "q", (q_low, q_high))
        set_(self, "q_closed", (closed[0], closed[1]))
        if self.q_range.intersect(q_low, q_high) is None:
            raise ValueError(f"Domain.q: {self.q_range} is empty")
        sigma = _pair(self.sigma, "sigma")
        if sigma[0] < 0:
            raise ValueError(f"Domain.sigma: noise multipliers must be > 0, got low {sigma[0]:g}")
        if sigma[1] <= 0:
            raise ValueError(f"Domain.sigma: high must be > 0, got {sigma[1]:g}")
        set_(self, "sigma", sigma)
        steps = _pair(self.steps, "steps")
        for end in steps:
            if math.isfinite(end) and end != int(end):
                raise ValueError(f"Domain.steps: step counts must be integers, got {end:g}")
        if steps[0] < 1 or math.isinf(steps[0]):
            raise ValueError(f"Domain.steps: low must be a finite count >= 1, got {steps[0]:g}")
        set_(self, "steps", (int(steps[0]), steps[1] if math.isinf(steps[1]) else int(steps[1])))
        delta = _pair(self.delta, "delta")
        if not 0.0 <= delta[0] <= delta[1] <= 1.0 or delta[1] == 0.0 or delta[0] == 1.0:
            raise ValueError(f"Domain.delta: deltas must lie in (0, 1), got {self.delta!r}")
        set_(self, "delta", delta)
        epsilon = _pair(self.epsilon, "epsilon")
        if epsilon[0] < 0:
            raise ValueError(f"Domain.epsilon: epsilons must be >= 0, got low {epsilon[0]:g}")
        set_(self, "epsilon", epsilon)
        if not isinstance(self.relation, str):
            raise TypeError(f"Domain.relation: expected a string, got {self.relation!r}")
        if self.relation not in RELATIONS:
            raise ValueError(f"Domain.relation: must be one of {RELATIONS}, got {self.relation!r}")

    # ----------------------------------------------------------------------------------------
    # The declared ranges as intervals, and whether each is restricted at all
    # ----------------------------------------------------------------------------------------

    @property
    def q_range(self) -> Range:
        """The sample rates, with their open or closed ends."""
        return Range(self.q[0], self.q[1], *self.q_closed)

    @property
    def sigma_range(self) -> Range:
        """The noise multipliers (0 itself excluded)."""
        return Range(self.sigma[0], self.sigma[1], self.sigma[0] > 0, math.isfinite(self.sigma[1]))

    @property
    def steps_range(self) -> Range:
        """The step counts."""
        return Range(self.steps[0], self.steps[1], True, math.isfinite(self.steps[1]))

    @property
    def delta_range(self) -> Range:
        """The deltas (0 and 1 themselves excluded)."""
        return Range(self.delta[0], self.delta[1], self.delta[0] > 0, self.delta[1] < 1)

    @property
    def epsilon_range(self) -> Range:
        """The epsilons."""
        return Range(self.epsilon[0], self.epsilon[1], True, math.isfinite(self.epsilon[1]))

    def restricts(self, field: str) -> bool:
        """Whether ``field`` narrows the kit's defaults (else each check draws as usual)."""
        return getattr(self, field) != getattr(_DEFAULT, field) or (
            field == "q" and self.q_closed != _DEFAULT.q_closed
        )

    def allows_q(self, value: float) -> bool:
        """Whether the sample rate ``value`` (e.g. exactly 0 or 1) lies in the domain."""
        return self.q_range.contains(value)

    @property
    def order_grid(self) -> tuple[float, ...] | None:
        """The explicit orders, or ``None`` for ``"any"`` and ``"integer"``."""
        return None if isinstance(self.orders, str) else self.orders

    def describe(self) -> str:
        """The restricted fields, e.g. ``"orders=integer, q=(0, 1)"`` (``"unrestricted"``)."""
        shown = {
            "orders": lambda: self.orders if isinstance(self.orders, str) else
            "[" + ", ".join(f"{a:g}" for a in self.orders) + "]",
            "q": lambda: str(self.q_range),
            "sigma": lambda: str(self.sigma_range),
            "steps": lambda: str(self.steps_range),
            "delta": lambda: str(self.delta_range),
            "epsilon": lambda: str(self.epsilon_range),
            "relation": lambda: self.relation,
        }
        parts = [f"{name}={show()}" for name, show in shown.items() if self.restricts(name)]
        return ", ".join(parts) or "unrestricted"


def _orders(value: object) -> str | tuple[float, ...]:
    if isinstance(value, str):
        if value not in ("any", "integer"):
            raise ValueError(
                "Domain.orders: must be 'any', 'integer' or a sequence of orders > 1, "
                f"got {value!r}"
            )
        return value
    try:
        items = list(value)  # type: ignore[call-overload]  # any iterable, e.g. a NumPy array
    except TypeError:
        raise TypeError(
            f"Domain.orders: expected 'any', 'integer' or a sequence of numbers, got {value!r}"
        ) from None
    grid = sorted({_real(item, "orders") for item in items})
    if not grid:
        raise ValueError("Domain.orders: the explicit grid is empty")
    bad = [alpha for alpha in grid if alpha <= 1.0 or math.isinf(alpha)]
    if bad:
        raise ValueError(f"Domain.orders: orders must be finite and > 1, got {bad[0]:g}")
    return tuple(grid)


_DEFAULT = Domain()
