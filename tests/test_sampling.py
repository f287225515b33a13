"""DP-SGD runs as the events of their samplers (accounting.sampling), epsilon and calibration
for every sampler, and the CLI's --sampling."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accounting
from accounting import (
    SAMPLINGS,
    calibrate_dpsgd_noise_multiplier,
    calibrate_dpsgd_steps,
    calibrate_noise_multiplier,
    dpsgd_epsilon,
    dpsgd_run,
    epsilon_from_rdp,
)
from accounting.cli import main
from accounting.events import (
    Gaussian,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
    SelfComposed,
    ShuffledEpoch,
    TruncatedPoissonGaussian,
)

# TF Privacy's MNIST tutorial: 60000 examples, batch 250, sigma 1.3, 15 epochs, delta 1e-5
N, B, SIGMA, EPOCHS, DELTA = 60000, 250, 1.3, 15, 1e-5


def _gaussian_delta_mpmath(epsilon: float, mu: float) -> mpmath.mpf:
    """Exact delta of the Gaussian mechanism with mu = sensitivity / sigma (Balle & Wang 2018,
    Theorem 8), in mpmath."""
    mpmath.mp.dps = 40
    eps, mu = mpmath.mpf(epsilon), mpmath.mpf(mu)
    return mpmath.ncdf(-eps / mu + mu / 2) - mpmath.exp(eps) * mpmath.ncdf(-eps / mu - mu / 2)


def _bisect(function, low: float, high: float) -> float:
    """Root of an increasing ``function`` in ``[low, high]`` by 200 bisections (mpmath)."""
    low, high = mpmath.mpf(low), mpmath.mpf(high)
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if function(middle) < 0 else (low, middle)
    return float((low + high) / 2)


def _gaussian_epsilon_mpmath(delta: float, mu: float) -> float:
    """Exact epsilon at ``delta`` (delta decreases in epsilon)."""
    return _bisect(lambda e: delta - _gaussian_delta_mpmath(e, mu), 0.0, 500.0)


def test_each_sampler_builds_its_event_and_relation():
    runs = {name: dpsgd_run(N, B, SIGMA, epochs=EPOCHS, sampling=name,
                            max_batch_size=300 if name == "truncated" else None)
            for name in SAMPLINGS}
    assert runs["poisson"].event == SelfComposed(PoissonSampled(B / N, Gaussian(SIGMA)), 3600)
    assert runs["fixed"].event == SelfComposed(
        SampledWithoutReplacement(N, B, Gaussian(SIGMA / 2)), 3600)
    assert runs["truncated"].event == SelfComposed(
        TruncatedPoissonGaussian(N, B / N, 300, SIGMA), 3600)
    assert runs["shuffle"].event == SelfComposed(ShuffledEpoch(240, Gaussian(SIGMA)), 15)
    assert runs["balls-in-bins"].event == SelfComposed(RandomAllocation(240, Gaussian(SIGMA)), 15)
    assert {name: run.neighboring for name, run in runs.items()} == {
        "poisson": "add_remove", "fixed": "replace_one", "truncated": "add_remove",
        "shuffle": "zero_out", "balls-in-bins": "add_remove"}
    assert all(run.steps == 3600 for run in runs.values())
    assert runs["fixed"].accountant_options == {"neighboring": "replace_one"}
    assert runs["shuffle"].accountant_options == {}


def test_epoch_samplers_count_a_partial_epoch_as_a_whole_one():
    # 1000 examples in batches of 300: 4 shuffled batches per epoch, 3 balls-in-bins steps
    shuffled = dpsgd_run(1000, 300, 1.0, epochs=2.5, sampling="shuffle")
    assert (shuffled.count, shuffled.unit_event.batches, shuffled.steps) == (3, 4, 12)
    allocated = dpsgd_run(1000, 300, 1.0, steps=7, sampling="balls_in_bins")
    assert (allocated.count, allocated.unit_event.steps, allocated.steps) == (3, 3, 9)
    assert dpsgd_run(1000, 300, 1.0, epochs=10**30, sampling="shuffle").count == 10**30


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sampling": "bernoulli"}, ValueError, "sampling must be one of"),
        ({"sampling": 3}, TypeError, "sampling must be a string"),
        ({"sampling": "truncated"}, ValueError, "needs max_batch_size"),
        ({"sampling": "fixed", "max_batch_size": 5}, ValueError, "only of it"),
        ({"sampling": "truncated", "max_batch_size": 0}, ValueError, "max_batch_size"),
        ({"steps": 10}, TypeError, "exactly one of epochs and steps"),
    ],
)
def test_bad_runs_are_refused_naming_the_argument(kwargs, error, message):
    kwargs = {"epochs": 1, **kwargs}
    with pytest.raises(error, match=message):
        dpsgd_run(100, 10, 1.0, **kwargs)


def test_shuffled_epsilon_is_once_per_epoch_and_the_pld_brackets_the_exact_gaussian():
    """A shuffled epoch is one Gaussian release: E epochs are the Gaussian mechanism with
    mu = sqrt(E) / sigma, whose exact epsilon (mpmath) the certified PLD must bracket and RDP's
    bound must not undercut; RDP equals the closed-form RDP E alpha / (2 sigma^2) converted."""
    exact = _gaussian_epsilon_mpmath(DELTA, math.sqrt(EPOCHS) / SIGMA)
    orders = accounting.DEFAULT_ORDERS
    closed_form, _ = epsilon_from_rdp(EPOCHS * orders / (2 * SIGMA**2), orders, DELTA)
    rdp = dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle")
    assert rdp == pytest.approx(closed_form, rel=1e-12)
    assert rdp >= exact
    ledger = accounting.PldAccountant().compose(dpsgd_run(N, B, SIGMA, epochs=EPOCHS,
                                                          sampling="shuffle").event)
    lower, upper, _ = ledger.get_epsilon_bounds(DELTA)
    assert lower <= exact <= upper
    assert upper - lower <= 1e-3 * max(exact, 1.0)
    # the Poisson figure is far below: it must never stand for the shuffled run
    assert dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA) < exact / 10


def test_poisson_sampling_is_unchanged():
    assert dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA) == pytest.approx(0.9422, abs=5e-5)
    assert dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA, sampling="poisson") == dpsgd_epsilon(
        N, B, EPOCHS, SIGMA, DELTA)


def test_an_accountant_that_cannot_handle_a_sampler_says_so():
    with pytest.raises(accounting.UnsupportedEventError, match="RandomAllocation|Truncated"):
        dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA, accountant="moments",
                      sampling="truncated", max_batch_size=300)


def test_poisson_noise_calibration_is_the_existing_one():
    q, steps = B / N, 3600
    assert calibrate_dpsgd_noise_multiplier(1.0, DELTA, N, B, epochs=EPOCHS) == (
        calibrate_noise_multiplier(1.0, DELTA, q, steps))


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_shuffled_noise_calibration_lands_on_the_safe_side_of_the_exact_gaussian(accountant):
    """The exact boundary: mu* with exact epsilon(mu*) = target, sigma* = sqrt(E) / mu*. Any
    certified accountant's answer is at least sigma*; the PLD's is within its bracket."""
    target = 8.0
    mu_star = _bisect(lambda mu: _gaussian_delta_mpmath(target, mu) - DELTA, 0.01, 20.0)
    sigma_star = math.sqrt(EPOCHS) / mu_star
    sigma = calibrate_dpsgd_noise_multiplier(target, DELTA, N, B, epochs=EPOCHS,
                                             sampling="shuffle", accountant=accountant)
    assert sigma >= sigma_star * (1 - 1e-9)
    assert dpsgd_epsilon(N, B, EPOCHS, sigma, DELTA, accountant, sampling="shuffle") <= target
    if accountant == "pld":
        assert sigma <= sigma_star * 1.01


def test_step_calibration_is_the_largest_whole_number_of_epochs_for_shuffling():
    sigma, target = 4.0, 8.0
    steps = calibrate_dpsgd_steps(target, DELTA, N, B, sigma, sampling="shuffle")
    epochs = steps // 240
    assert steps == epochs * 240 and epochs > 0
    assert dpsgd_epsilon(N, B, epochs, sigma, DELTA, sampling="shuffle") <= target
    assert dpsgd_epsilon(N, B, epochs + 1, sigma, DELTA, sampling="shuffle") > target


@settings(max_examples=30, deadline=None)
@given(epochs=st.integers(1, 200), sigma=st.floats(0.5, 20.0), more=st.integers(1, 50),
       factor=st.floats(1.01, 3.0))
def test_shuffled_epsilon_grows_with_epochs_and_falls_with_noise(epochs, sigma, more, factor):
    base = dpsgd_epsilon(N, B, epochs, sigma, DELTA, sampling="shuffle")
    assert dpsgd_epsilon(N, B, epochs + more, sigma, DELTA, sampling="shuffle") >= base
    assert dpsgd_epsilon(N, B, epochs, sigma * factor, DELTA, sampling="shuffle") <= base
    assert base >= _gaussian_epsilon_mpmath(DELTA, math.sqrt(epochs) / sigma) - 1e-9


def _cli_json(*args) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--json"]) == 0
    return json.loads(out.getvalue())


def test_cli_sampling_shuffle_reports_the_once_per_epoch_epsilon_and_its_relation():
    report = _cli_json("epsilon", "--sample-size", str(N), "--batch-size", str(B), "--epochs",
                       str(EPOCHS), "--noise-multiplier", str(SIGMA), "--delta", str(DELTA),
                       "--sampling", "shuffle", "--accountant", "rdp")
    assert report["run"]["sampling"] == "shuffle"
    assert report["run"]["neighboring"] == "zero_out"
    assert report["run"]["epochs_accounted"] == EPOCHS
    (row,) = report["results"]
    assert row["epsilon"] == dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA, sampling="shuffle")
    assert "approximation" not in report  # the Poisson CLT estimate is not this run's


def test_cli_noise_and_steps_use_the_sampler():
    noise = _cli_json("noise", "--sample-size", str(N), "--batch-size", str(B), "--epochs",
                      str(EPOCHS), "--epsilon", "8", "--delta", str(DELTA), "--sampling",
                      "shuffle", "--accountant", "rdp")
    assert noise["results"][0]["noise_multiplier"] == calibrate_dpsgd_noise_multiplier(
        8.0, DELTA, N, B, epochs=EPOCHS, sampling="shuffle", tolerance=1e-6)
    steps = _cli_json("steps", "--sample-size", str(N), "--batch-size", str(B),
                      "--noise-multiplier", "4", "--epsilon", "8", "--delta", str(DELTA),
                      "--sampling", "shuffle", "--accountant", "rdp")
    assert steps["results"][0]["steps"] == calibrate_dpsgd_steps(8.0, DELTA, N, B, 4.0,
                                                                 sampling="shuffle")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample-rate", "0.01", "--steps", "10", "--sampling", "fixed"],
         "--sampling fixed needs --sample-size and --batch-size"),
        (["--sample-size", "100", "--batch-size", "10", "--steps", "10", "--max-batch-size",
          "5"], "--max-batch-size goes with --sampling truncated"),
        (["--sample-size", "100", "--batch-size", "10", "--steps", "10", "--sampling",
          "truncated"], "--max-batch-size goes with --sampling truncated"),
    ],
)
def test_cli_sampling_argument_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["epsilon", *args, "--noise-multiplier", "1", "--delta", "1e-5"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_moments_row_says_it_has_no_replace_one_relation():
    report = _cli_json("epsilon", "--sample-size", str(N), "--batch-size", str(B), "--epochs",
                       "1", "--noise-multiplier", str(SIGMA), "--delta", str(DELTA),
                       "--sampling", "fixed", "--accountant", "moments", "--accountant", "rdp")
    moments = next(row for row in report["results"] if row["accountant"] == "moments")
    assert "no replace-one relation" in moments["error"]
    assert np.isfinite(next(row for row in report["results"]
                            if row["accountant"] == "rdp")["epsilon"])


def test_cli_statement_reports_the_sampler_used_and_labels_the_poisson_figure(capsys):
    report = _cli_json("statement", "--sample-size", str(N), "--batch-size", str(B),
                       "--epochs", str(EPOCHS), "--noise-multiplier", str(SIGMA), "--delta",
                       str(DELTA), "--sampling", "shuffle")
    assert report["sampling"] == "shuffle" and report["neighboring"] == "zero_out"
    lines = {line["key"]: line for line in report["lines"]}
    assert lines["once_per_epoch"]["guarantee"] is True
    assert lines["once_per_epoch"]["epsilon"] == dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA,
                                                               sampling="shuffle")
    assert lines["poisson"]["guarantee"] is False
    assert lines["poisson"]["epsilon"] == dpsgd_epsilon(N, B, EPOCHS, SIGMA, DELTA)
    assert lines["poisson"]["assumption"]
    assert main(["statement", "--sample-size", str(N), "--batch-size", str(B), "--epochs",
                 str(EPOCHS), "--noise-multiplier", str(SIGMA), "--delta", str(DELTA),
                 "--sampling", "shuffle"]) == 0
    text = capsys.readouterr().out
    assert "If batches were Poisson-sampled (*)" in text
    assert "not a\nguarantee for this run" in text or "not a guarantee for this run" in text


def test_cli_statement_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["statement", "--sample-size", "100", "--batch-size", "10", "--epochs", "1",
              "--noise-multiplier", "1", "--delta", "2"])
    assert info.value.code == 2
    assert "delta must lie in the open interval (0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize("epochs", [0, 10**30, 1e300])
def test_calibration_refusals_name_the_run(epochs):
    """A run of no step, or one no noise can make private enough, is refused naming the
    run's arguments (epochs here), not only the target."""
    with pytest.raises(ValueError, match=r"epochs=") as error:
        calibrate_dpsgd_noise_multiplier(8.0, 1e-5, 60000, 250, epochs=epochs,
                                         sampling="shuffle")
    assert "sample_size=60000" in str(error.value) and len(str(error.value)) < 600


def test_sample_size_beyond_the_float_range_is_refused_by_name():
    """10**400 records: a ValueError naming sample_size, not an OverflowError from q = b / n."""
    with pytest.raises(ValueError, match=r"sample_size must be a whole number in \[1, "):
        calibrate_dpsgd_noise_multiplier(8.0, 1e-5, 10**400, 250, epochs=1, sampling="shuffle")
    with pytest.raises(ValueError, match="sample_size"):
        accounting.dpsgd_run(10**400, 250, 1.0, epochs=1)


def test_extreme_inputs_of_the_samplers_answer_or_name_the_argument():
    """Regressions from the public-surface sweep: bounded answers, or errors naming the
    argument, never an OverflowError, ZeroDivisionError or math domain error."""
    statement = accounting.privacy_statement(N, B, 10**400, SIGMA, DELTA, sampling="shuffle")
    assert "~1e400 epochs" in statement.text
    with pytest.raises(ValueError, match=r"dataset_size must be a whole number in \[1, "
                                          r"9007199254740992\], got 1000000000000000000000"):
        TruncatedPoissonGaussian(10**400, 0.01, 300, SIGMA)
    # below 1e-150 the series' 1 / (2 sigma^2) overflows: the Gaussian cap, inf, is the bound
    rdp = accounting.rdp_sampled_without_replacement(0.01, 1e-300, [1.5, 2.0, 32.0])
    assert np.all(np.isinf(rdp))
    # a zero-sensitivity weight that rounds to 1
    lower, upper, _ = accounting.user_level_epsilon_bounds(1e-160, 1.1, 1000, DELTA, 3,
                                                           tolerance=1e-2)
    assert 0.0 <= lower <= upper <= 1e-6  # a user is in some batch with probability ~3e-157
