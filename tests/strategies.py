"""Hypothesis strategies for the accounting tests: the contract's ranges, from the public kit."""

from __future__ import annotations

from accounting.testing import strategies as _kit
from accounting.testing.strategies import log_uniform

__all__ = [
    "deltas",
    "fractional_orders",
    "integer_orders",
    "log_uniform",
    "noise_multipliers",
    "sample_rates",
    "typical_noise_multipliers",
    "typical_sample_rates",
]

#: Sample rates over the contract's range [1e-8, 1], with 1 itself drawn often.
sample_rates = _kit.sample_rates(-8.0, include_zero=False)
#: Typical DP-SGD sample rates.
typical_sample_rates = _kit.typical_sample_rates()
#: Noise multipliers over the contract's range [0.1, 1e4].
noise_multipliers = _kit.noise_multipliers(-1.0, 4.0)
#: Typical DP-SGD noise multipliers.
typical_noise_multipliers = _kit.typical_noise_multipliers()
#: Fractional Rényi orders in (1, 1e4].
fractional_orders = _kit.fractional_orders(10_000.0)
#: Integer Rényi orders in [2, 1e4], small ones drawn more often.
integer_orders = _kit.integer_orders(10_000)
deltas = _kit.deltas(-12.0, -1.0)
