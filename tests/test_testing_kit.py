"""The verification kit's packaging, strategies and pytest plugin."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

import accounting.testing
from accounting.testing import strategies as sts

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_import_accounting_never_imports_hypothesis():
    done = _python("import sys, accounting; print('hypothesis' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False"


def test_missing_hypothesis_gives_an_import_error_naming_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["hypothesis"] = None  # as if not installed
        try:
            import accounting.testing
        except ImportError as error:
            print(error)
    """)
    done = _python(code)
    assert "pip install 'dpsgd-accounting[test]'" in done.stdout


def test_public_names_are_exported():
    for name in accounting.testing.__all__:
        assert hasattr(accounting.testing, name), name
    for name in sts.__all__:
        assert callable(getattr(sts, name)), name


@settings(max_examples=30, deadline=None)
@given(q=sts.sample_rates(), edge_q=sts.edge_sample_rates(), sigma=sts.noise_multipliers(),
       steps=sts.step_counts(), huge=sts.huge_step_counts(), delta=sts.deltas(),
       epsilon=sts.epsilons(), grid=sts.order_grids(), edge_order=sts.edge_orders(),
       pair=sts.extreme_noise_products())
@example(q=0.0, edge_q=0.0, sigma=1.0, steps=1, huge=10**6, delta=0.1, epsilon=0.0, grid=[2],
         edge_order=1.01, pair=(0.9, 0.1))  # drawn in CI: near_one_sample_rates' end point
def test_strategies_draw_valid_parameters(q, edge_q, sigma, steps, huge, delta, epsilon, grid,
                                          edge_order, pair):
    assert 0.0 <= q <= 1.0 and 0.0 <= edge_q <= 1.0
    assert 0.1 * (1 - 1e-12) <= sigma <= 1e4 * (1 + 1e-12)
    assert 1 <= steps <= 100_000 and 10**6 <= huge <= 10**12
    assert 1e-12 * (1 - 1e-12) <= delta < 1.0 and 0.0 <= epsilon <= 30.0 * (1 + 1e-12)
    assert grid == sorted(set(grid)) and all(1.0 < alpha <= 1e4 * (1 + 1e-12) for alpha in grid)
    assert edge_order > 1.0 and (edge_order <= 1.01 or edge_order >= 1000)
    pair_q, pair_sigma = pair
    assert 0.0 < pair_q <= 1.0 and pair_sigma > 0.0
    tiny_signal = pair_q <= 1e-6 and pair_sigma >= 100 * (1 - 1e-12)
    # q = 1 - 10**x for x in [-12, -1] (near_one_sample_rates): 0.9 itself is drawn at x = -1.
    assert tiny_signal or (pair_q >= 0.9 and pair_sigma <= 0.3 * (1 + 1e-12))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_edges_and_histories(data):
    fractional = data.draw(sts.fractional_orders())
    assert fractional != int(fractional) and fractional > 1
    assert isinstance(data.draw(sts.integer_orders()), int)
    q, sigma, alpha = data.draw(sts.edge_mechanisms())
    assert 0 <= q <= 1 and sigma > 0 and alpha > 1 and math.isfinite(alpha)
    history = data.draw(sts.composition_histories())
    assert 1 <= len(history) <= 5
    for record in history:
        assert isinstance(record, sts.Mechanism)
        assert 0 <= record.sample_rate <= 1 and 0.5 <= record.noise_multiplier <= 20
        assert 1 <= record.steps <= 10_000


def test_the_edge_strategies_reach_the_edges():
    # find() shrinks to the simplest draw meeting the condition: the condition must be reachable.
    from hypothesis import find

    assert find(sts.sample_rates(), lambda q: q == 0.0) == 0.0
    assert find(sts.edge_sample_rates(), lambda q: 0 < q < 1e-12) < 1e-12
    assert find(sts.edge_sample_rates(), lambda q: 1 - 1e-9 < q < 1) > 1 - 1e-9
    assert find(sts.edge_orders(), lambda a: a < 1 + 1e-5) < 1 + 1e-5
    assert find(sts.edge_orders(), lambda a: a > 10_000) > 10_000


def test_pytest_plugin_runs_the_suite_from_one_test(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["accounting.testing.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import accounting

        def test_good(verify_accountant):
            assert verify_accountant(accounting.poisson_gaussian_rdp, kind="rdp", seed=0).passed

        def test_broken(verify_accountant):
            def off_by_one(q, sigma, orders):
                return accounting.poisson_gaussian_rdp(q, sigma, [a + 1 for a in orders])
            verify_accountant(off_by_one, kind="rdp", seed=0)
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--accounting-examples",
         "5", str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "[FAIL] RDP closed forms at q=1 and q=0" in done.stdout
    assert "held on 5 examples" in done.stdout
