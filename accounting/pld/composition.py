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

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from accounting import _scipy
from accounting.pld.privacy_loss import DiscretePld, GridTooLarge

__all__ = [
    "ComposedPld",
    "ThresholdBound",
    "TiltedLaw",
    "choose_tilt",
    "compose_plds",
    "compose_tilted",
    "decayed_suffix_sums",
    "grid_log_sum_exp",
    "log_weighted_sum_exp",
    "untilted",
    "window_points",
]

#: Largest FFT length :func:`compose_tilted` allocates unless told otherwise (a 2M-point grid's
#: work arrays take about 300 MB).
MAX_GRID_SIZE = 1 << 21
#: Blocks of the per-step law that bound its moment generating function in :func:`_window`,
#: for laws of more than ``_EXACT_MGF_POINTS`` atoms (fewer are summed exactly: as fast).
_MGF_BLOCKS = 1 << 15
_EXACT_MGF_POINTS = 1 << 17
#: :func:`grid_log_sum_exp`: largest ``|lam| step`` times the block length for the blocked
#: sum (its factors then stay above ``e^-this``), the exponent beyond which terms are left
#: out of the direct sum of steep ``lam`` (below ``e^-745``: zero in double precision), the
#: size of a direct sum preferred to blocks, and the share of the largest weight below which a
#: blocked sum is redone directly.
_BLOCK_EXPONENT = 300.0
_WINDOW_EXPONENT = 760.0
_DIRECT_TERMS = 4096
_SAFE_SUM = 1e-150
_U = float(np.finfo(float).eps)


def decayed_suffix_sums(values: np.ndarray, decay: float) -> np.ndarray:
    """``y_j = sum_{i >= j} values_i decay^(i - j)``, by the recurrence ``y_j = values_j + decay
    y_(j+1)``.

    That is the back substitution of the unit upper-bidiagonal system with ``-decay`` above the
    diagonal, done by LAPACK's banded triangular solver ``dtbtrs`` in one pass: the operations
    (and roundings) of ``scipy.signal.lfilter([1], [1, -decay], values[::-1])[::-1]``, without
    importing ``scipy.signal`` (a slow import) for it.
    """
    values = np.ascontiguousarray(values, dtype=float)
    if values.size == 0:
        return values.copy()
    bands = np.empty((2, values.size))
    bands[0], bands[1] = -decay, 1.0
    sums, info = _scipy.lapack.dtbtrs(bands, values, uplo="U", diag="U")
    if info != 0:
        raise ArithmeticError(f"dtbtrs failed with info={info}")
    return sums


def log_weighted_sum_exp(lambdas: np.ndarray, values: np.ndarray, weights: np.ndarray):
    """``log sum_k w_k exp(lam * v_k)`` for every ``lam``, shifted so nothing overflows."""
    exponents = lambdas[:, None] * values[None, :]
    shift = exponents.max(axis=1)
    np.subtract(exponents, shift[:, None], out=exponents)
    np.exp(exponents, out=exponents)
    # a plain multiply-and-sum: BLAS threads cost more than they gain on these sizes
    return np.log(np.einsum("ij,j->i", exponents, weights)) + shift


def grid_log_sum_exp(lambdas: np.ndarray, first_index: int, step: float,
                     weights: np.ndarray) -> np.ndarray:
    """An upper bound on ``log sum_k w_k exp(lam (first_index + k) step)`` for every ``lam``,
    exact up to rounding (non-negative ``weights`` on a uniform grid; ``-inf`` where all are 0).

    The grid is cut into ``A`` blocks of ``B`` points (``A, B ~ sqrt(n)``) counted from the atom
    of the largest exponent (the top one for ``lam >= 0``, the bottom one otherwise): each term
    is ``w exp(-r (block's distance)) exp(-r (point's distance in its block))`` with
    ``r = |lam| step``, both factors at most 1 and 1 at that atom, and the sum is
    ``outer @ (W @ inner)`` with ``W`` the ``A x B`` weights: ``L (A + B)`` exponentials and a
    matrix product for ``L`` values of ``lam``, instead of ``L n``. Distances are whole numbers
    of steps, so the exponents carry no cancellation. Blocks serve while ``r B`` is at most
    ``_BLOCK_EXPONENT`` (an inner factor then never underflows, and the products lost to
    underflow are below ``1e-188`` of the largest weight in all); beyond, the terms within
    ``_WINDOW_EXPONENT`` of the largest exponent are summed directly (the others are below
    ``e^-745`` of their weight, as they would underflow in a direct sum too). A blocked sum
    under ``_SAFE_SUM`` of the largest weight, where those losses could matter, is summed
    directly. The sums of non-negative terms are within ``(A + B + 8) u`` of exact, relative;
    that is added (with the weights' normalisation).
    """
    lambdas = np.asarray(lambdas, dtype=float)
    weights = np.asarray(weights, dtype=float)
    kept = np.flatnonzero(weights > 0)
    if kept.size == 0:
        return np.full(lambdas.shape, -np.inf)
    low, high = int(kept[0]), int(kept[-1])
    weights = weights[low:high + 1]
    size = weights.size
    first = first_index + low
    values = None

    def direct(chosen):
        nonlocal values
        if values is None:
            values = (first + np.flatnonzero(weights > 0)) * step
        return log_weighted_sum_exp(lambdas[chosen], values, weights[weights > 0])

    if size * lambdas.size <= _DIRECT_TERMS:
        return direct(slice(None))
    scale = float(weights.max())
    normalised = weights / scale
    width = int(math.ceil(math.sqrt(size)))
    rows = -(-size // width)
    rate = np.abs(lambdas) * step
    up = lambdas >= 0.0
    # the largest exponent: at the top atom for lam >= 0, at the bottom one otherwise
    shift = np.where(up, lambdas * ((first + size - 1) * step), lambdas * (first * step))
    sums = np.empty(lambdas.size)
    blocked = rate * width <= _BLOCK_EXPONENT
    distances = np.arange(width, dtype=float)
    block_distances = np.arange(rows, dtype=float) * width
    for rising in (True, False):
        chosen = blocked & (up == rising)
        if not chosen.any():
            continue
        # the weights by distance from the extreme atom (downwards from the top one for
        # lam >= 0), in blocks: that atom starts the first block
        table = np.zeros(rows * width)
        table[:size] = normalised[::-1] if rising else normalised
        table = table.reshape(rows, width)
        r = rate[chosen, None]
        inner, outer = np.exp(-r * distances), np.exp(-r * block_distances)
        sums[chosen] = np.einsum("la,al->l", outer, table @ inner.T)
    steep = ~blocked
    if steep.any():
        r, rising = rate[steep], up[steep]
        reach = min(size, int(math.ceil(_WINDOW_EXPONENT / float(r.min()))) + 1)
        offsets = np.arange(reach, dtype=float)  # steps from the extreme atom inwards
        near_top, near_bottom = normalised[size - reach:][::-1], normalised[:reach]
        terms = np.exp(-r[:, None] * offsets[None, :])
        sums[steep] = np.where(rising, terms @ near_top, terms @ near_bottom)
    rounding = math.log1p((rows + width + 9) * _U)
    with np.errstate(divide="ignore"):
        result = np.log(sums) + math.log(scale) + shift + rounding
    small = ~(sums >= _SAFE_SUM)
    if small.any():
        result[small] = direct(small)
    return result


def _log_mgf(pld: DiscretePld, lambdas: np.ndarray, blocks: int = _MGF_BLOCKS) -> np.ndarray:
    """An upper bound on ``log sum_k p_k exp(lam * loss_k)`` for every ``lam`` (masses may sum
    to less than 1), exact for laws of at most ``_EXACT_MGF_POINTS`` atoms.

    Longer laws are cut into ``_MGF_BLOCKS`` blocks of consecutive grid points; on a block
    ``[a, b]`` of mass ``m`` and mean ``mu``, convexity of ``exp`` bounds the sum by
    ``m ((b - mu) e^(lam a) + (mu - a) e^(lam b)) / (b - a)`` (the chord above the curve), within
    a factor ``exp(lam^2 (b - a)^2 / 8)`` of the exact sum (Hoeffding's lemma). Time and memory
    are ``O(points + blocks * lambdas)`` instead of ``O(points * lambdas)``; ``blocks`` (at most
    ``_MGF_BLOCKS``) trades accuracy for time, and laws of at most ``8 blocks`` atoms are exact.
    """
    size = pld.masses.size
    keep = pld.masses > 0
    # blocks of a few atoms save nothing over the exact sum
    if np.count_nonzero(keep) <= min(_EXACT_MGF_POINTS, 8 * blocks):
        return grid_log_sum_exp(lambdas, pld.first_index, pld.step, pld.masses)
    block = max(-(-size // blocks), 2)
    blocks = -(-size // block)
    masses = np.zeros(block * blocks)
    masses[:size] = pld.masses
    masses = masses.reshape(blocks, block)
    block_mass = masses.sum(axis=1)
    # offsets of the block mean from the block start, in grid steps
    offset = (masses @ np.arange(block, dtype=float)) / np.where(block_mass > 0, block_mass, 1.0)
    keep = block_mass > 0
    width = (block - 1) * pld.step
    share = np.clip(offset[keep] / (block - 1), 0.0, 1.0)  # (mu - a) / (b - a)
    starts = (pld.first_index + block * np.flatnonzero(keep)) * pld.step
    mass = block_mass[keep]
    # the chord bound summed over blocks: sum m (1 - s) e^(lam a) + e^(lam w) sum m s e^(lam a),
    # s = (mu - a) / w: one exponential per (lambda, block), two matrix-vector products
    exponents = lambdas[:, None] * starts[None, :]
    shift = exponents.max(axis=1)
    np.subtract(exponents, shift[:, None], out=exponents)
    np.exp(exponents, out=exponents)
    with np.errstate(divide="ignore"):
        log_low = np.log(exponents @ (mass * (1.0 - share)))
        log_high = np.log(exponents @ (mass * share)) + lambdas * width
    return np.logaddexp(log_low, log_high) + shift


def mgf_blocks(pld: DiscretePld, spread: float) -> int:
    """Blocks for :func:`_log_mgf` of a law of standard deviation ``spread``: each at most a
    quarter of it wide (at least one atom)."""
    per_block = max(int(0.25 * spread / pld.step), 1) if spread == spread else 1
    return max(-(-pld.masses.size // per_block), 1)


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

    ``moments`` holds :func:`_moments` of each group's per-step law. Each end is a Chernoff
    bound, ``(K(lam) - log tail_budget) / lam`` at the best of a set of parameters ``lam``
    (any ``lam > 0`` gives a valid end; ``K`` is an upper bound on the total loss's cumulant
    generating function, convex in ``lam``, so the end is unimodal in ``lam``): first on a
    coarse ladder, then, where the best rung's neighbours are far apart, on a finer one between
    them (heavy tails' ends fall steeply on either side of their optimum).
    """
    step = groups[0][0].step
    mean = sum(count * m for (m, _), (_, count) in zip(moments, groups, strict=True))
    var = sum(count * v for (_, v), (_, count) in zip(moments, groups, strict=True))
    std = max(np.sqrt(var), step)
    log_budget = np.log(tail_budget)
    centre = np.sqrt(-2.0 * log_budget) / std
    # a Gaussian's optimum is at 1; skewed or heavy-tailed laws move it, mostly downwards and
    # by up to 1e3-fold (a subsampled Gaussian with sigma 0.6: its loss tail is log-normal)
    ladder = centre * _WINDOW_LADDER
    (high, high_at), (low, low_at) = _chernoff_ends(groups, moments, ladder, ladder, log_budget)
    if not (np.isfinite(high) and np.isfinite(low)):  # an infinite spread: no grid holds it
        return float(min(low, mean)), float(max(high, mean))
    finer_high = _between_neighbours(ladder, high_at)
    finer_low = _between_neighbours(ladder, low_at)
    if finer_high.size or finer_low.size:
        (fine_high, _), (fine_low, _) = _chernoff_ends(groups, moments, finer_high, finer_low,
                                                       log_budget)
        high, low = min(high, fine_high), max(low, fine_low)
    return float(min(low, mean)), float(max(high, mean))


#: Chernoff parameters of :func:`_window`'s first pass, in units of a Gaussian's optimum.
_WINDOW_LADDER = np.array([1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 0.6, 0.8, 1.0, 1.3,
                           2.0])
#: Parameters of its second pass, spaced geometrically between the best rung's neighbours where
#: these are more than ``_WINDOW_GAP`` apart (near a Gaussian's optimum the rungs are close).
_WINDOW_REFINE, _WINDOW_GAP = 8, 2.5


def _between_neighbours(ladder: np.ndarray, best: int) -> np.ndarray:
    """``_WINDOW_REFINE`` parameters spaced geometrically strictly between the rungs next to
    ``ladder[best]`` (the rung itself at an end of the ladder); none where those are close."""
    lower, upper = ladder[max(best - 1, 0)], ladder[min(best + 1, ladder.size - 1)]
    if not upper > _WINDOW_GAP * lower:
        return ladder[:0]
    return np.geomspace(lower, upper, _WINDOW_REFINE + 2)[1:-1]


def _chernoff_ends(groups, moments, uppers: np.ndarray, lowers: np.ndarray,
                   log_budget: float) -> tuple[tuple[float, int], tuple[float, int]]:
    """The best Chernoff upper end over the parameters ``uppers`` and lower end over
    ``lowers`` (``inf`` / ``-inf`` where a list is empty), each with the index of the parameter
    giving it; one pass over each per-step law.

    Chord bounds over blocks of a quarter of a step's spread (see :func:`_log_mgf`): ``T``
    times each block's looseness ``lam^2 (b - a)^2 / 8`` stays a few units at these lambdas.
    An infinite spread (zero lambdas) gives an infinite or NaN end: no grid holds that window.
    """
    total = sum(
        count * _log_mgf(pld, np.concatenate([uppers, -lowers]),
                         blocks=mgf_blocks(pld, math.sqrt(variance)))
        for (pld, count), (_, variance) in zip(groups, moments, strict=True)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        highs = (total[: uppers.size] - log_budget) / uppers
        lows = -(total[uppers.size :] - log_budget) / lowers
    ends = []
    for values, sign in ((highs, 1.0), (lows, -1.0)):
        if values.size == 0:
            ends.append((sign * math.inf, 0))
        elif np.isnan(values).any():
            ends.append((math.nan, 0))
        else:
            best = int(np.argmin(sign * values))
            ends.append((float(values[best]), best))
    return ends[0], ends[1]


#: Tilts tried by :func:`choose_tilt` (0 keeps the law as it is), ``sqrt(2)`` apart: down to
#: ``2^-10`` for runs of billions of steps, whose saddle point lies far below one.
_TILTS = np.concatenate([[0.0], np.geomspace(2.0**-10, 1024.0, 41)])
#: :func:`choose_tilt` first ranks every this-many-th tilt (a factor 4), then those around the
#: best.
_TILT_STRIDE = 4
#: Atoms kept per group when ranking tilts (each block of the grid on its two ends, mass and mean
#: kept: see :func:`_coarsened`).
_RANKING_ATOMS = 2048


def _coarsened(pld: DiscretePld) -> tuple[np.ndarray, np.ndarray]:
    """Losses and masses of ``pld`` with blocks of consecutive grid points merged, at most
    ``_RANKING_ATOMS`` atoms: enough to rank tilts, never used for a bound.

    Each block's mass is split between its two ends so that its mean stays (the chord of
    :func:`_log_mgf`): a spread of the law, whose moment generating function is at least the
    law's, within ``exp(lam^2 w^2 / 8)`` per block of width ``w`` (Hoeffding's lemma). Merging a
    block into its mean instead understates it: on a law concentrated on two grid points it
    made the largest tilt look best, and the window then missed the answer altogether.
    """
    keep = pld.masses > 0
    losses, masses = pld.losses[keep], pld.masses[keep]
    block = max(1, -(-masses.size // (_RANKING_ATOMS // 2)))
    if block == 1:
        return losses, masses
    starts = np.arange(0, masses.size, block)
    ends = np.minimum(starts + block, masses.size) - 1
    merged = np.add.reduceat(masses, starts)
    means = np.add.reduceat(masses * losses, starts) / merged
    low, high = losses[starts], losses[ends]
    span = high - low
    share = np.divide(means - low, span, out=np.zeros_like(span), where=span > 0)
    share = np.clip(share, 0.0, 1.0)
    return np.concatenate([low, high]), np.concatenate([merged * (1.0 - share), merged * share])


def _tilt_statistics(groups, tilts: np.ndarray):
    """``log E[exp(lam S)]``, mean and variance of the ``lam``-tilted total loss ``S`` for each
    ``lam`` in ``tilts``, on the merged atoms of :func:`_coarsened`."""
    log_mgf = np.zeros(tilts.size)
    mean = np.zeros(tilts.size)
    var = np.zeros(tilts.size)
    for pld, count in groups:
        losses, masses = _coarsened(pld)
        exponents = tilts[:, None] * losses[None, :]
        shift = exponents.max(axis=1)
        weights = np.exp(exponents - shift[:, None]) * masses[None, :]
        total = weights.sum(axis=1)
        first = weights @ losses / total
        second = weights @ (losses * losses) / total
        with np.errstate(over="ignore"):  # a huge count's moments may reach inf: still ranked
            log_mgf += count * (np.log(total) + shift)
            mean += count * first
            var += count * np.maximum(second - first * first, 0.0)
    return log_mgf, mean, var


def choose_tilt(groups, anchor: float) -> tuple[float, float]:
    """Exponential tilt ``lam`` for composing ``groups`` when hockey-stick values at losses
    ``>= anchor`` are wanted, and ``G = log E[exp(lam S)] - lam anchor`` at that tilt.

    Composing ``p_k exp(lam s_k)`` instead of ``p_k`` makes the FFT's absolute rounding error
    relative to ``exp(G)`` (about the mass beyond ``anchor``) instead of to 1. The tilt that
    minimises ``G`` (the Chernoff saddle point) is the most accurate; among the tilts within
    ``e^2`` of it, the one with the narrowest tilted law (the shortest FFT) is returned.

    ``G`` is convex in ``lam`` (a cumulant generating function less a linear term), so its
    minimum over the tilts is found on every ``_TILT_STRIDE``-th tilt first and then among the
    tilts around the best of those; the tilts in between elsewhere are not evaluated.
    """
    coarse = np.arange(0, _TILTS.size, _TILT_STRIDE)
    log_mgf, mean, var = _tilt_statistics(groups, _TILTS[coarse])
    best = int(coarse[np.argmin(log_mgf - _TILTS[coarse] * anchor)])
    around = np.arange(max(best - _TILT_STRIDE + 1, 0), min(best + _TILT_STRIDE, _TILTS.size))
    around = around[around % _TILT_STRIDE != 0]
    fine = _tilt_statistics(groups, _TILTS[around])
    indices = np.concatenate([coarse, around])
    tilts = _TILTS[indices]
    log_mgf, var = np.concatenate([log_mgf, fine[0]]), np.concatenate([var, fine[2]])
    excess = log_mgf - tilts * anchor
    # far below the saddle point the error decays slowly beyond the anchor: not those (no tilt
    # stays a candidate: its error is absolute, and it is near only where tails are not small)
    above = (tilts >= 0.5 * tilts[np.argmin(excess)]) | (tilts == 0)
    near = (excess <= excess.min() + 2.0) & above
    chosen = int(np.flatnonzero(near)[np.argmin(var[near])])
    return float(tilts[chosen]), float(excess[chosen])


@dataclass
class ComposedPld:
    """Law under ``P`` of the total loss on ``(first_index + i) * step``.

    ``infinity_mass`` is the mass at loss ``+inf``. The finite masses are trusted where
    :meth:`allowance` is below 1 (lower grid points are dropped): ``allowance(eps)`` bounds the
    total error of the finite part of any hockey-stick value at ``eps`` - floating-point error of
    the FFT, tail mass folded into the window by the circular convolution, mass beyond the
    window - as ``exp(log_allowance - tilt * eps)`` (see :func:`compose_plds`).
    """

    step: float
    first_index: int
    masses: np.ndarray
    infinity_mass: float
    tilt: float = 0.0
    log_allowance: float = -np.inf

    @cached_property
    def _points(self) -> np.ndarray:
        return (self.first_index + np.arange(self.masses.size)) * self.step

    @cached_property
    def _suffix(self) -> np.ndarray:
        return np.cumsum(self.masses[::-1])[::-1]

    @cached_property
    def _tilted(self) -> np.ndarray:
        # tilted[j] = sum_{i >= j} m_i exp(s_j - s_i), by the recurrence y_j = m_j + e^-step y_{j+1}
        return decayed_suffix_sums(self.masses, math.exp(-self.step))

    @cached_property
    def _at_points(self) -> np.ndarray:
        # finite-part delta at eps = s_j: sum_{i > j} m_i (1 - exp(s_j - s_i))
        return self._suffix - self._tilted

    @cached_property
    def _allowance_at_points(self) -> np.ndarray:
        return self.allowance(self._points)

    @property
    def losses(self) -> np.ndarray:
        """Grid values of the total loss."""
        return self._points

    def allowance(self, epsilon):
        """Bound on the error of :meth:`hockey_stick` at ``epsilon`` (array or scalar)."""
        return np.exp(np.minimum(self.log_allowance - self.tilt * np.asarray(epsilon), 700.0))

    def hockey_stick(self, epsilon: float) -> float:
        """``sum_i m_i (1 - exp(epsilon - s_i))_+`` over the kept grid points."""
        j = int(np.ceil(epsilon / self.step - self.first_index + 1e-12))
        if j >= self.masses.size:
            return 0.0
        j = max(j, 0)
        s_j = (self.first_index + j) * self.step
        return float(self._suffix[j] - np.exp(epsilon - s_j) * self._tilted[j])

    def _solve_in_cell(self, j: int, level: float) -> float:
        """``eps`` in ``[s_(j-1), s_j]`` where ``suffix_j - exp(eps - s_j) tilted_j = level``,
        clamped to the cell (the hockey stick is exactly that expression there)."""
        s_j = (self.first_index + j) * self.step
        suffix, tilted = self._suffix[j], self._tilted[j]
        if suffix <= level or tilted <= 0:
            return s_j - self.step
        return float(np.clip(s_j + np.log((suffix - level) / tilted), s_j - self.step, s_j))

    def epsilon_upper(self, delta: float) -> float:
        """An ``epsilon`` at which the true finite hockey stick plus its allowance is at most
        ``delta``: the smallest such grid point, refined inside its cell (``inf`` if none)."""
        points = self.losses
        fits = self._at_points + self._allowance_at_points <= delta
        if not fits.any():
            return np.inf
        j = int(np.argmax(fits))
        if j == 0:
            if self.tilt > 0:  # nothing below the first kept point is known
                return float(points[0])
            level = delta - float(self.allowance(0.0))
            return -np.inf if self._suffix[0] <= level else self._solve_in_cell(0, level)
        return self._solve_in_cell(j, delta - self._allowance_at_points[j - 1])


def _tilted_law(pld: DiscretePld, tilt: float) -> tuple[DiscretePld, float]:
    """``pld`` reweighted by ``exp(tilt * loss)`` and normalised, and the log of the factor."""
    keep = pld.masses > 0
    log_weights = np.full(pld.masses.size, -np.inf)
    log_weights[keep] = np.log(pld.masses[keep]) + tilt * pld.losses[keep]
    top = log_weights.max()
    weights = np.exp(log_weights - top)
    total = weights.sum()
    return DiscretePld(pld.step, pld.first_index, weights / total), float(top + np.log(total))


@dataclass
class TiltedLaw:
    """A composed law kept in tilted form: the mass at ``s_j = (first_index + j) step`` is
    ``masses[j] exp(log_scale - tilt s_j)``, and ``error`` bounds the total absolute error of
    ``masses`` (FFT rounding, folded and left-out tails). ``infinity_mass`` is the mass at
    ``+inf``."""

    step: float
    first_index: int
    masses: np.ndarray
    tilt: float
    log_scale: float
    error: float
    infinity_mass: float = 0.0

    def log_tails(self, first: int, size: int, sign: float) -> np.ndarray:
        """``log`` of the mass at or above ``s_m`` for ``m = first .. first + size - 1`` (the
        law must end inside that range), moved by the error bound in the direction ``sign``
        (``-1``: a lower bound, ``+1``: an upper bound); ``-inf`` where a lower bound is not
        positive.

        Kept in log space: ``sum_{j >= m} masses_j exp(-tilt (s_j - s_m))`` comes from one
        recurrence and never under- or overflows, whatever ``exp(log_scale - tilt s_m)``.
        """
        end = self.first_index + self.masses.size
        if end > first + size:
            raise ValueError("the range must reach the end of the law")
        padded = np.zeros(size)
        lo = max(self.first_index, first)
        if end > lo:
            padded[lo - first : end - first] = self.masses[lo - self.first_index :]
        sums = decayed_suffix_sums(padded, math.exp(-self.tilt * self.step))
        points = (first + np.arange(size)) * self.step
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(sums + sign * self.error) + self.log_scale - self.tilt * points


def _window_plan(groups, tail_budget: float, tilt: float):
    """The tilted per-step laws with their log normalisers, their moments, and the first index
    and number of points of the window beyond which at most ``tail_budget`` mass lies."""
    step = groups[0][0].step
    tilted = [(_tilted_law(pld, tilt), count) for pld, count in groups]
    tilted_groups = [(law, count) for (law, _), count in tilted]
    moments = [_moments(pld) for pld, _ in tilted_groups]
    low, high = _window(tilted_groups, moments, tail_budget)
    with np.errstate(over="ignore", invalid="ignore"):
        first_float = np.floor(low / step) - 1.0
        points = float(np.ceil(high / step) + 2.0 - first_float)
    return tilted, moments, first_float, points


def window_points(groups, tail_budget: float, tilt: float = 0.0) -> float:
    """Points of the window :func:`compose_tilted` would compose (``inf`` where none holds
    it), without composing."""
    points = _window_plan(groups, tail_budget, tilt)[3]
    return points if points == points else math.inf


def compose_tilted(
    groups, tail_budget: float, tilt: float = 0.0, extended: bool = False,
    max_size: float = MAX_GRID_SIZE, admit=None,
) -> TiltedLaw:
    """Compose ``groups = [(DiscretePld, count), ...]`` on one grid by FFT, tilted.

    Parameters
    ----------
    groups : list of (DiscretePld, int)
        Per-step discretised laws (same ``step``) and how many times each is composed.
    tail_budget : float
        Mass of the (tilted) composed law allowed beyond each end of the window.
    tilt : float
        Exponential tilt ``lam >= 0`` (see :func:`choose_tilt`): the laws ``p_k exp(lam s_k) /
        M_g`` are composed and the result multiplied back by ``prod_g M_g^T_g exp(-lam s)``. An
        absolute error ``e`` of the tilted masses becomes ``e exp(log M - lam s)`` at loss
        ``s``, small exactly where hockey-stick values at large ``epsilon`` need it.
    extended : bool
        Take the per-step transforms and their ``T``-th powers in NumPy's ``longdouble`` (a
        64-bit mantissa on x86): the dominant rounding term, ``T`` times the transform's error,
        shrinks ~2000-fold, at several times the cost of those transforms. Where ``longdouble`` is
        ``double`` the result and its bound are those of ``extended=False``.
    max_size : float
        Largest window allowed: a longer one raises
        :class:`accounting.pld.privacy_loss.GridTooLarge`
        before anything of its size is allocated.
    admit : callable, optional
        Called as ``admit(size, transforms, extended)`` with the FFT length and the number of
        forward transforms once they are known, before they are computed; it may raise to refuse
        the work (the accountant's time budget).

    Notes
    -----
    With ``L = sum_g T_g log M_g`` and tilted-law error ``E`` (FFT rounding, plus the folded
    and the left-out tail mass, ``4 tail_budget``), every hockey-stick value at ``eps`` is off by
    at most ``E exp(L - lam eps)``: a mass at ``s > eps`` carries weight at most 1 and its error
    is at most its tilted error times ``exp(L - lam s) <= exp(L - lam eps)``.
    """
    step = groups[0][0].step
    tilted, moments, first_float, points = _window_plan(groups, tail_budget, tilt)
    tilted_groups = [(law, count) for (law, _), count in tilted]
    log_scale = sum(count * log_norm for (_, log_norm), count in tilted)
    log_finite = sum(count * np.log1p(-min(pld.infinity_mass, 1.0)) for pld, count in groups)
    if not points <= max_size:  # NaN or inf too: a window no grid of this spacing holds
        raise GridTooLarge(
            f"value_discretization={step:g} needs a grid of {points:.3g} points (at most "
            f"{max_size:.0f} allowed); use a coarser value_discretization or a looser tolerance",
            points, max_size,
        )
    first = int(first_float)
    size = _scipy.fft.next_fast_len(int(points), real=True)
    if admit is not None:
        admit(size, len(groups), extended)
    total_shift = 0
    # Floating-point error of the composed masses (summed over the window, so it bounds the
    # error of any hockey-stick value): an FFT output carries at most ~log2(N) u sum|p|
    # (Higham 2002, Sec. 24.1), raising it to the power T multiplies that error by about
    # T |z|^(T-1). Kept per frequency as the envelope log(prod_g a_g^T_g) and the relative
    # error sum_g T_g e_g / a_g with a_g = |z_g| + e_g.
    unit = np.finfo(float).eps
    # the per-step transforms and their powers in 80-bit extended precision, where available
    wide = np.longdouble if extended else np.float64
    wide_unit = float(np.finfo(wide).eps)
    levels = np.log2(size) + 2.0
    log_envelope = 0.0
    transforms = []
    for (pld, count), (mean, _) in zip(tilted_groups, moments, strict=True):
        shift = int(round(mean / step))
        total_shift += count * shift
        positions = np.mod(pld.indices - shift, size)
        placed = np.bincount(positions, weights=pld.masses, minlength=size)
        transform = _scipy.fft.rfft(placed.astype(wide, copy=False))
        error = 4.0 * levels * wide_unit * pld.masses.sum()
        if extended:
            # the envelope is a bound: |z| in double (extended moduli and logarithms are
            # dearer), rounded up past the cast's and the modulus's rounding
            magnitude = np.abs(transform.astype(complex)) * (1.0 + 4.0 * unit)
        else:
            magnitude = np.abs(transform)
        log_envelope = log_envelope + count * np.log(magnitude + error)
        transforms.append((transform, error, count))
    # Frequencies whose envelope is below e^-700 are left at zero (their whole size counts as
    # error below); a smooth composed law leaves only a few hundred of them non-zero, and only
    # those are raised to their powers.
    live = np.flatnonzero(log_envelope > -700.0)
    dead = log_envelope.size - live.size
    # The composed law must start at index `first`: that circular shift is the phase
    # 2 pi k roll / N, taken exactly in integers before the one rounding to a float.
    roll = first - total_shift
    phase = (2.0 * np.pi / size) * np.mod(live * (roll % size), size).astype(wide)
    log_magnitude = np.zeros(live.size, dtype=wide)
    # z^T is taken in polar form, exp(T log|z|) e^(i T arg z): its own relative error is about
    # T u (|log|z|| + 1 + pi); the error e of z itself contributes T e / a with a = |z| + e; the
    # shift's phase and the final sums of logs and of phases add a few u
    relative = np.full(live.size, 8.0 * unit)
    for transform, error, count in transforms:
        z = transform[live]
        magnitude = np.abs(z)
        with np.errstate(divide="ignore"):
            log_z = np.log(magnitude)
        relative += count * (
            error / (magnitude + error)
            + wide_unit * (np.abs(np.maximum(log_z, -750.0)) + 2.0 + np.pi)
        ).astype(float)
        log_magnitude += count * log_z
        phase += np.mod(count * np.angle(z), 2.0 * np.pi)
    spectrum = np.zeros(log_envelope.size, dtype=complex)
    # rounded to double once, at the end: a relative u, counted in `relative`'s start
    spectrum[live] = np.exp(log_magnitude) * (np.cos(phase) + 1j * np.sin(phase))
    envelope = np.exp(log_envelope[live])
    # Sum over the window of the masses' absolute errors. With m = IDFT(W) / N, Cauchy-Schwarz
    # and Parseval give ||dm||_1 <= sqrt(N) ||dm||_2 = ||dW||_2; the inverse FFT's own error is
    # normwise, at most ~log2(N) u ||W||_2 / sqrt(N) in l2 (Higham 2002, Thm 24.2), so at most
    # ~log2(N) u ||W||_2 in l1. (Summing the per-frequency bounds instead - an l1 bound - is
    # sqrt(number of live frequencies) times looser.) The half spectrum counts twice; each dead
    # frequency's whole value, below e^-700, adds at most sqrt(2 dead) e^-700 in l2.
    weights = np.where((live == 0) | (2 * live == size), 1.0, 2.0)
    dead_part = math.sqrt(2.0 * dead) * math.exp(-700.0)
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite bound certifies nothing
        rounding = float(
            np.sqrt(np.sum(weights * (envelope * relative) ** 2)) + dead_part
            + 8.0 * levels * unit * (np.sqrt(np.sum(weights * envelope**2)) + dead_part)
        )
    if not rounding <= math.inf:
        rounding = math.inf
    masses = _scipy.fft.irfft(spectrum, n=size)
    return TiltedLaw(
        step, first, masses, tilt, log_scale, rounding + 4.0 * tail_budget,
        float(-np.expm1(log_finite)),
    )


def compose_plds(
    groups, tail_budget: float, clip_negative: bool, tilt: float = 0.0, extended: bool = False,
    max_size: float = MAX_GRID_SIZE, admit=None,
) -> ComposedPld:
    """:func:`compose_tilted` with the tilt undone: the composed law under ``P`` itself.

    Grid points below the loss where the allowance reaches 1 are dropped (nothing can be
    certified there). ``clip_negative`` sets the FFT's round-off negatives to zero (for an upper
    bound: it only adds mass).
    """
    law = compose_tilted(groups, tail_budget, tilt, extended, max_size, admit)
    return untilted(law, clip_negative)


def untilted(law: TiltedLaw, clip_negative: bool) -> ComposedPld:
    """The law under ``P`` of a composed :class:`TiltedLaw`, its error an allowance (see
    :func:`compose_plds`)."""
    tilt = law.tilt
    step, first, masses = law.step, law.first_index, law.masses
    with np.errstate(divide="ignore"):  # no error (pointwise bounds): no allowance
        log_allowance = float(np.log(law.error) + law.log_scale)
    if tilt > 0:
        # in floats first: the allowance may be infinite (nothing is certified then)
        start_float = np.ceil(min(log_allowance / (tilt * step), 1e18)) - first
        start = int(min(max(start_float, 0.0), masses.size - 1.0))
        masses = masses[start:]
        first += start
    losses = (first + np.arange(masses.size)) * step
    with np.errstate(over="ignore"):
        masses = masses * np.exp(law.log_scale - tilt * losses)
    # no atom holds more than all the mass (far below the tilt, a bound may say more)
    np.minimum(masses, 1.0, out=masses)
    if clip_negative:
        np.maximum(masses, 0.0, out=masses)
    return ComposedPld(step, first, masses, law.infinity_mass, tilt, log_allowance)


class ThresholdBound:
    """Lower bounds from the composed ``P`` and ``Q`` laws of a merged-cell discretisation.

    For every threshold ``s`` on the grid, ``P(S >= s) - exp(eps) Q(S >= s) <= delta(eps)``
    (data processing: the summed grid index is a post-processing of the composed outputs). Each
    law's error bound is taken against the bound (``P`` tails lowered, ``Q`` tails raised), and
    the tails are kept as logarithms: ``Q`` tails far below the smallest float are common at
    large ``epsilon``, and a ``Q`` tail rounded to zero would certify an infinite epsilon.
    """

    def __init__(self, p_law: TiltedLaw, q_law: TiltedLaw):
        first = max(p_law.first_index, q_law.first_index)
        stop = max(p_law.first_index + p_law.masses.size, q_law.first_index + q_law.masses.size)
        self.log_p = p_law.log_tails(first, stop - first, -1.0)
        self.log_q = q_law.log_tails(first, stop - first, +1.0)
        if q_law.infinity_mass > 0:  # Q-mass at +inf lies above every threshold
            self.log_q = np.logaddexp(self.log_q, math.log(q_law.infinity_mass))

    def delta_lower(self, epsilon: float) -> float:
        """Largest threshold difference ``P(S >= s) - e^eps Q(S >= s)`` (at least 0)."""
        live = np.isfinite(self.log_p)
        if not live.any():
            return 0.0
        log_p = self.log_p[live]
        gap = np.minimum(epsilon + self.log_q[live] - log_p, 0.0)
        best = float(np.max(np.exp(log_p) * -np.expm1(gap)))
        return best if best > 0 else 0.0  # never -0.0 (from -expm1(0))

    def epsilon_lower(self, delta: float) -> float:
        """Largest ``eps`` with some threshold difference ``>= delta`` (``-inf`` if none)."""
        fits = self.log_p > math.log(delta)
        if not fits.any():
            return -np.inf
        log_p = self.log_p[fits]
        log_excess = log_p + np.log1p(-np.exp(math.log(delta) - log_p))
        return float(np.max(log_excess - self.log_q[fits]))
