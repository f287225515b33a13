"""The accountant registry (accounting.registry): built-ins, make_accountant's options (the legacy
ones included), registration rules, a third-party accountant in the CLI and the verification
kit, and clear_caches()."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import accounting
from accounting import registry
from accounting.accountant import UnsupportedEventError
from accounting.cli import main as cli_main
from accounting.events import Composed, Gaussian, NoOp, PoissonSampled, SelfComposed
from accounting.testing import VerificationError, verify_accountant

BUILT_IN = ("rdp", "moments", "pld")


# ------------------------------------------------------------------------------ a third party
class CappedRdpAccountant(accounting.Accountant):
    """RDP of Poisson-subsampled Gaussian steps tracked at the integer orders 2..max_order only,
    converted classically: a (looser) certified upper bound written outside the package."""

    name = "capped-rdp"
    order_label = "order"

    def __init__(self, max_order: int = 32):
        super().__init__()
        self.max_order = int(max_order)
        self.orders = np.arange(2, self.max_order + 1, dtype=float)
        self.rdp = np.zeros_like(self.orders)

    def _plan(self, event, count):
        if isinstance(event, PoissonSampled) and isinstance(event.event, Gaussian):
            return [(event.sample_rate, event.event.noise_multiplier, count)]
        if isinstance(event, Gaussian):
            return [(1.0, event.noise_multiplier, count)]
        if isinstance(event, NoOp):
            return []
        if isinstance(event, SelfComposed):
            return self._plan(event.event, count * event.count)
        if isinstance(event, Composed):
            return [item for child in event.events for item in self._plan(child, count)]
        raise UnsupportedEventError(f"{type(event).__name__} is not a Gaussian step")

    def _apply(self, plan):
        for q, sigma, count in plan:
            if count and q > 0:
                self.rdp = self.rdp + count * accounting.poisson_gaussian_rdp(q, sigma, self.orders)

    def _options(self):
        return {"max_order": self.max_order}

    def get_epsilon_and_order(self, delta):
        if not self.rdp.any():
            return 0.0, float(self.orders[0])
        return accounting.epsilon_from_rdp(self.rdp, self.orders, delta, "classic")

    def get_epsilon(self, delta):
        return self.get_epsilon_and_order(delta)[0]

    def get_delta(self, epsilon):
        if not self.rdp.any():
            return 0.0
        return accounting.delta_from_rdp(self.rdp, self.orders, epsilon, "classic")[0]

    @property
    def conversion_label(self):
        return "classic"


def capped_expected(q, sigma, steps, delta, max_order=32):
    """The same bound computed directly from the package's public RDP functions."""
    orders = np.arange(2, max_order + 1, dtype=float)
    rdp = steps * accounting.poisson_gaussian_rdp(q, sigma, orders)
    return accounting.epsilon_from_rdp(rdp, orders, delta, "classic")


@pytest.fixture
def capped():
    accounting.register_accountant("capped-rdp", CappedRdpAccountant,
                                   "RDP at integer orders 2..32, classic conversion")
    try:
        yield "capped-rdp"
    finally:
        accounting.unregister_accountant("capped-rdp")


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli_main(argv)
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue(), err.getvalue()


EPSILON_ARGV = ["epsilon", "--sample-rate", "0.01", "--steps", "100", "--noise-multiplier", "1.0",
                "--delta", "1e-5", "--json"]


# ------------------------------------------------------------------------------ built-ins
def test_built_ins_are_listed():
    assert accounting.accountants()[:3] == BUILT_IN
    assert accounting.ACCOUNTANTS == BUILT_IN
    assert registry.ACCOUNTANTS == BUILT_IN
    assert isinstance(accounting.make_accountant("rdp"), accounting.RdpAccountant)
    assert isinstance(accounting.make_accountant("moments"), accounting.MomentsAccountant)
    assert isinstance(accounting.make_accountant("pld"), accounting.PldAccountant)
    assert type(accounting.make_accountant()) is accounting.RdpAccountant
    for name in BUILT_IN:
        info = registry.accountant_info(name)
        assert info.name == name and info.summary and info.bound == "upper"
        assert accounting.make_accountant(name).name == name


def test_make_accountant_legacy_arguments():
    classic = accounting.make_accountant("rdp", "classic")
    assert classic.conversion == "classic"
    assert accounting.make_accountant("rdp", conversion="improved").conversion == "improved"
    # moments and PLD take the conversion argument and need none
    assert isinstance(accounting.make_accountant("moments", "classic"),
                      accounting.MomentsAccountant)
    assert isinstance(accounting.make_accountant("pld", "classic"), accounting.PldAccountant)
    with pytest.raises(ValueError, match="conversion"):
        accounting.make_accountant("rdp", "exact")
    with pytest.raises(ValueError, match="conversion"):
        accounting.make_accountant("pld", "exact")
    assert accounting.make_accountant("rdp", orders=[2, 3, 4]).orders.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="orders") as caught:
        accounting.make_accountant("moments", orders=[2, 3])
    assert "'moments'" in str(caught.value)
    pld = accounting.make_accountant("pld", pld_tolerance=1e-2)
    assert pld.state_dict()["options"]["tolerance"] == 1e-2
    explicit = accounting.make_accountant("pld", pld_tolerance=1e-2, tolerance=1e-4)
    assert explicit.state_dict()["options"]["tolerance"] == 1e-4
    # pld_tolerance is for PLD: the others ignore it, as before
    assert accounting.make_accountant("rdp", pld_tolerance=1e-2).state_dict()["options"] == {
        "orders": None, "conversion": "improved"}


def test_make_accountant_options():
    assert accounting.make_accountant("moments", max_lambda=8).lambdas.tolist() == list(
        range(1, 9))
    replace_one = accounting.make_accountant("pld", neighboring="replace_one", tolerance=1e-2)
    assert replace_one.neighboring == "replace_one"
    with pytest.raises(ValueError, match="max_lambda"):
        accounting.make_accountant("rdp", max_lambda=8)
    with pytest.raises(ValueError, match="bogus"):
        accounting.make_accountant("moments", bogus=1)
    with pytest.raises(ValueError, match="neighboring"):
        accounting.make_accountant("pld", neighboring="swap")


@pytest.mark.parametrize("option", ["orders", "bogus", "max_lambda"])
def test_make_accountant_pld_refuses_options_it_does_not_take(option):
    with pytest.raises(ValueError, match=option) as caught:
        accounting.make_accountant("pld", **{option: [2, 3]})
    assert "'pld'" in str(caught.value)


@pytest.mark.parametrize("name", ["bogus", "", "RDP", None, 3, ["rdp"]])
def test_unknown_name_lists_the_names(name):
    with pytest.raises(ValueError) as caught:
        accounting.make_accountant(name)
    for known in BUILT_IN:
        assert known in str(caught.value)
    with pytest.raises(ValueError):
        registry.accountant_info(name)


# ------------------------------------------------------------------------------ registration
def test_register_replace_unregister(capped):
    assert accounting.accountants() == (*BUILT_IN, "capped-rdp")
    assert accounting.ACCOUNTANTS == BUILT_IN  # the built-ins' constant does not change
    info = registry.accountant_info("capped-rdp")
    assert info.factory is CappedRdpAccountant and info.bound == "upper"
    assert info.accepts("max_order") and not info.accepts("orders")
    assert accounting.make_accountant("capped-rdp", max_order=8).max_order == 8
    with pytest.raises(ValueError, match="conversion"):
        accounting.make_accountant("capped-rdp", conversion="bogus")
    # conversion and pld_tolerance are dropped for an accountant without such options
    assert isinstance(accounting.make_accountant("capped-rdp", "classic", pld_tolerance=0.1),
                      CappedRdpAccountant)
    with pytest.raises(ValueError, match="orders"):
        accounting.make_accountant("capped-rdp", orders=[2, 3])
    with pytest.raises(ValueError, match="registered already"):
        accounting.register_accountant("capped-rdp", CappedRdpAccountant)
    with pytest.raises(ValueError, match="registered already"):
        accounting.register_accountant("rdp", CappedRdpAccountant)
    assert registry.accountant_info("rdp").factory is accounting.RdpAccountant

    def small(**options):
        return CappedRdpAccountant(max_order=4, **options)

    replaced = accounting.register_accountant("capped-rdp", small, "small", bound="estimate",
                                              replace=True)
    assert registry.accountant_info("capped-rdp") is replaced
    assert replaced.bound == "estimate" and replaced.accepts("anything")
    assert accounting.make_accountant("capped-rdp").max_order == 4
    assert accounting.accountants() == (*BUILT_IN, "capped-rdp")  # replaced in place
    accounting.register_accountant("capped-rdp", CappedRdpAccountant, replace=True)


@pytest.mark.parametrize("name", ["", "a b", "rdp!", "ünïcode?", None, 3, "x/y"])
def test_register_refuses_bad_names(name):
    with pytest.raises(ValueError, match="name"):
        accounting.register_accountant(name, CappedRdpAccountant)
    assert accounting.accountants() == BUILT_IN


def test_register_refuses_bad_factories_and_bounds():
    with pytest.raises(TypeError, match="factory"):
        accounting.register_accountant("x", CappedRdpAccountant())
    with pytest.raises(ValueError, match="bound"):
        accounting.register_accountant("x", CappedRdpAccountant, bound="lower")
    assert accounting.accountants() == BUILT_IN


def test_unregister():
    accounting.register_accountant("temporary", CappedRdpAccountant)
    accounting.unregister_accountant("temporary")
    assert "temporary" not in accounting.accountants()
    with pytest.raises(ValueError, match="temporary"):
        accounting.unregister_accountant("temporary")
    with pytest.raises(ValueError):
        accounting.make_accountant("temporary")
    with pytest.raises(ValueError, match="nothing"):
        accounting.unregister_accountant("nothing")


def test_accountants_supporting(capped):
    step = PoissonSampled(0.1, Gaussian(1.0))
    assert registry.accountants_supporting(step) == (*BUILT_IN, "capped-rdp")
    assert registry.accountants_supporting(PoissonSampled(0.1, Composed([]))) == ()

    def broken():
        raise RuntimeError("cannot build")

    accounting.register_accountant("broken", broken)
    try:
        assert registry.accountants_supporting(step) == (*BUILT_IN, "capped-rdp")
    finally:
        accounting.unregister_accountant("broken")


# ------------------------------------------------------------------------------ third party in use
def test_third_party_accountant_matches_its_direct_computation(capped):
    acc = accounting.make_accountant("capped-rdp").compose(
        SelfComposed(PoissonSampled(0.01, Gaussian(1.0)), 100))
    expected, order = capped_expected(0.01, 1.0, 100, 1e-5)
    assert acc.get_epsilon_and_order(1e-5) == (expected, order)
    # looser than the built-in RDP accountant, which uses more orders and a better conversion
    assert acc.get_epsilon(1e-5) >= accounting.RdpAccountant().compose(0.01, 1.0, 100).get_epsilon(
        1e-5)
    restored = accounting.load_accountant(json.loads(json.dumps(acc.state_dict())))
    assert isinstance(restored, CappedRdpAccountant)
    assert restored.get_epsilon(1e-5) == expected


def test_third_party_accountant_in_the_cli(capped):
    status, out, err = run_cli(EPSILON_ARGV)
    assert status == 0, err
    report = json.loads(out)
    rows = {row["accountant"]: row for row in report["results"]}
    assert set(rows) == {*BUILT_IN, "capped-rdp"}
    expected, order = capped_expected(0.01, 1.0, 100, 1e-5)
    assert rows["capped-rdp"]["epsilon"] == pytest.approx(expected, rel=1e-12)
    assert rows["capped-rdp"]["order"] == order
    assert rows["capped-rdp"]["conversion"] == "classic"
    assert rows["rdp"]["epsilon"] <= rows["capped-rdp"]["epsilon"]
    # chosen by name: the parser is built after registration, so the name is a valid choice
    status, out, err = run_cli([*EPSILON_ARGV, "--accountant", "capped-rdp"])
    assert status == 0, err
    assert [row["accountant"] for row in json.loads(out)["results"]] == ["capped-rdp"]


def test_cli_forgets_an_unregistered_accountant():
    accounting.register_accountant("capped-rdp", CappedRdpAccountant)
    accounting.unregister_accountant("capped-rdp")
    status, out, _ = run_cli(EPSILON_ARGV)
    assert status == 0
    assert [row["accountant"] for row in json.loads(out)["results"]] == list(BUILT_IN)
    status, _, err = run_cli([*EPSILON_ARGV, "--accountant", "capped-rdp"])
    assert status == 2 and "--accountant" in err


def test_verify_accountant_takes_a_registered_name(capped):
    report = verify_accountant("capped-rdp", kind="accountant", max_examples=5, seed=1)
    assert report.passed and report.results
    assert "capped-rdp" in report.target
    builtin = verify_accountant("rdp", kind="accountant", max_examples=5, seed=1)
    assert builtin.passed
    epsilon_report = verify_accountant("capped-rdp", kind="epsilon", orders=list(range(2, 33)),
                                       conversion="classic", max_examples=4, seed=1,
                                       skip=("monotone in steps",))
    assert epsilon_report.passed, str(epsilon_report)
    delta_report = verify_accountant("capped-rdp", kind="delta", orders=list(range(2, 33)),
                                     conversion="classic", max_examples=4, seed=1,
                                     skip=("monotone",))
    assert delta_report.passed, str(delta_report)


def test_verify_accountant_by_name_finds_a_wrong_accountant():
    class Halved(CappedRdpAccountant):
        """Claims half the epsilon: not an upper bound."""

        def get_epsilon_and_order(self, delta):
            epsilon, order = super().get_epsilon_and_order(delta)
            return epsilon / 2, order

    accounting.register_accountant("halved", Halved)
    try:
        with pytest.raises(VerificationError) as caught:
            verify_accountant("halved", kind="epsilon", orders=list(range(2, 33)),
                              conversion="classic", max_examples=4, seed=1,
                              skip=("monotone", "subsampled"))
        assert caught.value.report.failed("agrees")
    finally:
        accounting.unregister_accountant("halved")


def test_verify_accountant_name_errors():
    with pytest.raises(ValueError, match="bogus"):
        verify_accountant("bogus", kind="accountant")
    with pytest.raises(ValueError, match="rdp"):
        verify_accountant("rdp", kind="rdp")
    with pytest.raises(ValueError, match="kind"):
        verify_accountant("rdp", kind="nonsense")


# ------------------------------------------------------------------------------ caches
def _values():
    step = SelfComposed(PoissonSampled(256 / 60000, Gaussian(1.1)), 2000)
    tree = Composed([step, Gaussian(8.0)])
    return (
        accounting.RdpAccountant().compose(tree).get_epsilon_and_order(1e-5),
        accounting.RdpAccountant(conversion="classic").compose(step).get_delta(1.0),
        accounting.MomentsAccountant().compose(tree).get_epsilon_and_order(1e-5),
        tuple(accounting.PldAccountant(tolerance=1e-2).compose(step).get_epsilon_bounds(1e-5)),
        tuple(accounting.poisson_gaussian_rdp(0.01, 1.1, accounting.DEFAULT_ORDERS).tolist()),
    )


def test_clear_caches_changes_no_result():
    before = _values()
    accounting.clear_caches()
    after_full = _values()
    accounting.clear_caches(tables=False)
    after_partial = _values()
    assert before == after_full == after_partial


def test_accountants_supporting_with_options_finds_replace_one_accountants():
    from accounting.events import Gaussian, SampledWithoutReplacement

    fixed = SampledWithoutReplacement(60000, 250, Gaussian(0.65))
    assert registry.accountants_supporting(fixed) == ()
    assert set(registry.accountants_supporting(fixed, neighboring="replace_one")) == {"rdp", "pld"}
    # an accountant without the option is left out rather than failing
    assert "moments" not in registry.accountants_supporting(fixed, neighboring="replace_one")
    with pytest.raises(UnsupportedEventError,
                       match=r"with neighboring='replace_one': \['rdp', 'pld'\]"):
        accounting.MomentsAccountant().compose(fixed)
