"""Shuffled epochs: a certified lower bound (Chua et al. 2024) and the amplification-free bound.

A shuffled epoch cuts a fresh random permutation of the data into ``t`` batches of fixed size;
every record is used once per epoch. Neighbouring relation: **zero-out** (one record replaced by
one whose clipped gradient is 0; Kairouz et al. 2021), the relation of Chua et al. 2024 and of
the once-per-epoch upper bound.

Lower bound (Chua, Ghazi, Kamath, Kumar, Manurangsi, Sinha, Zhang, "How private are DP-SGD
implementations?", ICML 2024, Sec. 4, the ABLQ_S lower bound; multi-epoch with reshuffling in
their NeurIPS 2024 "Scalable DP-SGD: shuffling vs. Poisson subsampling"). With every other record
contributing ``-1`` and the changed record ``+1`` or ``0``, one epoch's batch sums (shifted by the
batch size) are distributed as

    P = MoG(2),  Q = MoG(1),   MoG(m) = (1/t) sum_i N(m e_i, sigma^2 I_t),

so the hockey-stick divergence of ``E`` independent copies of ``(P, Q)`` (either order) is a lower
bound on the delta of ``E`` shuffled epochs. We post-process each epoch to the statistic
``max_i x_i`` (any statistic gives a lower bound, by data processing), whose distribution
function under ``MoG(m)`` is ``Phi((c - m)/sigma) Phi(c/sigma)^(t-1)``, and to bins of it (again
post-processing; the two tails are bins too, nothing is dropped). Per bin the mass of the
first distribution is rounded down and that of the second up, by a relative ``1e-10`` that
covers the float evaluation; the bin's loss ``log(p/q)`` is rounded down to a grid of step
``Delta``. Each rounding can only lower the hockey-stick divergence. The ``E``-fold composition is
an FFT power of the loss distribution; its rounding error (2-norm at most ``8 E u log2 N``, ``u``
the unit roundoff, from the standard FFT error analysis) is subtracted from every delta. The
epsilon reported is the largest at which this certified delta still exceeds the target, the
larger of the two orders ``(P, Q)`` and ``(Q, P)``.

Upper bound: every record enters one step per epoch, so an epoch is the Gaussian mechanism once
for zero-out neighbours (TF Privacy's "each example once per epoch"); no amplification is
claimed. :func:`shuffle_upper_bound` composes it with any registered accountant.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from accounting import _scipy
from accounting._validation import check_delta, check_noise_multiplier, check_positive_int
from accounting.events import Gaussian, SelfComposed
from accounting.pld.composition import decayed_suffix_sums

__all__ = ["MAX_SHUFFLE_GRID", "ShuffleLowerBound", "shuffle_lower_bound", "shuffle_upper_bound"]

#: Largest length of the composed loss grid (bounds memory and time).
MAX_SHUFFLE_GRID = 2**24

_U = float(np.finfo(float).eps)
_MASS_MARGIN = 1e-10


@dataclasses.dataclass(frozen=True)
class ShuffleLowerBound:
    """Certified lower bound on the epsilon of shuffled epochs, and how it was obtained.

    Attributes
    ----------
    epsilon : float
        The lower bound (the larger of the two orders of the pair).
    epsilon_forward, epsilon_reverse : float
        The bounds from ``(P, Q)`` and from ``(Q, P)``.
    discretization : float
        Loss grid step ``Delta`` (the rounding can cost up to ``epochs * Delta``).
    """

    epsilon: float
    epsilon_forward: float
    epsilon_reverse: float
    discretization: float


def _log_cdf(c: np.ndarray, mean: float, sigma: float, batches: int) -> np.ndarray:
    special = _scipy.special
    return special.log_ndtr((c - mean) / sigma) + (batches - 1) * special.log_ndtr(c / sigma)


def _log_bin_masses(caps: np.ndarray, mean: float, sigma: float, batches: int) -> np.ndarray:
    """Log masses of ``(-inf, c_0], (c_0, c_1], ..., (c_n, inf)`` of ``max_i x_i``."""
    log_f = _log_cdf(caps, mean, sigma, batches)
    with np.errstate(divide="ignore"):
        inner = log_f[1:] + np.log(-np.expm1(log_f[:-1] - log_f[1:]))
        upper = np.log(-np.expm1(log_f[-1:]))
    return np.concatenate([log_f[:1], inner, upper])


def _loss_pmf(log_first: np.ndarray, log_second: np.ndarray, step: float):
    """Masses of the first distribution (rounded down) on losses rounded down to the grid."""
    # bins where the second mass underflows (infinite loss, tiny noise) are dropped: leaving
    # out mass of the first distribution can only lower the divergence
    keep = np.isfinite(log_first) & np.isfinite(log_second)
    log_p = log_first[keep] + math.log1p(-_MASS_MARGIN)
    log_q = log_second[keep] + math.log1p(_MASS_MARGIN)
    loss = log_p - log_q
    index = np.floor(loss / step).astype(np.int64)
    offset = int(index.min())
    pmf = np.zeros(int(index.max()) - offset + 1)
    np.add.at(pmf, index - offset, np.exp(log_p))
    return pmf, offset


def _grid_too_large(points: int, sigma: float, epochs: int, step: float) -> ValueError:
    """The refusal of a loss grid beyond ``MAX_SHUFFLE_GRID``, naming what sizes it."""
    return ValueError(
        f"the loss grid would need about {points} points for noise_multiplier={sigma!r}, "
        f"epochs={epochs} and discretization={step!r}, more than MAX_SHUFFLE_GRID = "
        f"{MAX_SHUFFLE_GRID} (it grows as epochs / (discretization * noise_multiplier^2)): use "
        "a coarser discretization, fewer epochs or a larger noise_multiplier"
    )


def _compose(pmf: np.ndarray, epochs: int, sigma: float, step: float) -> tuple[np.ndarray, float]:
    """``pmf`` convolved with itself ``epochs`` times (FFT power), clipped at 0, and the
    2-norm bound on its rounding error."""
    length = epochs * (pmf.shape[0] - 1) + 1
    if length > MAX_SHUFFLE_GRID:
        raise _grid_too_large(length, sigma, epochs, step)
    if epochs == 1:
        return pmf, 0.0
    fft = _scipy.fft
    size = fft.next_fast_len(length, real=True)
    spectrum = fft.rfft(pmf, size) ** epochs
    composed = np.maximum(fft.irfft(spectrum, size)[:length], 0.0)
    return composed, 8.0 * epochs * _U * math.log2(size)


def _epsilon_lower(pmf, offset, step, error, delta) -> float:
    """Largest grid-free epsilon at which the certified delta(eps) exceeds ``delta`` (0 if none
    at or above 0).

    On the cell ``[s_(j-1), s_j)`` of the loss grid the certified delta is
    ``S_j - exp(eps - s_j) T_j - error sqrt(n - j)``, with ``S_j`` the mass at or above ``s_j``
    and ``T_j = sum_(i >= j) m_i exp(s_j - s_i)`` (one backward recurrence): decreasing in
    ``eps``, so each cell's crossing of ``delta`` is a logarithm, and the answer the largest.
    """
    # only cells reaching eps >= 0 matter (the answer is clipped at 0)
    start = min(max(-offset - 1, 0), pmf.shape[0] - 1)
    pmf, offset = pmf[start:], offset + start
    size = pmf.shape[0]
    losses = (offset + np.arange(size)) * step
    suffix = np.cumsum(pmf[::-1])[::-1]
    tilted = decayed_suffix_sums(pmf, math.exp(-step))
    excess = suffix - error * np.sqrt(size - np.arange(size)) - delta
    # cell j holds eps in [s_(j-1), s_j) (cell 0 is everything below s_0)
    lowest = np.concatenate([[-np.inf], losses[:-1]])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        crossing = losses + (np.log(excess) - np.log(tilted))
    crossing = np.minimum(crossing, losses)
    crossing = np.where((excess > 0) & (tilted > 0) & (crossing >= lowest), crossing, -np.inf)
    best = float(np.max(crossing, initial=-np.inf))
    return best if best > 0.0 else 0.0


def shuffle_lower_bound(batches: int, noise_multiplier: float, epochs: int, delta: float,
                        discretization: float | None = None) -> ShuffleLowerBound:
    """Certified lower bound on the epsilon of ``epochs`` shuffled epochs of ``batches`` batches.

    Zero-out neighbours, the pair of Chua et al. 2024 (ICML, Sec. 4) post-processed to the
    largest coordinate and binned; see the module docstring for each rounding and why it keeps
    the bound on the safe side. No epsilon below it can be certified for shuffled DP-SGD by any
    analysis of the ABLQ_S mechanism.

    Parameters
    ----------
    batches : int
        Batches per epoch, ``t >= 1`` (``t = 1``: the Gaussian mechanism, the bound is then its
        exact epsilon up to the discretization).
    noise_multiplier : float
        ``sigma`` in ``[1e-100, 1e100]`` (the losses scale as ``sigma^-2``).
    epochs : int
        Epochs, in ``[1, MAX_SHUFFLE_GRID]``, each with a fresh shuffle.
    delta : float
        Target delta in ``(0, 1)``.
    discretization : float, optional
        Loss grid step; default ``min(1e-3, 0.02 / epochs)``, coarsened where the grid would
        exceed :data:`MAX_SHUFFLE_GRID` points (a coarser grid still gives a lower bound, lower
        by at most ``epochs`` steps). A given step whose grid does not fit is refused.

    Returns
    -------
    ShuffleLowerBound
    """
    batches = check_positive_int(batches, "batches", 2**53)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    if not 1e-100 <= sigma <= 1e100:
        raise ValueError("noise_multiplier must lie in [1e-100, 1e100] (the losses scale as "
                         f"sigma^-2), got {noise_multiplier!r}")
    # at least two grid points per epoch must fit
    epochs = check_positive_int(epochs, "epochs", MAX_SHUFFLE_GRID // 2)
    delta = check_delta(delta)
    special = _scipy.special
    # caps covering all but ~e^-60 of each tail; the tails stay as two bins
    log_tail = -60.0
    low = sigma * float(special.ndtri(math.exp(log_tail / batches))) - 1.0
    high = 2.0 + sigma * float(-special.ndtri(-math.expm1(math.log1p(-math.exp(log_tail))
                                                             / batches)))
    if discretization is None:
        # the loss spans about (high - low) / sigma^2: keep its grid within the budget
        fit = 2.0 * (high - low) / sigma / sigma / (MAX_SHUFFLE_GRID // epochs - 1)
        discretization = max(min(1e-3, 0.02 / epochs), fit)
    step = check_noise_multiplier(discretization, "discretization", scalar=True)
    width = step * sigma * sigma
    count = int(math.ceil((high - low) / width)) + 1
    if count * epochs > MAX_SHUFFLE_GRID:
        raise _grid_too_large(count * epochs, sigma, epochs, step)
    caps = low + width * np.arange(count)
    log_p = _log_bin_masses(caps, 2.0, sigma, batches)
    log_q = _log_bin_masses(caps, 1.0, sigma, batches)
    results = []
    for first, second in ((log_p, log_q), (log_q, log_p)):
        pmf, offset = _loss_pmf(first, second, step)
        composed, error = _compose(pmf, epochs, sigma, step)
        results.append(_epsilon_lower(composed, epochs * offset, step, error, delta))
    return ShuffleLowerBound(max(results), results[0], results[1], step)


def shuffle_upper_bound(noise_multiplier: float, epochs: int, delta: float,
                        accountant: str = "rdp") -> float:
    """Certified epsilon of ``epochs`` shuffled epochs with no amplification claimed.

    Each record enters one Gaussian step per epoch: zero-out neighbours see the Gaussian
    mechanism once per epoch (TF Privacy's "each example once per epoch";
    :class:`accounting.events.ShuffledEpoch` reduces to the same). Composed by
    ``make_accountant(accountant)``.

    Parameters
    ----------
    noise_multiplier : float
        ``sigma > 0``.
    epochs : int
        Epochs, ``>= 1``.
    delta : float
        Target delta in ``(0, 1)``.
    accountant : str
        A registered accountant name (``"rdp"``, ``"pld"``, ...).
    """
    from accounting.registry import make_accountant

    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    epochs = check_positive_int(epochs, "epochs")
    delta = check_delta(delta)
    acc = make_accountant(accountant).compose(SelfComposed(Gaussian(sigma), epochs))
    return float(acc.get_epsilon(delta))
