"""Machine- or benchmark-tuned constants of the accounting core, with their provenance.

None of these affects the validity of a result: each steers only how much work is done before a
certified answer is reached (a first guess that a search then corrects). Changing one changes the
speed and, at most, which of several valid answers is returned, never the safe side.
"""

from __future__ import annotations

__all__ = ["PLD_INITIAL_STEP_FACTOR"]

#: Factor ``c`` of the PLD accountant's first grid spacing
#: ``h = sqrt(c * tolerance * s / sqrt(T))`` (``s`` the per-step loss spread, ``T`` the step
#: count), from the bracket's width growing like ``sqrt(T) h^2 / s``.
#: Provenance: fitted on the four standard settings A-D (``benchmarks/settings.py``) so that the
#: first grid usually meets the default tolerance; the accountant's search refines the grid where
#: it does not, so a poor fit costs time, never correctness.
PLD_INITIAL_STEP_FACTOR = 1.5
