"""The accountant contract: what every accountant does, whatever mechanism family it handles.

An accountant composes mechanism events (:mod:`accounting.events`) and answers epsilon at a
delta and delta at an epsilon, as dp_accounting's ``PrivacyAccountant`` does; it also keeps the
ledger of what it composed, can be copied, and saves and restores its state like an Opacus
accountant (``state_dict`` / ``load_state_dict``), so a run's privacy record can be stored next
to its checkpoints. :class:`TightAccountant` adds certified two-sided brackets.

Accountants register by name in :mod:`accounting.registry`; the CLI, the budget functions,
calibration and the verification kit find them there.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from accounting._validation import check_steps
from accounting.events import Composed, Event, Gaussian, PoissonSampled, SelfComposed

__all__ = [
    "STATE_FORMAT",
    "Accountant",
    "CompositionRecord",
    "TightAccountant",
    "UnsupportedEventError",
]

#: Version of the ``state_dict`` layout written by :meth:`Accountant.state_dict`.
STATE_FORMAT = 1

_Self = TypeVar("_Self", bound="Accountant")


class UnsupportedEventError(ValueError):
    """An accountant was given an event (or part of one) it cannot account for."""


class CompositionRecord:
    """One entry of an accountant's history: ``event`` composed ``count`` times.

    Built as ``CompositionRecord(event, count)``, or as ``CompositionRecord(sample_rate,
    noise_multiplier, steps)`` for Poisson-subsampled Gaussian steps (the form of earlier
    versions). ``sample_rate``, ``noise_multiplier`` and ``steps`` read such a step back
    (``steps`` is ``count``); for other events the first two are ``None``.
    """

    __slots__ = ("count", "event")
    event: Event
    count: int

    def __init__(self, *fields):
        if len(fields) == 3:
            fields = (PoissonSampled(fields[0], Gaussian(fields[1])), check_steps(fields[2]))
        if len(fields) != 2 or not isinstance(fields[0], Event):
            raise TypeError("CompositionRecord takes (event, count) or (sample_rate, "
                            "noise_multiplier, steps)")
        object.__setattr__(self, "event", fields[0])
        object.__setattr__(self, "count", check_steps(fields[1], "count"))

    def __setattr__(self, name, value):
        raise AttributeError("CompositionRecord is immutable")

    def __eq__(self, other) -> bool:
        if not isinstance(other, CompositionRecord):
            return NotImplemented
        return (self.event, self.count) == (other.event, other.count)

    def __hash__(self) -> int:
        return hash((self.event, self.count))

    def __iter__(self):
        return iter((self.event, self.count))

    def __repr__(self) -> str:
        return f"CompositionRecord(event={self.event!r}, count={self.count})"

    @property
    def steps(self) -> int:
        """``count``: the number of times ``event`` was composed."""
        return self.count

    @property
    def sample_rate(self) -> float | None:
        """The sample rate of a (Poisson-sampled) Gaussian step, 1 for an unsampled one."""
        if isinstance(self.event, PoissonSampled) and isinstance(self.event.event, Gaussian):
            return self.event.sample_rate
        return 1.0 if isinstance(self.event, Gaussian) else None

    @property
    def noise_multiplier(self) -> float | None:
        """The noise multiplier of a (Poisson-sampled) Gaussian step."""
        inner = self.event.event if isinstance(self.event, PoissonSampled) else self.event
        return inner.noise_multiplier if isinstance(inner, Gaussian) else None


def _event_and_count(args: tuple, kwargs: dict) -> tuple[Event, int]:
    """Read ``compose``'s two call forms: ``(event, count=1)`` or
    ``(sample_rate, noise_multiplier, steps=1)``, positionally or by name."""
    if len(args) == 3 and not kwargs and not isinstance(args[0], Event):
        # the usual call, (sample_rate, noise_multiplier, steps): the checks below, in order
        steps = check_steps(args[2])
        return PoissonSampled(args[0], Gaussian(args[1])), steps
    if (args and isinstance(args[0], Event)) or "event" in kwargs:
        names = ("event", "count")
        defaults: dict[str, Any] = {"count": 1}
    else:
        names = ("sample_rate", "noise_multiplier", "steps")
        defaults = {"steps": 1}
    if len(args) > len(names):
        raise TypeError(f"compose takes at most {len(names)} arguments {names}, got {len(args)}")
    values = dict(zip(names, args, strict=False))  # fewer args than names is fine
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(
                f"compose got an unexpected argument {key!r}; it takes (event, count=1) or "
                "(sample_rate, noise_multiplier, steps=1)"
            )
        if key in values:
            raise TypeError(f"compose got {key!r} twice")
        values[key] = value
    for key, value in defaults.items():
        values.setdefault(key, value)
    missing = [name for name in names if name not in values]
    if missing:
        raise TypeError(f"compose is missing {missing}")
    if names[0] == "event":
        if not isinstance(values["event"], Event):
            raise TypeError(
                f"event must be an accounting event, got {type(values['event']).__name__}"
            )
        return values["event"], check_steps(values["count"], "count")
    steps = check_steps(values["steps"])
    step = PoissonSampled(values["sample_rate"], Gaussian(values["noise_multiplier"]))
    return step, steps


class Accountant(abc.ABC):
    """Base class of accountants: compose events, answer epsilon and delta.

    Subclasses implement :meth:`_plan` (check an event and reduce it to what they track,
    without changing anything: composition is all or nothing), :meth:`_apply` (add a plan),
    :meth:`get_epsilon`, :meth:`get_delta` and :meth:`_options` (their constructor arguments,
    for :meth:`copy` and :meth:`state_dict`). The base class keeps the history.

    ``name`` is the accountant's registry name (:func:`accounting.make_accountant`).
    """

    name: ClassVar[str] = ""
    #: Name of the parameter ``get_epsilon_and_order`` returns (``"order"`` for RDP), if any.
    order_label: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._records: list[CompositionRecord] = []

    # ----------------------------------------------------------------- contract
    @abc.abstractmethod
    def _plan(self, event: Event, count: int) -> Any:
        """What composing ``event`` ``count`` times adds, or :class:`UnsupportedEventError`."""

    @abc.abstractmethod
    def _apply(self, plan: Any) -> None:
        """Add a plan made by :meth:`_plan`."""

    @abc.abstractmethod
    def _options(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this accountant (JSON types only)."""

    @abc.abstractmethod
    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent at ``delta`` (an upper bound for a certified accountant)."""

    @abc.abstractmethod
    def get_delta(self, epsilon: float) -> float:
        """Delta at ``epsilon``."""

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the guarantee: ``"add_remove"`` or ``"replace_one"``."""
        return "add_remove"

    @property
    def conversion_label(self) -> str:
        """How epsilon is obtained, for reports (e.g. ``"improved"``, ``"certified"``)."""
        return "certified" if isinstance(self, TightAccountant) else ""

    # ----------------------------------------------------------------- composition
    def supports(self, event: Event) -> bool:
        """Whether :meth:`compose` accepts ``event`` (``False`` for a non-event)."""
        if not isinstance(event, Event):
            return False
        try:
            self._plan(event, 1)
        except UnsupportedEventError:
            return False
        return True

    def compose(self: _Self, *args, **kwargs) -> _Self:
        """Compose an event, or Poisson-subsampled Gaussian steps; returns ``self``.

        Two call forms:

        * ``compose(event, count=1)`` - an :class:`accounting.events.Event` ``count`` times;
        * ``compose(sample_rate, noise_multiplier, steps=1)`` - shorthand for
          ``compose(PoissonSampled(sample_rate, Gaussian(noise_multiplier)), steps)``.

        Raises
        ------
        UnsupportedEventError
            If the event (or a part of it) is outside what this accountant handles; the message
            names the registered accountants that handle it. Nothing is composed then.
        """
        event, count = _event_and_count(args, kwargs)
        try:
            plan = self._plan(event, count)
        except UnsupportedEventError as error:
            raise UnsupportedEventError(_unsupported_message(self, event, error)) from None
        self._apply(plan)
        if count:
            last = self._records[-1] if self._records else None
            if last is not None and last.event == event:
                self._records[-1] = CompositionRecord(event, last.count + count)
            else:
                self._records.append(CompositionRecord(event, count))
        return self

    @property
    def history(self) -> list[CompositionRecord]:
        """What was composed, in order; consecutive compositions of one event are merged."""
        return list(self._records)

    @property
    def ledger(self) -> Event:
        """Everything composed as one event (replay it with ``compose(acc.ledger)``)."""
        return Composed(
            tuple(record.event if record.count == 1 else SelfComposed(record.event, record.count)
                  for record in self._records)
        )

    # ----------------------------------------------------------------- state
    def copy(self: _Self) -> _Self:
        """An independent accountant with the same options and history."""
        clone = type(self)(**self._options())
        for record in self._records:
            clone.compose(record.event, record.count)
        return clone

    def state_dict(self) -> dict[str, Any]:
        """The accountant's options and history as JSON types (see :meth:`load_state_dict`)."""
        return {
            "format": STATE_FORMAT,
            "accountant": self.name or type(self).__qualname__,
            "options": self._options(),
            "history": [{"event": record.event.to_dict(), "count": record.count}
                        for record in self._records],
        }

    def load_state_dict(self: _Self, state: Mapping[str, Any]) -> _Self:
        """Restore options and history from :meth:`state_dict`'s output; returns ``self``."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        if type(state.get("format")) is not int or state["format"] != STATE_FORMAT:
            raise ValueError(f"state['format'] must be the int {STATE_FORMAT}, got "
                             f"{state.get('format')!r:.60}")
        expected = self.name or type(self).__qualname__
        if state.get("accountant") != expected:
            raise ValueError(
                f"state was saved by accountant {state.get('accountant')!r}, not {expected!r}"
            )
        options = state.get("options", {})
        if not isinstance(options, Mapping):
            raise TypeError("state['options'] must be a mapping")
        try:
            fresh = type(self)(**options)
        except TypeError as error:
            raise ValueError(f"state['options'] are not {expected!r}'s options: {error}") from None
        for item in state.get("history", []):
            fresh.compose(Event.from_dict(item["event"]), item["count"])
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(compositions={len(self._records)})"


class TightAccountant(Accountant):
    """An accountant with certified lower and upper bounds.

    ``get_epsilon`` / ``get_delta`` return the upper ends of the brackets.
    """

    @abc.abstractmethod
    def get_epsilon_bounds(self, delta: float):
        """Certified ``(lower, upper, ...)`` bracket of epsilon at ``delta``."""

    @abc.abstractmethod
    def get_delta_bounds(self, epsilon: float):
        """Certified ``(lower, upper, ...)`` bracket of delta at ``epsilon``."""

    def get_epsilon(self, delta: float) -> float:
        """Certified upper bound on epsilon at ``delta``."""
        return self.get_epsilon_bounds(delta)[1]

    def get_delta(self, epsilon: float) -> float:
        """Certified upper bound on delta at ``epsilon``."""
        return self.get_delta_bounds(epsilon)[1]


def _unsupported_message(accountant: Accountant, event: Event, error: Exception) -> str:
    from accounting.registry import accountants_supporting

    others = [name for name in accountants_supporting(event) if name != accountant.name]
    who = f"accountants that handle it: {others}" if others else "no registered accountant does"
    if not others and accountant.neighboring != "replace_one":
        # events accounted for replace-one neighbours only (fixed-size batches)
        replace_one = accountants_supporting(event, neighboring="replace_one")
        if replace_one:
            who = (f"accountants that handle it with neighboring='replace_one': "
                   f"{list(replace_one)}")
    return f"{type(accountant).__name__} cannot compose {event!r}: {error}; {who}"[:2000]
