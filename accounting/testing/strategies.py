"""Hypothesis strategies for the parameters of the Poisson-subsampled Gaussian mechanism.

Every strategy draws *valid* inputs: sample rates in ``[0, 1]``, noise multipliers ``> 0``, step
counts ``>= 1``, Rényi orders ``> 1``, ``delta`` in ``(0, 1)`` and ``epsilon >= 0``. Scale
parameters are drawn log-uniformly (:func:`log_uniform`), so that tiny and huge values are as
likely as ordinary ones, and the exact edges (``q = 0``, ``q = 1``, integer orders) are drawn
often. Following Hypothesis' own convention, each public name is a function returning a
strategy; call it with no arguments for the defaults.

Three groups:

* mechanism parameters: :func:`sample_rates`, :func:`noise_multipliers`, :func:`step_counts`,
  :func:`orders` (:func:`integer_orders`, :func:`fractional_orders`, :func:`order_grids`),
  :func:`deltas`, :func:`epsilons`, and :func:`mechanisms` (one ``(q, sigma, steps)`` record);
* heterogeneous composition histories: :func:`composition_histories`;
* adversarial-but-valid inputs near the numerical edges: :func:`tiny_sample_rates`,
  :func:`near_one_sample_rates`, :func:`edge_sample_rates`, :func:`extreme_noise_products`
  (``q / sigma`` tiny or huge), :func:`huge_step_counts`, :func:`orders_near_one`,
  :func:`large_orders`, :func:`edge_orders` and :func:`edge_mechanisms`.

The default ranges are those over which :func:`accounting.poisson_gaussian_rdp` is documented to
agree with the mpmath reference (``q in [1e-8, 1]``, ``sigma in [0.1, 1e4]``,
``alpha in (1, 1e4]``), widened where the edge strategies say so.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from hypothesis import strategies as st

__all__ = [
    "Mechanism",
    "composition_histories",
    "deltas",
    "edge_mechanisms",
    "edge_orders",
    "edge_sample_rates",
    "epsilons",
    "extreme_noise_products",
    "fractional_orders",
    "huge_step_counts",
    "integer_orders",
    "large_orders",
    "log_uniform",
    "mechanisms",
    "near_one_sample_rates",
    "noise_multipliers",
    "order_grids",
    "orders",
    "orders_near_one",
    "sample_rates",
    "step_counts",
    "tiny_sample_rates",
    "typical_noise_multipliers",
    "typical_sample_rates",
]


class Mechanism(NamedTuple):
    """``steps`` steps of the Poisson-subsampled Gaussian mechanism."""

    sample_rate: float
    noise_multiplier: float
    steps: int


def log_uniform(low_exponent: float, high_exponent: float) -> st.SearchStrategy[float]:
    """``10 ** x`` for ``x`` uniform in ``[low_exponent, high_exponent]``.

    Shrinks towards ``10 ** low_exponent``.
    """
    if not low_exponent <= high_exponent:
        raise ValueError(f"need low_exponent <= high_exponent, got {low_exponent}, {high_exponent}")
    return st.floats(low_exponent, high_exponent, allow_nan=False).map(lambda x: 10.0**x)


def sample_rates(
    min_exponent: float = -8.0, *, include_zero: bool = True, include_one: bool = True
) -> st.SearchStrategy[float]:
    """Poisson sample rates: log-uniform in ``[10**min_exponent, 1]``, plus exactly 0 and 1.

    Parameters
    ----------
    min_exponent : float
        Smallest positive rate is ``10 ** min_exponent`` (``-8``: the contract's ``1e-8``).
    include_zero, include_one : bool
        Whether ``q = 0`` (no step ever samples the user) and ``q = 1`` (the plain Gaussian
        mechanism) are drawn too (each about one draw in four).
    """
    parts = [log_uniform(min_exponent, 0.0)]
    if include_zero:
        parts.append(st.just(0.0))
    if include_one:
        parts.append(st.just(1.0))
    return st.one_of(*parts)


def typical_sample_rates() -> st.SearchStrategy[float]:
    """Sample rates of real DP-SGD runs: log-uniform in ``[1e-5, 10**-0.5]``."""
    return log_uniform(-5.0, -0.5)


def noise_multipliers(
    min_exponent: float = -1.0, max_exponent: float = 4.0
) -> st.SearchStrategy[float]:
    """Noise multipliers, log-uniform in ``[10**min_exponent, 10**max_exponent]``."""
    return log_uniform(min_exponent, max_exponent)


def typical_noise_multipliers() -> st.SearchStrategy[float]:
    """Noise multipliers of real DP-SGD runs: uniform in ``[0.5, 10]``."""
    return st.floats(0.5, 10.0)


def step_counts(max_steps: int = 100_000) -> st.SearchStrategy[int]:
    """Step counts in ``[1, max_steps]``, small counts drawn often."""
    return st.one_of(st.integers(1, min(100, max_steps)), st.integers(1, max_steps))


def integer_orders(max_order: int = 10_000) -> st.SearchStrategy[int]:
    """Integer Rényi orders in ``[2, max_order]``, small ones drawn more often."""
    small = st.integers(2, min(64, max_order))
    parts = [small] if max_order <= 64 else [small, st.integers(65, max_order)]
    return st.one_of(*parts)


def fractional_orders(max_order: float = 10_000.0) -> st.SearchStrategy[float]:
    """Non-integer Rényi orders in ``(1, max_order]``, those below 11 drawn more often."""
    top = math.log10(max_order)
    return st.one_of(
        st.floats(1.0001, min(11.0, max_order)),
        log_uniform(0.0, top).filter(lambda a: a > 1.0001),
    ).filter(lambda a: a != int(a))


def orders(max_order: float = 10_000.0) -> st.SearchStrategy[float]:
    """Rényi orders in ``(1, max_order]``: integer and fractional ones, equally often."""
    return st.one_of(integer_orders(int(max_order)), fractional_orders(max_order))


def order_grids(
    min_size: int = 1, max_size: int = 6, max_order: float = 10_000.0
) -> st.SearchStrategy[list[float]]:
    """Sorted lists of distinct Rényi orders, as passed to an RDP function."""
    return st.lists(orders(max_order), min_size=min_size, max_size=max_size, unique=True).map(
        sorted
    )


def deltas(min_exponent: float = -12.0, max_exponent: float = -1.0) -> st.SearchStrategy[float]:
    """Target deltas, log-uniform in ``[10**min_exponent, 10**max_exponent]``."""
    return log_uniform(min_exponent, max_exponent)


def epsilons(max_value: float = 30.0) -> st.SearchStrategy[float]:
    """Target epsilons in ``[0, max_value]``: exactly 0, log-uniform small ones, uniform ones."""
    return st.one_of(
        st.just(0.0), log_uniform(-3.0, math.log10(max_value)), st.floats(0.0, max_value)
    )


def mechanisms(
    sample_rate: st.SearchStrategy[float] | None = None,
    noise_multiplier: st.SearchStrategy[float] | None = None,
    steps: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Mechanism]:
    """One :class:`Mechanism` record; each field's strategy may be replaced."""
    return st.builds(
        Mechanism,
        sample_rate if sample_rate is not None else sample_rates(),
        noise_multiplier if noise_multiplier is not None else noise_multipliers(),
        steps if steps is not None else step_counts(),
    )


def composition_histories(
    min_size: int = 1,
    max_size: int = 5,
    records: st.SearchStrategy[Mechanism] | None = None,
) -> st.SearchStrategy[list[Mechanism]]:
    """Heterogeneous composition histories: lists of :class:`Mechanism` records.

    The default records use DP-SGD-like parameters (``q`` in ``[1e-5, 1]`` with 0 and 1,
    ``sigma`` in ``[0.5, 20]``, up to ``10**4`` steps each), and repeat a record's
    ``(q, sigma)`` pair often, since accountants merge equal pairs.
    """
    if records is None:
        records = mechanisms(
            sample_rates(-5.0),
            st.floats(0.5, 20.0),
            st.integers(1, 10_000),
        )
    base = st.lists(records, min_size=min_size, max_size=max_size)

    def with_repeats(history: list[Mechanism]) -> st.SearchStrategy[list[Mechanism]]:
        if len(history) < 2:
            return st.just(history)
        return st.lists(st.sampled_from(history), min_size=0, max_size=2).map(
            lambda extra: (history + extra)[:max_size]
        )

    return base.flatmap(with_repeats)


# --------------------------------------------------------------------------------------------
# Adversarial-but-valid inputs near the numerical edges
# --------------------------------------------------------------------------------------------


def tiny_sample_rates() -> st.SearchStrategy[float]:
    """Sample rates in ``[1e-16, 1e-8]``, where ``A_alpha - 1`` falls below double precision."""
    return log_uniform(-16.0, -8.0)


def near_one_sample_rates() -> st.SearchStrategy[float]:
    """Sample rates ``1 - 10**x`` for ``x`` in ``[-12, -1]``, where ``log1p(-q)`` matters."""
    return st.floats(-12.0, -1.0).map(lambda x: 1.0 - 10.0**x)


def edge_sample_rates() -> st.SearchStrategy[float]:
    """0, 1, tiny rates and rates just below 1."""
    return st.one_of(st.just(0.0), st.just(1.0), tiny_sample_rates(), near_one_sample_rates())


def extreme_noise_products(min_noise: float = 0.01) -> st.SearchStrategy[tuple[float, float]]:
    """``(q, sigma)`` pairs at the extremes of the signal-to-noise ratio ``q / sigma``.

    Tiny ``q`` with huge ``sigma`` (``q`` in ``[1e-12, 1e-6]``, ``sigma`` in ``[100, 1e6]``:
    RDP, about ``q^2 alpha / sigma^2``, down to ``1e-36``), and ``q`` at or near 1 with small
    ``sigma`` (in ``[min_noise, 0.3]``: RDP up to ``5000`` per unit of order, below the
    documented ``sigma >= 0.1`` of :func:`accounting.poisson_gaussian_rdp`).
    """
    if not 0.0 < min_noise <= 0.3:
        raise ValueError(f"min_noise must lie in (0, 0.3], got {min_noise!r}")
    tiny = st.tuples(log_uniform(-12.0, -6.0), log_uniform(2.0, 6.0))
    small_noise = log_uniform(math.log10(min_noise), math.log10(0.3))
    large = st.tuples(st.one_of(st.just(1.0), near_one_sample_rates()), small_noise)
    return st.one_of(tiny, large)


def huge_step_counts() -> st.SearchStrategy[int]:
    """Step counts in ``[10**6, 10**12]``, beyond any real run."""
    return st.integers(10**6, 10**12)


def orders_near_one() -> st.SearchStrategy[float]:
    """Orders ``1 + 10**x`` for ``x`` in ``[-6, -2]``, where ``1 / (alpha - 1)`` is huge."""
    return st.floats(-6.0, -2.0).map(lambda x: 1.0 + 10.0**x)


def large_orders() -> st.SearchStrategy[float]:
    """Orders in ``[1000, 10**4.5]``, integer and fractional."""
    return st.one_of(st.integers(1000, 31_622).map(float), st.floats(1000.0, 31_622.0))


def edge_orders() -> st.SearchStrategy[float]:
    """Orders near 1 and above 1000."""
    return st.one_of(orders_near_one(), large_orders())


def edge_mechanisms() -> st.SearchStrategy[tuple[float, float, float]]:
    """``(q, sigma, alpha)`` triples with at least one coordinate at a numerical edge."""
    q_sigma = st.one_of(
        extreme_noise_products(), st.tuples(edge_sample_rates(), noise_multipliers())
    )
    return st.one_of(
        st.tuples(q_sigma, orders()).map(lambda t: (*t[0], t[1])),
        st.tuples(sample_rates(), noise_multipliers(), edge_orders()),
        st.tuples(q_sigma, edge_orders()).map(lambda t: (*t[0], t[1])),
    )
