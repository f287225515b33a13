"""Composition of many steps by repeated squaring on grids that coarsen as the law spreads.

One FFT over the whole composed law (:func:`accounting.pld.composition.compose_tilted`) needs a
grid whose spacing resolves one step's loss and whose length covers ``T`` steps' spread: its
length grows like ``sqrt(T)``. Here the ``T``-fold law is built by binary powering,
``A_(j+1) = A_j * A_j`` and an accumulator over the bits of ``T`` (each product an exact linear
convolution by a zero-padded FFT), and after each product the grid is coarsened by a power of
two once the law holds more than ``points`` atoms. The law of ``2^j`` steps spreads like
``2^(j/2)``, so the grids stay about ``points`` long: the cost is ``O(points log(points) log T)``.

Every law is carried as computed tilted masses ``m`` (Gopi, Lee, Wutschitz 2021 tilt the
composition for accuracy in the tails; here the tilt ``lam`` is fixed for all levels, as tilting
commutes with convolution) beside a bound ``E`` on ``||m - B||_1``, where ``B`` is the exact
law of that kind (the same operations without rounding). The convolutions and regridding maps
are linear with non-negative coefficients, so ``E`` propagates by Young's inequality
(``||a * b||_1 <= ||a||_1 ||b||_1``) and by each map's largest column sum; each FFT's rounding
enters through its 2-norm bound (Higham 2002, Thm 24.2) times ``sqrt(length)``. A pointwise
allowance (the 2-norm bound added to every mass) would instead double with every squaring and
grow with every coarsening, and swamp a bracket of ``1e-4`` of epsilon after twenty levels.
``E`` counts in full in every tail sum, in the direction of the bound. Three kinds of law are
composed:

* ``"upper"``: the law under ``P`` of a dominating (connect-the-dots) discretisation. Regridding
  splits each atom between the two coarse points around it keeping its ``P`` and ``Q`` mass
  (Doroshenko et al. 2022, "Connect the dots"): the original law is a merge of the split one,
  a post-processing, so the split law dominates it, composed or not. The lowest atoms move up
  onto the first kept point (raising a loss never lowers a hockey-stick divergence).
* ``"lower"`` (with ``"lower_q"``): the laws under ``P`` and ``Q`` of a post-processed output
  (the summed merged-cell index, see :func:`accounting.pld.privacy_loss.dominated_pmf`).
  Regridding is a randomised rounding of the index (``r / f`` of an atom ``r`` fine steps above
  a coarse point goes up), the same Markov kernel for ``P`` and ``Q``, so threshold
  differences ``P(S >= s) - e^eps Q(S >= s)`` of the result bound the composed pair's
  ``delta(eps)`` from below. ``P`` masses are bounded from below (tails dropped: a restriction
  to an event), ``Q`` masses from above (lowest atoms moved up).

Upper tails of the upper and ``Q`` laws are cut where a Chernoff bound, from moment generating
function bounds carried along analytically (the FFTs' rounding noise sits on every computed
mass, so computed tails never look small), leaves at most ``_TAIL`` of the tilted mass; the cut
weight is kept as ``error`` and counted in full in every tail (a part of tilted weight ``w``
lying above ``s`` has true mass at most ``w exp(log_scale - tilt s)`` there).

Coarsening costs accuracy, not validity: a split adds a variance of at most ``(f h)^2 / 4`` to
its atom, about ``(window / points)^2`` relative to the law's variance, and that share adds up
over the ``log2 T`` levels. Callers size ``points`` to their tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accounting import _scipy
from accounting._tuning import LEVELS_STEP_FACTOR, LEVELS_WIDTH_FACTOR
from accounting.pld.composition import (
    TiltedLaw,
    _log_mgf,
    _weighted_moments,
    compose_tilted,
    mgf_blocks,
)
from accounting.pld.privacy_loss import DiscretePld, GridTooLarge

__all__ = [
    "LevelsTooCostly",
    "compose_levels",
    "first_levels_step",
    "levels_cheaper",
    "levels_plan",
    "steps_per_spread",
]

_U = float(np.finfo(float).eps)
#: Tilted mass (of a normalised law) cut at each end after a product, by a Chernoff bound.
_TAIL = 1e-24
#: Offsets from the tilt of the arguments at which each law's moment generating function is
#: bounded (both signs: upper and lower tails).
_OFFSETS = np.concatenate([-np.geomspace(1e5, 1e-4, 37), np.geomspace(1e-4, 1e5, 37)])
#: One FFT over the whole composed law up to this many points is kept (it is exact to its
#: grid and its error analysis is the tighter one); squaring only takes over beyond.
_SINGLE_FFT_PREFERRED = 1 << 17
#: From this many composed steps on, an automatic grid may compose by squaring (and its first
#: guess is sized for it); below, one FFT.
_FIRST_GUESS_STEPS = 1 << 17
#: A law wider than this many times ``points`` atoms after its cut (tails too heavy for
#: the cut to keep the grid short) stops the squaring.
_WIDEST = 12
#: Coarsest grid step, over a level's standard deviation, to which a law too wide for its
#: ``points`` may be coarsened before the squaring gives up on it (heavy tails at small sample
#: rates: the law of a few steps is a spike at zero and a long, thin tail).
_COARSEST = 0.5
#: Most grid steps per standard deviation the squaring keeps (longer grids cost more than one FFT).
_MAX_PER_SPREAD = 4096.0
#: Share of the target the first grids aim at: a bracket a little wider than the target costs a
#: second composition, one a little narrower only a slightly longer first one.
_AIM = 0.7
#: Finest relative bracket the grids are sized for: tighter targets (an absolute tolerance next
#: to a huge epsilon) get the grids of this one, the best the work budget allows anyway.
_FINEST_RELATIVE = 1e-5
#: The leading bits of a step count are composed by one FFT power up to a window this many
#: times the per-step law's (or a level's) length.
_LEADING_WINDOW = 4
#: Products with a factor of at most this many atoms are summed directly (no FFT).
_DIRECT_TERMS = 24
#: A product in extended precision is taken in double instead where double's rounding bound
#: is at most this share of the error its factors carry in (so the final error bound grows by
#: about this share at most): once the leading power's error has doubled a few times, the
#: later squarings need no extended transforms.
_DOUBLE_SHARE = 0.05
#: Most atoms a level's product may have: a longer product refuses (bounded memory).
_MAX_PRODUCT = 1 << 22


class LevelsTooCostly(GridTooLarge):
    """The squaring would need a product longer than allowed (a law too wide for its grid), or
    a law lost its mass to rounding."""


@dataclass
class _Law:
    """Tilted masses ``masses[i]`` at loss ``(first + i) * step``: the law's mass there is
    ``masses[i] * exp(log_scale - tilt * loss)``. ``error`` bounds the tilted weight (in the
    units of ``masses``) of the parts of the law no longer on the grid, its upper tails, plus
    the 1-norm of the rounding error of ``masses``: it counts in full in every tail sum (see
    :class:`accounting.pld.composition.TiltedLaw`)."""

    step: float
    first: int
    masses: np.ndarray
    log_scale: float
    tilt: float
    error: float = 0.0
    #: Upper bounds on ``log sum_k D_k exp(s l_k)`` at ``s = tilt + _OFFSETS`` for the law ``D``
    #: the masses bound (its finite part), carried analytically: the tails are cut by them.
    log_mgf: np.ndarray | None = None

    @property
    def last(self) -> int:
        return self.first + self.masses.size - 1


def _tilted(pld: DiscretePld, masses: np.ndarray, tilt: float, kind: str) -> _Law:
    """A per-step law's masses tilted by ``tilt`` and normalised, as a bound of ``kind``."""
    keep = masses > 0
    log_weights = np.full(masses.size, -np.inf)
    log_weights[keep] = np.log(masses[keep]) + tilt * pld.losses[keep]
    top = float(log_weights.max()) if keep.any() else 0.0
    weights = np.exp(log_weights - top)
    total = float(weights.sum())
    if not total > 0:
        raise LevelsTooCostly("a per-step law without mass cannot be composed", math.inf, 0)
    # sum m e^((tilt + o) l) = e^top sum w e^(o l): chord bounds over blocks of the tilted law
    # (Hoeffding's lemma) lose o^2 (b - a)^2 / 8 per step, small at the offsets the cuts use,
    # where bounds of the untilted law would lose (tilt + o)^2 (b - a)^2 / 8, times T
    tilted = DiscretePld(pld.step, pld.first_index, weights)
    spread = math.sqrt(max(_weighted_moments(pld.losses, weights)[1], 0.0))
    log_mgf = top + _log_mgf(tilted, _OFFSETS, blocks=mgf_blocks(tilted, spread))
    # the weights' rounding: relative, growing with the exponent's size
    exponent = float(np.max(np.abs(tilt * pld.losses[keep]))) if keep.any() else 0.0
    allowance = 16.0 * _U * (1.0 + exponent)
    # the division's rounding, relative per mass: at most 8u of the (unit) total
    return _Law(pld.step, pld.first_index, weights / total, top + math.log(total), tilt,
                8.0 * _U, log_mgf + allowance)


def _convolve(a: _Law, b: _Law, kind: str, wide: bool) -> _Law:
    """The exact linear convolution's pointwise bound (``a is b``: a square)."""
    size_out = a.masses.size + b.masses.size - 1
    if size_out > _MAX_PRODUCT:
        raise LevelsTooCostly(f"a product of {size_out} atoms (at most {_MAX_PRODUCT})",
                              size_out, _MAX_PRODUCT)
    a1, b1 = float(a.masses.sum()), float(b.masses.sum())
    short = min(a.masses.size, b.masses.size)
    if short <= _DIRECT_TERMS:
        # a direct sum of at most `short` products per entry: each within (short + 1) u of it
        # relative (Higham 2002, Sec. 3.1), the terms being non-negative
        masses = np.convolve(a.masses, b.masses)
        rounding = 2.0 * (short + 2) * _U * a1 * b1
    else:
        size = _scipy.fft.next_fast_len(size_out, real=True)
        # ||c^ - c||_inf <= ||c^ - c||_2 <= 4 eta (|a|_1 |b|_2 + |a|_2 |b|_1) for non-negative
        # a, b with eta = c log2(n) u the normwise error of one transform (Higham 2002, Thm
        # 24.2: both forward transforms, the product and the inverse transform), plus the
        # rounding to double
        a2 = math.sqrt(float(a.masses @ a.masses))
        b2 = a2 if b is a else math.sqrt(float(b.masses @ b.masses))
        norms = 4.0 * 8.0 * (math.log2(size) + 2.0) * (a1 * b2 + a2 * b1) * (1.0 + 1e-6)
        # extended transforms only where double's rounding would add more than a small share
        # to the error the factors carry in (it doubles with every later squaring alike)
        carried_in = a.error * b1 + b.error * a1
        if wide and math.sqrt(size_out) * norms * _U <= _DOUBLE_SHARE * carried_in:
            wide = False
        dtype = np.longdouble if wide else np.float64
        unit = float(np.finfo(dtype).eps)
        fa = _scipy.fft.rfft(a.masses.astype(dtype), size)
        fb = fa if b is a else _scipy.fft.rfft(b.masses.astype(dtype), size)
        product = _scipy.fft.irfft(fa * fb, size)[:size_out].astype(float)
        error = norms * unit
        # in the 1-norm over the kept outputs: at most sqrt(size_out) times that; clipping at
        # zero only moves a mass towards the exact (non-negative) one; then the rounding to
        # double, relative per mass
        masses = np.maximum(product, 0.0)
        rounding = math.sqrt(size_out) * error + 2.0 * _U * float(masses.sum())
    # ||a^ * b^ - a * b||_1 <= E_a |b^|_1 + |a|_1 E_b with |a|_1 <= |a^|_1 + E_a: an error
    # (or a part off the grid) of one factor meets all of the other
    carried = (a.error * b1 + b.error * a1 + 2.0 * a.error * b.error) * (1.0 + 8.0 * _U)
    law = _Law(a.step, a.first + b.first, masses, a.log_scale + b.log_scale, a.tilt,
               carried + rounding, a.log_mgf + b.log_mgf)
    return _normalised(law, kind)


def _normalised(law: _Law, kind: str) -> _Law:
    total = float(law.masses.sum())
    if not total > 0:
        raise LevelsTooCostly("a composed law lost all its mass to rounding", math.inf, 0)
    law.masses = law.masses / total
    law.error = law.error / total * (1.0 + 4.0 * _U) + 2.0 * _U
    law.log_scale += math.log(total)
    return law


def _trim(law: _Law, kind: str) -> _Law:
    """Cut the tails where Chernoff bounds from :attr:`_Law.log_mgf` leave at most ``_TAIL`` of
    the normalised tilted mass, on the safe side for ``kind``: ``"lower"`` drops them; the
    others move the lower tail up onto the first kept point (its tilted weight bounded at that
    point) and the upper tail to ``+inf`` (its ``P``-mass bounded).

    The computed masses carry the FFTs' rounding noise everywhere, so their own tails never
    look small: the cut is placed, and the moved mass bounded, from the law they bound.
    """
    masses, h, tilt = law.masses, law.step, law.tilt
    if masses.size < 3:
        return law
    log_budget = math.log(_TAIL) + law.log_scale
    up, down = _OFFSETS > 0, _OFFSETS < 0
    with np.errstate(invalid="ignore"):
        # tilted mass above x: sum D e^(tilt l) [l >= x] <= exp(F(tilt + t) - t x), t > 0
        high = float(np.min((law.log_mgf[up] - log_budget) / _OFFSETS[up]))
        # weight moved up to y: sum D e^(tilt y) [l < y] <= exp(F(tilt - p) + p y), p > 0
        low = float(np.max((log_budget - law.log_mgf[down]) / -_OFFSETS[down]))
    lo = int(min(max(math.floor(low / h) - law.first, 0), masses.size - 1)) if low == low else 0
    hi = int(min(max(math.ceil(high / h) - law.first, lo), masses.size - 1)) \
        if high == high else masses.size - 1
    kept = masses[lo:hi + 1].copy()
    if kind != "lower":
        if lo > 0:
            y = (law.first + lo) * h
            log_moved = float(np.min(law.log_mgf[down] - _OFFSETS[down] * y))
            kept[0] += math.exp(min(log_moved - law.log_scale, 700.0)) * (1.0 + 8.0 * _U)
            # the moved P-mass (at most exp(F(s) - s y), s < 0) now sits at y
            arguments = tilt + _OFFSETS
            negative = arguments < 0
            if negative.any():
                log_mass = float(np.min(law.log_mgf[negative] - arguments[negative] * y))
                law.log_mgf = np.where(arguments > 0,
                                       np.logaddexp(law.log_mgf, log_mass + arguments * y),
                                       law.log_mgf)
            else:  # no bound on the moved P-mass: count it as all of it
                law.log_mgf = np.where(arguments > 0,
                                       np.logaddexp(law.log_mgf, arguments * y), law.log_mgf)
        if hi < masses.size - 1:
            # its tilted weight: at most exp(F(tilt + t) - t x) for any t > 0
            x = (law.first + hi + 1) * h
            log_cut = float(np.min(law.log_mgf[up] - _OFFSETS[up] * x)) - law.log_scale
            law.error += math.exp(min(log_cut, 0.0)) * (1.0 + 8.0 * _U)
    law.first += lo
    law.masses = kept
    return law


def _regrid(law: _Law, factor: int, kind: str) -> _Law:
    """The law on a grid ``factor`` times coarser (``factor`` a power of two): each atom
    ``r`` fine steps above a coarse point ``a`` is split between ``a`` and ``a + f h``.

    ``"upper"``: the connect-the-dots split, ``(1 - e^(-r h)) / (1 - e^(-f h))`` of its
    ``P``-mass up, keeping its ``P`` and ``Q`` mass (so the result dominates the law).
    ``"lower"``/``"lower_q"``: a randomised rounding of the index, ``r / f`` of it up, the same
    Markov kernel for ``P`` and ``Q`` (a post-processing, so the result is dominated).
    Either way an atom's ``E[exp(s l)]`` grows by a factor ``g(s)``, the largest over ``r`` of
    ``(1 - w_r) e^(-s r h) + w_r e^(s (f - r) h)``, second order in ``f h``; the law's bounds
    :attr:`_Law.log_mgf` take it.
    """
    if factor == 1:
        return law
    h, tilt = law.step, law.tilt
    coarse_step = h * factor
    shares = np.arange(factor, dtype=float)
    if kind == "upper":
        up_share = np.expm1(-shares * h) / math.expm1(-coarse_step)
    else:
        up_share = shares / factor
    # the atoms as rows of ``factor`` fine points, one coarse cell each (zero-padded at both
    # ends): each coarse point takes a row times the low shares and the row below times the
    # high ones, with tilted weights scaled by exp(tilt * (position change))
    size = law.masses.size
    offset = law.first % factor
    first = (law.first - offset) // factor
    rows = -(-(offset + size) // factor)
    padded = np.zeros(rows * factor)
    padded[offset:offset + size] = law.masses
    cells = padded.reshape(rows, factor)
    masses = np.zeros(rows + 1)
    masses[:-1] = cells @ ((1.0 - up_share) * np.exp(-tilt * shares * h))
    masses[1:] += cells @ (up_share * np.exp(tilt * (factor - shares) * h))
    if masses[-1] == 0.0:
        masses = masses[:-1]
    arguments = (tilt + _OFFSETS)[:, None]
    with np.errstate(divide="ignore"):
        growth = np.logaddexp(np.log1p(-up_share)[None, :] - arguments * shares * h,
                              np.log(up_share)[None, :] + arguments * (factor - shares) * h)
    growth = growth.max(axis=1) + 8.0 * _U
    # the part off the grid is split alike: its tilted weight grows by g(tilt) at most
    with np.errstate(divide="ignore"):
        at_tilt = float(np.max(np.logaddexp(np.log1p(-up_share) - tilt * shares * h,
                                            np.log(up_share) + tilt * (factor - shares) * h)))
    # the map's largest column sum is exp(at_tilt); the computed shares, tilt factors and sums
    # of up to 2 factor terms are within (2 factor + 16) u of the exact ones, relative
    rounding = (2.0 * factor + 16.0) * _U * float(masses.sum())
    law = _Law(coarse_step, first, masses, law.log_scale, tilt,
               law.error * math.exp(at_tilt + 8.0 * _U) + rounding, law.log_mgf + growth)
    return _normalised(law, kind)


def _spread(law: _Law) -> float:
    """Standard deviation of the (normalised) tilted law's loss."""
    masses = law.masses
    total = float(masses.sum())
    positions = np.arange(masses.size, dtype=float)
    mean = float(masses @ positions) / total
    return law.step * math.sqrt(max(float(masses @ (positions - mean) ** 2) / total, 0.0))


def _factor(laws: list[_Law], points: int) -> int:
    """Power-of-two coarsening of the grid shared by ``laws``: at least ``points / 32`` coarse
    steps per standard deviation of the narrowest law, fewer (down to ``1 / _COARSEST``) where
    a law would otherwise hold over ``_WIDEST * points`` atoms; a law still that long raises
    :class:`LevelsTooCostly`."""
    per_spread = points / 32.0
    spread = min(_spread(law) for law in laws)
    step = laws[0].step
    factor = 1
    while 2 * factor * step * per_spread <= spread:
        factor *= 2
    longest = max(law.masses.size for law in laws)
    # a law whose tails outlast the cut: a coarser grid (down to half its spread) before
    # giving up on the squaring; only the bracket's width pays, never its validity
    while longest > _WIDEST * points * factor and 2 * factor * step <= _COARSEST * spread:
        factor *= 2
    if longest > _WIDEST * points * factor:
        # the tails are not thinning out (a heavy-tailed loss): one FFT does better
        raise LevelsTooCostly(
            f"a composed law of {longest} atoms on a grid of {points} per level",
            longest, _WIDEST * points * factor,
        )
    return factor


def _product(left: list[_Law], right: list[_Law], kinds, points: int, wide: bool):
    """``left * right`` law by law, trimmed, then coarsened by one shared factor (the laws of
    a lower pair must go through the same post-processing)."""
    products = [
        _trim(_convolve(a, b, kind, wide), kind)
        for a, b, kind in zip(left, right, kinds, strict=True)
    ]
    factor = _factor(products, points)
    return [_regrid(law, factor, kind) for law, kind in zip(products, kinds, strict=True)]


def _aligned(left: list[_Law], right: list[_Law], kinds):
    """Both lists on the coarser of their grids (steps differ by a power of two)."""
    ratio = left[0].step / right[0].step
    if ratio < 1.0:
        factor = int(round(1.0 / ratio))
        left = [_regrid(law, factor, kind) for law, kind in zip(left, kinds, strict=True)]
    elif ratio > 1.0:
        factor = int(round(ratio))
        right = [_regrid(law, factor, kind) for law, kind in zip(right, kinds, strict=True)]
    return left, right


def _power(bases: list[_Law], count: int, kinds, points: int, wide: bool,
           plds: list[DiscretePld] | None = None) -> list[_Law]:
    """``count``-fold composition of each base by left-to-right binary powering: square, and
    where the bit is set, add one step (on the current grid: a few atoms once the grid is
    coarse, so that product is a direct sum).

    With ``plds`` (the bases' per-step laws), the leading bits of ``count`` are composed by one
    FFT power (:func:`_leading_power`) where its window is short: the first squarings run on
    the per-step grid, whose law is long (its loss tails span hundreds of standard deviations)
    until the Chernoff cuts shorten it, and one transform replaces them."""
    bits = bin(int(count))[3:]
    start = [_copy(law) for law in bases]
    if plds is not None:
        start, bits = _leading_power(bases, plds, int(count), kinds, points, wide)
    factor = _factor(bases, points)
    bases = [_regrid(law, factor, kind) for law, kind in zip(bases, kinds, strict=True)]
    regridded = {bases[0].step: bases}
    result = _product_regrid(start, kinds, points)
    for bit in bits:
        result = _product(result, result, kinds, points, wide)
        if bit == "1":
            step = result[0].step
            if step not in regridded:
                # from the coarsest grid so far: small factors (the bound g(s) is taken over
                # every offset of the factor)
                coarsest = max(regridded)
                ratio = int(round(step / coarsest))
                regridded[step] = [_regrid(law, ratio, kind)
                                   for law, kind in zip(regridded[coarsest], kinds, strict=True)]
            one = regridded[step]
            result = _product(result, [_copy(law) for law in one], kinds, points, wide)
    return result


def _product_regrid(laws: list[_Law], kinds, points: int) -> list[_Law]:
    """``laws`` coarsened by the one factor :func:`_factor` gives them."""
    factor = _factor(laws, points)
    return [_regrid(law, factor, kind) for law, kind in zip(laws, kinds, strict=True)]


def _leading_power(bases: list[_Law], plds: list[DiscretePld], count: int, kinds, points: int,
                   wide: bool) -> tuple[list[_Law], str]:
    """The ``m``-fold laws, ``m`` the leading bits of ``count``, by one FFT power each
    (:func:`accounting.pld.composition.compose_tilted`, whose error bound is a 1-norm bound
    too), and the bits of ``count`` left to square in. ``m`` is the largest whose window is at
    most ``_LEADING_WINDOW`` times the longer of the per-step law and ``points``; ``m = 1``
    (the bases themselves) where none is longer than one step."""
    bits = bin(count)[2:]
    limit = _LEADING_WINDOW * max(max(law.masses.size for law in bases), points)
    leadings = np.array([int(bits[:used], 2) for used in range(2, len(bits) + 1)], dtype=float)
    fits = np.ones(leadings.size, dtype=bool)
    for law in bases:
        fits &= _chernoff_span(law, leadings) <= limit * law.step
    chosen = int(np.count_nonzero(np.cumprod(fits))) + 1  # the spans grow with the count
    if chosen == 1:
        return [_copy(law) for law in bases], bits[1:]
    leading = int(bits[:chosen], 2)
    laws = []
    for pld, law, kind in zip(plds, bases, kinds, strict=True):
        try:
            composed = compose_tilted([(pld, leading)], _TAIL, tilt=law.tilt, extended=wide,
                                      max_size=_MAX_PRODUCT)
        except GridTooLarge:  # its own window is longer than the estimate: square instead
            return [_copy(law) for law in bases], bits[1:]
        # clipping at zero only moves a mass towards the exact (non-negative) one
        masses = np.maximum(composed.masses, 0.0)
        log_mgf = leading * law.log_mgf
        log_mgf = log_mgf + 4.0 * _U * np.abs(log_mgf)
        laws.append(_normalised(_Law(law.step, composed.first_index, masses,
                                     composed.log_scale, law.tilt, composed.error, log_mgf),
                                kind))
    return laws, bits[chosen:]


def _chernoff_span(law: _Law, counts: np.ndarray) -> np.ndarray:
    """Span of losses outside which Chernoff bounds (from the per-step bounds
    :attr:`_Law.log_mgf`) leave at most ``_TAIL`` of the normalised tilted mass of the
    ``counts``-fold law, for each count: an estimate of the window one FFT would compose."""
    relative = (law.log_mgf - law.log_scale)[None, :] * counts[:, None]
    up, down = _OFFSETS > 0, _OFFSETS < 0
    log_tail = math.log(_TAIL)
    with np.errstate(invalid="ignore", over="ignore"):
        high = np.min((relative[:, up] - log_tail) / _OFFSETS[up], axis=1)
        low = np.max((log_tail - relative[:, down]) / -_OFFSETS[down], axis=1)
    span = high - low
    return np.where(np.isfinite(span), span, np.inf)


def _copy(law: _Law) -> _Law:
    return _Law(law.step, law.first, law.masses.copy(), law.log_scale, law.tilt, law.error,
                law.log_mgf.copy())


def _combine(groups_of_laws: list[list[_Law]], kinds, points: int, wide: bool) -> list[_Law]:
    result = groups_of_laws[0]
    for laws in groups_of_laws[1:]:
        result, laws = _aligned(result, laws, kinds)
        result = _product(result, laws, kinds, points, wide)
    return result


def steps_per_spread(relative_accuracy: float, steps: int) -> float:
    """Grid steps per standard deviation of the composed law that keep the regridding's share
    of the epsilon bracket near ``_AIM * relative_accuracy / 2`` for ``steps`` composed steps.

    The bracket widens like ``levels / K^2`` with ``levels = log2(steps)`` the number of
    regriddings and ``K`` the steps per standard deviation; the constant is
    :data:`accounting._tuning.LEVELS_WIDTH_FACTOR`.
    """
    levels = max(float(int(steps).bit_length()), 1.0)
    share = _AIM * max(float(relative_accuracy), _FINEST_RELATIVE) / 2.0
    per_spread = math.sqrt(LEVELS_WIDTH_FACTOR * levels / share)
    return float(min(max(per_spread, 32.0), _MAX_PER_SPREAD))


def levels_plan(groups, single_points, relative_accuracy: float | None):
    """``(points, work)`` for :func:`compose_levels` where it is the cheaper way to compose
    ``groups`` than one FFT of ``single_points()`` points (asked for only then), else
    ``None``.

    The grids keep :func:`steps_per_spread` steps per standard deviation of each level's law
    (the given grid sets the per-step law's resolution). ``relative_accuracy`` ``None`` (a
    grid set by the user): never.
    """
    total = sum(int(count) for _, count in groups)
    if relative_accuracy is None or total < _FIRST_GUESS_STEPS:
        return None
    # a target beyond the densest grids still composes on them (the bracket is the best
    # the squaring gives)
    per_spread = steps_per_spread(relative_accuracy, total)
    points, work = _levels_size(per_spread, [count for _, count in groups])
    if not levels_cheaper(work, points, single_points(), len(groups)):
        return None
    return points, work


def _levels_size(per_spread: float, counts) -> tuple[int, float]:
    """Atoms per level and work units (one transform of a product's length per product: small
    transforms are cheap per point next to the long ones the accountant's budget counts)."""
    points = 1 << math.ceil(math.log2(32.0 * per_spread))
    products = 2.0 * sum(int(count).bit_length() for count in counts) + len(counts)
    return points, products * 2.0 * points


def levels_cheaper(work: float, points: int, single_points: float, groups: int = 1) -> bool:
    """Whether squaring (``work`` units on ``points``-atom grids) beats one FFT of
    ``single_points`` points for ``groups`` step kinds (``True`` where no single grid fits,
    ``False`` below ``_SINGLE_FFT_PREFERRED`` points)."""
    if not single_points < math.inf:  # NaN too
        return True
    if single_points < _SINGLE_FFT_PREFERRED:
        return False
    levels_cost = work * (math.log2(2.0 * points) + 1.0)
    single_cost = single_points * (math.log2(max(single_points, 2.0)) + 1.0) * (groups + 1)
    return single_cost > 2.0 * levels_cost


def first_levels_step(spread: float, steps: int, relative_accuracy: float) -> float | None:
    """A first grid spacing for composing ``steps`` steps of loss spread ``spread`` by
    squaring, or ``None`` below ``_FIRST_GUESS_STEPS`` steps (where one FFT usually is the
    cheaper).

    The per-step grid's spacing ``h`` widens the bracket by about ``k (h / spread)^2`` of
    epsilon whatever the number of steps (``k`` is
    :data:`accounting._tuning.LEVELS_STEP_FACTOR`); it gets half of ``_AIM *
    relative_accuracy``, the regridding (:func:`steps_per_spread`) the other half.
    """
    if steps < _FIRST_GUESS_STEPS:
        return None
    share = _AIM * max(float(relative_accuracy), _FINEST_RELATIVE) / 2.0
    return spread * math.sqrt(share / LEVELS_STEP_FACTOR)


def compose_levels(groups, tilt: float, kind: str, points: int, wide: bool = False,
                   q_groups=None) -> TiltedLaw | tuple[TiltedLaw, TiltedLaw]:
    """Compose ``groups = [(DiscretePld, count), ...]`` by squaring on coarsening grids.

    Parameters
    ----------
    groups : list of (DiscretePld, int)
        Per-step laws under ``P`` on one grid and their counts: connect-the-dots
        discretisations for ``kind="upper"``, merged-cell ones for ``kind="lower"``.
    tilt : float
        Exponential tilt ``lam >= 0`` of the ``P`` laws (``Q`` laws take ``lam + 1``).
    kind : {"upper", "lower"}
        Which bounds (see the module docstring).
    points : int
        Atoms per level beyond which a law's grid is coarsened (see :func:`level_points`).
    wide : bool
        Transforms in ``longdouble`` (smaller rounding bounds, dearer).
    q_groups : list of (DiscretePld, int), optional
        For ``kind="lower"``: the ``Q`` masses of the same atoms.

    Returns
    -------
    TiltedLaw, or (TiltedLaw, TiltedLaw) for ``"lower"`` (``P`` then ``Q``)
        The masses are themselves certified pointwise bounds; ``error`` bounds the tilted
        weight of the upper tails cut on the way (``0`` for the ``P`` law of ``"lower"``, whose
        tails are dropped), counted in every tail as :class:`TiltedLaw` does. An upper law's
        ``infinity_mass`` is its mass at ``+inf`` from the per-step laws.
    """
    if kind == "upper":
        kinds = ("upper",)
        powers = []
        log_finite = 0.0
        for pld, count in groups:
            base = _tilted(pld, pld.masses, tilt, "upper")
            powers.append(_power([base], int(count), kinds, points, wide, [pld]))
            log_finite += count * math.log1p(-min(pld.infinity_mass, 1.0))
        (law,) = _combine(powers, kinds, points, wide)
        return TiltedLaw(law.step, law.first, law.masses, tilt, law.log_scale, law.error,
                         -math.expm1(log_finite))
    if kind != "lower" or q_groups is None:
        raise ValueError("kind must be 'upper', or 'lower' with q_groups")
    kinds = ("lower", "lower_q")
    powers = []
    for (pld, count), (q_pld, _) in zip(groups, q_groups, strict=True):
        bases = [_tilted(pld, pld.masses, tilt, "lower"),
                 _tilted(q_pld, q_pld.masses, tilt + 1.0, "lower_q")]
        powers.append(_power(bases, int(count), kinds, points, wide, [pld, q_pld]))
    p_law, q_law = _combine(powers, kinds, points, wide)
    return (
        TiltedLaw(p_law.step, p_law.first, p_law.masses, tilt, p_law.log_scale, p_law.error),
        TiltedLaw(q_law.step, q_law.first, q_law.masses, tilt + 1.0, q_law.log_scale,
                  q_law.error),
    )
