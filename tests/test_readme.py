"""The README's library example runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_library_example_runs_and_matches_its_comments():
    text = README.read_text(encoding="utf-8")
    example = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    namespace: dict = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    first_line = output.getvalue().splitlines()[0]
    assert first_line.startswith("(2.5966555") and first_line.endswith(", 8.1)")
    assert namespace["eps"] == pytest.approx(0.2778802396, rel=1e-9)
    assert namespace["sigma"] == pytest.approx(1.0140214, rel=1e-6)


def _block_containing(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [block for block in blocks if marker in block]
    return block


def test_pld_example_brackets_the_quoted_figures():
    import accounting

    namespace: dict = {"accounting": accounting}
    exec(compile(_block_containing("PldAccountant"), str(README), "exec"), namespace)  # noqa: S102
    bounds = namespace["bounds"]
    assert 0.85265 <= bounds.lower <= 0.85275 and 0.85340 <= bounds.upper <= 0.85350
    small = accounting.PldAccountant().compose(4 / 100000, 1.2, 500000).get_epsilon_bounds(1e-5)
    assert 0.08615 <= small.lower <= 0.08625 and 0.08620 <= small.upper <= 0.08630
    assert small.tolerance_met and small.width <= 1e-3 * small.upper


def test_kernel_example_trains_within_budget():
    example = _block_containing("dpsgd_kernels")
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    reports, trainer = namespace["reports"], namespace["trainer"]
    assert 1 <= len(reports) <= 5
    assert trainer.ledger.epsilon <= 3.0
    assert trainer.evaluate(namespace["x"], namespace["y"])[1] > 0.8


def test_events_example_round_trips_through_json():
    import accounting
    from accounting.rdp import DEFAULT_ORDERS, epsilon_from_rdp, poisson_gaussian_rdp

    namespace: dict = {"accounting": accounting}
    exec(compile(_block_containing("load_accountant"), str(README), "exec"), namespace)  # noqa: S102
    acc, restored = namespace["acc"], namespace["restored"]
    assert restored.get_epsilon(1e-5) == acc.get_epsilon(1e-5)
    assert restored.history == acc.history
    # the run is 14063 sampled steps plus one unsampled Gaussian step with sigma = 20
    curve = 14063 * poisson_gaussian_rdp(256 / 60000, 1.1, DEFAULT_ORDERS) + (
        DEFAULT_ORDERS / (2 * 20.0**2)
    )
    assert acc.get_epsilon(1e-5) == pytest.approx(
        epsilon_from_rdp(curve, DEFAULT_ORDERS, 1e-5)[0], rel=1e-12
    )


def test_calibrate_example_is_on_the_safe_side():
    import accounting
    from accounting.events import Gaussian, PoissonSampled, SelfComposed

    step = PoissonSampled(256 / 60000, Gaussian(1.1))
    namespace: dict = {"accounting": accounting, "SelfComposed": SelfComposed, "step": step}
    exec(compile(_block_containing("integer=True"), str(README), "exec"), namespace)  # noqa: S102
    epochs = namespace["epochs"]
    assert epochs == 78

    def epsilon(count):
        return accounting.RdpAccountant().compose(256 / 60000, 1.1, 235 * count).get_epsilon(1e-5)

    assert epsilon(epochs) <= 3.0 < epsilon(epochs + 1)


def test_samplers_statement_example_states_true_figures():
    import accounting

    namespace: dict = {"accounting": accounting}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(_block_containing("privacy_statement"), str(README), "exec"),  # noqa: S102
             namespace)
    statement = namespace["statement"]
    assert "If batches were Poisson-sampled (*)" in output.getvalue()
    once = statement.line("once_per_epoch").epsilon
    assert once == accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5, sampling="shuffle")
    assert round(once, 3) == 17.648
    assert round(statement.line("shuffle_lower_bound").lower, 4) == 3.2015
    assert statement.line("poisson").guarantee is False
    # the figures the paragraph above the example quotes
    text = README.read_text(encoding="utf-8")
    fixed = accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5, sampling="fixed")
    balls = accounting.dpsgd_epsilon(60000, 250, 15, 1.3, 1e-5, sampling="balls-in-bins")
    assert f"fixed-size {fixed:.3f}" in text and f"balls-in-bins {balls:.3f}" in text
    run = accounting.dpsgd_run(60000, 250, 1.3, epochs=15, sampling="fixed")
    bounds = accounting.PldAccountant(neighboring="replace_one").compose(
        run.event).get_epsilon_bounds(1e-5)
    assert f"[{bounds.lower:.3f}, {bounds.upper:.3f}] (PLD" in text
    for k, group in ((2, 2.051), (5, 6.416), (10, 21.709)):
        q, steps = accounting.dpsgd_sample_rate_and_steps(60000, 250, 15)
        ledger = accounting.RdpAccountant().compose(q, 1.3, steps)
        assert round(accounting.group_privacy_epsilon(ledger, k, 1e-5), 3) == group
