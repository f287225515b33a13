"""``log Gamma(x)`` for the binomial tables of the RDP sums, without importing SciPy.

The tables take ``log Gamma`` at whole numbers: for those up to ``_LARGEST_ARGUMENT`` a table
of :func:`math.lgamma` (the C library's, accurate to a few ulp like ``scipy.special.gammaln``)
answers, so the first epsilon of a process does not pay for importing ``scipy.special`` (most
of that call's time otherwise). Other arguments go to SciPy. The choice is made value by value,
so a value's result never depends on the array it comes in. Larger arguments are left to SciPy
because a log binomial ``log Gamma(a + 1) - log Gamma(k + 1) - log Gamma(a - k + 1)`` cancels
values of size ``a log a``, whose last-bit errors reach the 1e-11 relative accuracy the RDP
sums are tested to at ``a = 1e4``; below ``_LARGEST_ARGUMENT`` they stay under 5e-12.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from accounting import _scipy

__all__ = ["log_gamma"]

#: Largest whole argument answered from the table (the default orders reach 1025).
_LARGEST_ARGUMENT = 2049


@lru_cache(maxsize=1)
def _whole_table() -> np.ndarray:
    """``log Gamma(n)`` for ``n = 0 .. _LARGEST_ARGUMENT`` (``inf`` at 0)."""
    return np.array([math.inf] + [math.lgamma(n) for n in range(1, _LARGEST_ARGUMENT + 1)])


def log_gamma(x) -> np.ndarray:
    """``log |Gamma(x)|`` elementwise for positive ``x`` (an array of floats)."""
    x = np.asarray(x, dtype=float)
    whole = (x >= 1.0) & (x <= _LARGEST_ARGUMENT) & (x == np.floor(x))
    if whole.all():
        return _whole_table()[x.astype(np.int64)]
    result = _scipy.special.gammaln(x)
    result[whole] = _whole_table()[x[whole].astype(np.int64)]
    return result
