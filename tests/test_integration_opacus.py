"""accounting.integrations.opacus against Opacus 1.6 itself (run by make test-integrations).

Reference values come from Opacus' own accountants (RDPAccountant, PRVAccountant) or from our
accountants composed by hand with the same (q, sigma, steps); none is copied from the code
under test. Skipped without Opacus and torch (the package's own .venv has neither).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting

torch = pytest.importorskip("torch")
opacus = pytest.importorskip("opacus")

from opacus import PrivacyEngine  # noqa: E402
from opacus.accountants import PRVAccountant, RDPAccountant, create_accountant  # noqa: E402
from opacus.accountants.accountant import IAccountant  # noqa: E402

from accounting.integrations.opacus import PldOpacusAccountant, RdpOpacusAccountant  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Secure RNG turned off:UserWarning",  # PrivacyEngine(secure_mode=False)
    "ignore:Full backward hook is firing:UserWarning",  # inputs without gradients
    "ignore:Optimal order is the:UserWarning",  # Opacus' RDPAccountant at its orders' ends
)

OPACUS_ALPHAS = RDPAccountant.DEFAULT_ALPHAS
MNIST = (1.1, 256 / 60000, 14063)  # Opacus' history entry: (noise_multiplier, sample_rate, steps)
HETEROGENEOUS = [(1.1, 0.004, 500), (0.8, 0.01, 300), (1.1, 0.004, 200), (2.0, 0.05, 1000)]
HISTORIES = [
    [MNIST],
    [(0.8, 0.01, 1000)],
    [(2.0, 0.001, 100_000)],
    [(5.0, 1.0, 10)],  # full batch
    HETEROGENEOUS,
]
DELTAS = [1e-5, 1e-5, 1e-6, 1e-5, 1e-7]


def _opacus(cls, history):
    accountant = cls()
    accountant.history = list(history)
    return accountant


def _ours(accountant, history):
    accountant.history = list(history)
    return accountant


def _by_hand(accountant, history):
    for noise_multiplier, sample_rate, steps in history:
        accountant.compose(sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps)
    return accountant


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_import_accounting_never_imports_opacus_or_torch():
    code = (
        "import sys, accounting, accounting.integrations\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opacus', 'torch'}))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("missing", ["opacus", "torch"])
def test_missing_opacus_or_torch_raises_import_error_naming_the_extra(missing):
    # sys.modules[name] = None makes "import name" raise ImportError, as if not installed.
    code = (
        f"import sys\nsys.modules[{missing!r}] = None\n"
        "try:\n    import accounting.integrations.opacus\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'dpsgd-accounting[opacus]'" in result.stdout


# Before the PrivacyEngine tests: a stale cache would loop Opacus' noise calibration forever.
def test_assigned_history_is_never_answered_from_a_stale_cache(monkeypatch):
    calls = []
    original = accounting.RdpAccountant.get_epsilon_and_order

    def counted(self, delta):
        calls.append(delta)
        return original(self, delta)

    monkeypatch.setattr(accounting.RdpAccountant, "get_epsilon_and_order", counted)
    accountant = _ours(RdpOpacusAccountant(), [(1.0, 0.01, 100)])
    first = accountant.get_epsilon(1e-5)
    assert accountant.get_epsilon(1e-5) == first and len(calls) == 1  # repeated: cached
    # same length, other content (Opacus' get_noise_multiplier assigns history like this)
    accountant.history = [(2.0, 0.01, 100)]
    assert accountant.get_epsilon(1e-5) < first and len(calls) == 2
    accountant.step(noise_multiplier=2.0, sample_rate=0.01)
    assert accountant.history == [(2.0, 0.01, 101)]
    by_hand = _by_hand(accounting.RdpAccountant(), accountant.history).get_epsilon(1e-5)
    assert accountant.get_epsilon(1e-5) == by_hand


def _train(engine: PrivacyEngine, epochs: int, noise_multiplier: float, batch_size: int = 8,
           size: int = 64, wrap=None):
    """A few epochs of Opacus DP-SGD on nn.Linear (Poisson sampling); the steps taken."""
    torch.manual_seed(0)
    x = torch.randn(size, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(size)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y.unsqueeze(1)),
                                         batch_size=batch_size)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
        max_grad_norm=1.0, poisson_sampling=True,
    )
    steps = 0
    for _ in range(epochs):
        for features, target in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(features), target).backward()
            optimizer.step()
            steps += 1
    return model, optimizer, steps


def test_privacy_engine_with_our_rdp_accountant_equals_ours_composed_by_hand():
    engine = PrivacyEngine()
    engine.accountant = RdpOpacusAccountant()  # before make_private, which attaches its hook
    _, _, steps = _train(engine, epochs=3, noise_multiplier=1.1)
    sample_rate = 1 / math.ceil(64 / 8)  # Opacus' Poisson rate: one over the batches per epoch
    assert engine.accountant.history == [(1.1, sample_rate, steps)]
    by_hand = _by_hand(accounting.RdpAccountant(), [(1.1, sample_rate, steps)])
    assert engine.get_epsilon(1e-5) == pytest.approx(by_hand.get_epsilon(1e-5), rel=1e-12)


def test_privacy_engine_by_mechanism_name_uses_our_pld_accountant():
    engine = PrivacyEngine(accountant="accounting-pld")
    assert isinstance(engine.accountant, PldOpacusAccountant)
    _, _, steps = _train(engine, epochs=2, noise_multiplier=1.3)
    history = [(1.3, 1 / 8, steps)]
    assert engine.accountant.history == history
    by_hand = _by_hand(accounting.PldAccountant(), history).get_epsilon_bounds(1e-5)
    assert engine.get_epsilon(1e-5) == pytest.approx(by_hand.upper, rel=1e-12)
    bounds = engine.accountant.get_epsilon_bounds(1e-5)
    assert bounds.lower == pytest.approx(by_hand.lower, rel=1e-12)


def test_make_private_with_epsilon_calibrates_with_our_accountant():
    engine = PrivacyEngine(accountant="accounting-rdp")
    torch.manual_seed(0)
    dataset = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    model = torch.nn.Linear(4, 1)
    _, optimizer, _ = engine.make_private_with_epsilon(
        module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loader=loader,
        target_epsilon=2.0, target_delta=1e-5, epochs=5, max_grad_norm=1.0,
    )
    sample_rate = 1 / 8
    steps = int(5 / sample_rate)  # Opacus' get_noise_multiplier: epochs over the sample rate
    spent = _by_hand(accounting.RdpAccountant(), [(optimizer.noise_multiplier, sample_rate, steps)])
    assert 2.0 - 0.01 <= spent.get_epsilon(1e-5) <= 2.0  # Opacus' default epsilon_tolerance


@pytest.mark.parametrize("history, delta", list(zip(HISTORIES, DELTAS, strict=True)))
def test_rdp_with_opacus_orders_equals_opacus_rdp(history, delta):
    theirs, order = _opacus(RDPAccountant, history).get_privacy_spent(delta=delta)
    with_their_orders = _ours(RdpOpacusAccountant(orders=OPACUS_ALPHAS), history)
    epsilon, our_order = with_their_orders.get_epsilon(delta, return_order=True)
    assert epsilon == pytest.approx(theirs, rel=1e-9)
    assert our_order == order
    assert with_their_orders.get_privacy_spent(delta=delta) == (epsilon, our_order)
    # per-query orders as Opacus' get_epsilon(delta, alphas) takes them
    per_query = _ours(RdpOpacusAccountant(), history).get_epsilon(delta, alphas=OPACUS_ALPHAS)
    assert per_query == pytest.approx(theirs, rel=1e-9)
    # our default orders include Opacus' (and more): never a larger epsilon
    assert _ours(RdpOpacusAccountant(), history).get_epsilon(delta) <= theirs * (1 + 1e-9)


def test_mnist_setting_figures():
    theirs = _opacus(RDPAccountant, [MNIST]).get_epsilon(1e-5)
    ours = _ours(RdpOpacusAccountant(orders=OPACUS_ALPHAS), [MNIST]).get_epsilon(1e-5)
    by_hand = _by_hand(accounting.RdpAccountant(), [MNIST]).get_epsilon(1e-5)
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert _ours(RdpOpacusAccountant(), [MNIST]).get_epsilon(1e-5) == by_hand


def _prv_bracket(history, delta, eps_error=0.01):
    """Opacus' PRV accountant's (lower, estimate, upper), as its get_epsilon computes them."""
    prv = _opacus(PRVAccountant, history)
    delta_error = delta / 1000  # PRVAccountant.get_epsilon's default
    dprv = prv._get_dprv(eps_error=eps_error, delta_error=delta_error)
    lower, estimate, upper = (float(v) for v in dprv.compute_epsilon(delta, delta_error,
                                                                     eps_error))
    assert upper == pytest.approx(prv.get_epsilon(delta, eps_error=eps_error), rel=1e-12)
    return lower, estimate, upper


@pytest.mark.parametrize("history, delta", [([MNIST], 1e-5), (HETEROGENEOUS, 1e-7),
                                            ([(0.8, 0.01, 1000)], 1e-5)])
def test_pld_lies_in_or_below_opacus_prv_bracket(history, delta):
    prv_lower, _, prv_upper = _prv_bracket(history, delta)
    accountant = _ours(PldOpacusAccountant(), history)
    bounds = accountant.get_epsilon_bounds(delta)
    assert accountant.get_epsilon(delta) == bounds.upper
    assert bounds.upper <= prv_upper
    # both brackets hold the true epsilon, so they meet
    assert bounds.lower <= prv_upper and prv_lower <= bounds.upper + 1e-3


def test_history_and_len_match_opacus_step_for_step():
    steps = [(1.0, 0.01)] * 3 + [(1.2, 0.01)] + [(1.0, 0.01)] * 2 + [(1.0, 0.02)] * 4
    theirs, rdp, pld = RDPAccountant(), RdpOpacusAccountant(), PldOpacusAccountant()
    for noise_multiplier, sample_rate in steps:
        for accountant in (theirs, rdp, pld):
            accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
        assert rdp.history == pld.history == theirs.history
        assert len(rdp) == len(pld) == len(theirs)
    assert theirs.history == [(1.0, 0.01, 3), (1.2, 0.01, 1), (1.0, 0.01, 2), (1.0, 0.02, 4)]


def test_mechanisms_are_registered_with_opacus_and_do_not_collide():
    assert {RdpOpacusAccountant.mechanism(), PldOpacusAccountant.mechanism()} == {
        "accounting-rdp", "accounting-pld"}
    for cls in (RdpOpacusAccountant, PldOpacusAccountant):
        assert issubclass(cls, IAccountant)
        assert type(create_accountant(cls.mechanism())) is cls
    assert type(create_accountant("rdp")) is RDPAccountant  # Opacus' own left in place


def test_state_dict_has_opacus_format_and_refuses_other_mechanisms():
    ours = _ours(RdpOpacusAccountant(), HETEROGENEOUS)
    theirs = _opacus(RDPAccountant, HETEROGENEOUS)
    state = ours.state_dict()
    assert list(state) == list(theirs.state_dict()) == ["history", "mechanism"]
    assert state["history"] == theirs.state_dict()["history"]
    assert state["mechanism"] == "accounting-rdp"
    with pytest.raises(ValueError, match="cannot be loaded"):
        RDPAccountant().load_state_dict(state)
    with pytest.raises(ValueError, match="cannot be loaded"):
        PldOpacusAccountant().load_state_dict(state)


@pytest.mark.parametrize("cls", [RdpOpacusAccountant, PldOpacusAccountant])
def test_checkpoint_round_trip_through_privacy_engine(cls, tmp_path):
    engine = PrivacyEngine()
    engine.accountant = cls()
    model, optimizer, steps = _train(engine, epochs=2, noise_multiplier=1.0)
    epsilon = engine.get_epsilon(1e-5)
    path = tmp_path / "checkpoint.pt"
    engine.save_checkpoint(path=path, module=model, optimizer=optimizer)

    restored = PrivacyEngine()
    restored.accountant = cls()
    restored.load_checkpoint(path=path, module=model, optimizer=optimizer)
    assert restored.accountant.history == engine.accountant.history == [(1.0, 1 / 8, steps)]
    assert restored.get_epsilon(1e-5) == epsilon


def test_nothing_spent_is_zero():
    assert RdpOpacusAccountant().get_epsilon(1e-5) == 0.0
    assert PldOpacusAccountant().get_epsilon(1e-5) == 0.0
    assert len(RdpOpacusAccountant()) == 0


def test_options_are_checked_at_construction():
    with pytest.raises(ValueError):
        RdpOpacusAccountant(orders=[0.5])
    with pytest.raises(ValueError):
        RdpOpacusAccountant(conversion="nope")
    with pytest.raises(ValueError):
        PldOpacusAccountant(neighboring="nope")
    np.testing.assert_array_equal(RdpOpacusAccountant().orders, accounting.DEFAULT_ORDERS)


_entries = st.tuples(
    st.floats(0.5, 10.0), st.floats(1e-4, 0.5), st.integers(1, 5000)
)


@settings(max_examples=8, deadline=None)
@given(entries=st.lists(_entries, min_size=1, max_size=4),
       delta=st.floats(1e-10, 1e-3))
def test_random_histories_rdp_with_opacus_orders_equals_opacus(entries, delta):
    theirs, ours = RDPAccountant(), RdpOpacusAccountant(orders=OPACUS_ALPHAS)
    for noise_multiplier, sample_rate, steps in entries:
        for _ in range(min(steps, 3)):  # a few real steps, the rest as a merged count
            for accountant in (theirs, ours):
                accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
        theirs.history[-1] = ours.history[-1] = (noise_multiplier, sample_rate, steps)
    assert ours.history == theirs.history
    assert ours.get_epsilon(delta) == pytest.approx(theirs.get_epsilon(delta), rel=1e-9)
