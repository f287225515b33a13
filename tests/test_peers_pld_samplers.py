"""PLD brackets for mixtures of Gaussians and truncated Poisson against dp_accounting 0.6's
pessimistic PLDAccountant (connect-the-dots, value_discretization_interval 1e-4): its value is a
certified upper bound up to its own discretisation, so ours lies below it (the upper end within
a small slack, the lower end strictly); fixed-size batches against its RDP accountant."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

dp_accounting = pytest.importorskip("dp_accounting")

from dp_accounting import dp_event  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant  # noqa: E402
from scipy.stats import binom  # noqa: E402

from accounting.events import (  # noqa: E402
    Gaussian,
    MixtureOfGaussians,
    SampledWithoutReplacement,
    TruncatedPoissonGaussian,
)
from accounting.pld.accountant import PldAccountant, ToleranceNotMetWarning  # noqa: E402

N = 60000
SETTING_A = (256, 1.1, 14063)
SETTING_B = (250, 1.3, 3600)
DELTA = 1e-5
#: dp_accounting's grid error at 1e-4 over these runs stays below this (its own pessimistic
#: rounding moves each step's loss up by at most 1e-4; ours by at most our tolerance)
SLACK = 1.5e-3


def _theirs(event, count):
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dp_event.SelfComposedDpEvent(event, count))
    return accountant.get_epsilon(DELTA)


def _ours(event, count, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        return PldAccountant(**options).compose(event, count).get_epsilon_bounds(DELTA)


@pytest.mark.parametrize("k", [2, 5])
def test_user_level_mixture_on_setting_b(k):
    b, sigma, count = SETTING_B
    q = b / N
    probabilities = binom.pmf(np.arange(k + 1), k, q)
    theirs = _theirs(dp_event.MixtureOfGaussiansDpEvent(sigma, list(range(k + 1)),
                                                         probabilities.tolist()), count)
    ours = _ours(MixtureOfGaussians(sigma, tuple(float(c) for c in range(k + 1)),
                                    tuple(probabilities.tolist())), count)
    assert ours.lower <= theirs
    assert ours.upper <= theirs + SLACK
    assert ours.width <= 1e-3


def test_three_point_mixture_on_setting_b():
    b, sigma, count = SETTING_B
    q = b / N
    sensitivities, probabilities = [0.0, 0.5, 2.0], [1 - q, 0.8 * q, 0.2 * q]
    theirs = _theirs(dp_event.MixtureOfGaussiansDpEvent(sigma, sensitivities, probabilities),
                     count)
    ours = _ours(MixtureOfGaussians(sigma, sensitivities, probabilities), count)
    assert ours.lower <= theirs <= ours.upper + SLACK
    assert ours.upper <= theirs + SLACK


@pytest.mark.parametrize("setting, extra", [(SETTING_A, 20), (SETTING_B, 20), (SETTING_B, 0)])
def test_truncated_poisson_on_the_standard_settings(setting, extra):
    b, sigma, count = setting
    q = b / N
    theirs = _theirs(dp_event.TruncatedSubsampledGaussianDpEvent(N, q, b + extra, sigma), count)
    ours = _ours(TruncatedPoissonGaussian(N, q, b + extra, sigma), count)
    # the same dominating construction: the upper ends agree up to the two grids
    assert ours.upper <= theirs + SLACK
    assert ours.upper >= theirs - SLACK
    assert ours.lower <= theirs


def test_truncated_poisson_with_a_large_cap_is_poisson():
    b, sigma, count = SETTING_B
    q = b / N
    theirs = _theirs(dp_event.TruncatedSubsampledGaussianDpEvent(N, q, 10 * b, sigma), count)
    ours = _ours(TruncatedPoissonGaussian(N, q, 10 * b, sigma), count)
    assert ours.lower <= theirs <= ours.upper + SLACK


@pytest.mark.parametrize("setting", [SETTING_A, SETTING_B])
def test_fixed_size_batches_are_below_dp_accountings_rdp(setting):
    # dp_accounting's PLD does not compose sampling without replacement; its RDP accountant does
    # (Wang, Balle, Kasiviswanathan 2019), a certified upper bound for the same event
    b, sigma, count = setting
    relation = dp_accounting.privacy_accountant.NeighboringRelation.REPLACE_ONE
    rdp = rdp_privacy_accountant.RdpAccountant(neighboring_relation=relation)
    rdp.compose(dp_event.SelfComposedDpEvent(dp_event.SampledWithoutReplacementDpEvent(
        N, b, dp_event.GaussianDpEvent(sigma / 2)), count))
    theirs = rdp.get_epsilon(DELTA)
    ours = _ours(SampledWithoutReplacement(N, b, Gaussian(sigma / 2)), count,
                 neighboring="replace_one")
    assert ours.lower <= ours.upper <= theirs
