"""Hypothesis strategies for the accounting tests: the parameter ranges of the issue's contract."""

from __future__ import annotations

from hypothesis import strategies as st


def log_uniform(low_exponent: float, high_exponent: float) -> st.SearchStrategy[float]:
    """``10 ** x`` for ``x`` uniform in ``[low_exponent, high_exponent]``."""
    return st.floats(low_exponent, high_exponent, allow_nan=False).map(lambda x: 10.0**x)


#: Sample rates over the contract's range [1e-8, 1], with 1 itself drawn often.
sample_rates = st.one_of(log_uniform(-8.0, 0.0), st.just(1.0))
#: Typical DP-SGD sample rates.
typical_sample_rates = log_uniform(-5.0, -0.5)
#: Noise multipliers over the contract's range [0.1, 1e4].
noise_multipliers = log_uniform(-1.0, 4.0)
#: Typical DP-SGD noise multipliers.
typical_noise_multipliers = st.floats(0.5, 10.0)
#: Fractional Rényi orders in (1, 1e4].
fractional_orders = st.one_of(
    st.floats(1.0001, 11.0), log_uniform(0.0, 4.0).filter(lambda a: a > 1.0001)
).filter(lambda a: a != int(a))
#: Integer Rényi orders in [2, 1e4], small ones drawn more often.
integer_orders = st.one_of(st.integers(2, 64), st.integers(65, 10_000))
deltas = log_uniform(-12.0, -1.0)
