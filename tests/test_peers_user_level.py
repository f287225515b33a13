"""The user-level mixture step against dp_accounting's MixtureOfGaussiansDpEvent (run with the
peers' venv: /tmp/peers/bin/python -m pytest, or make test-integrations)."""

from __future__ import annotations

import pytest

dp_accounting = pytest.importorskip("dp_accounting")

import accounting  # noqa: E402
from accounting.events import MixtureOfGaussians  # noqa: E402
from accounting.user_level import user_level_epsilon_bounds, user_level_step  # noqa: E402

N, B, SIGMA, STEPS, DELTA = 60000, 250, 1.3, 3600, 1e-5

if not accounting.make_accountant("pld").supports(
        MixtureOfGaussians(1.0, (0.0, 1.0), (0.5, 0.5))):
    pytest.skip("the PLD accountant does not compose MixtureOfGaussians events",
                allow_module_level=True)


@pytest.mark.parametrize("k", [2, 5])
def test_mixture_bracket_against_dp_accounting(k):
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant

    step = user_level_step(B / N, SIGMA, k)
    theirs = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3).compose(
        dp_event.SelfComposedDpEvent(
            dp_event.MixtureOfGaussiansDpEvent(SIGMA, list(step.sensitivities),
                                               list(step.probabilities)), STEPS)
    ).get_epsilon(DELTA)
    ours = user_level_epsilon_bounds(B / N, SIGMA, STEPS, DELTA, k)
    # dp_accounting's pessimistic estimate lies above the true epsilon, so above our lower
    # bound, and within its own grid's rounding of our certified upper bound
    assert ours.lower <= theirs <= ours.upper + 5e-3
