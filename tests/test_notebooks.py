"""The notebooks: stored without outputs, and they execute (so they never rot).

Notebooks 1-3 and 5 run here (they need the ``notebooks`` extra, which the ``test`` extra includes);
the TensorFlow cross-check notebook runs in the TensorFlow stage (tests/test_tf_notebook.py).
Each execution is checked for errors, for the figures it writes and for key figures it prints,
recomputed here with :mod:`accounting`.
"""

from __future__ import annotations

import math

import pytest

import accounting
from tests.notebook_runner import NOTEBOOKS, execute, outputs, require_runner, stored

EXPECTED = ["budget_planning.ipynb", "accountants_compared.ipynb", "dpsgd_numpy.ipynb",
            "tensorflow_crosscheck.ipynb", "samplers_compared.ipynb"]


def test_the_five_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_stored_without_outputs(name):
    notebook = stored(name)
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, f"{name} has no code cell"
    for cell in code:
        assert cell.get("outputs", []) == [], f"{name}: a cell has stored outputs"
        assert cell.get("execution_count") is None, f"{name}: a cell has an execution count"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def _run(name, tmp_path):
    require_runner()
    if name == "dpsgd_numpy.ipynb":
        pytest.importorskip("sklearn", reason="scikit-learn bundles the digits data set")
    figures = tmp_path / "figures"
    figures.mkdir()
    result = outputs(execute(name, figures))
    assert result["errors"] == [], result["errors"]
    assert result["unexecuted"] == 0
    return result, sorted(p.name for p in figures.glob("*.png") if p.stat().st_size > 10_000)


def test_budget_planning_notebook(tmp_path):
    result, figures = _run("budget_planning.ipynb", tmp_path)
    assert figures == ["budget_batch_size.png", "budget_conversions.png",
                       "budget_epsilon_vs_epochs.png"]
    assert result["images"] == 3
    text = result["text"]
    # the sigma table: RDP column for each target at 60 epochs of the tutorial run
    q, steps = accounting.dpsgd_sample_rate_and_steps(60000, 256, 60)
    for target in (0.5, 1.0, 3.0, 8.0):
        sigma = accounting.calibrate_noise_multiplier(target, 1e-5, q, steps, tolerance=1e-3)
        assert f"| {target} | {sigma:.3f} |" in text
    # the CLI agrees with the library, and its table shows the PLD row and the flagged GDP
    assert "CLI RDP epsilon 2.596656 == library 2.596656" in text
    assert "gdp (CLT approximation, NOT an upper bound)" in text
    assert f"q = {q:.6g}, 235 steps per epoch, {steps} steps in 60 epochs" in text


def test_accountants_compared_notebook(tmp_path):
    result, figures = _run("accountants_compared.ipynb", tmp_path)
    assert figures == ["accountants_compared.png"]
    assert result["images"] == 1
    text = result["text"]
    for n, batch, sigma, epochs in ((60000, 256, 1.1, 60), (100000, 4, 1.2, 20)):
        q, steps = accounting.dpsgd_sample_rate_and_steps(n, batch, epochs)
        bounds = accounting.PldAccountant(tolerance=1e-3).compose(q, sigma, steps) \
            .get_epsilon_bounds(1e-5)
        rdp = accounting.compute_epsilon(q, sigma, steps, 1e-5)
        assert f"| {steps} |" in text
        assert f"[{bounds.lower:.4f}, {bounds.upper:.4f}]" in text
        assert f"| {rdp:.4f} |" in text
        assert f"{rdp / bounds.upper:.2f}×" in text
    # the GDP approximation falls below the certified lower bound on the tutorial run: flagged
    gdp = accounting.gdp_epsilon(256 / 60000, 1.1, 14063, 1e-5)
    assert f"{gdp:.4f} (below PLD lower)" in text


def test_dpsgd_numpy_notebook(tmp_path):
    result, figures = _run("dpsgd_numpy.ipynb", tmp_path)
    assert figures == ["dpsgd_ledger_epsilon.png", "dpsgd_privacy_utility.png"]
    assert result["images"] == 2
    text = result["text"]
    assert "ledger epsilon equals a fresh RdpAccountant's at every sigma" in text
    # 12 epochs of ceil(1400 / 64) = 22 steps at each sigma; epsilon as the table shows it
    for sigma in (0.7, 1.1, 2.0, 4.0):
        epsilon = accounting.compute_epsilon(64 / 1400, sigma, 12 * math.ceil(1400 / 64), 1e-5)
        assert f"| {sigma} | {epsilon:.3f} |" in text
    assert "| non-private | ∞ |" in text
    assert "gradient of one batch of 64 (median ms)" in text


def test_samplers_compared_notebook(tmp_path):
    result, figures = _run("samplers_compared.ipynb", tmp_path)
    assert figures == ["samplers_epsilon_vs_epochs.png", "samplers_user_level.png"]
    assert result["images"] == 2
    text = result["text"]
    n, batch, sigma, delta = 60000, 250, 1.3, 1e-5
    # the end-of-training table, recomputed: the sampler's certified figures
    poisson = accounting.PldAccountant(tolerance=1e-2).compose(
        accounting.dpsgd_run(n, batch, sigma, epochs=15).event).get_epsilon_bounds(delta)
    fixed_rdp = accounting.dpsgd_epsilon(n, batch, 15, sigma, delta, sampling="fixed")
    balls = accounting.dpsgd_epsilon(n, batch, 15, sigma, delta, sampling="balls-in-bins")
    chua = accounting.shuffle_lower_bound(240, sigma, 15, delta).epsilon
    assert f"| Poisson (PLD) | add/remove | {poisson.lower:.3f} | {poisson.upper:.3f} | 1.00× |" \
        in text
    assert f"| fixed-size (RDP) | replace-one | – | {fixed_rdp:.3f} |" in text
    assert f"| balls-in-bins (RDP) | add/remove | – | {balls:.3f} |" in text
    assert f"| shuffled: Chua et al. lower bound | zero-out | {chua:.3f} | – |" in text
    assert (f"shuffled run: the true epsilon is at least {chua / poisson.upper:.2f} times the "
            "Poisson figure") in text
    # user level: group privacy from the RDP ledger, for k = 5 at 15 epochs
    q, steps = accounting.dpsgd_sample_rate_and_steps(n, batch, 15)
    group = accounting.group_privacy_epsilon(accounting.RdpAccountant().compose(q, sigma, steps),
                                             5, delta)
    assert f"| 5 | {group:.3f} |" in text
    assert "If batches were Poisson-sampled (*)" in text
