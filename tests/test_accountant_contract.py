"""The accountant contract (accounting.accountant) held by every registered accountant: events
compose as their (q, sigma, steps) shorthand does, unsupported events are refused atomically and
named, the ledger replays, copies are independent and state survives JSON."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import accounting
from accounting import reference
from accounting.accountant import STATE_FORMAT
from accounting.events import (
    Composed,
    Event,
    Gaussian,
    NonPrivate,
    NoOp,
    PoissonSampled,
    SelfComposed,
)

# brackets wider than the tolerance (tiny or saturated deltas) are certified all the same
pytestmark = pytest.mark.filterwarnings("ignore::accounting.ToleranceNotMetWarning")

BUILT_IN = ("rdp", "moments", "pld")
DELTA = 1e-5


def make(name: str, **options) -> accounting.Accountant:
    """A fresh accountant; PLD at tolerance 1e-3 (fast enough for property tests)."""
    if name == "pld":
        options.setdefault("tolerance", 1e-3)
    return accounting.make_accountant(name, **options)


def step(q: float, sigma: float) -> PoissonSampled:
    return PoissonSampled(q, Gaussian(sigma))


def epsilon(acc) -> float:
    return acc.get_epsilon(DELTA)


def examples(name: str) -> int:
    return 6 if name == "pld" else 40


SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

sample_rates = st.sampled_from([1e-3, 0.01, 256 / 60000, 0.05, 0.2, 1.0])
noise_multipliers = st.sampled_from([0.8, 1.0, 1.1, 2.0, 4.0])
small_counts = st.integers(min_value=1, max_value=200)


# ------------------------------------------------------------------------------ a custom event
@dataclasses.dataclass(frozen=True)
class ContractLaplace(Event):
    """A mechanism the built-in accountants do not handle (pure epsilon = 1 / scale)."""

    type_name = "test_contract_laplace"
    scale: float


class LaplaceAccountant(accounting.Accountant):
    """A toy third-party accountant: basic composition of Laplace mechanisms (and no-ops)."""

    name = "test-laplace"

    def __init__(self):
        super().__init__()
        self.total = 0.0

    def _plan(self, event, count):
        if isinstance(event, ContractLaplace):
            return count / event.scale
        if isinstance(event, NoOp):
            return 0.0
        if isinstance(event, SelfComposed):
            return self._plan(event.event, count * event.count)
        if isinstance(event, Composed):
            return sum(self._plan(child, count) for child in event.events)
        raise accounting.UnsupportedEventError(f"{type(event).__name__} is not Laplace")

    def _apply(self, plan):
        self.total += plan

    def _options(self):
        return {}

    def get_epsilon(self, delta):
        return self.total

    def get_delta(self, epsilon):
        return 0.0 if epsilon >= self.total else 1.0


@pytest.fixture
def laplace_registered():
    accounting.register_accountant("test-laplace", LaplaceAccountant, "toy Laplace accountant")
    try:
        yield "test-laplace"
    finally:
        accounting.unregister_accountant("test-laplace")


# ------------------------------------------------------------------------------ composition forms
def test_built_ins_are_registered():
    assert set(BUILT_IN) <= set(accounting.accountants())


@pytest.mark.parametrize("name", BUILT_IN)
def test_self_composed_step_equals_the_shorthand(name):
    @given(q=sample_rates, sigma=noise_multipliers, n=small_counts)
    @settings(max_examples=examples(name), **SETTINGS)
    def check(q, sigma, n):
        by_event = make(name).compose(SelfComposed(step(q, sigma), n))
        by_event_count = make(name).compose(step(q, sigma), n)
        by_shorthand = make(name).compose(q, sigma, n)
        by_keywords = make(name).compose(sample_rate=q, noise_multiplier=sigma, steps=n)
        expected = epsilon(by_shorthand)
        assert epsilon(by_event) == expected
        assert epsilon(by_event_count) == expected
        assert epsilon(by_keywords) == expected
        assert by_event.get_delta(1.0) == by_shorthand.get_delta(1.0)

    check()


@pytest.mark.parametrize("name", BUILT_IN)
def test_composed_equals_composing_in_turn(name):
    @given(q1=sample_rates, s1=noise_multipliers, n1=small_counts,
           q2=sample_rates, s2=noise_multipliers, n2=small_counts)
    @settings(max_examples=examples(name), **SETTINGS)
    def check(q1, s1, n1, q2, s2, n2):
        a, b = SelfComposed(step(q1, s1), n1), SelfComposed(step(q2, s2), n2)
        together = make(name).compose(Composed([a, b]))
        in_turn = make(name).compose(a).compose(b)
        assert epsilon(together) == epsilon(in_turn)
        assert together.get_delta(2.0) == in_turn.get_delta(2.0)

    check()


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("sigma", [0.9, 2.0, 7.5])
def test_unsampled_gaussian_is_a_step_at_rate_one(name, sigma):
    alone = make(name).compose(Gaussian(sigma))
    assert epsilon(alone) == epsilon(make(name).compose(1.0, sigma, 1))
    assert epsilon(make(name).compose(Gaussian(sigma), 3)) == epsilon(
        make(name).compose(1.0, sigma, 3))


@pytest.mark.parametrize("name", BUILT_IN)
def test_nested_self_composed_multiplies_counts(name):
    @given(q=sample_rates, sigma=noise_multipliers, m=st.integers(1, 20), n=st.integers(1, 20),
           k=st.integers(1, 3))
    @settings(max_examples=examples(name), **SETTINGS)
    def check(q, sigma, m, n, k):
        nested = SelfComposed(SelfComposed(step(q, sigma), m), n)
        expected = epsilon(make(name).compose(q, sigma, m * n * k))
        assert epsilon(make(name).compose(nested, k)) == expected
        assert epsilon(make(name).compose(SelfComposed(nested, k))) == expected

    check()


@pytest.mark.parametrize("name", BUILT_IN)
def test_no_op_changes_nothing(name):
    assert epsilon(make(name).compose(NoOp())) == 0.0
    assert make(name).compose(NoOp(), 10**6).get_delta(0.5) == 0.0
    base = epsilon(make(name).compose(0.01, 1.1, 100))
    for event in (NoOp(), PoissonSampled(0.3, NoOp()), SelfComposed(NoOp(), 10**30),
                  Composed([]), Composed([NoOp(), PoissonSampled(1.0, NoOp())]),
                  step(0.0, 1.0), SelfComposed(step(0.5, 1.0), 0),
                  PoissonSampled(0.0, NonPrivate()), SelfComposed(NonPrivate(), 0)):
        acc = make(name).compose(0.01, 1.1, 100).compose(event, 7)
        assert epsilon(acc) == base, event
    # with nothing else composed, sampled no-ops spend nothing
    assert epsilon(make(name).compose(PoissonSampled(0.5, NoOp()), 50)) == 0.0


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize(
    "event",
    [NonPrivate(), PoissonSampled(1e-6, NonPrivate()), SelfComposed(NonPrivate(), 3),
     Composed([step(0.01, 1.0), NonPrivate()])],
    ids=repr,
)
def test_non_private_gives_infinite_epsilon(name, event):
    acc = make(name).compose(0.01, 1.1, 10).compose(event)
    assert acc.get_epsilon(DELTA) == math.inf
    assert acc.get_epsilon(0.5) == math.inf
    assert acc.get_delta(1.0) == 1.0
    assert acc.get_delta(100.0) == 1.0
    assert make(name).compose(event).get_epsilon(DELTA) == math.inf


# ------------------------------------------------------------------------------ independent values
def test_rdp_mnist_anchor_via_events():
    q, sigma, steps = 256 / 60000, 1.1, 14063
    orders = accounting.DEFAULT_ORDERS
    expected, _ = accounting.epsilon_from_rdp(
        steps * accounting.poisson_gaussian_rdp(q, sigma, orders), orders, 1e-5
    )
    run = SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps)
    assert accounting.RdpAccountant().compose(run).get_epsilon(1e-5) == pytest.approx(
        float(expected), rel=1e-12)
    assert make("rdp").compose(Composed([run])).get_epsilon(1e-5) == pytest.approx(
        float(expected), rel=1e-12)
    assert 2.5 < expected < 2.7


def test_rdp_of_a_composed_tree_is_the_sum_of_its_parts():
    orders = accounting.DEFAULT_ORDERS
    tree = Composed([
        SelfComposed(step(0.01, 1.0), 300),
        Gaussian(5.0),
        SelfComposed(Composed([step(0.05, 2.0), NoOp(), Gaussian(20.0)]), 40),
    ])
    rdp = (300 * accounting.poisson_gaussian_rdp(0.01, 1.0, orders)
           + accounting.poisson_gaussian_rdp(1.0, 5.0, orders)
           + 40 * accounting.poisson_gaussian_rdp(0.05, 2.0, orders)
           + 40 * accounting.poisson_gaussian_rdp(1.0, 20.0, orders))
    for conversion in ("improved", "classic"):
        acc = accounting.RdpAccountant(conversion=conversion).compose(tree)
        assert acc.get_epsilon(DELTA) == pytest.approx(
            accounting.epsilon_from_rdp(rdp, orders, DELTA, conversion)[0], rel=1e-12)
        assert acc.get_delta(1.5) == pytest.approx(
            accounting.delta_from_rdp(rdp, orders, 1.5, conversion)[0], rel=1e-9)


def test_moments_of_a_composed_tree_use_the_tail_bound():
    lambdas = np.arange(1, 33)
    tree = Composed([SelfComposed(step(0.01, 1.2), 500), SelfComposed(step(0.02, 3.0), 100)])
    total = (500 * accounting.gaussian_log_moments(0.01, 1.2, lambdas)
             + 100 * accounting.gaussian_log_moments(0.02, 3.0, lambdas))
    expected = float(np.min((total + math.log(1 / DELTA)) / lambdas))
    assert make("moments").compose(tree).get_epsilon(DELTA) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("q", "sigma"), [(0.05, 1.0), (1.0, 2.0)])
def test_pld_single_event_brackets_the_exact_delta(q, sigma):
    event = step(q, sigma) if q < 1.0 else Gaussian(sigma)
    acc = make("pld").compose(event)
    assert isinstance(acc, accounting.TightAccountant)
    eps = 0.5
    exact = max(float(reference.hockey_stick_delta(q, sigma, eps, direction, digits=15))
                for direction in ("add", "remove"))
    lower, upper = acc.get_delta_bounds(eps)[:2]
    assert lower <= exact * (1 + 1e-9) and exact <= upper * (1 + 1e-9)
    assert acc.get_delta(eps) == upper
    bounds = acc.get_epsilon_bounds(DELTA)
    assert bounds[0] <= bounds[1] == acc.get_epsilon(DELTA)
    # certified: never above RDP's (also certified) bound
    assert bounds[1] <= epsilon(make("rdp").compose(event)) * (1 + 1e-12)


# ------------------------------------------------------------------------------ supports
UNSUPPORTED = [
    ContractLaplace(1.0),
    PoissonSampled(0.1, Composed([Gaussian(1.0)])),
    PoissonSampled(0.1, SelfComposed(Gaussian(1.0), 2)),
    PoissonSampled(0.1, PoissonSampled(0.5, Gaussian(1.0))),
    Composed([step(0.01, 1.0), ContractLaplace(2.0)]),
    SelfComposed(ContractLaplace(2.0), 3),
]


@pytest.mark.parametrize("name", BUILT_IN)
def test_supports(name):
    acc = make(name)
    for event in (Gaussian(1.0), step(0.1, 1.0), NoOp(), NonPrivate(),
                  PoissonSampled(0.2, NoOp()), PoissonSampled(0.2, NonPrivate()),
                  SelfComposed(step(0.1, 1.0), 10**30), Composed([]),
                  Composed([Gaussian(1.0), SelfComposed(NoOp(), 2)])):
        assert acc.supports(event) is True, event
    for event in UNSUPPORTED:
        assert acc.supports(event) is False, event
    for thing in (None, 1.0, "gaussian", {"type": "gaussian", "noise_multiplier": 1.0},
                  (0.1, 1.0, 10)):
        assert acc.supports(thing) is False
    assert acc.history == []  # supports composes nothing
    assert epsilon(acc) == 0.0


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("event", UNSUPPORTED, ids=repr)
def test_unsupported_event_is_refused_atomically(name, event, laplace_registered):
    acc = make(name).compose(0.01, 1.1, 50)
    before_epsilon, before_history = epsilon(acc), acc.history
    before_state = acc.state_dict()
    with pytest.raises(accounting.UnsupportedEventError) as caught:
        acc.compose(event, 3)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert type(acc).__name__ in message
    if isinstance(event, ContractLaplace) or isinstance(getattr(event, "count", None), int):
        # the toy accountant handles Laplace mechanisms, repeated or not
        assert "test-laplace" in message
    else:
        assert "no registered accountant" in message
    for other in BUILT_IN:
        assert f"'{other}'" not in message  # none of the built-ins handles it
    assert epsilon(acc) == before_epsilon
    assert acc.history == before_history
    assert acc.state_dict() == before_state


def test_unsupported_message_lists_every_other_handler(laplace_registered):
    accounting.register_accountant("test-laplace-2", LaplaceAccountant)
    try:
        with pytest.raises(accounting.UnsupportedEventError) as caught:
            make("rdp").compose(ContractLaplace(1.0))
        message = str(caught.value)
        assert "test-laplace" in message and "test-laplace-2" in message
        from accounting.registry import accountants_supporting

        assert accountants_supporting(ContractLaplace(1.0)) == ("test-laplace", "test-laplace-2")
        assert set(accountants_supporting(step(0.1, 1.0))) == set(BUILT_IN)
    finally:
        accounting.unregister_accountant("test-laplace-2")
    # the third-party accountant refuses what it does not know, naming the built-ins
    with pytest.raises(accounting.UnsupportedEventError) as caught:
        LaplaceAccountant().compose(step(0.1, 1.0))
    assert all(name in str(caught.value) for name in BUILT_IN)
    assert LaplaceAccountant().compose(ContractLaplace(0.5), 4).get_epsilon(DELTA) == 8.0


# ------------------------------------------------------------------------------ call forms
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "needle"),
    [
        ((), {}, TypeError, "missing"),
        ((0.01,), {}, TypeError, "noise_multiplier"),
        ((NoOp(), 1, 2), {}, TypeError, "at most"),
        ((0.01, 1.0, 1, 2), {}, TypeError, "at most"),
        ((NoOp(),), {"steps": 2}, TypeError, "steps"),
        ((0.01, 1.0), {"count": 2}, TypeError, "count"),
        ((NoOp(),), {"event": NoOp()}, TypeError, "twice"),
        ((), {"event": 3}, TypeError, "event"),
        ((NoOp(), -1), {}, ValueError, "count"),
        ((NoOp(), 1.5), {}, ValueError, "count"),
        ((0.01, 1.0, -1), {}, ValueError, "steps"),
        ((2.0, 1.0, 1), {}, ValueError, "sample_rate"),
        ((0.01, 0.0, 1), {}, ValueError, "noise_multiplier"),
    ],
)
def test_compose_call_form_errors(args, kwargs, error, needle):
    acc = make("rdp").compose(0.01, 1.0, 5)
    with pytest.raises(error) as caught:
        acc.compose(*args, **kwargs)
    assert needle in str(caught.value)
    assert acc.history == [accounting.CompositionRecord(0.01, 1.0, 5)]


@pytest.mark.parametrize("name", BUILT_IN)
def test_compose_returns_self_and_keyword_event(name):
    acc = make(name)
    assert acc.compose(event=step(0.01, 1.0), count=3) is acc
    assert acc.compose(0.01, 1.0) is acc
    assert acc.history == [accounting.CompositionRecord(step(0.01, 1.0), 4)]


# ------------------------------------------------------------------------------ history and ledger
@pytest.mark.parametrize("name", BUILT_IN)
def test_history_merges_consecutive_identical_events(name):
    a, b = step(0.01, 1.0), Gaussian(3.0)
    acc = make(name)
    acc.compose(a, 2).compose(0.01, 1.0, 3)  # the shorthand builds the same event
    assert acc.history == [accounting.CompositionRecord(a, 5)]
    acc.compose(b).compose(a).compose(a, 0).compose(a, 4)
    assert acc.history == [accounting.CompositionRecord(a, 5), accounting.CompositionRecord(b, 1),
                           accounting.CompositionRecord(a, 5)]
    acc.compose(SelfComposed(a, 2))  # a different event, though the same steps
    assert acc.history[-1] == accounting.CompositionRecord(SelfComposed(a, 2), 1)
    assert len(acc.history) == 4
    assert make(name).compose(a, 0).history == []
    history = acc.history
    history.clear()  # a copy
    assert len(acc.history) == 4


def test_legacy_composition_record_form():
    legacy = accounting.CompositionRecord(0.01, 1.1, 100)
    modern = accounting.CompositionRecord(PoissonSampled(0.01, Gaussian(1.1)), 100)
    assert legacy == modern and hash(legacy) == hash(modern)
    assert (legacy.sample_rate, legacy.noise_multiplier, legacy.steps) == (0.01, 1.1, 100)
    event, count = legacy
    assert event == PoissonSampled(0.01, Gaussian(1.1)) and count == 100
    assert legacy.count == 100
    unsampled = accounting.CompositionRecord(Gaussian(2.0), 3)
    assert (unsampled.sample_rate, unsampled.noise_multiplier) == (1.0, 2.0)
    other = accounting.CompositionRecord(NoOp(), 1)
    assert (other.sample_rate, other.noise_multiplier) == (None, None)
    assert legacy != accounting.CompositionRecord(0.01, 1.1, 101)
    with pytest.raises(AttributeError):
        legacy.count = 5
    with pytest.raises(TypeError):
        accounting.CompositionRecord(0.01, 1.1)
    with pytest.raises(ValueError, match="steps"):
        accounting.CompositionRecord(0.01, 1.1, -1)
    with pytest.raises(ValueError, match="sample_rate"):
        accounting.CompositionRecord(1.5, 1.1, 1)
    assert make("rdp").compose(0.01, 1.1, 100).history == [legacy]


@pytest.mark.parametrize("name", BUILT_IN)
def test_ledger_replays_to_the_same_epsilon(name):
    acc = make(name)
    acc.compose(0.01, 1.0, 30).compose(Gaussian(4.0)).compose(NoOp(), 3)
    acc.compose(Composed([step(0.05, 2.0), SelfComposed(step(0.01, 1.0), 2)]), 5)
    ledger = acc.ledger
    assert isinstance(ledger, Composed)
    assert ledger == Composed([
        SelfComposed(step(0.01, 1.0), 30), Gaussian(4.0), SelfComposed(NoOp(), 3),
        SelfComposed(Composed([step(0.05, 2.0), SelfComposed(step(0.01, 1.0), 2)]), 5),
    ])
    fresh = make(name).compose(acc.ledger)
    assert epsilon(fresh) == pytest.approx(epsilon(acc), rel=1e-12)
    # the same steps composed again in the recorded order give exactly the same value
    assert epsilon(make(name).compose(Event.from_dict(json.loads(json.dumps(
        ledger.to_dict()))))) == epsilon(fresh)
    assert make(name).ledger == Composed([])


@pytest.mark.parametrize("name", ["rdp", "moments"])
def test_ledger_replay_property(name):
    events = st.one_of(
        st.builds(step, sample_rates, noise_multipliers),
        noise_multipliers.map(Gaussian),
        st.just(NoOp()),
    )

    @given(st.lists(st.tuples(events, st.integers(0, 50)), min_size=1, max_size=6))
    @settings(max_examples=30, **SETTINGS)
    def check(plan):
        acc = make(name)
        for event, count in plan:
            acc.compose(event, count)
        assert epsilon(make(name).compose(acc.ledger)) == pytest.approx(epsilon(acc), rel=1e-12)

    check()


# ------------------------------------------------------------------------------ copy and state
def _filled(name: str, **options):
    acc = make(name, **options)
    acc.compose(0.01, 1.1, 40).compose(Gaussian(6.0), 2).compose(NoOp())
    return acc


@pytest.mark.parametrize("name", BUILT_IN)
def test_copy_is_independent(name):
    acc = _filled(name)
    clone = acc.copy()
    assert type(clone) is type(acc) and clone is not acc
    assert clone.history == acc.history
    assert clone.state_dict() == acc.state_dict()
    assert epsilon(clone) == epsilon(acc)
    before = epsilon(acc)
    clone.compose(0.5, 1.0, 10)
    assert epsilon(clone) > before
    assert epsilon(acc) == before and len(acc.history) == 3
    acc.compose(NonPrivate())
    assert epsilon(clone) < math.inf


STATEFUL = [
    ("rdp", {}),
    ("rdp", {"orders": [2, 3, 4], "conversion": "classic"}),
    ("moments", {}),
    ("moments", {"max_lambda": 8}),
    ("pld", {}),
    ("pld", {"neighboring": "replace_one"}),
]


@pytest.mark.parametrize(("name", "options"), STATEFUL, ids=str)
def test_state_survives_json(name, options):
    acc = _filled(name, **options)
    state = acc.state_dict()
    assert state["format"] == STATE_FORMAT and state["accountant"] == name
    text = json.dumps(state, allow_nan=False)
    restored = accounting.load_accountant(json.loads(text))
    assert type(restored) is type(acc)
    assert restored.history == acc.history
    assert restored.state_dict() == state
    assert epsilon(restored) == epsilon(acc)
    assert restored.neighboring == acc.neighboring
    assert restored.conversion_label == acc.conversion_label
    into = type(acc)().load_state_dict(json.loads(text))
    assert into.state_dict() == state and epsilon(into) == epsilon(acc)
    # loading replaces what was there
    busy = make(name).compose(0.9, 0.5, 1000)
    assert busy.load_state_dict(state) is busy
    assert busy.history == acc.history and epsilon(busy) == epsilon(acc)


def test_state_keeps_the_options():
    rdp = accounting.load_accountant(json.loads(json.dumps(
        accounting.RdpAccountant(orders=[2, 3, 4], conversion="classic").compose(0.1, 1.0, 3)
        .state_dict())))
    assert rdp.orders.tolist() == [2.0, 3.0, 4.0] and rdp.conversion == "classic"
    assert rdp.conversion_label == "classic"
    expected, order = accounting.epsilon_from_rdp(
        3 * accounting.poisson_gaussian_rdp(0.1, 1.0, [2, 3, 4]), [2, 3, 4], DELTA, "classic")
    assert rdp.get_epsilon_and_order(DELTA) == pytest.approx((expected, order), rel=1e-12)
    pld = accounting.load_accountant(json.loads(json.dumps(
        accounting.PldAccountant(neighboring="replace_one", tolerance=1e-2).state_dict())))
    assert pld.neighboring == "replace_one"
    assert pld.state_dict()["options"]["tolerance"] == 1e-2
    moments = accounting.load_accountant(accounting.MomentsAccountant(8).state_dict())
    assert moments.lambdas.tolist() == list(range(1, 9))


def test_state_with_a_huge_count_and_every_event_type():
    acc = make("rdp").compose(SelfComposed(step(1e-9, 50.0), 10**30))
    acc.compose(Composed([Gaussian(9.0), PoissonSampled(0.3, NoOp()), NonPrivate()]))
    state = json.loads(json.dumps(acc.state_dict()))
    assert state["history"][0]["count"] == 1
    assert state["history"][0]["event"]["count"] == 10**30
    restored = accounting.load_accountant(state)
    assert restored.history == acc.history
    assert restored.history[0].event.count == 10**30
    assert restored.get_epsilon(DELTA) == math.inf


@pytest.mark.parametrize("name", BUILT_IN)
def test_load_state_dict_refuses_other_state(name):
    acc = _filled(name)
    before = acc.state_dict()
    other = next(n for n in BUILT_IN if n != name)
    with pytest.raises(ValueError, match=repr(other)):
        acc.load_state_dict(_filled(other).state_dict())
    with pytest.raises(ValueError, match="format"):
        acc.load_state_dict({**before, "format": STATE_FORMAT + 1})
    with pytest.raises(ValueError, match="format"):
        acc.load_state_dict({k: v for k, v in before.items() if k != "format"})
    with pytest.raises(TypeError, match="mapping"):
        acc.load_state_dict([before])
    with pytest.raises(TypeError, match="options"):
        acc.load_state_dict({**before, "options": [1]})
    bad_history = {**before, "history": [{"event": {"type": "bogus"}, "count": 1}]}
    with pytest.raises(ValueError, match="bogus"):
        acc.load_state_dict(bad_history)
    assert acc.state_dict() == before  # a refused state changes nothing
    with pytest.raises(ValueError, match="nonexistent"):
        accounting.load_accountant({**before, "accountant": "nonexistent"})
    with pytest.raises(TypeError, match="mapping"):
        accounting.load_accountant("rdp")


def test_load_state_dict_names_bad_options():
    state = make("rdp").state_dict()
    with pytest.raises((ValueError, TypeError), match="options"):
        accounting.load_accountant({**state, "options": {"a": 1}})


@pytest.mark.parametrize("fmt", [True, 1.0, np.int64(1), "1", 2, None])
def test_load_state_dict_refuses_a_format_other_than_the_int_1(fmt):
    state = make("rdp").state_dict()
    with pytest.raises(ValueError, match="format"):
        accounting.load_accountant({**state, "format": fmt})


def test_third_party_state_round_trip(laplace_registered):
    acc = LaplaceAccountant().compose(ContractLaplace(2.0), 3)
    state = json.loads(json.dumps(acc.state_dict()))
    assert state["accountant"] == "test-laplace"
    restored = accounting.load_accountant(state)
    assert isinstance(restored, LaplaceAccountant)
    assert restored.get_epsilon(DELTA) == 1.5 and restored.history == acc.history


# ------------------------------------------------------------------------------ labels
def test_labels_and_relations():
    assert make("rdp").order_label == "order"
    assert make("moments").order_label == "lambda"
    assert make("pld").order_label is None
    assert make("rdp").conversion_label == "improved"
    assert make("rdp", conversion="classic").conversion_label == "classic"
    assert make("moments").conversion_label == "tail bound"
    assert make("pld").conversion_label == "certified"
    assert all(make(name).neighboring == "add_remove" for name in BUILT_IN)
    assert make("pld", neighboring="replace_one").neighboring == "replace_one"
    assert isinstance(make("pld"), accounting.TightAccountant)
    assert not isinstance(make("rdp"), accounting.TightAccountant)
    assert LaplaceAccountant().conversion_label == ""
    assert repr(LaplaceAccountant().compose(NoOp())) == "LaplaceAccountant(compositions=1)"
