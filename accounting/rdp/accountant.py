"""The Rényi-DP accountant of Poisson-subsampled Gaussian steps and fixed-size batches.

It tracks a run of steps (``compose`` may be called with different sample rates and noise
multipliers, in any order) and converts the total RDP curve to (epsilon, delta). For add/remove
neighbours it composes (Poisson-subsampled) Gaussian steps; for replace-one neighbours, Gaussian
steps on batches sampled without replacement (:mod:`accounting.rdp.without_replacement`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from accounting._caches import register_cache
from accounting._gaussian_steps import GaussianStepsAccountant, poisson_gaussian_leaf
from accounting._validation import check_delta, check_epsilon, check_orders, count_as_float
from accounting.accountant import UnsupportedEventError
from accounting.events import (
    Event,
    Gaussian,
    PoissonSampled,
    RandomAllocation,
    SampledWithoutReplacement,
)
from accounting.rdp.conversions import (
    Conversion,
    check_conversion,
    epsilon_objective,
    log_delta_candidates,
)
from accounting.rdp.curve import one_pair_epsilon
from accounting.rdp.order_search import kl_lower_bound, minimize_over_orders
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.rdp.sampled_gaussian import rdp_items
from accounting.rdp.without_replacement import rdp_sampled_without_replacement

__all__ = [
    "NEIGHBORING",
    "OrderTotalsAccountant",
    "RdpAccountant",
    "clear_step_cache",
    "poisson_gaussian_epsilon",
]

#: Neighbouring relations of :class:`RdpAccountant`.
NEIGHBORING: tuple[str, ...] = ("add_remove", "replace_one")

# Per-step values of accountants with more orders than this are kept by the accountant itself
# rather than in the shared cache (bounds the cache's memory).
_MAX_CACHED_ORDERS = 4096


class _OrdersKey:
    """A set of orders as a cache key, hashed once: a tuple of hundreds of floats would be
    hashed again at every lookup of the shared per-step cache."""

    __slots__ = ("_hash", "orders")

    def __init__(self, orders: tuple):
        self.orders = orders
        self._hash = hash(orders)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, _OrdersKey) and self.orders == other.orders)

    def __len__(self) -> int:
        return len(self.orders)


_DEFAULT_ORDERS_KEY = _OrdersKey(tuple(DEFAULT_ORDERS.tolist()))


@lru_cache(maxsize=4096)
def _step_rdp_store(sample_rate: float, noise_multiplier: float, orders: _OrdersKey) -> np.ndarray:
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
            store[missing] = rdp_items(
                np.full(alphas.shape, sample_rate), np.full(alphas.shape, noise_multiplier), alphas
            )
    return store[index]


def poisson_gaussian_epsilon(sample_rate: float, noise_multiplier: float, count: float,
                             delta: float, conversion: str) -> tuple[float, float]:
    """``RdpAccountant(conversion=conversion).compose(sample_rate, noise_multiplier, steps)
    .get_epsilon_and_order(delta)`` for ``count`` steps, without building the accountant.

    Arguments already validated, with ``0 < sample_rate`` and ``0 < count < inf``. The same
    search on the same shared per-step store (default orders), so the same epsilon and order,
    and later accountants of this ``(sample_rate, noise_multiplier)`` reuse what it evaluated.
    """
    epsilon, index = one_pair_epsilon(
        sample_rate, noise_multiplier, count, delta, conversion, None,
        _step_rdp_store(sample_rate, noise_multiplier, _DEFAULT_ORDERS_KEY))
    return epsilon, float(DEFAULT_ORDERS[index])


class OrderTotalsAccountant(GaussianStepsAccountant):
    """Gaussian-step accountants that add a per-order value (RDP or log moment) over steps."""

    def __init__(self, orders: np.ndarray):
        super().__init__()
        self._orders = orders  # never written to (DEFAULT_ORDERS itself is read-only)
        self._orders_key = (_DEFAULT_ORDERS_KEY if orders is DEFAULT_ORDERS
                            else _OrdersKey(tuple(orders.tolist())))

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

    @property
    def _total(self) -> np.ndarray:
        """Total at every order (a fresh array)."""
        return self._total_at(np.arange(self._orders.size))

    def get_epsilon(self, delta: float) -> float:
        """Epsilon spent at ``delta`` (``inf`` only if the total is infinite)."""
        return self.get_epsilon_and_order(delta)[0]

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """Epsilon spent at ``delta`` and the order attaining it."""
        raise NotImplementedError


class RdpAccountant(OrderTotalsAccountant):
    """Rényi-DP accountant for the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019).

    Parameters
    ----------
    orders : array_like, optional
        Rényi orders in ``(1, MAX_ORDER]`` (``MAX_ORDER = 1e6``) to track;
        :data:`accounting.DEFAULT_ORDERS` by default.
    conversion : {"improved", "classic"}
        RDP to (epsilon, delta) conversion, see :mod:`accounting.rdp.conversions`.
    neighboring : {"add_remove", "replace_one"}
        Neighbouring relation of the guarantee. ``"add_remove"`` (default) composes
        :class:`~accounting.events.Gaussian` and ``PoissonSampled(Gaussian)`` steps (per-record
        sensitivity 1), and random-allocation epochs of a Gaussian
        (:func:`accounting.random_allocation.random_allocation_rdp`). ``"replace_one"``
        composes ``SampledWithoutReplacement(n, b, Gaussian(s))`` (Wang, Balle and
        Kasiviswanathan 2019, with ``s`` against the replace-one sensitivity, see
        :mod:`accounting.rdp.without_replacement`) and plain ``Gaussian(sigma)`` releases of
        sums of records of norm at most 1 (a replacement moves the sum by up to 2: RDP
        ``alpha / (2 (sigma / 2)^2)``, the convention of
        ``PldAccountant(neighboring="replace_one")``). Poisson sampling needs add/remove here
        (the PLD accountant handles it for replace-one).

    Examples
    --------
    >>> from accounting import RdpAccountant
    >>> acc = RdpAccountant().compose(sample_rate=250 / 60000, noise_multiplier=1.3, steps=3600)
    >>> round(acc.get_epsilon(1e-5), 4)
    0.9422
    """

    name = "rdp"
    order_label = "order"

    @property
    def conversion_label(self) -> str:
        """The RDP-to-(epsilon, delta) conversion used."""
        return self.conversion

    def __init__(
        self, orders=None, conversion: Conversion = "improved", neighboring: str = "add_remove"
    ):
        if neighboring not in NEIGHBORING:
            raise ValueError(f"neighboring must be one of {NEIGHBORING}, got {neighboring!r:.60}")
        self._orders_option = None if orders is None else check_orders(orders).tolist()
        super().__init__(DEFAULT_ORDERS if orders is None
                         else np.array(check_orders(orders), dtype=float))
        self.conversion = check_conversion(conversion)
        self._neighboring = neighboring
        # Accountants with very many orders keep their per-step values out of the shared cache.
        self._own_store: dict | None = {} if self._orders.size > _MAX_CACHED_ORDERS else None
        # per-order RDP of the step events kept whole, NaN where not computed yet
        self._other_store: dict[Event, np.ndarray] = {}

    def _options(self) -> dict:
        options = {"orders": self._orders_option, "conversion": self.conversion}
        if self._neighboring != "add_remove":  # states saved before the option stay as they were
            options["neighboring"] = self._neighboring
        return options

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the guarantee: ``"add_remove"`` or ``"replace_one"``."""
        return self._neighboring

    def _leaf(self, item: Event, times: int) -> list[tuple[object, int]]:
        if self._neighboring == "add_remove":
            if isinstance(item, SampledWithoutReplacement):
                raise UnsupportedEventError(
                    "sampling without replacement is accounted for replace-one neighbours: it "
                    'needs RdpAccountant(neighboring="replace_one")'
                )
            if isinstance(item, RandomAllocation):
                return self._random_allocation_leaf(item, times)
            return poisson_gaussian_leaf(item, times)
        if isinstance(item, Gaussian):
            # a sum of records of norm <= 1 moves by up to 2 when one is replaced
            return [((1.0, item.noise_multiplier / 2.0), times)]
        if isinstance(item, SampledWithoutReplacement):
            if not isinstance(item.event, Gaussian):
                raise UnsupportedEventError(
                    "sampling without replacement is supported only of a Gaussian (or NoOp or "
                    f"NonPrivate) event, got {type(item.event).__name__}"
                )
            if item.sample_size == item.dataset_size:  # the whole data set: the Gaussian itself
                return [((1.0, item.event.noise_multiplier), times)]
            if item.sample_size == 0:  # kept as a step at rate 0, which spends nothing
                return [((0.0, item.event.noise_multiplier), times)]
            return [(item, times)]
        if isinstance(item, PoissonSampled):
            raise UnsupportedEventError(
                "the RDP accountant composes Poisson sampling for add/remove neighbours only; "
                'PldAccountant(neighboring="replace_one") handles it for replace-one'
            )
        raise UnsupportedEventError(
            f"{type(item).__name__} events are not supported for replace-one neighbours"
        )

    @staticmethod
    def _random_allocation_leaf(item: RandomAllocation, times: int) -> list[tuple[object, int]]:
        """A random-allocation epoch of a Gaussian, kept whole (add/remove neighbours)."""
        from accounting.random_allocation import MAX_STEPS  # imports the RDP family itself

        if not isinstance(item.event, Gaussian):
            raise UnsupportedEventError(
                "random allocation is supported only of a Gaussian event, got "
                f"{type(item.event).__name__}"
            )
        if item.steps > MAX_STEPS:
            raise UnsupportedEventError(
                f"random allocation is bounded for at most {MAX_STEPS} steps, got {item.steps}"
            )
        return [(item, times)]

    def _other_rdp(self, event: Event, index: np.ndarray) -> np.ndarray:
        """RDP of one step event kept whole at ``self._orders[index]``, computing only the orders
        not cached yet (as :func:`_step_rdp` does for Poisson steps)."""
        store = self._other_store.get(event)
        if store is None:
            store = self._other_store[event] = np.full(self._orders.size, np.nan)
        missing = index[np.isnan(store[index])]
        if missing.size:
            # the events kept whole by _leaf, each of a Gaussian
            if isinstance(event, RandomAllocation):
                from accounting.random_allocation import random_allocation_rdp

                store[missing] = random_allocation_rdp(
                    event.steps, event.selections, event.event.noise_multiplier,
                    self._orders[missing],
                )
            else:
                store[missing] = rdp_sampled_without_replacement(
                    event.sample_rate, event.event.noise_multiplier, self._orders[missing]
                )
        return store[index]

    def _total_at(self, index: np.ndarray) -> np.ndarray:
        total = super()._total_at(index)
        for event, steps in self._other_steps.items():
            per_step = self._other_rdp(event, index)
            # steps beyond the float range count as inf; 0 per step stays 0 (not inf * 0)
            with np.errstate(invalid="ignore", over="ignore"):
                total += np.where(per_step > 0.0, count_as_float(steps) * per_step, 0.0)
        return total

    @property
    def orders(self) -> np.ndarray:
        """The Rényi orders tracked."""
        return self._orders.copy()

    @property
    def rdp(self) -> np.ndarray:
        """Total RDP at each order."""
        return self._total

    def _store(self, sample_rate: float, noise_multiplier: float) -> np.ndarray:
        """Per-step RDP at every order of one (q, sigma) pair, NaN where not computed yet."""
        if self._own_store is not None:
            return self._own_store.setdefault(
                (sample_rate, noise_multiplier), np.full(self._orders.size, np.nan)
            )
        return _step_rdp_store(sample_rate, noise_multiplier, self._orders_key)

    def _per_step(self, sample_rate, noise_multiplier, index):
        return _step_rdp(sample_rate, noise_multiplier, self._orders_key, self._orders, index,
                         self._store(sample_rate, noise_multiplier))

    def _minimize(self, objective) -> tuple[float, float]:
        """Exact minimum of ``objective`` over the orders, evaluating only orders that can win."""

        if self._other_steps:
            # The pruning's chord bounds assume (alpha - 1) RDP is convex in alpha, true of a
            # Rényi divergence but not promised by the bounds of other steps: every order.
            values = objective(self._total[None, :], self._orders)[0]
            index = int(np.argmin(values))
            return float(values[index]), float(self._orders[index])

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
        (:mod:`accounting.rdp.order_search`; with a single (sample rate, noise) pair composed,
        the search of :func:`accounting.rdp.epsilon_curve` for one step count). With nothing
        spent (no step composed, or only steps at sample rate 0) it is ``(0.0, orders[0])``
        under either conversion.
        """
        delta = check_delta(delta)
        if self._non_private:
            return float("inf"), float(self._orders[0])
        if self._spends_nothing:  # the output does not depend on the data: (0, 0)-DP
            return 0.0, float(self._orders[0])
        if len(self._steps_by_pair) == 1 and not self._other_steps:
            # one (q, sigma) pair: the single-curve search of epsilon_curve, on this accountant's
            # per-step store (the same values as the general search below)
            (sample_rate, noise_multiplier), steps = next(iter(self._steps_by_pair.items()))
            count = count_as_float(steps)
            if count < np.inf:
                orders = None if self._orders_option is None else self._orders
                epsilon, index = one_pair_epsilon(
                    sample_rate, noise_multiplier, count, delta, self.conversion, orders,
                    self._store(sample_rate, noise_multiplier))
                return epsilon, float(self._orders[index])
        epsilon, order = self._minimize(epsilon_objective(self._orders, delta, self.conversion))
        return max(0.0, epsilon), order

    def get_delta(self, epsilon: float) -> float:
        """Delta at ``epsilon`` (equal to ``delta_from_rdp(self.rdp, self.orders, epsilon)``).

        0 when nothing is spent (no step composed, or only steps at sample rate 0).
        """
        epsilon = check_epsilon(epsilon)
        if self._non_private:
            return 1.0
        if self._spends_nothing:
            return 0.0
        log_delta, _ = self._minimize(
            lambda curve, orders: log_delta_candidates(curve, orders, epsilon, self.conversion)
        )
        return float(np.exp(min(0.0, log_delta)))  # delta is at most 1


def clear_step_cache() -> None:
    """Empty the shared cache of per-step RDP values."""
    _step_rdp_store.cache_clear()


register_cache(clear_step_cache)
