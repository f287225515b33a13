"""What a training run does, as values: mechanism events that accountants compose.

An event describes a mechanism applied to the data, independently of how its privacy is
accounted for; an accountant (:class:`accounting.Accountant`) composes events and answers
epsilon and delta. The shapes follow dp_accounting's ``DpEvent`` tree (Google's
``dp_accounting.dp_event``), the description TF Privacy, jax-privacy and TFF hand over, so that
:func:`accounting.from_dp_event` is a one-to-one translation.

Events are immutable, hashable, compare by value and validate their fields when built:

>>> from accounting.events import Gaussian, PoissonSampled, SelfComposed
>>> step = PoissonSampled(sample_rate=256 / 60000, event=Gaussian(noise_multiplier=1.1))
>>> run = SelfComposed(step, count=14063)
>>> run == SelfComposed.from_dict(run.to_dict())
True

``to_dict`` gives plain JSON types (a run's privacy record can be stored next to its
checkpoints with :mod:`json`) and :meth:`Event.from_dict` reads any event back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from accounting._validation import check_noise_multiplier, check_sample_rate, check_steps

__all__ = [
    "Composed",
    "Event",
    "Gaussian",
    "NoOp",
    "NonPrivate",
    "PoissonSampled",
    "SelfComposed",
    "event_types",
]

# type name in to_dict -> event class; every concrete event registers itself
_EVENT_TYPES: dict[str, type[Event]] = {}


class Event:
    """Base class of mechanism events.

    A concrete event is a frozen dataclass with a unique ``type_name``; its fields are numbers or
    other events (or a tuple of events), which is all :meth:`to_dict` and :meth:`from_dict` need.
    New mechanisms (other samplers, other noise distributions) subclass it the same way.
    """

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if name:
            if name in _EVENT_TYPES and _EVENT_TYPES[name].__qualname__ != cls.__qualname__:
                raise ValueError(f"event type_name {name!r} is already used by "
                                 f"{_EVENT_TYPES[name].__name__}")
            _EVENT_TYPES[name] = cls

    def to_dict(self) -> dict[str, Any]:
        """This event as nested dicts, lists, strings and numbers (JSON-serialisable)."""
        data: dict[str, Any] = {"type": self.type_name}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            data[field.name] = _encode(getattr(self, field.name))
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Event:
        """The event that :meth:`to_dict` gave ``data`` for (any registered event type)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"an event dict must be a mapping, got {type(data).__name__}")
        name = data.get("type")
        if not isinstance(name, str) or name not in _EVENT_TYPES:
            raise ValueError(
                f"unknown event type {name!r:.60}; known types: {sorted(_EVENT_TYPES)}"
            )
        cls = _EVENT_TYPES[name]
        names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names - {"type"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)} for event type {name!r}")
        events = {field.name for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if field.name in ("event", "events")}
        values = {}
        for key, value in data.items():
            if key == "type":
                continue
            if key not in events and isinstance(value, (Mapping, list)):
                raise TypeError(f"{key} of a {name!r} event must be a number, got "
                                f"{type(value).__name__}")
            values[key] = _decode(value)
        return cls(**values)


def _encode(value):
    if isinstance(value, Event):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value):
    if isinstance(value, Mapping):
        return Event.from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    return value


def _check_event(value, name: str) -> Event:
    if not isinstance(value, Event):
        raise TypeError(f"{name} must be an accounting event, got {type(value).__name__}")
    return value


def event_types() -> dict[str, type[Event]]:
    """Every registered event type by its ``type_name`` (a copy)."""
    return dict(_EVENT_TYPES)


@dataclasses.dataclass(frozen=True)
class NoOp(Event):
    """A step that does not touch the data: composing it changes nothing."""

    type_name: ClassVar[str] = "no_op"


@dataclasses.dataclass(frozen=True)
class NonPrivate(Event):
    """A release with no privacy guarantee: epsilon is ``inf`` from then on (delta 1)."""

    type_name: ClassVar[str] = "non_private"


@dataclasses.dataclass(frozen=True)
class Gaussian(Event):
    """The Gaussian mechanism on a query of L2 sensitivity 1 (the clipping norm).

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation over the sensitivity, a finite number ``> 0``.
    """

    type_name: ClassVar[str] = "gaussian"
    noise_multiplier: float

    def __post_init__(self):
        object.__setattr__(
            self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier, scalar=True)
        )


@dataclasses.dataclass(frozen=True)
class PoissonSampled(Event):
    """``event`` run on a Poisson subsample: each record is included independently with
    probability ``sample_rate`` (the sampling DP-SGD's analyses assume; Abadi et al. 2016).

    Parameters
    ----------
    sample_rate : float
        Inclusion probability in ``[0, 1]``.
    event : Event
        The mechanism applied to the subsample.
    """

    type_name: ClassVar[str] = "poisson_sampled"
    sample_rate: float
    event: Event

    def __post_init__(self):
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate, scalar=True))
        _check_event(self.event, "event")


@dataclasses.dataclass(frozen=True)
class SelfComposed(Event):
    """``event`` applied ``count`` times (adaptively), e.g. the steps of a training run.

    Parameters
    ----------
    event : Event
        The mechanism repeated.
    count : int
        Number of repetitions, a whole number ``>= 0`` (any Python int).
    """

    type_name: ClassVar[str] = "self_composed"
    event: Event
    count: int

    def __post_init__(self):
        _check_event(self.event, "event")
        object.__setattr__(self, "count", check_steps(self.count, "count"))


@dataclasses.dataclass(frozen=True)
class Composed(Event):
    """Several events applied one after the other (adaptively), in order.

    Parameters
    ----------
    events : iterable of Event
        The events (stored as a tuple; an empty one composes to nothing).
    """

    type_name: ClassVar[str] = "composed"
    events: tuple[Event, ...]

    def __post_init__(self):
        if isinstance(self.events, (Event, str, bytes, Mapping)) or not isinstance(
            self.events, Iterable
        ):
            raise TypeError(
                f"events must be an iterable of accounting events, got {type(self.events).__name__}"
            )
        events = tuple(self.events)
        for index, event in enumerate(events):
            _check_event(event, f"events[{index}]")
        object.__setattr__(self, "events", events)
