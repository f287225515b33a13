"""The privacy-loss-distribution family: certified two-sided bounds by discretised PLDs.

* :mod:`~accounting.pld.privacy_loss` - dominating pairs of one step and their discretised
  privacy-loss laws (upper: connect-the-dots; lower: merged cells);
* :mod:`~accounting.pld.samplers` - dominating and lower pairs of mixtures of Gaussians,
  fixed-size batches and truncated Poisson steps;
* :mod:`~accounting.pld.composition` - FFT composition with a certified rounding allowance;
* :mod:`~accounting.pld.accountant` - :class:`PldAccountant`, the grid search and its limits.
"""

from accounting.pld.accountant import (
    DeltaBounds,
    EpsilonBounds,
    PldAccountant,
    ToleranceNotMetWarning,
)

__all__ = ["DeltaBounds", "EpsilonBounds", "PldAccountant", "ToleranceNotMetWarning"]
