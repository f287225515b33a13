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

Every strategy takes ``domain=``, a :class:`~accounting.testing.Domain`, and then draws only
inside it: its usual range intersected with the declared one. Where they do not meet, the
regular strategies draw from the declared range itself and the edge strategies from the
declared range's nearest edge (e.g. ``tiny_sample_rates(domain=Domain(q=(0.01, 0.5)))`` draws
0.01). A strategy whose values cannot exist in the domain (:func:`fractional_orders` with
integer orders) raises ``ValueError``. Without a domain, or with an unrestricted field, the draws
are exactly those described above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

from hypothesis import strategies as st

from accounting.testing.domain import Domain, Range

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


def _free(domain: Domain | None, field: str) -> bool:
    """Whether ``domain`` leaves ``field`` at "anything valid" (the usual draws apply)."""
    return domain is None or not domain.restricts(field)


Span = tuple[float, float, Literal["log", "linear", "near_one", "int"]]


def _span(part: Range, scale: str) -> st.SearchStrategy:
    if scale == "int":
        return st.integers(math.ceil(part.low), math.floor(part.high))
    if part.low == part.high:
        return st.just(part.low)
    if scale == "log":
        return log_uniform(math.log10(part.low), math.log10(part.high))
    if scale == "near_one":  # q = 1 - 10**x, dense next to 1
        return st.floats(math.log10(1.0 - part.high), math.log10(1.0 - part.low)).map(
            lambda x: 1.0 - 10.0**x
        )
    return st.floats(part.low, part.high)


def _whole(rng: Range, integer: bool) -> st.SearchStrategy:
    """The declared range itself (infinite or zero ends replaced by finite stand-ins)."""
    if rng.low == rng.high:
        return st.just(rng.low)
    high = rng.high if math.isfinite(rng.high) else max(rng.low, 1.0) * 1e6
    low = rng.low if rng.low > 0 else high * 1e-6
    if not low > 0:  # a stand-in that underflowed (high near the smallest subnormal)
        low = min(math.nextafter(0.0, 1.0), high)
    if integer:
        return st.integers(math.ceil(low), math.floor(high))
    return log_uniform(math.log10(low), math.log10(high))


def _within(
    rng: Range,
    spans: Sequence[Span],
    points: Sequence[float] = (),
    *,
    edge: bool = False,
) -> st.SearchStrategy:
    """Draws of ``spans`` and ``points`` that lie in ``rng``, plus ``rng``'s closed ends that lie
    within the spans' hull; if none do, the whole of ``rng`` (``edge=False``) or its point
    nearest to the spans (``edge=True``). Every draw is clamped into ``rng`` (open ends)."""
    integer = all(scale == "int" for _, _, scale in spans)
    parts = []
    for low, high, scale in spans:
        part = rng.intersect(low, high)
        if part is not None and (scale != "int" or math.ceil(part.low) <= math.floor(part.high)):
            parts.append(_span(part, scale))
    hull_low = min([low for low, _, _ in spans] + list(points))
    hull_high = max([high for _, high, _ in spans] + list(points))
    exact = [p for p in points if rng.contains(p)]
    exact += [e for e in rng.edges() if hull_low <= e <= hull_high and e not in exact]
    parts += [st.just(int(p) if integer else p) for p in exact]
    if not parts:
        if not edge:
            parts = [_whole(rng, integer)]
        else:
            nearest = rng.clamp(hull_low)  # rng misses the hull: this is its end nearest to it
            parts = [st.just(math.ceil(nearest) if integer else nearest)]
    return st.one_of(*parts).map(rng.clamp)


def _grid(domain: Domain, low: float, high: float, *, edge: bool = True) -> list[float]:
    """The explicit orders in ``[low, high]``; if none, the nearest one (``edge``) or all."""
    grid = domain.order_grid or ()
    inside = [alpha for alpha in grid if low <= alpha <= high]
    if inside:
        return inside
    if not edge:
        return list(grid)
    return [min(grid, key=lambda alpha: min(abs(alpha - low), abs(alpha - high)))]


def log_uniform(low_exponent: float, high_exponent: float) -> st.SearchStrategy[float]:
    """``10 ** x`` for ``x`` uniform in ``[low_exponent, high_exponent]``.

    Shrinks towards ``10 ** low_exponent``.
    """
    if not low_exponent <= high_exponent:
        raise ValueError(f"need low_exponent <= high_exponent, got {low_exponent}, {high_exponent}")
    return st.floats(low_exponent, high_exponent, allow_nan=False).map(lambda x: 10.0**x)


def sample_rates(
    min_exponent: float = -8.0,
    *,
    include_zero: bool = True,
    include_one: bool = True,
    domain: Domain | None = None,
) -> st.SearchStrategy[float]:
    """Poisson sample rates: log-uniform in ``[10**min_exponent, 1]``, plus exactly 0 and 1.

    Parameters
    ----------
    min_exponent : float
        Smallest positive rate is ``10 ** min_exponent`` (``-8``: the contract's ``1e-8``).
    include_zero, include_one : bool
        Whether ``q = 0`` (no step ever samples the user) and ``q = 1`` (the plain Gaussian
        mechanism) are drawn too (each about one draw in four).
    domain : Domain, optional
        Draw only the rates it allows (e.g. neither 0 nor 1 for ``q_closed=(False, False)``).
    """
    if not _free(domain, "q"):
        points = [end for end, keep in ((0.0, include_zero), (1.0, include_one)) if keep]
        return _within(domain.q_range, [(10.0**min_exponent, 1.0, "log")], points)
    parts = [log_uniform(min_exponent, 0.0)]
    if include_zero:
        parts.append(st.just(0.0))
    if include_one:
        parts.append(st.just(1.0))
    return st.one_of(*parts)


def typical_sample_rates(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Sample rates of real DP-SGD runs: log-uniform in ``[1e-5, 10**-0.5]``."""
    if not _free(domain, "q"):
        return _within(domain.q_range, [(1e-5, 10.0**-0.5, "log")])
    return log_uniform(-5.0, -0.5)


def noise_multipliers(
    min_exponent: float = -1.0, max_exponent: float = 4.0, *, domain: Domain | None = None
) -> st.SearchStrategy[float]:
    """Noise multipliers, log-uniform in ``[10**min_exponent, 10**max_exponent]``."""
    if not _free(domain, "sigma"):
        return _within(domain.sigma_range, [(10.0**min_exponent, 10.0**max_exponent, "log")])
    return log_uniform(min_exponent, max_exponent)


def typical_noise_multipliers(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Noise multipliers of real DP-SGD runs: uniform in ``[0.5, 10]``."""
    if not _free(domain, "sigma"):
        return _within(domain.sigma_range, [(0.5, 10.0, "linear")])
    return st.floats(0.5, 10.0)


def step_counts(
    max_steps: int = 100_000, *, domain: Domain | None = None
) -> st.SearchStrategy[int]:
    """Step counts in ``[1, max_steps]``, small counts drawn often."""
    if not _free(domain, "steps"):
        spans: list[Span] = [(1, min(100, max_steps), "int"), (1, max_steps, "int")]
        return _within(domain.steps_range, spans)
    return st.one_of(st.integers(1, min(100, max_steps)), st.integers(1, max_steps))


def integer_orders(
    max_order: int = 10_000, *, domain: Domain | None = None
) -> st.SearchStrategy[int]:
    """Integer Rényi orders in ``[2, max_order]``, small ones drawn more often.

    With an explicit grid in ``domain``: its integer orders up to ``max_order`` (``ValueError``
    if it has none).
    """
    if domain is not None and domain.order_grid is not None:
        whole = [a for a in domain.order_grid if a == int(a) and a <= max_order]
        if not whole:
            raise ValueError(f"the domain's orders hold no integer order <= {max_order}")
        return st.sampled_from([int(a) for a in whole])
    small = st.integers(2, min(64, max_order))
    parts = [small] if max_order <= 64 else [small, st.integers(65, max_order)]
    return st.one_of(*parts)


def fractional_orders(
    max_order: float = 10_000.0, *, domain: Domain | None = None
) -> st.SearchStrategy[float]:
    """Non-integer Rényi orders in ``(1, max_order]``, those below 11 drawn more often.

    ``ValueError`` if ``domain`` allows no such order (integer orders, or a grid without one).
    """
    if domain is not None and domain.orders != "any":
        grid = domain.order_grid or ()
        fractional = [a for a in grid if a != int(a) and a <= max_order]
        if not fractional:
            raise ValueError(f"the domain's orders hold no fractional order <= {max_order:g}")
        return st.sampled_from(fractional)
    top = math.log10(max_order)
    return st.one_of(
        st.floats(1.0001, min(11.0, max_order)),
        log_uniform(0.0, top).filter(lambda a: a > 1.0001),
    ).filter(lambda a: a != int(a))


def orders(
    max_order: float = 10_000.0, *, domain: Domain | None = None
) -> st.SearchStrategy[float]:
    """Rényi orders in ``(1, max_order]``: integer and fractional ones, equally often.

    With ``domain``: integer orders only, or the members of its explicit grid up to
    ``max_order`` (all of them if none is that small).
    """
    if domain is not None and domain.orders == "integer":
        return integer_orders(int(max_order))
    if domain is not None and domain.order_grid is not None:
        return st.sampled_from(_grid(domain, 1.0, max_order, edge=False))
    return st.one_of(integer_orders(int(max_order)), fractional_orders(max_order))


def order_grids(
    min_size: int = 1,
    max_size: int = 6,
    max_order: float = 10_000.0,
    *,
    domain: Domain | None = None,
) -> st.SearchStrategy[list[float]]:
    """Sorted lists of distinct Rényi orders, as passed to an RDP function.

    With an explicit grid in ``domain`` the lists are its sub-grids, of at most as many orders
    as it holds (so ``min_size`` is lowered to that).
    """
    if domain is not None and domain.order_grid is not None:
        members = _grid(domain, 1.0, max_order, edge=False)
        size = len(members)
        return st.lists(
            st.sampled_from(members),
            min_size=min(min_size, size),
            max_size=min(max_size, size),
            unique=True,
        ).map(sorted)
    return st.lists(
        orders(max_order, domain=domain), min_size=min_size, max_size=max_size, unique=True
    ).map(sorted)


def deltas(
    min_exponent: float = -12.0, max_exponent: float = -1.0, *, domain: Domain | None = None
) -> st.SearchStrategy[float]:
    """Target deltas, log-uniform in ``[10**min_exponent, 10**max_exponent]``."""
    if not _free(domain, "delta"):
        return _within(domain.delta_range, [(10.0**min_exponent, 10.0**max_exponent, "log")])
    return log_uniform(min_exponent, max_exponent)


def epsilons(
    max_value: float = 30.0, *, domain: Domain | None = None
) -> st.SearchStrategy[float]:
    """Target epsilons in ``[0, max_value]``: exactly 0, log-uniform small ones, uniform ones."""
    if not _free(domain, "epsilon"):
        spans: list[Span] = [(1e-3, max_value, "log"), (0.0, max_value, "linear")]
        return _within(domain.epsilon_range, spans, [0.0])
    return st.one_of(
        st.just(0.0), log_uniform(-3.0, math.log10(max_value)), st.floats(0.0, max_value)
    )


def mechanisms(
    sample_rate: st.SearchStrategy[float] | None = None,
    noise_multiplier: st.SearchStrategy[float] | None = None,
    steps: st.SearchStrategy[int] | None = None,
    *,
    domain: Domain | None = None,
) -> st.SearchStrategy[Mechanism]:
    """One :class:`Mechanism` record; each field's strategy may be replaced (a replaced field
    is drawn as given, ``domain`` or not)."""
    return st.builds(
        Mechanism,
        sample_rate if sample_rate is not None else sample_rates(domain=domain),
        noise_multiplier if noise_multiplier is not None else noise_multipliers(domain=domain),
        steps if steps is not None else step_counts(domain=domain),
    )


def composition_histories(
    min_size: int = 1,
    max_size: int = 5,
    records: st.SearchStrategy[Mechanism] | None = None,
    *,
    domain: Domain | None = None,
) -> st.SearchStrategy[list[Mechanism]]:
    """Heterogeneous composition histories: lists of :class:`Mechanism` records.

    The default records use DP-SGD-like parameters (``q`` in ``[1e-5, 1]`` with 0 and 1,
    ``sigma`` in ``[0.5, 20]``, up to ``10**4`` steps each), and repeat a record's
    ``(q, sigma)`` pair often, since accountants merge equal pairs.
    """
    if records is None:
        records = mechanisms(
            sample_rates(-5.0, domain=domain),
            st.floats(0.5, 20.0)
            if _free(domain, "sigma")
            else _within(domain.sigma_range, [(0.5, 20.0, "linear")]),
            st.integers(1, 10_000)
            if _free(domain, "steps")
            else _within(domain.steps_range, [(1, 10_000, "int")]),
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


_TINY_Q: Span = (1e-16, 1e-8, "log")
_NEAR_ONE_Q: Span = (1.0 - 1e-1, 1.0 - 1e-12, "near_one")


def tiny_sample_rates(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Sample rates in ``[1e-16, 1e-8]``, where ``A_alpha - 1`` falls below double precision."""
    if not _free(domain, "q"):
        return _within(domain.q_range, [_TINY_Q], edge=True)
    return log_uniform(-16.0, -8.0)


def near_one_sample_rates(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Sample rates ``1 - 10**x`` for ``x`` in ``[-12, -1]``, where ``log1p(-q)`` matters."""
    if not _free(domain, "q"):
        return _within(domain.q_range, [_NEAR_ONE_Q], edge=True)
    return st.floats(-12.0, -1.0).map(lambda x: 1.0 - 10.0**x)


def edge_sample_rates(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """0, 1, tiny rates and rates just below 1."""
    if not _free(domain, "q"):
        return _within(domain.q_range, [_TINY_Q, _NEAR_ONE_Q], [0.0, 1.0], edge=True)
    return st.one_of(st.just(0.0), st.just(1.0), tiny_sample_rates(), near_one_sample_rates())


def extreme_noise_products(
    min_noise: float = 0.01, *, domain: Domain | None = None
) -> st.SearchStrategy[tuple[float, float]]:
    """``(q, sigma)`` pairs at the extremes of the signal-to-noise ratio ``q / sigma``.

    Tiny ``q`` with huge ``sigma`` (``q`` in ``[1e-12, 1e-6]``, ``sigma`` in ``[100, 1e6]``:
    RDP, about ``q^2 alpha / sigma^2``, down to ``1e-36``), and ``q`` at or near 1 with small
    ``sigma`` (in ``[min_noise, 0.3]``: RDP up to ``5000`` per unit of order, below the
    documented ``sigma >= 0.1`` of :func:`accounting.poisson_gaussian_rdp`).
    """
    if not 0.0 < min_noise <= 0.3:
        raise ValueError(f"min_noise must lie in (0, 0.3], got {min_noise!r}")
    if not (_free(domain, "q") and _free(domain, "sigma")):
        q_range = domain.q_range
        sigma_range = domain.sigma_range
        tiny = st.tuples(
            _within(q_range, [(1e-12, 1e-6, "log")], edge=True),
            _within(sigma_range, [(100.0, 1e6, "log")], edge=True),
        )
        large = st.tuples(
            _within(q_range, [_NEAR_ONE_Q], [1.0], edge=True),
            _within(sigma_range, [(min_noise, 0.3, "log")], edge=True),
        )
        return st.one_of(tiny, large)
    tiny = st.tuples(log_uniform(-12.0, -6.0), log_uniform(2.0, 6.0))
    small_noise = log_uniform(math.log10(min_noise), math.log10(0.3))
    large = st.tuples(st.one_of(st.just(1.0), near_one_sample_rates()), small_noise)
    return st.one_of(tiny, large)


def huge_step_counts(*, domain: Domain | None = None) -> st.SearchStrategy[int]:
    """Step counts in ``[10**6, 10**12]``, beyond any real run."""
    if not _free(domain, "steps"):
        return _within(domain.steps_range, [(10**6, 10**12, "int")], edge=True)
    return st.integers(10**6, 10**12)


def orders_near_one(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Orders ``1 + 10**x`` for ``x`` in ``[-6, -2]``, where ``1 / (alpha - 1)`` is huge.

    With integer orders in ``domain`` this is 2; with a grid, its orders in that range, else
    its smallest.
    """
    if domain is not None and domain.orders == "integer":
        return st.just(2)
    if domain is not None and domain.order_grid is not None:
        return st.sampled_from(_grid(domain, 1.0 + 1e-6, 1.01))
    return st.floats(-6.0, -2.0).map(lambda x: 1.0 + 10.0**x)


def large_orders(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Orders in ``[1000, 10**4.5]``, integer and fractional (integer only, or a grid's orders
    in that range else its largest, with ``domain``)."""
    if domain is not None and domain.orders == "integer":
        return st.integers(1000, 31_622).map(float)
    if domain is not None and domain.order_grid is not None:
        return st.sampled_from(_grid(domain, 1000.0, 31_622.0))
    return st.one_of(st.integers(1000, 31_622).map(float), st.floats(1000.0, 31_622.0))


def edge_orders(*, domain: Domain | None = None) -> st.SearchStrategy[float]:
    """Orders near 1 and above 1000."""
    return st.one_of(orders_near_one(domain=domain), large_orders(domain=domain))


def edge_mechanisms(
    *, domain: Domain | None = None
) -> st.SearchStrategy[tuple[float, float, float]]:
    """``(q, sigma, alpha)`` triples with at least one coordinate at a numerical edge."""
    q_sigma = st.one_of(
        extreme_noise_products(domain=domain),
        st.tuples(edge_sample_rates(domain=domain), noise_multipliers(domain=domain)),
    )
    return st.one_of(
        st.tuples(q_sigma, orders(domain=domain)).map(lambda t: (*t[0], t[1])),
        st.tuples(
            sample_rates(domain=domain), noise_multipliers(domain=domain),
            edge_orders(domain=domain),
        ),
        st.tuples(q_sigma, edge_orders(domain=domain)).map(lambda t: (*t[0], t[1])),
    )
