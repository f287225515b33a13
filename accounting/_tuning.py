"""Machine- or benchmark-tuned constants of the accounting core, with their provenance.

None of these affects the validity of a result: each steers only how much work is done before a
certified answer is reached (a first guess that a search then corrects). Changing one changes the
speed and, at most, which of several valid answers is returned, never the safe side.
"""

from __future__ import annotations

__all__ = ["LEVELS_WIDTH_FACTOR", "PLD_INITIAL_STEP_FACTOR"]

#: Factor ``c`` of the PLD accountant's first grid spacing
#: ``h = sqrt(c * tolerance * s / sqrt(T))`` (``s`` the per-step loss spread, ``T`` the step
#: count), from the bracket's width growing like ``sqrt(T) h^2 / s``.
#: Provenance: fitted on the four standard settings A-D (``benchmarks/settings.py``) so that the
#: first grid usually meets the default tolerance; the accountant's search refines the grid where
#: it does not, so a poor fit costs time, never correctness.
PLD_INITIAL_STEP_FACTOR = 1.5

#: Constant ``c`` of the squaring composition's bracket growth: regridding at each of the
#: ``L = log2(T)`` levels with ``K`` grid steps per standard deviation widens the epsilon
#: bracket by about ``c L / K^2`` of epsilon (:func:`accounting.pld.levels.steps_per_spread`).
#: Provenance: the bracket at fixed ``K = 32`` on ``q = 256/60000, sigma = 1.1`` for
#: ``T = 1e6 .. 1e9`` (about 0.7% of epsilon at ``L = 30``), so ``c = 0.007 * 32^2 / 30``.
#: It sizes the grids only: a poor fit costs time or width, never correctness.
LEVELS_WIDTH_FACTOR = 0.24
