"""Composing accountants for DP-SGD: Rényi-DP and the moments accountant.

Both track a run of Poisson-subsampled Gaussian steps (``compose`` may be called with different
sample rates and noise multipliers, in any order) and convert the total to (epsilon, delta).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from accounting._validation import (
    MAX_ORDER,
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_orders,
    check_positive_int,
    check_sample_rate,
    check_steps,
    count_as_float,
)
from accounting.conversions import (
    Conversion,
    _check_conversion,
    epsilon_objective,
    log_delta_candidates,
)
from accounting.order_search import kl_lower_bound, minimize_over_orders, step_total_variation
from accounting.orders import DEFAULT_ORDERS
from accounting.rdp import _log_a_minus_1_integer, _rdp_items

__all__ = ["MAX_LAMBDA", "CompositionRecord", "MomentsAccountant", "RdpAccountant"]

#: Largest ``max_lambda`` of :class:`MomentsAccountant`: it tracks every ``lambda = 1 ..
#: max_lambda``, each a binomial sum of ``lambda`` terms, so one composition costs about
#: ``max_lambda^2 / 2`` terms (about half a million at the limit).
MAX_LAMBDA = 1024
# Per-step values of accountants with more orders than this are kept by the accountant itself
# rather than in the shared cache (bounds the cache's memory).
_MAX_CACHED_ORDERS = 4096


@dataclass(frozen=True)
class CompositionRecord:
    """``steps`` steps of the Poisson-subsampled Gaussian with one sample rate and noise."""

    sample_rate: float
    noise_multiplier: float
    steps: int


@lru_cache(maxsize=4096)
def _step_rdp_store(sample_rate: float, noise_multiplier: float, orders: tuple) -> np.ndarray:
    """Per-order RDP of one step, filled in lazily (NaN where not computed yet)."""
    return np.full(len(orders), np.nan)


def _step_rdp(sample_rate, noise_multiplier, orders_key, orders, index, store=None):
    """RDP of one step at ``orders[index]``, computing only the orders not cached yet."""
    if store is None:
        store = _step_rdp_store(sample_rate, noise_multiplier, orders_key)
    missing = index[np.isnan(store[index])]
    if missing.size:  # arguments were validated by compose
        alphas = orders[missing]
        with np.errstate(all="ignore"):
            store[missing] = _rdp_items(
                np.full(alphas.shape, sample_rate), np.full(alphas.shape, noise_multiplier), alphas
            )
    return store[index]


class _ComposingAccountant:
    """Shared bookkeeping: validated composition, history, and steps per (q, sigma) pair."""

    def __init__(self, orders: np.ndarray):
        self._orders = orders
        self._orders_key = tuple(orders.tolist())
        self._steps_by_pair: dict[tuple[float, float], int] = {}
        self._history: list[CompositionRecord] = []

    def _per_step(self, sample_rate: float, noise_multiplier: float, index) -> np.ndarray:
        """Per-step value (RDP or log moment) at ``self._orders[index]``."""
        raise NotImplementedError

    def _total_at(self, index: np.ndarray) -> np.ndarray:
        """Total over everything composed at ``self._orders[index]``."""
        total = np.zeros(index.shape)
        for (sample_rate, noise_multiplier), steps in self._steps_by_pair.items():
            per_step = self._per_step(sample_rate, noise_multiplier, index)
            # steps beyond the float range count as inf; 0 per step stays 0 (not inf * 0)
            with np.errstate(invalid="ignore", over="ignore"):
                total += np.where(per_step > 0.0, count_as_float(steps) * per_step, 0.0)
        return total

    def _tv_bound(self) -> float:
        """Upper bound on the total variation distance of everything composed.

        One step's is ``q (2 Phi(1 / (2 sigma)) - 1)`` and total variation is subadditive over
        composition; ``(0, tv)``-DP holds with ``tv`` this bound.
        """
        total = 0.0
        for (sample_rate, noise_multiplier), steps in self._steps_by_pair.items():
            step_tv = float(step_total_variation(sample_rate, noise_multiplier))
            total += count_as_float(steps) * step_tv if step_tv > 0.0 else 0.0
        return min(1.0, total)

    @property
    def _total(self) -> np.ndarray:
        """Total at every order (a fresh array)."""
        return self._total_at(np.arange(self._orders.size))

    def compose(self, sample_rate: float, noise_multiplier: float, steps: int = 1):
        """Add ``steps`` Poisson-subsampled Gaussian steps; returns ``self`` for chaining.

        Parameters
        ----------
        sample_rate : float
            Poisson sampling probability in ``[0, 1]`` (a single number).
        noise_multiplier : float
            Noise standard deviation over the clipping norm, ``> 0`` (a single number).
        steps : int
            Number of steps, ``>= 0``: any integer; beyond the float range (``10**400``) it
            counts as ``inf`` and epsilon is ``inf`` unless the per-step cost is exactly 0.
        """
        sample_rate = check_sample_rate(sample_rate, scalar=True)
        noise_multiplier = check_noise_multiplier(noise_multiplier, scalar=True)
        steps = check_steps(steps)
        if steps == 0 or sample_rate == 0.0:
            if steps:
                self._record(sample_rate, noise_multiplier, steps)
            return self
        pair = (sample_rate, noise_multiplier)
        self._steps_by_pair[pair] = self._steps_by_pair.get(pair, 0) + steps
        self._record(sample_rate, noise_multiplier, steps)
        return self

    def _record(self, sample_rate, noise_multiplier, steps) -> None:
        last = self._history[-1] if self._history else None
        if last and (last.sample_rate, last.noise_multiplier) == (sample_rate, noise_multiplier):
            self._history[-1] = CompositionRecord(sample_rate, noise_multiplier, last.steps + steps)
        else:
            self._history.append(CompositionRecord(sample_rate, noise_multiplier, steps))

    @property
    def history(self) -> list[CompositionRecord]:
        """What was composed, in order; consecutive identical compositions are merged."""
        return list(self._history)

    @property
    def steps(self) -> int:
        """Total number of steps composed."""
        return sum(record.steps for record in self._history)

    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent at ``delta`` (``inf`` only if the total is infinite)."""
        return self.get_epsilon_and_order(delta)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, compositions={len(self._history)})"


class RdpAccountant(_ComposingAccountant):
    """Rényi-DP accountant for the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019).

    Parameters
    ----------
    orders : array_like, optional
        Rényi orders in ``(1, MAX_ORDER]`` (``MAX_ORDER = 1e6``) to track;
        :data:`accounting.DEFAULT_ORDERS` by default.
    conversion : {"improved", "classic"}
        RDP to (epsilon, delta) conversion, see :mod:`accounting.conversions`.

    Examples
    --------
    >>> from accounting import RdpAccountant
    >>> acc = RdpAccountant().compose(sample_rate=250 / 60000, noise_multiplier=1.3, steps=3600)
    >>> round(acc.get_epsilon(1e-5), 4)
    0.9422
    """

    def __init__(self, orders=None, conversion: Conversion = "improved"):
        orders = DEFAULT_ORDERS if orders is None else check_orders(orders)
        super().__init__(np.array(orders, dtype=float))
        self.conversion = _check_conversion(conversion)
        # Accountants with very many orders keep their per-step values out of the shared cache.
        self._own_store: dict | None = {} if self._orders.size > _MAX_CACHED_ORDERS else None

    @property
    def orders(self) -> np.ndarray:
        """The Rényi orders tracked."""
        return self._orders.copy()

    @property
    def rdp(self) -> np.ndarray:
        """Total RDP at each order."""
        return self._total

    def _per_step(self, sample_rate, noise_multiplier, index):
        store = None
        if self._own_store is not None:
            store = self._own_store.setdefault(
                (sample_rate, noise_multiplier), np.full(self._orders.size, np.nan)
            )
        return _step_rdp(
            sample_rate, noise_multiplier, self._orders_key, self._orders, index, store
        )

    def _minimize(self, objective) -> tuple[float, float]:
        """Exact minimum of ``objective`` over the orders, evaluating only orders that can win."""

        def evaluate(mask):
            return self._total_at(np.flatnonzero(mask[0]))

        kl_floor = sum(
            kl_lower_bound(sample_rate, noise_multiplier, count_as_float(steps))
            for (sample_rate, noise_multiplier), steps in self._steps_by_pair.items()
        )
        best, index = minimize_over_orders(
            evaluate, self._orders, 1, objective, floor=np.array([kl_floor])
        )
        return float(best[0]), float(self._orders[index[0]])

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """Epsilon spent at ``delta`` and the order attaining it.

        Equal to ``epsilon_from_rdp(self.rdp, self.orders, delta, self.conversion)``, computed
        without evaluating the orders that provably cannot attain the minimum
        (:mod:`accounting.order_search`). With nothing spent (no step composed, or only steps
        at sample rate 0) it is ``(0.0, orders[0])`` under either conversion.
        """
        delta = check_delta(delta)
        if not self._steps_by_pair:  # the output does not depend on the data: (0, 0)-DP
            return 0.0, float(self._orders[0])
        epsilon, order = self._minimize(epsilon_objective(self._orders, delta, self.conversion))
        return max(0.0, epsilon), order

    def get_delta(self, epsilon: float) -> float:
        """Delta at ``epsilon`` (equal to ``delta_from_rdp(self.rdp, self.orders, epsilon)``).

        0 when nothing is spent (no step composed, or only steps at sample rate 0).
        """
        epsilon = check_epsilon(epsilon)
        if not self._steps_by_pair:
            return 0.0
        log_delta, _ = self._minimize(
            lambda curve, orders: log_delta_candidates(curve, orders, epsilon, self.conversion)
        )
        return float(np.exp(min(0.0, log_delta)))  # delta is at most 1


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
        log_a_minus_1 = _log_a_minus_1_integer(
            np.full(n.shape, sample_rate), np.full(n.shape, noise_multiplier), n
        )
    return np.logaddexp(0.0, log_a_minus_1)


class MomentsAccountant(_ComposingAccountant):
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

    def __init__(self, max_lambda: int = 32):
        max_lambda = check_positive_int(max_lambda, "max_lambda", maximum=MAX_LAMBDA)
        super().__init__(np.arange(1, max_lambda + 1, dtype=float))
        self.max_lambda = max_lambda

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
