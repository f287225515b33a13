"""The default grid of Rényi orders."""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_ORDERS"]

#: Default Rényi orders: everything dp_accounting uses (1.1 .. 10.9 step 0.1, 11 .. 63, 128, 256,
#: 512, 1024), plus orders that tighten epsilon at the edges of the usual range: 1.01 .. 1.09 for
#: very large epsilon, and a geometric filling of 64 .. 1024 for large noise at sample rate 1 or
#: very small delta (the Gaussian mechanism's optimal order is ``1 + sigma sqrt(2 log(1/delta))``).
#: A read-only array, sorted.
DEFAULT_ORDERS: np.ndarray = np.array(
    [1.0 + x / 100.0 for x in range(1, 10)]
    + [1.0 + x / 10.0 for x in range(1, 100)]
    + list(range(11, 64))
    + [64, 72, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024],
    dtype=float,
)
DEFAULT_ORDERS.setflags(write=False)
