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
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from accounting._validation import (
    check_noise_multiplier,
    check_positive_int,
    check_sample_rate,
    check_steps,
)

__all__ = [
    "Composed",
    "Event",
    "Gaussian",
    "MixtureOfGaussians",
    "NoOp",
    "NonPrivate",
    "PoissonSampled",
    "RandomAllocation",
    "SampledWithoutReplacement",
    "SelfComposed",
    "ShuffledEpoch",
    "TruncatedPoissonGaussian",
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
    #: Fields holding a tuple of numbers (a list in :meth:`to_dict`).
    _number_lists: ClassVar[frozenset[str]] = frozenset()

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
            if key in cls._number_lists:
                if not isinstance(value, list) or any(
                    isinstance(item, (Mapping, list)) for item in value
                ):
                    raise TypeError(f"{key} of a {name!r} event must be a list of numbers, got "
                                    f"{type(value).__name__}")
            elif key not in events and isinstance(value, (Mapping, list)):
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


def _check_numbers(values, name: str) -> tuple[float, ...]:
    """``values`` as a non-empty tuple of finite floats (any iterable of real numbers)."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    items = tuple(values)
    if not items:
        raise ValueError(f"{name} must hold at least one number")
    if len(items) > _MAX_MIXTURE_COMPONENTS:
        raise ValueError(f"{name} may hold at most {_MAX_MIXTURE_COMPONENTS} numbers, got "
                         f"{len(items)}")
    out = []
    for index, item in enumerate(items):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Real):
            raise TypeError(f"{name}[{index}] must be a real number, got {type(item).__name__}")
        try:
            number = float(item)
        except (OverflowError, TypeError):
            raise ValueError(f"{name}[{index}] must be a finite number, got {item!r:.60}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}[{index}] must be a finite number, got {item!r:.60}")
        out.append(number)
    return tuple(out)


#: Largest data set a sampling event describes (2**53: sizes stay exact as floats).
MAX_DATASET_SIZE = 2**53

#: Most components a mixture event may hold (bounds the work of one step's privacy loss).
_MAX_MIXTURE_COMPONENTS = 4096


@dataclasses.dataclass(frozen=True)
class SampledWithoutReplacement(Event):
    """``event`` run on a batch of exactly ``sample_size`` records drawn without replacement
    from ``dataset_size`` (fixed-size batches; dp_accounting's
    ``SampledWithoutReplacementDpEvent``).

    The guarantee is for **replace-one** neighbours (data sets of the same size differing in one
    record), so only accountants built with ``neighboring="replace_one"`` compose it. The inner
    event's noise is measured against the *replace-one* sensitivity of the batch query: for a
    DP-SGD sum of gradients clipped to norm ``C``, replacing one record moves the sum by up to
    ``2 C``, so DP-SGD with noise multiplier ``sigma`` is ``Gaussian(sigma / 2)`` here (the
    DP-SGD entry points such as :func:`accounting.dpsgd_epsilon` apply this themselves).

    Parameters
    ----------
    dataset_size : int
        Number of records ``n >= 1``.
    sample_size : int
        Batch size ``b`` in ``[0, n]``.
    event : Event
        The mechanism applied to the batch.
    """

    type_name: ClassVar[str] = "sampled_without_replacement"
    dataset_size: int
    sample_size: int
    event: Event

    def __post_init__(self):
        object.__setattr__(self, "dataset_size", check_positive_int(
            self.dataset_size, "dataset_size", MAX_DATASET_SIZE))
        size = check_steps(self.sample_size, "sample_size")
        if size > self.dataset_size:
            raise ValueError(f"sample_size must be a whole number in [0, dataset_size="
                             f"{self.dataset_size}], got {self.sample_size!r}")
        object.__setattr__(self, "sample_size", size)
        _check_event(self.event, "event")

    @property
    def sample_rate(self) -> float:
        """``sample_size / dataset_size``: each record's chance of being in the batch."""
        return self.sample_size / self.dataset_size


@dataclasses.dataclass(frozen=True)
class TruncatedPoissonGaussian(Event):
    """A Gaussian step on a Poisson sample capped at ``max_batch_size`` records: each of the
    ``dataset_size`` records is drawn with probability ``sample_rate``, and a batch larger than
    the cap is cut to a uniformly random subset of ``max_batch_size`` (fixed-shape batches for
    accelerators; dp_accounting's ``TruncatedSubsampledGaussianDpEvent``, arXiv 2508.15089).

    Add/remove neighbours; the noise multiplier is measured against the per-record
    sensitivity (the clipping norm), as for :class:`PoissonSampled`.

    Parameters
    ----------
    dataset_size : int
        Number of records ``n >= 1``.
    sample_rate : float
        Inclusion probability in ``[0, 1]``.
    max_batch_size : int
        Largest batch kept, a whole number ``>= 0``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, a finite number ``> 0``.
    """

    type_name: ClassVar[str] = "truncated_poisson_gaussian"
    dataset_size: int
    sample_rate: float
    max_batch_size: int
    noise_multiplier: float

    def __post_init__(self):
        object.__setattr__(self, "dataset_size", check_positive_int(
            self.dataset_size, "dataset_size", MAX_DATASET_SIZE))
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate, scalar=True))
        object.__setattr__(self, "max_batch_size", check_steps(self.max_batch_size,
                                                               "max_batch_size"))
        object.__setattr__(
            self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier, scalar=True)
        )


@dataclasses.dataclass(frozen=True)
class MixtureOfGaussians(Event):
    """The mixture-of-Gaussians mechanism (dp_accounting's ``MixtureOfGaussiansDpEvent``;
    Choquette-Choo et al. 2023, arXiv 2310.15526): on one data set the output is
    ``N(0, sigma^2)``, on its neighbour ``sum_i p_i N(c_i, sigma^2)``.

    With sensitivities ``(0, 1)`` and probabilities ``(1 - q, q)`` it is the Poisson-subsampled
    Gaussian; with sensitivities ``0..k`` and binomial probabilities it is a user's ``k``
    Poisson-sampled records (:func:`accounting.user_level_step`). Add/remove neighbours.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation, a finite number ``> 0``, in the unit of the sensitivities.
    sensitivities : sequence of float
        The shifts ``c_i >= 0``.
    probabilities : sequence of float
        Their probabilities ``p_i >= 0``, summing to 1 (to within ``1e-9``; stored as given).
    """

    type_name: ClassVar[str] = "mixture_of_gaussians"
    _number_lists: ClassVar[frozenset[str]] = frozenset({"sensitivities", "probabilities"})
    noise_multiplier: float
    sensitivities: tuple[float, ...]
    probabilities: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(
            self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier, scalar=True)
        )
        sensitivities = _check_numbers(self.sensitivities, "sensitivities")
        probabilities = _check_numbers(self.probabilities, "probabilities")
        if len(sensitivities) != len(probabilities):
            raise ValueError(f"sensitivities and probabilities must have the same length, got "
                             f"{len(sensitivities)} and {len(probabilities)}")
        if min(sensitivities) < 0:
            raise ValueError(f"sensitivities must all be >= 0, got {min(sensitivities)!r}")
        if min(probabilities) < 0 or max(probabilities) > 1:
            raise ValueError("probabilities must all lie in [0, 1]")
        if abs(math.fsum(probabilities) - 1.0) > 1e-9:
            raise ValueError(f"probabilities must sum to 1, got {math.fsum(probabilities)!r}")
        object.__setattr__(self, "sensitivities", sensitivities)
        object.__setattr__(self, "probabilities", probabilities)


@dataclasses.dataclass(frozen=True)
class RandomAllocation(Event):
    """One epoch of ``steps`` runs of ``event`` in which every record takes part in exactly
    ``selections`` of the steps, chosen uniformly at random and independently of the other
    records ("balls in bins", Chua et al. 2025; "random allocation", Feldman & Shenfeld 2025).

    Add/remove neighbours; the inner event's noise is measured against the per-record
    sensitivity.

    Parameters
    ----------
    steps : int
        Steps of the epoch, ``t >= 1``.
    event : Event
        The mechanism of one step (a :class:`Gaussian`).
    selections : int
        Steps each record takes part in, ``k`` in ``[1, t]`` (default 1).
    """

    type_name: ClassVar[str] = "random_allocation"
    steps: int
    event: Event
    selections: int = 1

    def __post_init__(self):
        object.__setattr__(self, "steps", check_positive_int(self.steps, "steps"))
        _check_event(self.event, "event")
        object.__setattr__(self, "selections",
                           check_positive_int(self.selections, "selections", self.steps))


@dataclasses.dataclass(frozen=True)
class ShuffledEpoch(Event):
    """One epoch of ``batches`` runs of ``event`` over a fresh random permutation of the data
    cut into consecutive batches: every record is used exactly once per epoch (Keras
    ``fit(shuffle=True)``, PyTorch's ``DataLoader(shuffle=True)``).

    Its certified bound needs no amplification: each record enters one step, so the epoch is
    ``event`` once (TF Privacy's "each example once per epoch" figure) for the *zero-out*
    relation (a record replaced by one that contributes nothing; Kairouz et al. 2021). The
    Poisson figure for the same sample rate is **not** a bound for it: Chua et al. (ICML 2024)
    show the true epsilon can be several times larger (:func:`accounting.shuffle_lower_bound`).

    Parameters
    ----------
    batches : int
        Steps of the epoch, ``t >= 1`` (the lower bound of Chua et al. needs it).
    event : Event
        The mechanism of one step (a :class:`Gaussian`).
    """

    type_name: ClassVar[str] = "shuffled_epoch"
    batches: int
    event: Event

    def __post_init__(self):
        object.__setattr__(self, "batches", check_positive_int(self.batches, "batches"))
        _check_event(self.event, "event")
