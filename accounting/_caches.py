"""Process-wide caches of per-step values, owned in one place so they can be emptied.

Modules register the ``clear`` function of each cache they keep; :func:`clear_caches` empties
them all (benchmarks call it between timed runs; long-lived services may call it to release
memory). Every cache is bounded in size, so clearing is never needed for correctness.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["clear_caches", "register_cache"]

# (clear function, whether the cache depends on the orders alone)
_CLEARERS: list[tuple[Callable[[], None], bool]] = []


def register_cache(clear: Callable[[], None], table: bool = False) -> Callable[[], None]:
    """Register a cache's ``clear`` function with :func:`clear_caches`; returns it.

    ``table=True`` marks a cache keyed by the orders alone (binomial tables, order bounds).
    """
    _CLEARERS.append((clear, table))
    return clear


def clear_caches(tables: bool = True) -> None:
    """Empty the caches of per-step values (RDP curves, log moments, quadrature layouts).

    Parameters
    ----------
    tables : bool
        Also empty the tables that depend on the orders alone (binomial layouts, the bounds of
        the order search); ``False`` keeps them, as a benchmark of per-parameter work does.
    """
    for clear, table in _CLEARERS:
        if tables or not table:
            clear()
