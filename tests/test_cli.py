"""The dp-budget command line: values, JSON, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accounting import (
    MomentsAccountant,
    RdpAccountant,
    calibrate_noise_multiplier,
    calibrate_steps,
    compute_epsilon,
)
from accounting.cli import main

TUTORIAL = ["--sample-size", "60000", "--batch-size", "256", "--epochs", "60"]


def _json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_epsilon_table_lists_every_accountant(capsys):
    main(["epsilon", *TUTORIAL, "--noise-multiplier", "1.1", "--delta", "1e-5"])
    out = capsys.readouterr().out
    assert "steps              14063  (60 epochs)" in out
    assert "rdp         improved    2.59666  alpha=8.1" in out
    moments = MomentsAccountant().compose(256 / 60000, 1.1, 14063).get_epsilon_and_order(1e-5)
    assert f"moments     tail bound  {moments[0]:.6g}  lambda={moments[1]:g}" in out


def test_epsilon_json_matches_library(capsys):
    report = _json(capsys, ["epsilon", "--sample-rate", "0.01", "--steps", "1000",
                            "--noise-multiplier", "1.0", "--delta", "1e-5",
                            "--accountant", "rdp", "--conversion", "classic"])
    expected = RdpAccountant(conversion="classic").compose(0.01, 1.0, 1000)
    (row,) = report["results"]
    assert row["epsilon"] == expected.get_epsilon(1e-5)
    assert row["order"] == expected.get_epsilon_and_order(1e-5)[1]
    assert report["run"] == {"sample_rate": 0.01, "steps": 1000}


def test_delta_json(capsys):
    report = _json(capsys, ["delta", "--sample-size", "60000", "--batch-size", "250",
                            "--epochs", "15", "--noise-multiplier", "1.3", "--epsilon", "1",
                            "--accountant", "rdp"])
    expected = RdpAccountant().compose(250 / 60000, 1.3, 3600).get_delta(1.0)
    assert report["results"][0]["delta"] == expected


def test_noise_and_steps_json(capsys):
    noise = _json(capsys, ["noise", *TUTORIAL, "--epsilon", "3", "--delta", "1e-5"])
    by_name = {row["accountant"]: row for row in noise["results"]}
    assert by_name["rdp"]["noise_multiplier"] == calibrate_noise_multiplier(
        3, 1e-5, 256 / 60000, 14063
    )
    sigma = by_name["moments"]["noise_multiplier"]
    assert compute_epsilon(256 / 60000, sigma, 14063, 1e-5, "moments") <= 3
    steps = _json(capsys, ["steps", "--sample-size", "60000", "--batch-size", "256",
                           "--noise-multiplier", "1.1", "--epsilon", "3", "--delta", "1e-5",
                           "--accountant", "rdp"])
    (row,) = steps["results"]
    assert row["steps"] == calibrate_steps(3, 1e-5, 256 / 60000, 1.1)
    assert row["epochs"] == pytest.approx(row["steps"] * 256 / 60000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["epsilon", "--sample-rate", "2", "--steps", "3", "--noise-multiplier", "1",
          "--delta", "1e-5"], "sample_rate must lie in [0, 1]"),
        (["epsilon", "--sample-rate", "0.1", "--steps", "3", "--noise-multiplier", "1",
          "--delta", "2"], "delta must lie in the open interval (0, 1)"),
        (["epsilon", *TUTORIAL, "--sample-rate", "0.1", "--noise-multiplier", "1",
          "--delta", "1e-5"], "either --sample-size and --batch-size, or --sample-rate"),
        (["epsilon", "--sample-size", "10", "--batch-size", "20", "--epochs", "1",
          "--noise-multiplier", "1", "--delta", "1e-5"], "batch_size must lie in"),
        (["noise", *TUTORIAL, "--epsilon", "-1", "--delta", "1e-5"], "target_epsilon"),
    ],
)
def test_errors_exit_2_with_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "accounting", "epsilon", "--sample-size", "100000",
         "--batch-size", "4", "--epochs", "20", "--noise-multiplier", "1.2", "--delta", "1e-5",
         "--accountant", "rdp", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout)["results"][0]["epsilon"] == pytest.approx(
        0.27788023960, rel=1e-9
    )


# ------------------------------------------------------------------ robustness (issue 16)
def test_one_accountant_that_cannot_answer_keeps_the_other_rows(capsys):
    # The moments accountant's conversion alone costs log(1/delta)/32 = 0.36 > 1e-6.
    report = _json(capsys, ["noise", *TUTORIAL, "--epsilon", "1e-6", "--delta", "1e-5",
                            "--accountant", "rdp", "--accountant", "moments"])
    by_name = {row["accountant"]: row for row in report["results"]}
    assert "out of reach" in by_name["moments"]["error"]
    sigma = by_name["rdp"]["noise_multiplier"]
    assert sigma == calibrate_noise_multiplier(1e-6, 1e-5, 256 / 60000, 14063)
    main(["noise", *TUTORIAL, "--epsilon", "1e-6", "--delta", "1e-5",
          "--accountant", "rdp", "--accountant", "moments"])
    out = capsys.readouterr().out
    assert "moments     tail bound" in out and "moments: target_epsilon=1e-06" in out


def test_json_is_strict_when_epsilon_is_infinite(capsys):
    # sigma 1e-160: the RDP of one step overflows, so epsilon is inf (documented).
    result = subprocess.run(
        [sys.executable, "-m", "accounting", "epsilon", "--sample-rate", "0.5", "--steps", "10",
         "--noise-multiplier", "1e-160", "--delta", "1e-5", "--accountant", "rdp", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert "Infinity" not in result.stdout
    report = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(name))
    assert report["results"][0]["epsilon"] == "inf"


@pytest.mark.parametrize(("flag", "text", "value"), [
    ("--steps", "1e9", 10**9), ("--steps", "1_000", 1000), ("--steps", "14063", 14063),
])
def test_counts_accept_scientific_notation(capsys, flag, text, value):
    report = _json(capsys, ["epsilon", "--sample-rate", "0.01", flag, text,
                            "--noise-multiplier", "1.1", "--delta", "1e-5", "--accountant",
                            "rdp"])
    assert report["run"]["steps"] == value
    assert report["results"][0]["epsilon"] == RdpAccountant().compose(0.01, 1.1, value) \
        .get_epsilon(1e-5)


@pytest.mark.parametrize("text", ["1.5", "nan", "inf", "ten"])
def test_counts_reject_non_whole_numbers(capsys, text):
    with pytest.raises(SystemExit) as exit_info:
        main(["epsilon", "--sample-rate", "0.01", "--steps", text, "--noise-multiplier", "1",
              "--delta", "1e-5"])
    assert exit_info.value.code == 2
    assert "--steps" in capsys.readouterr().err


def test_time_limit_turns_a_slow_row_into_an_error(capsys, monkeypatch):
    import time

    import accounting.cli as cli

    real_evaluate = cli._evaluate

    def slow_for_moments(args, run, accountant):
        if accountant == "moments":
            time.sleep(5)
        return real_evaluate(args, run, accountant)

    monkeypatch.setattr(cli, "_evaluate", slow_for_moments)
    report = _json(capsys, ["epsilon", "--sample-rate", "0.01", "--steps", "100",
                            "--noise-multiplier", "1", "--delta", "1e-5", "--accountant",
                            "rdp", "--accountant", "moments", "--time-limit", "0.2"])
    by_name = {row["accountant"]: row for row in report["results"]}
    assert by_name["moments"]["error"] == "no answer within 0.2 s (--time-limit)"
    assert by_name["rdp"]["epsilon"] == RdpAccountant().compose(0.01, 1, 100).get_epsilon(1e-5)
    # every row out of time: exit status 1, the reason on stderr
    assert main(["epsilon", "--sample-rate", "0.01", "--steps", "100", "--noise-multiplier",
                 "1", "--delta", "1e-5", "--accountant", "moments", "--time-limit", "0.2"]) == 1
    assert "no answer within 0.2 s" in capsys.readouterr().err


def test_tolerance_reaches_pld_calibration(capsys):
    report = _json(capsys, ["noise", "--sample-rate", "0.004", "--steps", "3600",
                            "--epsilon", "1", "--delta", "1e-5", "--accountant", "pld",
                            "--tolerance", "0.05"])
    expected = calibrate_noise_multiplier(1, 1e-5, 0.004, 3600, "pld", pld_tolerance=0.05)
    assert report["results"][0]["noise_multiplier"] == expected


def test_pld_row_says_when_the_tolerance_is_not_met(capsys):
    # 1e12 steps: beyond the PLD's grid limits the bracket is [lower, RDP's epsilon] (the
    # lower bound, certified, may be 0 there)
    report = _json(capsys, ["epsilon", "--sample-rate", "0.01", "--steps", "1e12",
                            "--noise-multiplier", "1.1", "--delta", "1e-5"])
    by_name = {row["accountant"]: row for row in report["results"]}
    assert by_name["pld"]["tolerance_met"] is False
    assert by_name["pld"]["epsilon"] == by_name["rdp"]["epsilon"]
    assert 0 <= by_name["pld"]["epsilon_lower"] < by_name["pld"]["epsilon"]
    main(["epsilon", "--sample-rate", "0.01", "--steps", "1e12", "--noise-multiplier", "1.1",
          "--delta", "1e-5", "--accountant", "pld"])
    captured = capsys.readouterr()
    assert "wider than --tolerance (still certified)" in captured.out
    assert "RDP's bound" in captured.out and "Warning" not in captured.err


def test_import_and_help_load_no_scipy_submodule():
    # start-up cost is measured in benchmarks/import_time.py; this pins what makes it small
    code = (
        "import sys, accounting\n"
        "from accounting.cli import main\n"
        "try:\n    main(['epsilon', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in sys.modules if name.startswith('scipy.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("text", ["nan", "0", "-1", "inf"])
def test_tolerance_must_be_a_finite_positive_number(capsys, text):
    # --tolerance nan used to reach the JSON echo of the inputs (not strict JSON)
    with pytest.raises(SystemExit) as exit_info:
        main(["epsilon", "--sample-rate", "0.01", "--steps", "10", "--noise-multiplier", "1",
              "--delta", "1e-5", "--tolerance", text, "--json"])
    assert exit_info.value.code == 2
    assert "--tolerance" in capsys.readouterr().err


def test_huge_noise_multiplier_leaks_no_overflow_warning(capsys):
    import warnings

    import accounting

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", accounting.ToleranceNotMetWarning)
        report = _json(capsys, ["epsilon", "--sample-rate", "0.01", "--steps", "1000",
                                "--noise-multiplier", "1.2711610061536462e+308",
                                "--delta", "1e-5"])
    assert all(row["epsilon"] == 0.0 for row in report["results"])
