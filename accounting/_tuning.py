"""Machine- or benchmark-tuned constants of the accounting core, with their provenance.

None of these affects the validity of a result: each steers only how much work is done before a
certified answer is reached (a first guess that a search then corrects). Changing one changes the
speed and, at most, which of several valid answers is returned, never the safe side.
"""

from __future__ import annotations

__all__ = [
    "LEVELS_STEP_FACTOR",
    "LEVELS_WIDTH_FACTOR",
    "PLD_HEAVY_TAIL_STEP_FACTOR",
    "PLD_INITIAL_STEP_FACTOR",
]

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
#: Provenance: brackets on ``q = 256/60000, sigma = 1.1`` at ``T = 1e6`` and ``1e7`` with the
#: per-step grid fine enough not to matter, ``K`` from 64 to 1024: ``c`` about 0.03, raised to
#: 0.04 for margin. It sizes the grids only: a poor fit costs time or width, never correctness.
LEVELS_WIDTH_FACTOR = 0.04

#: Constant ``k`` of the per-step grid's share of the squaring composition's bracket: a
#: per-step grid of spacing ``h`` widens it by about ``k (h / s)^2`` of epsilon, ``s`` the
#: per-step loss standard deviation, whatever the number of steps
#: (:func:`accounting.pld.levels.first_levels_step`). Provenance: the same brackets with ``K``
#: large, ``h`` from ``5e-5`` to ``2e-4`` (``s = 4.8e-3``): ``k`` about 0.19, raised to 0.2.
LEVELS_STEP_FACTOR = 0.2

#: Factor on the squaring composition's first grid spacing
#: (:func:`accounting.pld.levels.first_levels_step`) for long runs of heavy-tailed steps (small
#: sample rates or noise below 0.8), whose first grid is otherwise the one-FFT guess: their
#: brackets follow the same ``k (h / s)^2`` law, but the regridding takes a smaller share, so
#: the per-step grid may be a little coarser than the light-tailed split gives it.
#: Provenance: settings C's and D's steps at ``T = 1e7 .. 1e9`` with ``relative_tolerance=1e-2``
#: (factors 1.0, 1.2, 1.3, 1.41 tried): 1.41 left setting D's step at ``1e9`` a second grid,
#: 1.3 met every bracket on the first grid, smaller factors did so on finer, dearer grids. It
#: sizes the first grid only: a poor fit costs a second grid, never correctness.
PLD_HEAVY_TAIL_STEP_FACTOR = 1.3
