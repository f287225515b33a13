"""A declared Domain: the kit draws only inside it, skips what needs more, still catches bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting
from accounting.pld.accountant import PldAccountant
from accounting.testing import (
    CheckResult,
    Domain,
    check_composition,
    check_epsilon_hockey_stick,
    check_epsilon_reference,
    check_rdp_closed_form,
    check_rdp_reference,
    verify_accountant,
)
from accounting.testing import strategies as sts
from tests.test_testing_broken import (
    ForgetfulAccountant,
    missing_q_rdp,
    off_by_one_rdp,
    wrong_conversion_epsilon,
)

#: A framework whose RDP exists only at integer orders and for 0 < q < 1.
INTEGER_OPEN_Q = Domain(orders="integer", q=(0.0, 1.0), q_closed=(False, False))


def integer_open_q_rdp(q, sigma, orders):
    """Correct inside INTEGER_OPEN_Q; raises at q in {0, 1}, NaN at fractional orders."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), got {q}")
    if any(alpha != int(alpha) for alpha in orders):
        return [math.nan] * len(orders)
    return accounting.poisson_gaussian_rdp(q, sigma, orders)


def only_inside(fn, domain):
    """``fn`` restricted to ``domain``: NaN outside it, like a framework that never claimed it."""

    def restricted(q, sigma, orders):
        if not domain.allows_q(q) or any(alpha != int(alpha) for alpha in orders):
            return [math.nan] * len(orders)
        return fn(q, sigma, orders)

    restricted.__qualname__ = f"only_inside({fn.__name__})"
    return restricted


# ------------------------------------------------------------------------------------------
# (a) a framework supporting only part of the inputs passes once it declares so
# ------------------------------------------------------------------------------------------


def test_integer_orders_open_q_passes_with_its_domain_and_fails_without():
    report = verify_accountant(integer_open_q_rdp, kind="rdp", domain=INTEGER_OPEN_Q,
                               max_examples=10, seed=31)
    assert report.passed, str(report)
    # The q = 0 / q = 1 closed forms cannot run: reported as skipped, not as passed.
    (skipped,) = report.skipped
    assert skipped.name == "RDP closed forms at q=1 and q=0"
    assert skipped.skipped and not skipped.passed and not skipped.failed
    assert "[SKIP] RDP closed forms" in str(report)
    assert "5/5 checks passed, 1 skipped" in str(report)
    assert "domain: orders=integer, q=(0, 1)" in str(report)

    undeclared = verify_accountant(integer_open_q_rdp, kind="rdp", max_examples=5, seed=31,
                                   raise_on_failure=False)
    assert not undeclared.passed and undeclared.failed("closed forms")
    assert any("must lie in (0, 1)" in r.message or "NaN" in r.message
               for r in undeclared.failures)


def test_the_orders_keyword_now_restricts_the_rdp_draws():
    grid = [2.0, 4.0, 8.0, 16.0, 32.0]

    def grid_only(q, sigma, orders):
        if any(alpha not in grid for alpha in orders):
            raise KeyError(f"orders outside the grid: {orders}")
        return accounting.poisson_gaussian_rdp(q, sigma, orders)

    report = verify_accountant(grid_only, kind="rdp", orders=grid, max_examples=8, seed=32)
    assert report.passed and not report.skipped, str(report)
    assert "orders=[2, 4, 8, 16, 32]" in str(report)
    with pytest.raises(ValueError, match="orders"):
        verify_accountant(grid_only, kind="rdp", orders=grid, domain=Domain(orders="integer"))


def test_an_open_range_without_a_float_inside_is_empty():
    """(0, 5e-324) holds no float (5e-324 is the smallest one above 0): the domain says so by
    name instead of leaving the strategies nothing to draw; with one end closed it holds that
    end, and the strategies draw it."""
    with pytest.raises(ValueError, match="Domain.q"):
        Domain(q=(0.0, 5e-324), q_closed=(False, False))
    domain = Domain(q=(0.0, 5e-324), q_closed=(False, True))
    assert domain.q_range.contains(5e-324) and not domain.q_range.contains(0.0)

    @settings(max_examples=10, deadline=None)
    @given(rate=sts.sample_rates(domain=domain))
    def draws(rate):
        assert rate == 5e-324

    draws()


def test_a_single_order_grid_skips_the_order_shape_check():
    report = verify_accountant(accounting.poisson_gaussian_rdp, kind="rdp",
                               domain=Domain(orders=[3]), max_examples=5, seed=33)
    assert report.passed and [r.name for r in report.skipped] == [
        "RDP non-decreasing in alpha, (alpha-1)*RDP convex"]


def test_a_q_of_one_outside_the_domain_skips_the_epsilon_subsampling_bound():
    domain = Domain(q=(1e-4, 0.5), sigma=(0.8, 5.0), steps=(1, 1000), delta=(1e-8, 1e-4))

    def epsilon(q, sigma, steps, delta):
        assert domain.allows_q(q) and 0.8 <= sigma <= 5.0 and 1 <= steps <= 1000
        assert 1e-8 <= delta <= 1e-4
        return accounting.compute_epsilon(q, sigma, steps, delta)

    report = verify_accountant(epsilon, kind="epsilon", domain=domain, max_examples=6, seed=34)
    assert report.passed, str(report)
    assert [r.name for r in report.skipped] == [
        "subsampled epsilon <= unsubsampled (edges included)"]


def test_everything_skipped_is_not_a_pass():
    result = check_rdp_closed_form(off_by_one_rdp, domain=INTEGER_OPEN_Q)
    assert isinstance(result, CheckResult) and result.skipped and not result.passed
    assert str(result).startswith("[SKIP] RDP closed forms")


# ------------------------------------------------------------------------------------------
# (b) broken accountants are still caught inside the declared domain
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", [missing_q_rdp, off_by_one_rdp])
def test_broken_rdp_inside_the_domain_is_still_caught(broken):
    fn = only_inside(broken, INTEGER_OPEN_Q)
    report = verify_accountant(fn, kind="rdp", domain=INTEGER_OPEN_Q, max_examples=10,
                               seed=35, raise_on_failure=False)
    assert report.failed("agrees with the mpmath reference"), str(report)
    failure = next(r for r in report.failures if "mpmath" in r.name)
    assert 0 < failure.counterexample["q"] < 1
    assert failure.counterexample["alpha"] == int(failure.counterexample["alpha"])
    assert report.skipped and report.skipped[0].name.startswith("RDP closed forms")


def test_wrong_conversion_is_caught_on_a_declared_grid():
    grid = Domain(orders=accounting.DEFAULT_ORDERS, q=(1e-3, 0.5), steps=(1, 10_000))
    result = check_epsilon_reference(wrong_conversion_epsilon, conversion="classic",
                                     domain=grid, max_examples=10, seed=36,
                                     raise_on_failure=False)
    assert result.failed and 1e-3 <= result.counterexample["q"] <= 0.5


def test_broken_composition_is_caught_inside_the_domain():
    domain = Domain(q=(0.01, 0.1), q_closed=(False, True), sigma=(1.0, 4.0), steps=(1, 50))
    result = check_composition(ForgetfulAccountant, domain=domain, max_examples=8, seed=37,
                               raise_on_failure=False)
    assert result.failed
    for q, sigma, steps in result.counterexample["history"]:
        assert 0.01 < q <= 0.1 and 1.0 <= sigma <= 4.0 and 1 <= steps <= 50


# ------------------------------------------------------------------------------------------
# Neighbouring relation: replace-one uses the matching reference, or skips
# ------------------------------------------------------------------------------------------

# sigma >= 0.8: at q near 1, sigma = 0.5 and eps ~ 660 the PLD bracket stays wide (certified,
# tolerance not met), and eps(q = 1 - 1e-6) came out above eps(q = 1).
REPLACE = Domain(q=(1e-3, 1.0), sigma=(0.8, 5.0), steps=(1, 20), delta=(1e-8, 1e-3),
                 relation="replace_one")


def pld_replace_one_epsilon(q, sigma, steps, delta):
    return PldAccountant(neighboring="replace_one").compose(q, sigma, steps).get_epsilon(delta)


def test_replace_one_rdp_has_no_reference_and_says_so():
    result = check_rdp_reference(accounting.poisson_gaussian_rdp, domain=REPLACE)
    assert result.skipped and "no replace-one RDP reference" in result.message


def test_replace_one_tight_accountant_is_checked_against_the_replace_hockey_stick():
    report = verify_accountant(pld_replace_one_epsilon, kind="tight_epsilon", domain=REPLACE,
                               max_examples=6, seed=38)
    assert report.passed, str(report)
    assert any("replace_one hockey-stick" in r.name and r.passed for r in report.results)
    assert [r.name for r in report.skipped] == ["eps(tight accountant) <= eps(RDP)"]


def test_an_add_remove_accountant_under_replace_one_is_caught():
    # Replacing a record moves the sum by up to 2: add/remove epsilons are too small.
    result = check_epsilon_hockey_stick(accounting.compute_epsilon, domain=REPLACE,
                                        max_examples=6, seed=39, raise_on_failure=False)
    assert result.failed and "below the exact epsilon" in result.message
    example = result.counterexample
    assert example["exact_delta"] > example["delta"]
    assert check_epsilon_hockey_stick(accounting.compute_epsilon, max_examples=3, seed=39).passed


# ------------------------------------------------------------------------------------------
# (c) strategies draw only inside the domain
# ------------------------------------------------------------------------------------------


@st.composite
def domains(draw) -> Domain:
    q = sorted(draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)),
                             min_size=2, max_size=2)))
    # no float lies strictly inside (q0, q1) when q1 is q0's successor: closed then
    adjacent = math.nextafter(q[0], math.inf) >= q[1]
    closed = (True, True) if adjacent else (draw(st.booleans()), draw(st.booleans()))
    sigma_low = draw(st.one_of(st.just(0.0), sts.log_uniform(-3.0, 5.0)))
    sigma_high = draw(st.one_of(st.just(math.inf),
                                st.floats(0.0, 6.0).map(lambda x: max(sigma_low, 1e-3) * 10**x)))
    steps_low = draw(st.integers(1, 10**7))
    steps_high = draw(st.one_of(st.just(math.inf), st.integers(steps_low, 10**13)))
    delta = sorted(draw(st.lists(sts.log_uniform(-15.0, -0.01), min_size=2, max_size=2)))
    epsilon_low = draw(st.floats(0.0, 50.0))
    epsilon_high = draw(st.one_of(st.just(math.inf), st.floats(epsilon_low, 100.0)))
    orders = draw(st.one_of(
        st.sampled_from(["any", "integer"]),
        st.lists(st.one_of(st.integers(2, 40_000), st.floats(1.000001, 40_000.0)),
                 min_size=1, max_size=6),
    ))
    return Domain(orders=orders, q=tuple(q), q_closed=closed, sigma=(sigma_low, sigma_high),
                  steps=(steps_low, steps_high), delta=tuple(delta),
                  epsilon=(epsilon_low, epsilon_high))


def _order_ok(domain: Domain, alpha: float) -> bool:
    if domain.orders == "integer":
        return alpha == int(alpha) and alpha >= 2
    if domain.orders == "any":
        return alpha > 1 and math.isfinite(alpha)
    return float(alpha) in domain.orders


@settings(max_examples=60, deadline=None)
@given(domain=domains(), data=st.data())
def test_every_strategy_draws_inside_the_declared_domain(domain, data):
    q_ok, sigma_ok = domain.q_range.contains, domain.sigma_range.contains
    steps_ok, delta_ok = domain.steps_range.contains, domain.delta_range.contains

    for strategy in (sts.sample_rates(domain=domain), sts.typical_sample_rates(domain=domain),
                     sts.tiny_sample_rates(domain=domain), sts.edge_sample_rates(domain=domain),
                     sts.near_one_sample_rates(domain=domain)):
        assert q_ok(data.draw(strategy))
    for strategy in (sts.noise_multipliers(domain=domain),
                     sts.typical_noise_multipliers(domain=domain)):
        assert sigma_ok(data.draw(strategy))
    for strategy in (sts.step_counts(domain=domain), sts.huge_step_counts(domain=domain)):
        steps = data.draw(strategy)
        assert steps_ok(steps) and steps == int(steps)
    assert delta_ok(data.draw(sts.deltas(domain=domain)))
    assert domain.epsilon_range.contains(data.draw(sts.epsilons(domain=domain)))
    pair_q, pair_sigma = data.draw(sts.extreme_noise_products(domain=domain))
    assert q_ok(pair_q) and sigma_ok(pair_sigma)
    for strategy in (sts.orders(domain=domain), sts.edge_orders(domain=domain),
                     sts.large_orders(domain=domain), sts.orders_near_one(domain=domain)):
        assert _order_ok(domain, data.draw(strategy))
    grid = data.draw(sts.order_grids(domain=domain))
    assert grid == sorted(set(grid)) and all(_order_ok(domain, alpha) for alpha in grid)
    for make in (sts.integer_orders, sts.fractional_orders):
        try:
            strategy = make(domain=domain)
        except ValueError:  # the domain holds no such order: refused, never drawn outside
            continue
        assert _order_ok(domain, data.draw(strategy))
    q, sigma, alpha = data.draw(sts.edge_mechanisms(domain=domain))
    assert q_ok(q) and sigma_ok(sigma) and _order_ok(domain, alpha)
    for record in data.draw(sts.composition_histories(domain=domain)):
        assert q_ok(record.sample_rate) and sigma_ok(record.noise_multiplier)
        assert steps_ok(record.steps)
    record = data.draw(sts.mechanisms(domain=domain))
    assert q_ok(record.sample_rate) and steps_ok(record.steps)


def test_open_ends_exclude_exactly_zero_and_one():
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    for strategy in (sts.sample_rates(domain=INTEGER_OPEN_Q),
                     sts.edge_sample_rates(domain=INTEGER_OPEN_Q)):
        with pytest.raises(NoSuchExample):
            find(strategy, lambda q: q in (0.0, 1.0))
    closed = Domain(q=(0.25, 0.5))
    assert find(sts.sample_rates(domain=closed), lambda q: q == 0.5) == 0.5  # edges drawn


# ------------------------------------------------------------------------------------------
# (d) bad values name the field
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "named"),
    [
        ({"orders": "fractional"}, ValueError, "Domain.orders"),
        ({"orders": []}, ValueError, "Domain.orders"),
        ({"orders": [0.5, 2]}, ValueError, "Domain.orders"),
        ({"orders": [2, math.inf]}, ValueError, "Domain.orders"),
        ({"orders": 3}, TypeError, "Domain.orders"),
        ({"orders": ["2"]}, TypeError, "Domain.orders"),
        ({"q": (-0.1, 0.5)}, ValueError, "Domain.q"),
        ({"q": (0.6, 0.5)}, ValueError, "Domain.q"),
        ({"q": (0.5, 0.5), "q_closed": (True, False)}, ValueError, "Domain.q"),
        ({"q": 0.5}, TypeError, "Domain.q"),
        ({"q": (0.0, math.nan)}, ValueError, "Domain.q"),
        ({"q_closed": (1, 0)}, TypeError, "Domain.q_closed"),
        ({"sigma": (-1.0, 2.0)}, ValueError, "Domain.sigma"),
        ({"sigma": (0.0, 0.0)}, ValueError, "Domain.sigma"),
        ({"sigma": (True, 2.0)}, TypeError, "Domain.sigma"),
        ({"steps": (0, 10)}, ValueError, "Domain.steps"),
        ({"steps": (1, 2.5)}, ValueError, "Domain.steps"),
        ({"delta": (0.0, 1.5)}, ValueError, "Domain.delta"),
        ({"delta": (1.0, 1.0)}, ValueError, "Domain.delta"),
        ({"epsilon": (-1.0, 1.0)}, ValueError, "Domain.epsilon"),
        ({"relation": "replace"}, ValueError, "Domain.relation"),
        ({"relation": None}, TypeError, "Domain.relation"),
    ],
)
def test_bad_domains_raise_naming_the_field(fields, error, named):
    with pytest.raises(error, match=named.replace(".", r"\.")):
        Domain(**fields)


def test_domain_is_immutable_normalised_and_checked_by_the_kit():
    domain = Domain(orders=np.array([8, 2, 4, 2]), q=[0, 1], steps=(1.0, 10.0))
    assert domain.orders == (2.0, 4.0, 8.0) and domain.q == (0.0, 1.0)
    assert domain.steps == (1, 10) and isinstance(domain.steps[1], int)
    with pytest.raises(AttributeError):
        domain.q = (0.0, 0.5)  # type: ignore[misc]
    assert Domain() == Domain(q=(0, 1)) and Domain().describe() == "unrestricted"
    with pytest.raises(TypeError, match="domain"):
        verify_accountant(accounting.poisson_gaussian_rdp, kind="rdp",
                          domain={"orders": "integer"})  # type: ignore[arg-type]
