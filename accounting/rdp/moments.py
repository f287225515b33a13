"""The moments accountant of Abadi et al. 2016 ("Deep Learning with Differential Privacy").

Log moments of the Poisson-subsampled Gaussian by their exact binomial expansion, added over
steps and converted with the paper's tail bound (equal to the classic RDP conversion).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from accounting._caches import register_cache
from accounting._validation import (
    MAX_ORDER,
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_positive_int,
    check_sample_rate,
)
from accounting.rdp.accountant import OrderTotalsAccountant
from accounting.rdp.sampled_gaussian import log_a_minus_1_integer

__all__ = ["MAX_LAMBDA", "MomentsAccountant", "gaussian_log_moments"]

#: Largest ``max_lambda`` of :class:`MomentsAccountant`: it tracks every ``lambda = 1 ..
#: max_lambda``, each a binomial sum of ``lambda`` terms, so one composition costs about
#: ``max_lambda^2 / 2`` terms (about half a million at the limit).
MAX_LAMBDA = 1024


def _check_lambdas(lambdas) -> np.ndarray:
    """``lambdas`` as a float array after checking they are whole numbers in [1, MAX_ORDER-1]."""
    if isinstance(lambdas, (str, bytes, bool, np.bool_)) or lambdas is None:
        raise TypeError(f"lambdas must be whole numbers, got {lambdas!r}")
    raw = np.asarray(lambdas)
    if raw.dtype.kind not in "iuf" and raw.dtype != object:
        raise TypeError(f"lambdas must be whole numbers, got an array of dtype {raw.dtype}")
    try:
        lam = np.atleast_1d(raw.astype(float))
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"lambdas must be whole numbers, got {lambdas!r}") from error
    if (
        lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam))
        or np.any(lam < 1) or np.any(lam > MAX_ORDER - 1) or np.any(lam != np.floor(lam))
    ):
        raise ValueError(
            f"lambdas must be a non-empty 1-D sequence of whole numbers in [1, {MAX_ORDER - 1}] "
            f"(lambda + 1 is a Renyi order, at most MAX_ORDER), got {lambdas!r}"[:300]
        )
    return lam


def gaussian_log_moments(sample_rate: float, noise_multiplier: float, lambdas) -> np.ndarray:
    """Log moments ``alpha(lambda)`` of one Poisson-subsampled Gaussian step.

    ``alpha(lambda) = log E_{z ~ mu}[(mu(z) / mu0(z))^lambda] = log A_{lambda + 1}`` by the exact
    binomial expansion ``A_n = sum_k C(n,k) (1-q)^(n-k) q^k exp((k^2 - k) / (2 sigma^2))``
    (Abadi et al. 2016, "Deep Learning with Differential Privacy", Sec. 3.2 and Appendix B; the
    other direction of their maximum is never larger, Mironov, Talwar, Zhang 2019, Theorem 5).

    Parameters
    ----------
    sample_rate : float
        Poisson sampling probability in ``[0, 1]``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, ``> 0``.
    lambdas : array_like of int
        Moment orders, whole numbers in ``[1, MAX_ORDER - 1]`` (``lambda + 1`` is a Rényi
        order, at most ``MAX_ORDER = 1e6``).
    """
    sample_rate = check_sample_rate(sample_rate, scalar=True)
    noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
    lam = np.atleast_1d(_check_lambdas(lambdas))
    if sample_rate == 0.0:
        return np.zeros(lam.shape)
    n = lam + 1.0
    with np.errstate(all="ignore"):  # overflow to inf is the documented result
        if sample_rate == 1.0:
            return lam * (lam + 1.0) / (2.0 * noise_multiplier**2)
        log_a_minus_1 = log_a_minus_1_integer(
            np.full(n.shape, sample_rate), np.full(n.shape, noise_multiplier), n
        )
    return np.logaddexp(0.0, log_a_minus_1)


class MomentsAccountant(OrderTotalsAccountant):
    """The moments accountant of Abadi et al. 2016 ("Deep Learning with Differential Privacy").

    Tracks the log moments ``alpha(lambda)`` at ``lambda = 1 .. max_lambda`` (see
    :func:`gaussian_log_moments`), adds them over steps (their Theorem 2.1) and converts with the
    tail bound ``epsilon = min_lambda (sum alpha(lambda) + log(1/delta)) / lambda``, i.e.
    ``delta = min_lambda exp(sum alpha(lambda) - lambda epsilon)``. This equals the classic RDP
    conversion over orders ``lambda + 1``.

    With nothing spent (no step composed, only steps at sample rate 0, or every log moment 0
    in floating point, e.g. ``sigma = 1e300``) epsilon is 0 and delta is the total variation
    bound of what was composed (0 with nothing composed) rather than the tail bound's floor
    ``log(1/delta) / max_lambda``.

    Parameters
    ----------
    max_lambda : int
        Largest moment order tracked (32 in the paper's experiments), in
        ``[1, MAX_LAMBDA]`` (``MAX_LAMBDA = 1024``).
    """

    name = "moments"
    order_label = "lambda"

    @property
    def conversion_label(self) -> str:
        """The RDP-to-(epsilon, delta) conversion used."""
        return "tail bound"

    def __init__(self, max_lambda: int = 32):
        max_lambda = check_positive_int(max_lambda, "max_lambda", maximum=MAX_LAMBDA)
        super().__init__(np.arange(1, max_lambda + 1, dtype=float))
        self.max_lambda = max_lambda

    def _options(self) -> dict:
        return {"max_lambda": self.max_lambda}

    @property
    def lambdas(self) -> np.ndarray:
        """The moment orders tracked."""
        return self._orders.copy()

    @property
    def log_moments(self) -> np.ndarray:
        """Total log moment at each lambda."""
        return self._total

    def _per_step(self, sample_rate, noise_multiplier, index):
        return _cached_log_moments(sample_rate, noise_multiplier, self.max_lambda)[index]

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """Epsilon spent at ``delta`` and the ``lambda`` attaining it.

        ``(0.0, 1.0)`` when nothing is spent: every total log moment is 0 and ``delta`` is at
        least the total variation bound of what was composed (``(0, tv)``-DP).
        """
        delta = check_delta(delta)
        if self._non_private:
            return float("inf"), float(self._orders[0])
        total = self._total
        if not np.any(total) and delta >= self._tv_bound():
            return 0.0, float(self._orders[0])
        log_inverse_delta = -np.log(delta)
        candidates = (total + log_inverse_delta) / self._orders
        best = int(np.argmin(candidates))
        return float(candidates[best]), float(self._orders[best])

    def get_delta(self, epsilon: float) -> float:
        """Delta at ``epsilon`` by the tail bound (the total variation bound if nothing is spent).
        """
        epsilon = check_epsilon(epsilon)
        if self._non_private:
            return 1.0
        total = self._total
        if not np.any(total):  # delta(epsilon) <= delta(0) = total variation
            return self._tv_bound()
        log_deltas = total - self._orders * epsilon
        return float(np.exp(min(0.0, np.min(log_deltas))))  # clipped before exp: no overflow


@lru_cache(maxsize=4096)
def _cached_log_moments(sample_rate: float, noise_multiplier: float, max_lambda: int):
    moments = gaussian_log_moments(sample_rate, noise_multiplier, np.arange(1, max_lambda + 1))
    moments.setflags(write=False)
    return moments


register_cache(_cached_log_moments.cache_clear)
