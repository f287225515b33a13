"""The privacy ledger over any accountant: events, "rdp" and "pld", budgets, state, the trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest

import accounting
import dpsgd_kernels as dk
from accounting.events import Composed, Gaussian, NoOp, PoissonSampled, SelfComposed

DELTA = 1e-5


def test_rdp_ledger_equals_the_rdp_accountant_composed_by_hand():
    ledger = dk.PrivacyLedger(DELTA)  # accountant="rdp" is the default
    assert isinstance(ledger.accountant, accounting.RdpAccountant)
    assert ledger.epsilon == 0.0 and ledger.epsilon_bounds is None
    for _ in range(40):
        ledger.record(256 / 60000, 1.1)
    ledger.record(0.01, 2.0, steps=5)
    by_hand = accounting.RdpAccountant().compose(256 / 60000, 1.1, 40).compose(0.01, 2.0, 5)
    assert ledger.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
    assert ledger.steps == 45
    step = PoissonSampled(256 / 60000, Gaussian(1.1))
    assert ledger.history == [accounting.CompositionRecord(step, 40),
                              accounting.CompositionRecord(0.01, 2.0, 5)]
    assert ledger.ledger == Composed((SelfComposed(step, 40),
                                      SelfComposed(PoissonSampled(0.01, Gaussian(2.0)), 5)))
    # epsilon_after composes on a copy: nothing recorded
    after = ledger.epsilon_after(0.01, 2.0, 3)
    assert after == pytest.approx(by_hand.copy().compose(0.01, 2.0, 3).get_epsilon(DELTA),
                                  rel=1e-12)
    assert ledger.steps == 45
    # the old RDP options still work, by name or position
    classic = dk.PrivacyLedger(DELTA, None, [2.0, 8.0, 32.0], "classic")
    classic.record(0.01, 1.0, 10)
    expected = accounting.RdpAccountant([2.0, 8.0, 32.0], "classic").compose(0.01, 1.0, 10)
    assert classic.epsilon == pytest.approx(expected.get_epsilon(DELTA), rel=1e-12)


def test_pld_ledger_reports_the_certified_upper_bound():
    ledger = dk.PrivacyLedger(DELTA, accountant="pld")
    assert isinstance(ledger.accountant, accounting.PldAccountant)
    ledger.record(0.01, 1.0, steps=20)
    ledger.record(0.02, 1.5)
    by_hand = accounting.PldAccountant().compose(0.01, 1.0, 20).compose(0.02, 1.5, 1)
    bounds = by_hand.get_epsilon_bounds(DELTA)
    assert ledger.epsilon == bounds.upper
    assert tuple(ledger.epsilon_bounds) == tuple(bounds)
    assert ledger.epsilon_bounds.lower <= ledger.epsilon
    assert ledger.epsilon <= dk.PrivacyLedger(DELTA).epsilon_after(0.01, 1.0, 21)  # below RDP
    # options of the named accountant, and an instance
    fine = dk.PrivacyLedger(DELTA, accountant="pld", tolerance=1e-4)
    assert fine.accountant.state_dict()["options"]["tolerance"] == 1e-4
    instance = accounting.PldAccountant()
    assert dk.PrivacyLedger(DELTA, accountant=instance).accountant is instance
    # (the registry's "pld" factory takes **options, so PldAccountant itself refuses orders)
    with pytest.raises((TypeError, ValueError), match="orders"):
        dk.PrivacyLedger(DELTA, orders=[2.0], accountant="pld")
    with pytest.raises(TypeError, match="with an accountant instance"):
        dk.PrivacyLedger(DELTA, accountant=instance, tolerance=1e-4)
    with pytest.raises(ValueError, match="accountant must be one of"):
        dk.PrivacyLedger(DELTA, accountant="nope")
    with pytest.raises(TypeError, match="accountant must be a registered accountant name"):
        dk.PrivacyLedger(DELTA, accountant=3)


def test_pld_budget_refuses_the_step_past_the_target():
    q, sigma, target = 0.05, 1.0, 1.5
    allowed = 0
    while accounting.PldAccountant().compose(q, sigma, allowed + 1).get_epsilon(DELTA) <= target:
        allowed += 1
    assert 1 < allowed < 60
    ledger = dk.PrivacyLedger(DELTA, target_epsilon=target, accountant="pld")
    ledger.record(q, sigma, allowed)
    assert not ledger.can_afford(q, sigma)
    with pytest.raises(dk.BudgetExceededError, match="target_epsilon=1.5"):
        ledger.record(q, sigma)
    with pytest.raises(dk.BudgetExceededError):
        ledger.record_event(PoissonSampled(q, Gaussian(sigma)))
    assert ledger.steps == allowed and ledger.epsilon <= target
    assert ledger.epsilon == accounting.PldAccountant().compose(q, sigma, allowed).get_epsilon(
        DELTA)
    assert ledger.can_afford_event(NoOp(), 5)


def test_record_event_composes_any_supported_event():
    run = Composed((SelfComposed(PoissonSampled(0.01, Gaussian(1.0)), 10), Gaussian(20.0),
                    NoOp()))
    for name in ("rdp", "pld"):
        ledger = dk.PrivacyLedger(DELTA, accountant=name)
        ledger.record_event(run, count=2)
        by_hand = accounting.make_accountant(name).compose(run, 2)
        assert ledger.epsilon == pytest.approx(by_hand.get_epsilon(DELTA), rel=1e-12)
        assert ledger.history == [accounting.CompositionRecord(run, 2)]
        assert ledger.steps == 22  # every Gaussian release
        assert ledger.epsilon_after_event(run) == pytest.approx(
            by_hand.copy().compose(run).get_epsilon(DELTA), rel=1e-12)


def test_unsupported_event_raises_and_records_nothing():
    class Laplace(accounting.events.Event):  # a mechanism no built-in accountant handles
        pass

    for target in (None, 5.0):
        ledger = dk.PrivacyLedger(DELTA, target_epsilon=target, accountant="pld")
        ledger.record(0.01, 1.0, 3)
        before = (ledger.history, ledger.epsilon)
        bad = Composed((PoissonSampled(0.01, Gaussian(1.0)), PoissonSampled(0.5, Laplace())))
        with pytest.raises(accounting.UnsupportedEventError, match="Laplace"):
            ledger.record_event(bad)
        with pytest.raises(accounting.UnsupportedEventError):
            ledger.can_afford_event(bad)
        assert (ledger.history, ledger.epsilon) == before
        assert ledger.steps == 3
    with pytest.raises(TypeError, match="event must be an accounting event"):
        dk.PrivacyLedger(DELTA, target_epsilon=5.0).record_event("step")
    with pytest.raises(TypeError, match="event must be an accounting event"):
        dk.PrivacyLedger(DELTA).record_event("step")


@pytest.mark.parametrize("name", ["rdp", "pld"])
def test_state_dict_round_trip(name):
    ledger = dk.PrivacyLedger(DELTA, target_epsilon=8.0, accountant=name)
    ledger.record(0.01, 1.0, 7)
    ledger.record_event(Gaussian(30.0))
    state = json.loads(json.dumps(ledger.state_dict()))  # plain JSON types
    assert state["accountant"]["accountant"] == name
    restored = dk.PrivacyLedger(1e-3, accountant=name).load_state_dict(state)
    assert (restored.delta, restored.target_epsilon) == (DELTA, 8.0)
    assert restored.history == ledger.history and restored.steps == ledger.steps == 8
    assert restored.epsilon == ledger.epsilon
    # a bare accountant state keeps the ledger's delta and budget
    bare = dk.PrivacyLedger(1e-3, accountant=name).load_state_dict(ledger.accountant.state_dict())
    assert bare.delta == 1e-3 and bare.history == ledger.history
    other = "pld" if name == "rdp" else "rdp"
    with pytest.raises(ValueError, match="state was saved by accountant"):
        dk.PrivacyLedger(DELTA, accountant=other).load_state_dict(state)


def test_trainer_with_pld_reports_the_certified_upper_bound():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(float)
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    trainer = dk.DPSGDTrainer(model, "binary_crossentropy", dk.SGD(0.5), batch_size=20,
                              noise_multiplier=1.2, delta=DELTA, rng=1, accountant="pld")
    reports = trainer.fit(x, y, epochs=2)
    assert isinstance(trainer.ledger.accountant, accounting.PldAccountant)
    assert [r.total_steps for r in reports] == [2, 4]
    for report in reports:
        by_hand = accounting.PldAccountant().compose(0.5, 1.2, report.total_steps)
        assert report.epsilon == by_hand.get_epsilon_bounds(DELTA).upper
