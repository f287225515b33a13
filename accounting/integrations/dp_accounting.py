"""Interop with Google's dp_accounting: its ``DpEvent`` trees to accounting events and back.

TF Privacy, jax-privacy and TensorFlow Federated describe what a training run did as a
dp_accounting ``DpEvent`` tree. :func:`from_dp_event` translates such a tree into
:mod:`accounting.events`, which this package's accountants compose, and :func:`to_dp_event`
translates an accounting event back, to hand it to dp_accounting's own accountants.

:func:`from_dp_event` never imports dp_accounting: it recognises events by class name and reads
their fields (dp_accounting 0.6, ``dp_accounting.dp_event``), so a tree can be converted where
dp_accounting is not installed, and the ``to_named_tuple()`` form of an event (a ``NamedTuple``
with ``class_name``, meant for passing events around without dp_accounting) converts too.
:func:`to_dp_event` imports dp_accounting when it is called.

The translation is one to one for the nine event types both vocabularies share (the six of
the Poisson-sampled Gaussian, and ``SampledWithoutReplacementDpEvent`` /
:class:`~accounting.events.SampledWithoutReplacement`, ``TruncatedSubsampledGaussianDpEvent`` /
:class:`~accounting.events.TruncatedPoissonGaussian`, ``MixtureOfGaussiansDpEvent`` /
:class:`~accounting.events.MixtureOfGaussians`, field for field), with these exceptions, each an
exact equivalence or dp_accounting's own reading of the event:

* ``GaussianDpEvent(0)`` is the non-private Gaussian: dp_accounting's RDP accountant gives it
  infinite RDP (epsilon ``inf``), so it becomes :class:`~accounting.events.NonPrivate`.
  ``GaussianDpEvent(inf)`` releases nothing (dp_accounting: RDP 0) and becomes
  :class:`~accounting.events.NoOp`. A negative or NaN noise multiplier is a ``ValueError``
  (dp_accounting 0.6 reports epsilon 0 for NaN).
* The event under a ``PoissonSampledDpEvent`` may be a ``ComposedDpEvent`` /
  ``SelfComposedDpEvent`` tree of Gaussians: several Gaussian queries on the same sample are one
  Gaussian query with noise multiplier ``(sum_i sigma_i^-2)^-1/2`` (McMahan et al. 2018, "A
  General Approach to Adding Differential Privacy to Iterative Training Procedures", Sec. 3;
  dp_accounting's ``_effective_gaussian_noise_multiplier``), which is what the tree becomes,
  computed with dp_accounting's formula. No-ops in it count for nothing. A sampled
  tree that is non-private (a non-private event, or a Gaussian with noise 0, in it) becomes
  :class:`~accounting.events.NonPrivate` when the sampling probability is positive (infinite RDP,
  as dp_accounting computes for ``PoissonSampledDpEvent(q, GaussianDpEvent(0))``) and a sampled
  no-op at probability 0. Anything else under a sampling event (another sampling event) is
  translated as it is, for the accountant to accept or refuse.
* The same merging applies under a ``SampledWithoutReplacementDpEvent``. A truncated or mixture
  event with noise 0 is :class:`~accounting.events.NonPrivate` (dp_accounting's PLD accountant
  treats it so), and a truncated event with sampling probability 0 or batch cap 0 is
  :class:`~accounting.events.NoOp`.
* Accounting events met in the tree are kept as they are (but for the merging of Gaussians
  under a ``PoissonSampledDpEvent``), so :func:`from_dp_event` is idempotent.

Every other dp_accounting event (Laplace, sampling with replacement, tree aggregation,
randomized response, zCDP, ``UnsupportedDpEvent``, ...) is a ``ValueError`` that names it and the
supported types. :class:`~accounting.events.RandomAllocation` and
:class:`~accounting.events.ShuffledEpoch` have no dp_accounting event.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from accounting._validation import check_real_array, check_sample_rate
from accounting.events import (
    Composed,
    Event,
    Gaussian,
    MixtureOfGaussians,
    NonPrivate,
    NoOp,
    PoissonSampled,
    SampledWithoutReplacement,
    SelfComposed,
    TruncatedPoissonGaussian,
)

__all__ = ["from_dp_event", "to_dp_event"]

_INSTALL_HINT = "to_dp_event needs dp_accounting: pip install dp-accounting"


def from_dp_event(event: Any) -> Event:
    """The accounting event that describes a dp_accounting ``DpEvent`` tree.

    Parameters
    ----------
    event : dp_accounting.dp_event.DpEvent or accounting.events.Event
        A tree of ``GaussianDpEvent(noise_multiplier)``,
        ``PoissonSampledDpEvent(sampling_probability, event)``,
        ``SelfComposedDpEvent(event, count)``, ``ComposedDpEvent(events)``, ``NoOpDpEvent()`` and
        ``NonPrivateDpEvent()`` (recognised by class name, subclasses and the ``to_named_tuple()``
        form included; dp_accounting is not imported), possibly holding accounting events, which
        are kept as they are.

    Returns
    -------
    accounting.events.Event
        The same mechanism as accounting events, with the exceptions listed in the module
        docstring (noise multipliers 0 and ``inf``; Gaussian trees under Poisson sampling merged
        into one Gaussian).

    Raises
    ------
    ValueError
        For a dp_accounting event type that has no accounting event (the message names it and the
        supported types), or a field out of range (negative or NaN noise, a sampling probability
        outside ``[0, 1]``, a negative or fractional count); the message gives the event's place
        in the tree.
    TypeError
        For something that is neither a dp_accounting event nor an accounting event, or a field
        of the wrong type.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class GaussianDpEvent:  # stands in for dp_accounting's class of that name
    ...     noise_multiplier: float
    >>> from_dp_event(GaussianDpEvent(1.1))
    Gaussian(noise_multiplier=1.1)
    >>> from_dp_event(GaussianDpEvent(0.0))
    NonPrivate()
    """
    return _from_dp_event(event, "event")


def to_dp_event(event: Event) -> Any:
    """The dp_accounting ``DpEvent`` tree that describes an accounting event.

    Parameters
    ----------
    event : accounting.events.Event
        A tree of :class:`~accounting.events.Gaussian`,
        :class:`~accounting.events.PoissonSampled`, :class:`~accounting.events.SelfComposed`,
        :class:`~accounting.events.Composed`, :class:`~accounting.events.NoOp` and
        :class:`~accounting.events.NonPrivate`. A dp_accounting ``DpEvent`` anywhere in it is
        kept as it is.

    Returns
    -------
    dp_accounting.dp_event.DpEvent
        ``GaussianDpEvent``, ``PoissonSampledDpEvent``, ``SelfComposedDpEvent``,
        ``ComposedDpEvent`` (whose ``events`` is a list, as dp_accounting types it),
        ``NoOpDpEvent`` and ``NonPrivateDpEvent``, one for one; numbers are Python floats and
        ints. ``from_dp_event(to_dp_event(event)) == event`` for every tree whose sampled events
        are Gaussians or no-ops.

    Raises
    ------
    ImportError
        When dp_accounting is not installed (``pip install dp-accounting``).
    ValueError
        For an accounting event type that dp_accounting has no event for.
    TypeError
        For something that is not an accounting event.

    Notes
    -----
    dp_accounting's ``RdpAccountant`` refuses ``PoissonSampledDpEvent`` over a
    ``NoOpDpEvent`` (its sampled event must be built of Gaussians), though this package's
    accountants accept ``PoissonSampled(q, NoOp())``; the translation stays one for one.
    """
    try:
        from dp_accounting import dp_event
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return _to_dp_event(event, dp_event, "event")


# --- from dp_accounting ---------------------------------------------------------------------


def _from_gaussian(event, path: str) -> Event:
    sigma = _real(_field(event, "noise_multiplier", path), "noise_multiplier", path)
    if math.isnan(sigma) or sigma < 0.0:
        raise ValueError(
            f"GaussianDpEvent at {path}: noise_multiplier must be >= 0 (0: non-private, "
            f"inf: no release), got {sigma!r}"
        )
    if sigma == 0.0:
        return NonPrivate()
    if sigma == math.inf:
        return NoOp()
    return _build("GaussianDpEvent", path, Gaussian, noise_multiplier=sigma)


def _from_poisson_sampled(event, path: str) -> Event:
    try:  # named as dp_accounting names it
        rate = check_sample_rate(_field(event, "sampling_probability", path),
                                 "sampling_probability", scalar=True)
    except (TypeError, ValueError) as error:
        raise type(error)(f"PoissonSampledDpEvent at {path}: {error}") from error
    inner = _from_dp_event(_field(event, "event", path), f"{path}.event")
    # validates the rate (and gives it as a float) before it is used below
    sampled_no_op = _build("PoissonSampledDpEvent", path, PoissonSampled,
                           sample_rate=rate, event=NoOp())
    if isinstance(inner, (Gaussian, NoOp)):
        return PoissonSampled(sampled_no_op.sample_rate, inner)
    sigma = _effective_noise_multiplier(inner)
    if sigma is None:  # not a tree of Gaussians: translated as it is
        return PoissonSampled(sampled_no_op.sample_rate, inner)
    if sigma == math.inf:
        return sampled_no_op
    if sigma == 0.0:
        return NonPrivate() if sampled_no_op.sample_rate > 0.0 else sampled_no_op
    return PoissonSampled(sampled_no_op.sample_rate, Gaussian(sigma))


def _from_without_replacement(event, path: str) -> Event:
    size = _field(event, "source_dataset_size", path)
    sample = _field(event, "sample_size", path)
    inner = _from_dp_event(_field(event, "event", path), f"{path}.event")
    sigma = None if isinstance(inner, (Gaussian, NoOp)) else _effective_noise_multiplier(inner)
    if sigma == math.inf:
        inner = NoOp()
    elif sigma == 0.0:
        inner = NonPrivate()
    elif sigma is not None:
        inner = Gaussian(sigma)
    try:
        return SampledWithoutReplacement(size, sample, inner)
    except (TypeError, ValueError) as error:  # named as dp_accounting names the fields
        message = str(error).replace("dataset_size", "source_dataset_size")
        raise type(error)(f"SampledWithoutReplacementDpEvent at {path}: {message}") from error


def _from_truncated(event, path: str) -> Event:
    names = {"dataset_size": "dataset_size", "sample_rate": "sampling_probability",
             "max_batch_size": "truncated_batch_size", "noise_multiplier": "noise_multiplier"}
    fields = {ours: _field(event, theirs, path) for ours, theirs in names.items()}
    sigma = fields["noise_multiplier"]
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and sigma == 0:
        fields["noise_multiplier"] = 1.0  # validates the other fields
    try:
        built = TruncatedPoissonGaussian(**fields)
    except (TypeError, ValueError) as error:
        message = str(error)
        for ours, theirs in names.items():
            message = message.replace(ours, theirs)
        raise type(error)(f"TruncatedSubsampledGaussianDpEvent at {path}: {message}") from error
    if built.sample_rate == 0.0 or built.max_batch_size == 0:
        return NoOp()
    return NonPrivate() if sigma == 0 else built


def _from_mixture(event, path: str) -> Event:
    sigma = _field(event, "standard_deviation", path)
    sensitivities = _field(event, "sensitivities", path)
    probabilities = _field(event, "sampling_probs", path)
    zero = isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and sigma == 0
    try:
        built = MixtureOfGaussians(1.0 if zero else sigma, sensitivities, probabilities)
    except (TypeError, ValueError) as error:
        message = (str(error).replace("noise_multiplier", "standard_deviation")
                   .replace("probabilities", "sampling_probs"))
        raise type(error)(f"MixtureOfGaussiansDpEvent at {path}: {message}") from error
    return NonPrivate() if zero else built


def _from_self_composed(event, path: str) -> Event:
    inner = _from_dp_event(_field(event, "event", path), f"{path}.event")
    count = _field(event, "count", path)
    return _build("SelfComposedDpEvent", path, SelfComposed, event=inner, count=count)


def _from_composed(event, path: str) -> Event:
    events = _field(event, "events", path)
    if isinstance(events, (str, bytes)) or not hasattr(events, "__iter__"):
        raise TypeError(
            f"ComposedDpEvent at {path}: events must be a sequence of events, "
            f"got {type(events).__name__}"
        )
    return Composed(tuple(
        _from_dp_event(item, f"{path}.events[{index}]") for index, item in enumerate(events)
    ))


_FROM: dict[str, Callable[[Any, str], Event]] = {
    "GaussianDpEvent": _from_gaussian,
    "PoissonSampledDpEvent": _from_poisson_sampled,
    "SelfComposedDpEvent": _from_self_composed,
    "ComposedDpEvent": _from_composed,
    "SampledWithoutReplacementDpEvent": _from_without_replacement,
    "TruncatedSubsampledGaussianDpEvent": _from_truncated,
    "MixtureOfGaussiansDpEvent": _from_mixture,
    "NoOpDpEvent": lambda event, path: NoOp(),
    "NonPrivateDpEvent": lambda event, path: NonPrivate(),
}
_SUPPORTED = ", ".join(_FROM)


def _from_dp_event(event, path: str) -> Event:
    if isinstance(event, Event):
        return event
    name = _dp_class_name(event)
    if name in _FROM:
        return _FROM[name](event, path)
    if name is None:
        raise TypeError(
            f"{path} must be a dp_accounting DpEvent or an accounting event, "
            f"got {type(event).__name__}"
        )
    raise ValueError(
        f"dp_accounting's {name} (at {path}) has no accounting event; from_dp_event converts "
        f"{_SUPPORTED} (accounting.events: Gaussian, PoissonSampled, SampledWithoutReplacement, "
        f"TruncatedPoissonGaussian, MixtureOfGaussians, SelfComposed, Composed, NoOp, "
        f"NonPrivate)"
    )


def _dp_class_name(event) -> str | None:
    """The dp_accounting class ``event`` is (or derives from), or ``None`` if it is none."""
    if isinstance(event, tuple) and "class_name" in getattr(event, "_fields", ()):
        name = event.class_name  # the to_named_tuple() form
        return name.decode() if isinstance(name, bytes) else str(name)
    classes = type(event).__mro__
    for cls in classes:
        if cls.__name__ in _FROM:
            return cls.__name__
    if any(cls.__name__ == "DpEvent" or cls.__name__.endswith("DpEvent") for cls in classes):
        return type(event).__name__
    return None


def _field(event, name: str, path: str):
    try:
        return getattr(event, name)
    except AttributeError:
        raise TypeError(
            f"{_dp_class_name(event)} at {path} has no field {name!r}"
        ) from None


def _real(value, name: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} at {path} must be a real number, got {type(value).__name__}")
    # the shared check: an int beyond the float range is a ValueError naming the field
    return float(check_real_array(value, f"{name} at {path}"))


def _build(dp_name: str, path: str, cls: type[Event], **fields) -> Any:
    """``cls(**fields)``, with the event's dp_accounting name and place in any error."""
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{dp_name} at {path}: {error}") from error


def _effective_noise_multiplier(event: Event) -> float | None:
    """Noise multiplier of the one Gaussian query equivalent to a tree of Gaussian queries.

    ``inf`` for a tree with no query (no-ops, empty compositions, zero counts), ``0`` for a
    non-private one, ``None`` for a tree with other events in it. Composition sums
    ``sigma^-2`` in dp_accounting's order, so the result is bit-for-bit dp_accounting's.
    """
    if isinstance(event, Gaussian):
        return event.noise_multiplier
    if isinstance(event, NoOp):
        return math.inf
    if isinstance(event, NonPrivate):
        return 0.0
    if isinstance(event, SelfComposed):
        sigma = _effective_noise_multiplier(event.event)
        if sigma is None or event.count == 0:
            return None if sigma is None else math.inf
        if sigma in (0.0, math.inf):
            return sigma
        try:
            return sigma * event.count**-0.5
        except OverflowError:  # a count beyond the float range; math.log takes any int
            return math.exp(math.log(sigma) - 0.5 * math.log(event.count))
    if isinstance(event, Composed):
        sigmas = [_effective_noise_multiplier(item) for item in event.events]
        if any(sigma is None for sigma in sigmas):
            return None
        if any(sigma == 0.0 for sigma in sigmas):
            return 0.0
        total = 0.0
        try:
            for sigma in sigmas:
                total += sigma**-2  # inf ** -2 == 0: a no-op adds nothing
        except OverflowError:  # sigma below 1e-154: sigma^-2 is beyond the float range
            return 0.0
        return math.inf if total == 0.0 else total**-0.5
    return None


# --- to dp_accounting -----------------------------------------------------------------------


def _to_dp_event(event, dp_event, path: str):
    if isinstance(event, dp_event.DpEvent):
        return event
    if not isinstance(event, Event):
        raise TypeError(f"{path} must be an accounting event, got {type(event).__name__}")
    if isinstance(event, Gaussian):
        return dp_event.GaussianDpEvent(noise_multiplier=float(event.noise_multiplier))
    if isinstance(event, PoissonSampled):
        return dp_event.PoissonSampledDpEvent(
            sampling_probability=float(event.sample_rate),
            event=_to_dp_event(event.event, dp_event, f"{path}.event"),
        )
    if isinstance(event, SelfComposed):
        return dp_event.SelfComposedDpEvent(
            event=_to_dp_event(event.event, dp_event, f"{path}.event"), count=int(event.count)
        )
    if isinstance(event, Composed):
        return dp_event.ComposedDpEvent(events=[
            _to_dp_event(item, dp_event, f"{path}.events[{index}]")
            for index, item in enumerate(event.events)
        ])
    if isinstance(event, SampledWithoutReplacement):
        return dp_event.SampledWithoutReplacementDpEvent(
            source_dataset_size=int(event.dataset_size), sample_size=int(event.sample_size),
            event=_to_dp_event(event.event, dp_event, f"{path}.event"),
        )
    if isinstance(event, TruncatedPoissonGaussian):
        return dp_event.TruncatedSubsampledGaussianDpEvent(
            dataset_size=int(event.dataset_size),
            sampling_probability=float(event.sample_rate),
            truncated_batch_size=int(event.max_batch_size),
            noise_multiplier=float(event.noise_multiplier),
        )
    if isinstance(event, MixtureOfGaussians):
        return dp_event.MixtureOfGaussiansDpEvent(
            standard_deviation=float(event.noise_multiplier),
            sensitivities=list(event.sensitivities), sampling_probs=list(event.probabilities),
        )
    if isinstance(event, NoOp):
        return dp_event.NoOpDpEvent()
    if isinstance(event, NonPrivate):
        return dp_event.NonPrivateDpEvent()
    raise ValueError(
        f"{type(event).__name__} (at {path}) has no dp_accounting event; to_dp_event converts "
        "Gaussian, PoissonSampled, SampledWithoutReplacement, TruncatedPoissonGaussian, "
        "MixtureOfGaussians, SelfComposed, Composed, NoOp and NonPrivate"
    )
