"""The default grid of Rényi orders."""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_ORDERS"]

#: Default Rényi orders, sorted and read-only: the union of
#:
#: - dp_accounting's and Opacus's defaults (1.1 .. 10.9 step 0.1, 11 .. 63, 128, 256, 512, 1024);
#: - jax_privacy's default RDP orders (also dp-accelerator's): ``linspace(1.01, 8, 50)``,
#:   8 .. 63 and ``linspace(65, 512, 10)`` rounded down, so that the minimum over our orders is
#:   never above the one a jax_privacy pipeline reports;
#: - orders that tighten epsilon at the edges of the usual range: 1.01 .. 1.09 for very large
#:   epsilon, and a geometric filling of 64 .. 1024 for large noise at sample rate 1 or very small
#:   delta (the Gaussian mechanism's optimal order is ``1 + sigma sqrt(2 log(1/delta))``).
DEFAULT_ORDERS: np.ndarray = np.union1d(
    np.array(
        [1.0 + x / 100.0 for x in range(1, 10)]
        + [1.0 + x / 10.0 for x in range(1, 100)]
        + list(range(11, 64))
        + [64, 72, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024],
        dtype=float,
    ),
    np.concatenate((np.linspace(1.01, 8.0, num=50),
                    np.linspace(65, 512, num=10, dtype=np.int64).astype(float))),
)
DEFAULT_ORDERS.setflags(write=False)
