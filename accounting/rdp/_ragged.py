"""Helpers for vectorised work on ragged collections (one variable-length block per item)."""

from __future__ import annotations

import numpy as np

__all__ = ["RaggedIndex", "segment_logsumexp"]


class RaggedIndex:
    """Flat indexing of ``counts[i]`` consecutive entries for each item ``i``.

    Attributes
    ----------
    item : ndarray of int
        For every flat entry, the item it belongs to.
    local : ndarray of int
        For every flat entry, its position ``0 .. counts[item] - 1`` inside its item.
    starts : ndarray of int
        Flat offset of the first entry of each item (only meaningful where ``counts > 0``).
    """

    def __init__(self, counts: np.ndarray):
        counts = np.asarray(counts, dtype=np.int64)
        self.counts = counts
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[: counts.size]
        total = int(counts.sum())
        self.item = np.repeat(np.arange(counts.size), counts)
        self.local = np.arange(total, dtype=np.int64) - np.repeat(self.starts, counts)

    @property
    def size(self) -> int:
        return int(self.item.size)


def segment_logsumexp(values: np.ndarray, index: RaggedIndex) -> np.ndarray:
    """``log(sum(exp(values)))`` over each item's block.

    ``-inf`` for an empty or all ``-inf`` block.

    ``+inf`` anywhere in a block gives ``+inf`` for that block.
    """
    counts = index.counts
    result = np.full(counts.size, -np.inf)
    filled = counts > 0
    if not np.any(filled):
        return result
    starts = index.starts[filled]
    peak = np.maximum.reduceat(values, starts)
    finite_peak = np.where(np.isfinite(peak), peak, 0.0)
    peak_per_entry = np.zeros(counts.size)
    peak_per_entry[filled] = finite_peak
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = np.exp(values - peak_per_entry[index.item])
    sums = np.add.reduceat(shifted, starts)
    with np.errstate(divide="ignore"):
        block = np.where(np.isfinite(peak), finite_peak + np.log(sums), peak)
    result[filled] = block
    return result
