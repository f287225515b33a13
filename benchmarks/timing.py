"""Timing helper shared by the benchmark scripts (imported as ``from timing import timed``)."""

from __future__ import annotations

import statistics
import time

import accounting

__all__ = ["timed"]


def timed(function, repeats: int):
    """``(median seconds, last result)`` over ``repeats`` calls (our caches cleared before each,
    so every call is a fresh one)."""
    times, result = [], None
    for _ in range(repeats):
        accounting.clear_caches(tables=False)
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
