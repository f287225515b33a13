"""Robustness of the RDP, moments, GDP, calibration and validation code (issue 16).

Bad input raises ValueError/TypeError naming the argument; extreme but valid input gives a
finite number, ``inf`` or 0 in bounded time and memory, never NaN, an exception from deep
inside, or a leaked NumPy warning. Calls that could allocate a lot run in a subprocess capped
at 2 GiB of address space, so that a regression fails here instead of exhausting the machine.
"""

from __future__ import annotations

import math
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting
from accounting import (
    MomentsAccountant,
    RdpAccountant,
    calibrate_noise_multiplier,
    calibrate_sample_rate,
    calibrate_steps,
    compute_epsilon,
    delta_from_rdp,
    epsilon_from_rdp,
    epsilon_grid,
    gaussian_delta,
    gaussian_epsilon,
    gaussian_log_moments,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    poisson_gaussian_rdp,
    reference,
)
from accounting.rdp import sampled_gaussian as rdp_module
from tests.capped import run_capped

TUTORIAL = (256 / 60000, 1.1, 14063)


def _run_capped(code: str, timeout: float = 60.0) -> str:
    """Run ``code`` in a fresh interpreter capped at 2 GiB, warnings as errors; its stdout."""
    return run_capped("import warnings\nwarnings.simplefilter('error')\n" + textwrap.dedent(code),
                      timeout)


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- item 3: GDP and Gaussian closed forms at extreme sigma and steps --------------------------


@pytest.mark.parametrize("sigma", [1e-300, 5e-324, 0.03])
def test_gdp_with_tiny_noise_is_infinite(sigma):
    assert gdp_mu(0.01, sigma, 100) == math.inf
    assert gdp_epsilon(0.01, sigma, 100, 1e-5) == math.inf
    assert gdp_delta(0.01, sigma, 100, 1.0) == 1.0


@pytest.mark.parametrize("sigma", [1e160, 1e300])
def test_gdp_with_huge_noise_is_tiny(sigma):
    # mu = q sqrt(T (exp(1/sigma^2) - 1)) = q sqrt(T) / sigma to first order
    assert gdp_mu(0.01, sigma, 100) == pytest.approx(0.1 / sigma, rel=1e-12)
    assert gdp_epsilon(0.01, sigma, 100, 1e-5) == 0.0
    assert gdp_delta(0.01, sigma, 100, 1.0) == 0.0


def test_gaussian_closed_forms_at_extreme_noise_and_steps():
    assert gaussian_epsilon(1e-5, 1e-300) == math.inf
    assert gaussian_delta(1.0, 1e-300) == 1.0
    assert gaussian_epsilon(1e-5, 1e300) == 0.0 and gaussian_delta(1.0, 1e300) == 0.0
    assert gaussian_epsilon(1e-5, 1.0, 10**400) == math.inf
    assert gaussian_delta(1.0, 1.0, 10**400) == 1.0
    assert gdp_mu(0.01, 1.0, 10**400) == pytest.approx(
        0.01 * 1e200 * math.sqrt(math.e - 1.0), rel=1e-12
    )
    # mu = 1e200: epsilon about mu^2 / 2 = 5e399, beyond the float range
    assert gaussian_epsilon(1e-5, 1e-200) == math.inf


def test_gdp_unchanged_on_the_tutorial():
    # Dong, Roth, Su's CLT mu for q = 250/60000, sigma 1.3, T = 3600
    mu = 250 / 60000 * math.sqrt(3600 * math.expm1(1 / 1.3**2))
    assert gdp_mu(250 / 60000, 1.3, 3600) == pytest.approx(mu, rel=1e-14)


# --- item 5: cost independent of sigma -----------------------------------------------------------


def test_small_noise_is_fast_and_bounded():
    out = _run_capped(
        """
        import time
        import accounting
        start = time.perf_counter()
        values = [accounting.RdpAccountant().compose(256 / 60000, s, 14063).get_epsilon(1e-5)
                  for s in (1e-2, 1e-3, 1e-4, 3e-5, 1e-5, 1e-100)]
        sigma = accounting.calibrate_noise_multiplier(1e300, 1e-5, 256 / 60000, 14063)
        print(time.perf_counter() - start, *values, sigma)
        """,
        timeout=60,
    )
    seconds, *values, sigma = map(float, out.split())
    assert seconds < 20.0
    assert all(math.isfinite(v) for v in values)
    assert values == sorted(values)  # less noise, more epsilon
    assert 0.0 < sigma <= accounting.calibration.MIN_NOISE_MULTIPLIER


def test_chord_fallback_is_above_the_exact_value():
    """Orders over the node budget get the chord bound, which is never below the quadrature."""
    q, sigma, alpha = np.array([0.3, 0.004]), np.array([0.003, 0.003]), np.array([2.5, 7.3])
    with np.errstate(all="ignore"):
        chord = rdp_module.rdp_items(q, sigma, alpha)
    old = rdp_module._MAX_ITEM_NODES
    try:
        rdp_module._MAX_ITEM_NODES = 10**9
        with np.errstate(all="ignore"):
            exact = rdp_module.rdp_items(q, sigma, alpha)
    finally:
        rdp_module._MAX_ITEM_NODES = old
    assert np.all(chord >= exact) and np.all(chord <= 1.01 * exact)


@settings(max_examples=40, deadline=None)
@given(
    q=st.floats(1e-6, 0.99),
    sigma=st.floats(0.3, 20.0),
    alpha=st.floats(1.01, 200.0).filter(lambda a: a != math.floor(a)),
)
def test_chord_bound_is_an_upper_bound(q, sigma, alpha):
    args = (np.array([q]), np.array([sigma]), np.array([alpha]))
    with np.errstate(all="ignore"):
        chord = rdp_module._log_a_interpolated(*args)[0]
        exact = np.logaddexp(0.0, rdp_module._log_a_minus_1_fractional(*args)[0])
    assert chord >= exact * (1.0 - 1e-10)


# --- item 6: limits on the orders ---------------------------------------------------------------


@pytest.mark.parametrize("orders", [[1e10], [1e300], [np.inf], [1e6 + 0.5], [1.0]])
def test_orders_beyond_the_limit_are_rejected(orders):
    for call in (
        lambda: poisson_gaussian_rdp(0.01, 1.1, orders),
        lambda: RdpAccountant(orders=orders),
        lambda: epsilon_grid(0.01, 1.1, 10, 1e-5, orders=orders),
        lambda: epsilon_from_rdp([1.0], orders, 1e-5),
        lambda: delta_from_rdp([1.0], orders, 1.0),
    ):
        with pytest.raises(ValueError, match="orders"):
            call()


def test_moments_limits():
    with pytest.raises(ValueError, match=r"max_lambda.*\[1, 1024\]"):
        MomentsAccountant(10**6)
    with pytest.raises(ValueError, match="lambdas"):
        gaussian_log_moments(0.01, 1.1, [1e9])
    with pytest.raises(ValueError, match="lambdas"):
        gaussian_log_moments(0.01, 1.1, [np.inf])
    with pytest.raises(ValueError, match=">= 1"):
        MomentsAccountant(0)
    with pytest.raises(ValueError, match=">= 1"):
        MomentsAccountant(2.5)


def test_largest_orders_stay_in_bounded_memory():
    out = _run_capped(
        """
        import numpy as np
        import accounting
        one = accounting.poisson_gaussian_rdp(0.01, 1.1, [1e6])
        many = accounting.poisson_gaussian_rdp(0.01, 1.1, [1e6] * 6 + [1e6 - 0.5])
        moments = accounting.MomentsAccountant(1024).compose(0.01, 1.1, 10).get_epsilon(1e-5)
        print(one[0], *many, moments)
        """,
        timeout=60,
    )
    one, *many, moments = map(float, out.split())
    assert many[:6] == [one] * 6 and 0.0 < many[6] <= one and math.isfinite(moments)


def test_reference_is_bounded():
    with pytest.raises(ValueError, match="alpha"):
        reference.rdp(0.01, 1.1, 1e6)
    with pytest.raises(ValueError, match="sigma"):
        reference.rdp(0.01, 1e-300, 2.5)
    with pytest.raises(ValueError, match="sigma"):
        reference.log_moment(0.01, 1e20, 3)
    with pytest.raises(ValueError, match="digits"):
        reference.rdp(0.01, 1.1, 3, digits=10**6)
    with pytest.raises(ValueError, match="lam"):
        reference.log_moment(0.01, 1.1, 10**6)
    with pytest.raises(ValueError, match="epsilon"):
        reference.hockey_stick_delta(0.01, 1.0, math.inf, "remove")
    for epsilon in (-3.868562622766814e25, -1e-3, 1e300):  # the root search walked for minutes
        with pytest.raises(ValueError, match="epsilon must lie in"):
            reference.hockey_stick_delta(0.01, 1.1, epsilon, "add")
    # integer orders by the binomial sum accept any sigma: (A - 1) ~ q^2 e^(1/sigma^2)
    assert reference.rdp(0.01, 1e-300, 3) > reference.mpmath.mpf("1e599")


# --- item 9: calibrate_sample_rate's relative tolerance -----------------------------------------


@pytest.mark.parametrize(("target", "steps"), [(1e-3, 14063), (1.0, 10**12), (3.0, 14063)])
def test_sample_rate_is_positive_and_near_the_boundary(target, steps):
    tolerance = 1e-6
    q = calibrate_sample_rate(target, 1e-5, 1.1, steps, tolerance=tolerance)
    assert 0.0 < q < 1.0
    assert compute_epsilon(q, 1.1, steps, 1e-5) <= target
    assert compute_epsilon(q * (1.0 + 2.0 * tolerance), 1.1, steps, 1e-5) > target


def test_sample_rate_tiny_boundary():
    assert calibrate_sample_rate(1e-3, 1e-5, 1.1, 14063) == pytest.approx(1.0467e-7, rel=1e-4)


def test_sample_rate_tolerance_must_be_relative():
    for tolerance in (1.0, 2.0):
        with pytest.raises(ValueError, match="tolerance"):
            calibrate_sample_rate(1.0, 1e-5, 1.1, 1000, tolerance=tolerance)


@settings(max_examples=15, deadline=None)
@given(
    target=st.floats(1e-4, 20.0),
    sigma=st.floats(0.5, 5.0),
    steps=st.integers(1, 10**9),
    tolerance=st.sampled_from([1e-2, 1e-4, 1e-6]),
)
def test_sample_rate_meets_target_within_relative_tolerance(target, sigma, steps, tolerance):
    q = calibrate_sample_rate(target, 1e-5, sigma, steps, tolerance=tolerance)
    assert compute_epsilon(q, sigma, steps, 1e-5) <= target
    if q < 1.0:
        assert q > 0.0
        assert compute_epsilon(min(1.0, q * (1.0 + 2.0 * tolerance)), sigma, steps, 1e-5) > target


# --- item 10: NumPy scalars in calibration ------------------------------------------------------


def test_calibration_accepts_numpy_scalars():
    q, sigma, steps = 0.01, 1.1, 1000
    assert calibrate_noise_multiplier(np.float32(3.0), 1e-5, q, steps) == pytest.approx(
        calibrate_noise_multiplier(float(np.float32(3.0)), 1e-5, q, steps)
    )
    calibrate_noise_multiplier(3.0, 1e-5, q, steps, tolerance=np.float32(1e-6))
    assert calibrate_steps(np.int64(3), 1e-5, q, sigma) == calibrate_steps(3, 1e-5, q, sigma)
    assert calibrate_sample_rate(np.float64(3.0), np.float64(1e-5), np.float32(1.1), np.int64(
        steps)) == calibrate_sample_rate(3.0, 1e-5, float(np.float32(1.1)), steps)


# --- item 11: nothing spent ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "compose", [lambda a: a, lambda a: a.compose(0.0, 1.0, 10), lambda a: a.compose(0.5, 1.0, 0),
                lambda a: a.compose(0.01, 1e300, 10)],
)
def test_moments_with_nothing_spent_is_zero(compose):
    accountant = compose(MomentsAccountant())
    assert accountant.get_epsilon(1e-5) == 0.0
    assert accountant.get_delta(0.0) <= 1e-300 and accountant.get_delta(1.0) <= 1e-300


def test_moments_floor_kept_where_the_tv_bound_does_not_reach():
    # total variation of 10 steps at sigma 1e300 is about 4e-303: a smaller delta keeps the floor
    assert MomentsAccountant().compose(0.01, 1e300, 10).get_epsilon(1e-320) > 0.0


def test_rdp_with_nothing_spent_is_zero_under_both_conversions():
    for conversion in ("improved", "classic"):
        accountant = RdpAccountant(conversion=conversion).compose(0.0, 1.0, 5)
        assert accountant.get_epsilon(1e-5) == 0.0 and accountant.get_delta(0.0) == 0.0
        grid = epsilon_grid([0.0, 0.01], 1.1, [[0], [10]], 1e-5, conversion=conversion)[0]
        assert grid[0, 0] == grid[0, 1] == grid[1, 0] == 0.0 and grid[1, 1] > 0.0


def test_moments_unreachable_target_names_the_accountant():
    with pytest.raises(ValueError, match="moments"):
        calibrate_noise_multiplier(1e-6, 1e-5, 0.01, 1000, accountant="moments")


# --- item 15: argument checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: RdpAccountant().compose([0.01], 1.1, 10), TypeError, "sample_rate"),
        (lambda: RdpAccountant().compose(0.01, [1.1], 10), TypeError, "noise_multiplier"),
        (lambda: MomentsAccountant().compose(np.array([0.01]), 1.1, 10), TypeError, "sample_rate"),
        (lambda: calibrate_noise_multiplier(3.0, 1e-5, [0.01], 10), TypeError, "sample_rate"),
        (lambda: gdp_mu([0.01], 1.1, 10), TypeError, "sample_rate"),
        (lambda: RdpAccountant().compose(True, 1.1, 10), TypeError, "sample_rate"),
        (lambda: RdpAccountant().compose(0.01, True, 10), TypeError, "noise_multiplier"),
        (lambda: RdpAccountant().compose(0.01, 1.1, True), TypeError, "steps"),
        (lambda: poisson_gaussian_rdp(np.array([True]), 1.1, [2]), TypeError, "sample_rate"),
        (lambda: calibrate_noise_multiplier(3.0, 1e-5, 0.01, 10, tolerance=True), TypeError,
         "tolerance"),
        (lambda: calibrate_noise_multiplier(True, 1e-5, 0.01, 10), TypeError, "target_epsilon"),
        (lambda: epsilon_grid(0.01, 1.1, np.inf, 1e-5), ValueError, "steps"),
        (lambda: epsilon_grid(0.01, 1.1, "10", 1e-5), TypeError, "steps"),
        (lambda: epsilon_grid(0.01, 1.1, [1.5], 1e-5), ValueError, "steps"),
        (lambda: gaussian_log_moments(0.01, 1.1, "3"), TypeError, "lambdas"),
        # found by the public-surface property test
        (lambda: accounting.get_privacy_budget(60000, 256, math.nan, 1.1, 1e-5), ValueError,
         "num_epochs"),
        (lambda: accounting.reference.rdp(0.01, 1.1, "abc"), ValueError, "alpha"),
        (lambda: calibrate_noise_multiplier(1.0, 1e-5, 0.01, 1e160), ValueError,
         "steps=1000000000000000"),
        (lambda: calibrate_steps(1.0, 1e-5, 0.01, 1357407.0), ValueError,
         "noise_multiplier=1.35741e"),
        (lambda: gdp_mu(1j, 1.1, 10), TypeError, "sample_rate"),
        (lambda: RdpAccountant().compose(0.01, 10**400, 3), ValueError, "noise_multiplier"),
        (lambda: delta_from_rdp([0.1], [2.0], 10**400), ValueError, "epsilon"),
        (lambda: reference.rdp_to_epsilon_classic([0.1, 0.2], None, 1e-5), TypeError, "orders"),
        (lambda: delta_from_rdp(10**400, [2.0], 1.0), ValueError, "rdp"),
        (lambda: epsilon_from_rdp([True], [2.0], 1e-5), TypeError, "rdp"),
        (lambda: reference.hockey_stick_delta(0.01, 1.1, 0.5, [0.5]), ValueError, "direction"),
        (lambda: epsilon_grid([0.01, 0.02], [], [10, 1000], 1e-5), ValueError,
         "noise_multiplier"),
        (lambda: poisson_gaussian_rdp([0.01, 0.02], [1.0, 2.0, 3.0], [2]), ValueError,
         "noise_multiplier"),
    ],
)
def test_bad_arguments_are_named(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_epochs_beyond_the_float_range_count_exactly():
    # 1e307 epochs of 60000/256 overflow a float product; the exact count is still returned
    _, steps = accounting.dpsgd_sample_rate_and_steps(60000, 256, 1e307)
    assert steps == -(-int(1e307) * 60000 // 256)
    # within range, TF Privacy's float arithmetic: ceil(0.1 * 10 / 1) = 1, not 2
    assert accounting.dpsgd_sample_rate_and_steps(10, 1, 0.1) == (0.1, 1)
    assert accounting.dpsgd_sample_rate_and_steps(60000, 256, 60) == (256 / 60000, 14063)
    # an int beyond the float range too: epsilon is inf, not an OverflowError
    assert accounting.dpsgd_sample_rate_and_steps(60000, 256, 10**400)[1] == -(
        -(10**400) * 60000 // 256
    )
    assert accounting.get_privacy_budget(60000, 256, 10**400, 1.1, 1e-5) == math.inf


@pytest.mark.parametrize("tolerance", [1e-300, 5e-324])
def test_tolerance_below_float_resolution_still_finishes(tolerance):
    # the safe-side walk moved by tolerance / 2 per step: forever at 1e-300
    rate = calibrate_sample_rate(1.0, 1e-5, 1.1, 1000, tolerance=tolerance)
    assert compute_epsilon(rate, 1.1, 1000, 1e-5) <= 1.0
    assert compute_epsilon(rate * (1 + 1e-9), 1.1, 1000, 1e-5) > 1.0
    sigma = calibrate_noise_multiplier(1.0, 1e-5, 0.01, 1000, tolerance=tolerance)
    assert compute_epsilon(0.01, sigma, 1000, 1e-5) <= 1.0
    assert compute_epsilon(0.01, sigma * (1 - 1e-9), 1000, 1e-5) > 1.0


def test_huge_targets_leak_no_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a PLD bracket wider than its target is announced on purpose; NumPy's warnings are not
        warnings.simplefilter("ignore", accounting.ToleranceNotMetWarning)
        # order search over RDP values near the float range
        eps = RdpAccountant().compose(0.01, 1.1, 10**305).get_epsilon(1e-5)
        assert eps == math.inf or eps > 1e290
        with pytest.raises(ValueError, match="more than MAX_STEPS"):
            calibrate_steps(1e20, 1e-5, 0.01, 1.1)
        # subnormal noise: the total-variation bound's 1/sigma overflows to its right limit
        assert epsilon_grid([0.01, 0.02], 5e-324, [10, 1000], 1e-5)[0].tolist() == [
            math.inf, math.inf
        ]
        assert MomentsAccountant().compose(0.01, 5e-324, 10).get_delta(1.0) == 1.0
        # an epsilon near the float range: delta 0, without an overflow warning
        for conversion in ("improved", "classic"):
            assert delta_from_rdp([0.1, 0.2, 0.4], [2.0, 4.0, 8.0], 2.5681330498033083e307,
                                  conversion)[0] == 0.0
            assert RdpAccountant(conversion=conversion).compose(0.01, 1.1, 10).get_delta(
                1.7e308) == 0.0
        for target in (1e20, 1e300):  # PLD windows of an infinite spread, too
            with pytest.raises(ValueError, match="more than MAX_STEPS"):
                calibrate_steps(target, 1e-5, 0.01, 1.1, accountant="pld")


def test_arrays_still_work_where_accepted():
    assert poisson_gaussian_rdp([0.01], [1.1], [2, 2.5]).shape == (1, 2)


def test_huge_step_counts():
    assert RdpAccountant().compose(0.01, 1.1, 10**400).get_epsilon(1e-5) == math.inf
    assert RdpAccountant().compose(0.01, 1.1, 10**400).get_delta(1.0) == 1.0
    assert MomentsAccountant().compose(0.01, 1.1, 10**400).get_epsilon(1e-5) == math.inf
    epsilon, _ = epsilon_grid(0.01, 1.1, [10**30, 10**400], 1e-5)
    assert epsilon[0] == pytest.approx(
        RdpAccountant().compose(0.01, 1.1, 10**30).get_epsilon(1e-5), rel=1e-12
    )
    assert epsilon[1] == math.inf


def test_empty_grid():
    epsilon, order = epsilon_grid([], 1.1, 10, 1e-5)
    assert epsilon.shape == order.shape == (0,)


def test_duplicate_and_unsorted_orders_without_warnings():
    orders = [2, 2, 3, 3, 4, 5, 6]
    expected = RdpAccountant(orders=[2, 3, 4, 5, 6]).compose(0.01, 1.1, 10).get_epsilon(1e-5)
    assert RdpAccountant(orders=orders).compose(0.01, 1.1, 10).get_epsilon(1e-5) == expected
    shuffled = [64, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1.5, 1.5]
    got = RdpAccountant(orders=shuffled).compose(0.01, 1.1, 1000).get_epsilon_and_order(1e-5)
    rdp = poisson_gaussian_rdp(0.01, 1.1, shuffled) * 1000
    assert got[0] == epsilon_from_rdp(rdp, shuffled, 1e-5)[0]


def test_many_fractional_orders_keep_the_order_search_small():
    orders = np.linspace(1.01, 1.99, 5000)  # no standard anchor among them
    epsilon, order = RdpAccountant(orders=orders).compose(0.01, 1.1, 100).get_epsilon_and_order(
        1e-5
    )
    rdp = poisson_gaussian_rdp(0.01, 1.1, orders) * 100
    assert (epsilon, order) == epsilon_from_rdp(rdp, orders, 1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: RdpAccountant().compose(0.5, 1e-3, 10).get_epsilon(1e-5),
        lambda: epsilon_grid(0.5, [1e-3, 1e-100, 1e-300], 10, 1e-5),
        lambda: RdpAccountant().compose(0.5, 1e-300, 10).get_delta(1.0),
        lambda: MomentsAccountant().compose(1.0, 1e-300, 10).get_epsilon(1e-5),
        lambda: poisson_gaussian_rdp([[0.0], [1e-300], [0.5], [1.0]], [1e-300, 1e300],
                                     [1.5, 2, 1e6]),
        lambda: compute_epsilon(1e-300, 1e300, 10**400, 1e-5),
        lambda: gaussian_log_moments(1.0, 1e-300, [1, 1024]),
    ],
)
def test_extremes_leak_no_warning_and_no_nan(call):
    result = call()
    parts = result if isinstance(result, tuple) else (result,)
    assert not any(np.any(np.isnan(np.asarray(part, dtype=float))) for part in parts)
