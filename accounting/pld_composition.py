"""Composition of discretised privacy-loss distributions by FFT, with certified tails.

The law under ``P`` of the total loss ``S`` of ``T`` independent steps is the ``T``-fold
convolution of the per-step laws. On the grid ``{k * step}`` it is computed on a window of ``N``
points by one real FFT per distinct step, exponentiation of the spectrum to the number of steps
and one inverse FFT: ``O(N log N)`` whatever ``T`` (Koskela, Jälkö, Honkela 2020, "Computing
tight differential privacy guarantees using FFT"; Gopi, Lee, Wutschitz 2021, "Numerical
composition of differential privacy").

A circular convolution folds the mass that falls outside the window back into it. The window
is chosen from Chernoff bounds computed exactly from the discrete per-step laws,
``P(S >= s) <= exp(sum_g T_g K_g(lam) - lam s)`` with ``K_g`` the log moment generating function
of step ``g``, so that at most ``tail_budget`` mass lies beyond each end; that bound is then
carried into the hockey-stick divergence on the safe side (added to an upper ``delta``,
subtracted from a lower one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft, signal

from accounting.privacy_loss import DiscretePld

__all__ = ["ComposedPld", "ResidualLaw", "compose_plds", "log_weighted_sum_exp"]

#: Largest FFT length the accountant will allocate (about 1 GiB of work arrays).
MAX_GRID_SIZE = 1 << 25


def log_weighted_sum_exp(lambdas: np.ndarray, values: np.ndarray, weights: np.ndarray):
    """``log sum_k w_k exp(lam * v_k)`` for every ``lam``, shifted so nothing overflows."""
    exponents = lambdas[:, None] * values[None, :]
    shift = exponents.max(axis=1)
    np.subtract(exponents, shift[:, None], out=exponents)
    np.exp(exponents, out=exponents)
    # a plain multiply-and-sum: BLAS threads cost more than they gain on these sizes
    return np.log(np.einsum("ij,j->i", exponents, weights)) + shift


def _log_mgf(pld: DiscretePld, lambdas: np.ndarray) -> np.ndarray:
    """``log sum_k p_k exp(lam * loss_k)`` for every ``lam`` (masses may sum to less than 1)."""
    keep = pld.masses > 0
    return log_weighted_sum_exp(lambdas, pld.losses[keep], pld.masses[keep])


def _weighted_moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Mean and variance of ``values`` under the normalised non-negative ``weights``."""
    total = weights.sum()
    if total <= 0:
        return 0.0, 0.0
    mean = float(np.sum(weights * values) / total)
    var = float(np.sum(weights * (values - mean) ** 2) / total)
    return mean, var


def _moments(pld: DiscretePld) -> tuple[float, float]:
    """Mean and variance of the normalised finite part of a discretised loss."""
    return _weighted_moments(pld.losses, pld.masses)


def _window(groups, moments, tail_budget: float) -> tuple[float, float]:
    """Ends ``(low, high)`` of the total loss beyond which at most ``tail_budget`` mass lies.

    ``moments`` holds :func:`_moments` of each group's per-step law.
    """
    step = groups[0][0].step
    mean = sum(count * m for (m, _), (_, count) in zip(moments, groups, strict=True))
    var = sum(count * v for (_, v), (_, count) in zip(moments, groups, strict=True))
    std = max(np.sqrt(var), step)
    log_budget = np.log(tail_budget)
    centre = np.sqrt(-2.0 * log_budget) / std
    lambdas = centre * np.array([0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 0.8, 1.0, 1.25, 2.0, 4.0])
    both = np.concatenate([lambdas, -lambdas])
    total = sum(count * _log_mgf(pld, both) for pld, count in groups)
    high = np.min((total[: lambdas.size] - log_budget) / lambdas)
    low = np.max(-(total[lambdas.size :] - log_budget) / lambdas)
    return float(min(low, mean)), float(max(high, mean))


@dataclass
class ComposedPld:
    """Law under ``P`` of the total loss on ``(first_index + i) * step``, plus what the window
    left out: ``infinity_mass`` (paths with an infinite loss), ``tail_above`` / ``tail_below``
    (bounds on the finite mass beyond each end of the window, folded into it by the FFT) and
    ``rounding`` (a bound on the total absolute floating-point error of ``masses``)."""

    step: float
    first_index: int
    masses: np.ndarray
    infinity_mass: float
    tail_above: float
    tail_below: float
    rounding: float = 0.0
    _suffix: np.ndarray = field(init=False, repr=False)
    _tilted: np.ndarray = field(init=False, repr=False)
    _at_points: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        reversed_masses = self.masses[::-1]
        self._suffix = np.cumsum(reversed_masses)[::-1]
        # tilted[j] = sum_{i >= j} m_i exp(s_j - s_i), by the recurrence y_j = m_j + e^-step y_{j+1}
        self._tilted = signal.lfilter([1.0], [1.0, -np.exp(-self.step)], reversed_masses)[::-1]
        # finite-part delta at eps = s_j: sum_{i > j} m_i (1 - exp(s_j - s_i))
        self._at_points = self._suffix - self._tilted

    @property
    def losses(self) -> np.ndarray:
        """Grid values of the total loss."""
        return (self.first_index + np.arange(self.masses.size)) * self.step

    def hockey_stick(self, epsilon: float) -> float:
        """``sum_i m_i (1 - exp(epsilon - s_i))_+`` over the window."""
        j = int(np.ceil(epsilon / self.step - self.first_index + 1e-12))
        if j >= self.masses.size:
            return 0.0
        j = max(j, 0)
        s_j = (self.first_index + j) * self.step
        return float(self._suffix[j] - np.exp(epsilon - s_j) * self._tilted[j])

    def inverse_hockey_stick(self, delta: float) -> float:
        """Smallest ``epsilon`` with :meth:`hockey_stick` ``<= delta`` (``-inf`` if every
        ``epsilon`` qualifies); exact for the discrete law."""
        if delta <= 0:
            return np.inf
        below = self._at_points <= delta
        j = int(np.argmax(below)) if below.any() else self.masses.size - 1
        suffix, tilted = self._suffix[j], self._tilted[j]
        if suffix <= delta or tilted <= 0:
            return -np.inf if j == 0 else (self.first_index + j - 1) * self.step
        s_j = (self.first_index + j) * self.step
        return float(s_j + np.log((suffix - delta) / tilted))


def compose_plds(groups, tail_budget: float, clip_negative: bool) -> ComposedPld:
    """Compose ``groups = [(DiscretePld, count), ...]`` on one grid by FFT.

    Parameters
    ----------
    groups : list of (DiscretePld, int)
        Per-step discretised laws (same ``step``) and how many times each is composed.
    tail_budget : float
        Mass allowed beyond each end of the window (reported in the result's tails).
    clip_negative : bool
        Set the FFT's round-off negatives to zero (for an upper bound: it only adds mass).
    """
    step = groups[0][0].step
    moments = [_moments(pld) for pld, _ in groups]
    low, high = _window(groups, moments, tail_budget)
    first = int(np.floor(low / step)) - 1
    size = int(np.ceil(high / step)) + 2 - first
    if size > MAX_GRID_SIZE:
        raise ValueError(
            f"value_discretization={step:g} needs a grid of {size} points (over "
            f"{MAX_GRID_SIZE}); use a coarser value_discretization or a looser tolerance"
        )
    size = fft.next_fast_len(size, real=True)
    spectrum = None
    total_shift = 0
    log_finite = 0.0
    # Floating-point error of the composed masses (summed over the window, so it bounds the
    # error of any hockey-stick value): an FFT output carries at most ~log2(N) u sum|p|
    # (Higham 2002, Sec. 24.1), raising it to the power T multiplies that error by about
    # T |z|^(T-1), the inverse FFT adds ~log2(N) u sum|Z| / N per output. Kept per frequency as
    # log(prod_g a_g^T_g) and sum_g T_g e_g / a_g with a_g = |z_g| + e_g.
    unit = np.finfo(float).eps
    levels = np.log2(size) + 2.0
    log_envelope = 0.0
    relative = 0.0
    for (pld, count), (mean, _) in zip(groups, moments, strict=True):
        shift = int(round(mean / step))
        total_shift += count * shift
        positions = np.mod(pld.indices - shift, size)
        placed = np.bincount(positions, weights=pld.masses, minlength=size)
        transform = fft.rfft(placed)
        error = 4.0 * levels * unit * pld.masses.sum()
        bound = np.abs(transform) + error
        log_envelope = log_envelope + count * np.log(bound)
        relative = relative + count * (error + 2.0 * unit * bound) / bound
        factor = transform**count
        spectrum = factor if spectrum is None else spectrum * factor
        log_finite += count * np.log1p(-min(pld.infinity_mass, 1.0))
    envelope = np.exp(log_envelope)
    per_frequency = envelope * relative + 4.0 * levels * unit * envelope
    weights = np.full(per_frequency.size, 2.0)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    rounding = float(np.sum(weights * per_frequency))
    masses = fft.irfft(spectrum, n=size)
    masses = np.roll(masses, -(first - total_shift))
    if clip_negative:
        np.maximum(masses, 0.0, out=masses)
    return ComposedPld(
        step, first, masses, float(-np.expm1(log_finite)), tail_budget, tail_budget, rounding
    )


class ResidualLaw:
    """Chernoff data of ``R``, the sum over the composed steps of the dominated
    discretisation's residuals (lowered by their rounding slack).

    :meth:`shift` gives the smallest ``eta`` with ``P(no dropped atom and R < -eta) <= failure``
    from ``exp(-lam eta) prod_g (sum_k p_k exp(-lam r_k))^T_g``, minimised over ``lam``.
    """

    def __init__(self, groups):
        var = 0.0
        parts = []
        for pld, count in groups:
            keep = pld.masses > 0
            lowered = (pld.residuals - pld.residual_slack)[keep]
            weights = pld.masses[keep]
            if weights.sum() <= 0:
                continue
            var += count * _weighted_moments(lowered, weights)[1]
            parts.append((lowered, weights, count))
        std = max(np.sqrt(var), 1e-300)
        # lam * std from 0.05 to 50 covers failures down to exp(-1250)
        self.lambdas = np.geomspace(0.05, 50.0, 28) / std
        self.log_mgf = np.zeros(self.lambdas.size)
        for lowered, weights, count in parts:
            self.log_mgf += count * log_weighted_sum_exp(-self.lambdas, lowered, weights)

    def shift(self, failure: np.ndarray) -> np.ndarray:
        """``eta`` for every failure probability in ``failure``."""
        log_failure = np.log(np.asarray(failure, dtype=float))
        etas = (self.log_mgf[:, None] - log_failure[None, :]) / self.lambdas[:, None]
        return np.min(etas, axis=0)
