"""Mechanism events (accounting.events): validation, immutability, value semantics, repr and the
to_dict / from_dict round trip through JSON."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import events as events_module
from accounting.events import (
    Composed,
    Event,
    Gaussian,
    NonPrivate,
    NoOp,
    PoissonSampled,
    SelfComposed,
    event_types,
)

# ------------------------------------------------------------------------------ strategies
noise_multipliers = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False,
                              allow_infinity=False, allow_subnormal=False)
sample_rates = st.one_of(st.sampled_from([0.0, 1.0, 0.5]),
                         st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
counts = st.one_of(st.integers(min_value=0, max_value=100),
                   st.integers(min_value=0, max_value=10**30),
                   st.sampled_from([10**30, 10**30 - 1, 2**63, 2**64 + 1]))
leaves = st.one_of(
    st.just(NoOp()),
    st.just(NonPrivate()),
    noise_multipliers.map(Gaussian),
)


def _extend(children):
    return st.one_of(
        st.builds(PoissonSampled, sample_rates, children),
        st.builds(SelfComposed, children, counts),
        st.builds(Composed, st.lists(children, max_size=4)),
        st.builds(lambda items: Composed(tuple(items)), st.lists(children, max_size=3)),
    )


event_trees = st.recursive(leaves, _extend, max_leaves=12)


def json_round_trip(event: Event) -> Event:
    return Event.from_dict(json.loads(json.dumps(event.to_dict())))


# ------------------------------------------------------------------------------ construction
@pytest.mark.parametrize(
    ("build", "error", "argument"),
    [
        (lambda: Gaussian(0.0), ValueError, "noise_multiplier"),
        (lambda: Gaussian(-1.0), ValueError, "noise_multiplier"),
        (lambda: Gaussian(math.nan), ValueError, "noise_multiplier"),
        (lambda: Gaussian(math.inf), ValueError, "noise_multiplier"),
        (lambda: Gaussian("1.0"), TypeError, "noise_multiplier"),
        (lambda: Gaussian(None), TypeError, "noise_multiplier"),
        (lambda: Gaussian(True), TypeError, "noise_multiplier"),
        (lambda: Gaussian([1.0]), (TypeError, ValueError), "noise_multiplier"),
        (lambda: PoissonSampled(1.5, Gaussian(1.0)), ValueError, "sample_rate"),
        (lambda: PoissonSampled(-0.1, Gaussian(1.0)), ValueError, "sample_rate"),
        (lambda: PoissonSampled(math.nan, Gaussian(1.0)), ValueError, "sample_rate"),
        (lambda: PoissonSampled("0.5", Gaussian(1.0)), TypeError, "sample_rate"),
        (lambda: PoissonSampled(0.5, 1.0), TypeError, "event"),
        (lambda: PoissonSampled(0.5, None), TypeError, "event"),
        (lambda: PoissonSampled(0.5, {"type": "no_op"}), TypeError, "event"),
        (lambda: SelfComposed(NoOp(), -1), ValueError, "count"),
        (lambda: SelfComposed(NoOp(), 1.5), ValueError, "count"),
        (lambda: SelfComposed(NoOp(), math.inf), (TypeError, ValueError), "count"),
        (lambda: SelfComposed(NoOp(), "3"), TypeError, "count"),
        (lambda: SelfComposed(NoOp(), True), TypeError, "count"),
        (lambda: SelfComposed(3, 2), TypeError, "event"),
        (lambda: Composed(NoOp()), TypeError, "events"),
        (lambda: Composed(3), TypeError, "events"),
        (lambda: Composed("ab"), TypeError, "events"),
        (lambda: Composed({"type": "no_op"}), TypeError, "events"),
        (lambda: Composed([NoOp(), 2]), TypeError, "events[1]"),
        (lambda: Composed([None]), TypeError, "events[0]"),
    ],
)
def test_invalid_fields_raise_naming_the_argument(build, error, argument):
    with pytest.raises(error) as caught:
        build()
    assert argument in str(caught.value)


def test_valid_fields_are_normalised():
    assert type(Gaussian(2).noise_multiplier) is float
    assert Gaussian(np.float64(1.5)).noise_multiplier == 1.5
    assert type(Gaussian(np.float32(0.5)).noise_multiplier) is float
    assert PoissonSampled(1, NoOp()).sample_rate == 1.0
    assert type(PoissonSampled(np.float64(0.25), NoOp()).sample_rate) is float
    assert SelfComposed(NoOp(), 3.0).count == 3 and type(SelfComposed(NoOp(), 3.0).count) is int
    assert type(SelfComposed(NoOp(), np.int64(7)).count) is int
    assert SelfComposed(NoOp(), 10**30).count == 10**30  # exact, beyond float precision
    assert Composed([NoOp(), Gaussian(1.0)]).events == (NoOp(), Gaussian(1.0))
    assert Composed(iter([NoOp()])).events == (NoOp(),)
    assert Composed(()).events == ()
    assert PoissonSampled(0.0, NonPrivate()).sample_rate == 0.0
    assert SelfComposed(Gaussian(1.0), 0).count == 0


def test_event_types_registry():
    types = event_types()
    built_in = {
        "no_op": NoOp, "non_private": NonPrivate, "gaussian": Gaussian,
        "poisson_sampled": PoissonSampled, "self_composed": SelfComposed, "composed": Composed,
    }
    assert {name: types[name] for name in built_in} == built_in  # others may add more
    types["gaussian"] = NoOp  # a copy: the registry is unchanged
    assert event_types()["gaussian"] is Gaussian
    assert set(events_module.__all__) >= {"Event", "Gaussian", "NoOp", "NonPrivate",
                                          "PoissonSampled", "SelfComposed", "Composed"}


def test_a_type_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="gaussian"):
        @dataclasses.dataclass(frozen=True)
        class Impostor(Event):
            type_name = "gaussian"
    assert event_types()["gaussian"] is Gaussian


# ------------------------------------------------------------------------------ value semantics
@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (Gaussian(1.0), "noise_multiplier", 2.0),
        (PoissonSampled(0.5, NoOp()), "sample_rate", 0.1),
        (PoissonSampled(0.5, NoOp()), "event", NonPrivate()),
        (SelfComposed(NoOp(), 2), "count", 3),
        (Composed([NoOp()]), "events", ()),
    ],
)
def test_events_are_immutable(event, field, value):
    before = repr(event)
    with pytest.raises(AttributeError):
        setattr(event, field, value)
    with pytest.raises(AttributeError):
        delattr(event, field)
    assert repr(event) == before


def test_composed_keeps_no_reference_to_a_mutable_list():
    items = [Gaussian(1.0)]
    event = Composed(items)
    items.append(NonPrivate())
    assert event.events == (Gaussian(1.0),)
    assert isinstance(event.events, tuple)


def test_equality_and_hash():
    assert Gaussian(1) == Gaussian(1.0)
    assert hash(Gaussian(1)) == hash(Gaussian(1.0))
    assert Gaussian(1.0) != Gaussian(1.0 + 2**-52)
    assert NoOp() == NoOp() and hash(NoOp()) == hash(NoOp())
    assert NoOp() != NonPrivate()
    assert PoissonSampled(0.5, Gaussian(1.0)) == PoissonSampled(0.5, Gaussian(1.0))
    assert PoissonSampled(0.5, Gaussian(1.0)) != PoissonSampled(0.5, Gaussian(2.0))
    assert PoissonSampled(0.5, Gaussian(1.0)) != PoissonSampled(0.25, Gaussian(1.0))
    assert SelfComposed(NoOp(), 10**30) != SelfComposed(NoOp(), 10**30 + 1)
    assert Composed([NoOp(), Gaussian(1.0)]) == Composed((NoOp(), Gaussian(1.0)))
    assert Composed([NoOp(), Gaussian(1.0)]) != Composed([Gaussian(1.0), NoOp()])
    # structurally different events are different even where they account the same
    assert SelfComposed(Gaussian(1.0), 1) != Gaussian(1.0)
    assert Composed([Gaussian(1.0)]) != Gaussian(1.0)
    assert Gaussian(1.0) != 1.0 and Gaussian(1.0) != {"type": "gaussian", "noise_multiplier": 1.0}
    as_keys = {Gaussian(1): "a", SelfComposed(Composed([NoOp()]), 3): "b"}
    assert as_keys[Gaussian(1.0)] == "a"
    assert as_keys[SelfComposed(Composed((NoOp(),)), 3)] == "b"
    assert len({NoOp(), NoOp(), NonPrivate(), Gaussian(2.0), Gaussian(2)}) == 3


@given(event_trees)
@settings(max_examples=100, deadline=None)
def test_copies_are_equal_and_hash_alike(event):
    twin = json_round_trip(event)
    assert twin == event and hash(twin) == hash(event)
    assert twin is not event or isinstance(event, (NoOp, NonPrivate))


def test_repr():
    assert repr(Gaussian(1.1)) == "Gaussian(noise_multiplier=1.1)"
    assert repr(NoOp()) == "NoOp()"
    assert repr(NonPrivate()) == "NonPrivate()"
    assert repr(PoissonSampled(0.25, Gaussian(2))) == (
        "PoissonSampled(sample_rate=0.25, event=Gaussian(noise_multiplier=2.0))"
    )
    assert repr(SelfComposed(NoOp(), 10**30)) == (
        "SelfComposed(event=NoOp(), count=1000000000000000000000000000000)"
    )
    assert repr(Composed([NoOp(), NonPrivate()])) == "Composed(events=(NoOp(), NonPrivate()))"


@given(event_trees)
@settings(max_examples=100, deadline=None)
def test_repr_evaluates_back_to_the_event(event):
    namespace = {cls.__name__: cls for cls in event_types().values()}
    namespace["inf"] = math.inf
    assert eval(repr(event), namespace) == event  # noqa: S307 - our own repr


# ------------------------------------------------------------------------------ to_dict / from_dict
def test_to_dict_layout():
    run = SelfComposed(PoissonSampled(256 / 60000, Gaussian(1.1)), 14063)
    assert run.to_dict() == {
        "type": "self_composed",
        "event": {"type": "poisson_sampled", "sample_rate": 256 / 60000,
                  "event": {"type": "gaussian", "noise_multiplier": 1.1}},
        "count": 14063,
    }
    assert Composed([NoOp(), NonPrivate()]).to_dict() == {
        "type": "composed", "events": [{"type": "no_op"}, {"type": "non_private"}]
    }
    assert Composed([]).to_dict() == {"type": "composed", "events": []}


def _only_json_types(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_json_types(item) for item in value)
    return type(value) in (str, int, float)


@given(event_trees)
@settings(max_examples=200, deadline=None)
def test_json_round_trip(event):
    data = event.to_dict()
    assert _only_json_types(data)
    text = json.dumps(data, allow_nan=False)  # plain JSON: no NaN or Infinity either
    back = Event.from_dict(json.loads(text))
    assert back == event
    assert type(back) is type(event)
    assert back.to_dict() == data
    # each concrete class reads its own dict too
    assert type(event).from_dict(json.loads(text)) == event


@given(counts)
def test_huge_counts_survive_json_exactly(count):
    event = SelfComposed(PoissonSampled(0.01, Gaussian(1.0)), count)
    back = json_round_trip(event)
    assert back.count == count and type(back.count) is int


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        ({"type": "laplace", "scale": 1.0}, ValueError, "laplace"),
        ({"type": "laplace"}, ValueError, "known types"),
        ({}, ValueError, "unknown event type"),
        ({"noise_multiplier": 1.0}, ValueError, "unknown event type"),
        ({"type": None}, ValueError, "unknown event type"),
        ({"type": "gaussian", "noise_multiplier": 1.0, "scale": 2.0}, ValueError, "scale"),
        ({"type": "no_op", "count": 1}, ValueError, "count"),
        ({"type": "gaussian"}, TypeError, "noise_multiplier"),
        ({"type": "gaussian", "noise_multiplier": -1.0}, ValueError, "noise_multiplier"),
        ({"type": "poisson_sampled", "sample_rate": 0.5, "event": 3}, TypeError, "event"),
        ({"type": "poisson_sampled", "sample_rate": 0.5,
          "event": {"type": "gaussian", "noise_multiplier": 1.0, "x": 1}}, ValueError, "'x'"),
        ({"type": "self_composed", "event": {"type": "no_op"}, "count": -2}, ValueError, "count"),
        ({"type": "composed", "events": [{"type": "no_op"}, {"type": "bogus"}]}, ValueError,
         "bogus"),
        ([{"type": "no_op"}], TypeError, "mapping"),
        ("no_op", TypeError, "mapping"),
        (None, TypeError, "mapping"),
    ],
)
def test_from_dict_rejects_bad_data_clearly(data, error, needle):
    with pytest.raises(error) as caught:
        Event.from_dict(data)
    assert needle in str(caught.value)


def test_from_dict_unknown_type_lists_the_known_ones():
    with pytest.raises(ValueError) as caught:
        Event.from_dict({"type": "laplace"})
    for name in ("gaussian", "poisson_sampled", "self_composed", "composed", "no_op",
                 "non_private"):
        assert name in str(caught.value)


@pytest.mark.parametrize("kind", [["gaussian"], {"a": 1}])
def test_from_dict_unhashable_type_is_an_unknown_type(kind):
    with pytest.raises((ValueError, TypeError), match="event type"):
        Event.from_dict({"type": kind})


@pytest.mark.parametrize(
    ("data", "field"),
    [({"type": "gaussian", "noise_multiplier": {"a": 1}}, "noise_multiplier"),
     ({"type": "poisson_sampled", "sample_rate": {"a": 1}, "event": {"type": "no_op"}},
      "sample_rate"),
     ({"type": "self_composed", "event": {"type": "no_op"}, "count": {"a": 1}}, "count")],
)
def test_from_dict_names_the_field_holding_a_bad_mapping(data, field):
    with pytest.raises((ValueError, TypeError), match=field):
        Event.from_dict(data)
