"""The README's examples run and print what they show, and its figures are true.

Every ``pycon`` block is a doctest (run in order, in one namespace, as a reader would paste them);
every ``dp-budget`` command of a ``console`` block is run and its output compared line by line. The
figures are then checked against computations that do not go through the code they document.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import pathlib
import re
import shlex

import pytest

import accounting
from accounting import cli

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def namespace():
    """Run every pycon block as a doctest; the namespace the reader ends up with."""
    globs: dict = {}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    blocks = _blocks("pycon")
    assert len(blocks) >= 6
    for number, block in enumerate(blocks):
        test = parser.get_doctest(block, globs, f"README pycon block {number}", str(README), 0)
        output = io.StringIO()
        runner.run(test, out=output.write, clear_globs=False)
        assert runner.failures == 0, output.getvalue()
        globs = test.globs  # DocTest copies its namespace; the next block continues this one
    assert runner.tries >= 20
    return globs


def test_every_pycon_block_prints_what_it_shows(namespace):
    assert "statement" in namespace and "trainer" in namespace


# python blocks that need an optional back end, and the test file that executes each (found by a
# marker the block contains); every other example is a pycon block executed here.
ELSEWHERE = {"distribute_datasets_from_function": "test_tf_distribute.py"}


def test_no_untested_python_blocks():
    for block in _blocks("python"):
        markers = [marker for marker in ELSEWHERE if marker in block]
        assert markers, f"an example that no test runs (make it a pycon block):\n{block}"
        runner = README.parent / "tests" / ELSEWHERE[markers[0]]
        assert markers[0] in runner.read_text(encoding="utf-8")


def test_cli_blocks_print_what_they_show():
    (block,) = _blocks("console")
    commands = re.split(r"^\$ ", block, flags=re.M)[1:]
    assert len(commands) == 2
    for command in commands:
        line, *shown = command.rstrip("\n").split("\n")
        argv = shlex.split(line)
        assert argv[0] == "dp-budget"
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            assert cli.main(argv[1:]) == 0
        printed = [row.rstrip() for row in output.getvalue().rstrip("\n").split("\n")]
        assert printed == [row.rstrip() for row in shown]


def test_quick_start_figures_match_independent_computations(namespace):
    from accounting.rdp import DEFAULT_ORDERS, epsilon_from_rdp, poisson_gaussian_rdp

    # the tutorial run: q = 256/60000 and ceil(60 * 60000 / 256) = 14063 steps
    curve = 14063 * poisson_gaussian_rdp(256 / 60000, 1.1, DEFAULT_ORDERS)
    assert accounting.dpsgd_epsilon(60000, 256, 60, 1.1, 1e-5) == pytest.approx(
        epsilon_from_rdp(curve, DEFAULT_ORDERS, 1e-5)[0], rel=1e-12)
    # TF Privacy's published figures for the tutorial run and for n = 100000, batch 4
    assert round(accounting.dpsgd_epsilon(60000, 256, 60, 1.1, 1e-5), 5) == 2.59666
    assert namespace["eps"] == pytest.approx(0.2778802396, rel=1e-9)
    # the calibrated sigma is on the safe side of the target, and tight
    sigma = namespace["sigma"]
    at = accounting.RdpAccountant().compose(256 / 60000, sigma, 14063).get_epsilon(1e-5)
    below = accounting.RdpAccountant().compose(256 / 60000, sigma * (1 - 1e-5), 14063)
    assert at <= 3.0 < below.get_epsilon(1e-5)


def test_pld_bracket_is_certified_and_inside_rdp(namespace):
    bounds = namespace["bounds"]
    assert bounds.tolerance_met and bounds.width <= 1e-3
    # RDP is an upper bound, so the certified bracket lies below it
    assert bounds.upper < accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5)
    # dp_accounting's connect-the-dots PLD on this setting at grid 1e-4: 0.85303 (README history)
    assert bounds.lower <= 0.85303 <= bounds.upper


def test_shuffle_statement_and_sampler_figures(namespace):
    statement = namespace["statement"]
    once = statement.line("once_per_epoch").epsilon
    # once per epoch = 15 Gaussian releases of sigma 1.3 (zero-out), by the RDP of a Gaussian
    from accounting.rdp import DEFAULT_ORDERS, epsilon_from_rdp

    gaussian = 15 * DEFAULT_ORDERS / (2 * 1.3**2)
    assert once == pytest.approx(epsilon_from_rdp(gaussian, DEFAULT_ORDERS, 1e-5)[0], rel=1e-12)
    assert statement.line("shuffle_lower_bound").lower <= once
    text = README.read_text(encoding="utf-8")
    fixed = accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5, sampling="fixed")
    balls = accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5, sampling="balls-in-bins")
    assert f"fixed-size {fixed:.3f}" in text and f"balls-in-bins {balls:.3f}" in text
    assert f"shuffled {once:.3f}" in text
    run = accounting.dpsgd_run(60000, 250, 1.3, epochs=15, sampling="fixed")
    with pytest.warns(accounting.ToleranceNotMetWarning):  # a wide bracket, flagged as such
        fixed_bounds = accounting.PldAccountant(neighboring="replace_one").compose(
            run.event).get_epsilon_bounds(1e-5)
    assert f"[{fixed_bounds.lower:.3f}, {fixed_bounds.upper:.3f}] (PLD" in text
    balls_run = accounting.dpsgd_run(60000, 250, 1.3, epochs=15, sampling="balls-in-bins")
    balls_bounds = accounting.PldAccountant().compose(balls_run.event).get_epsilon_bounds(1e-5)
    assert balls_bounds.upper < balls  # tighter than RDP's bound
    assert f"balls-in-bins batches in [{balls_bounds.lower:.3f}, {balls_bounds.upper:.3f}]" \
        in text.replace("\n", " ")


def test_calibrated_epochs_are_on_the_safe_side():
    text = "".join(_blocks("pycon"))
    assert "integer=True)         # whole epochs within ε = 3\n78\n" in text

    def epsilon(count):
        return accounting.RdpAccountant().compose(256 / 60000, 1.1, 235 * count).get_epsilon(1e-5)

    assert epsilon(78) <= 3.0 < epsilon(79)


def test_kernel_example_stops_within_budget(namespace):
    reports, trainer = namespace["reports"], namespace["trainer"]
    assert len(reports) == 4 and trainer.budget_exhausted
    assert trainer.ledger.epsilon <= 3.0
    # the ledger's epsilon is the RDP of the steps taken, composed by hand
    steps = sum(report.steps for report in reports)
    by_hand = accounting.RdpAccountant().compose(50 / 1000, 1.1, steps).get_epsilon(1e-5)
    assert trainer.ledger.epsilon == pytest.approx(by_hand, rel=1e-12)
    assert trainer.evaluate(namespace["x"], namespace["y"])[1] > 0.8


def test_events_round_trip_and_compose_like_the_closed_form(namespace):
    from accounting.rdp import DEFAULT_ORDERS, epsilon_from_rdp, poisson_gaussian_rdp

    acc = namespace["acc"]  # the last accountant of the README: training plus one release
    curve = 14063 * poisson_gaussian_rdp(256 / 60000, 1.1, DEFAULT_ORDERS) + (
        DEFAULT_ORDERS / (2 * 20.0**2)
    )
    assert acc.get_epsilon(1e-5) == pytest.approx(
        epsilon_from_rdp(curve, DEFAULT_ORDERS, 1e-5)[0], rel=1e-12
    )


def test_relative_links_resolve():
    root = README.parent
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (root / target).exists(), target


def test_several_devices_output_is_the_global_runs_epsilon():
    blocks = _blocks("text")
    (shown,) = [block for block in blocks if block.startswith("fit: epsilon")]
    # q = 100/2000, 2 epochs = 40 steps; TF Privacy's budget of the global run
    expected = accounting.get_privacy_budget(2000, 100, 2, 1.1, 1e-5)
    assert shown.splitlines() == [f"fit: epsilon {expected:.4f} after 40 steps",
                                  f"loop: epsilon {expected:.4f} after 40 steps"]
