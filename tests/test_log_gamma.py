"""``accounting._log_gamma.log_gamma`` (the RDP tables' log Gamma without SciPy): checked
against mpmath at 50 digits and against ``scipy.special.gammaln``."""

from __future__ import annotations

import subprocess
import sys

import mpmath
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

from accounting._log_gamma import _LARGEST_ARGUMENT, log_gamma


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 10**6).map(float),
                          st.floats(1e-3, 1e6, allow_nan=False)), min_size=1, max_size=50))
def test_log_gamma_matches_mpmath(values):
    x = np.array(values)
    ours = log_gamma(x)
    with mpmath.workdps(50):
        exact = np.array([float(mpmath.loggamma(mpmath.mpf(v))) for v in values])
    assert np.allclose(ours, exact, rtol=1e-14, atol=1e-14)


def test_log_gamma_keeps_the_shape_and_agrees_with_scipy_on_a_table():
    a = np.arange(2.0, 1026.0)
    k = np.arange(1.0, 1025.0).reshape(32, 32)
    assert log_gamma(k).shape == (32, 32)
    np.testing.assert_allclose(log_gamma(a), gammaln(a), rtol=2e-15, atol=0)  # a few ulp
    # other arguments (fractional, or beyond the table) get the SciPy ufunc's values, and each
    # value's result is the same whatever array it comes in
    mixed = np.array([3.0, 2.5, _LARGEST_ARGUMENT + 1.0, 17.0])
    expected = gammaln(mixed)
    expected[[0, 3]] = log_gamma(np.array([3.0, 17.0]))
    np.testing.assert_array_equal(log_gamma(mixed), expected)


def test_first_rdp_epsilon_imports_no_scipy_special():
    """The first RDP epsilon of a process used to import scipy.special for its binomial tables
    (most of that call's time); it needs none of SciPy now, and gives the same epsilon."""
    code = ("import sys, accounting; e = accounting.compute_epsilon(256 / 60000, 1.1, 14063, "
            "1e-5); print(repr(e), 'scipy.special' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == ["2.596655528680917", "False"]
