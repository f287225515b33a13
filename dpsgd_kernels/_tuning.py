"""Machine-tuned constants of the kernel, in one place, each with how it was chosen.

None of them changes a result beyond float rounding: they only trade speed against memory.
``benchmarks/kernel_speed.py`` is the measurement that any retuning should rerun.
"""

from __future__ import annotations

__all__ = [
    "BLAS_MACS_PER_THREAD",
    "BLAS_SERIAL_MACS",
    "BLAS_SERIAL_VECTOR_MACS",
    "CHUNK_BYTES",
    "MIN_BLOCK_ROWS",
    "REUSE_MAX_BYTES",
    "RUN_OVERHEAD_BYTES",
    "SCALAR_RELU_MAX",
    "SMALL_PRODUCT_MACS",
    "ZERO_BLOCK",
]

CHUNK_BYTES = 9 * 2**19
"""Working-set target of one forward/backward chunk, 4.5 MiB of cached activations
(:func:`~dpsgd_kernels.dp_step.auto_chunk_size`).
Provenance: the MNIST CNN DP step (kernel_speed.py) timed at chunks of 16 to 128 and in one
pass; the working set of the fastest chunk size (32)."""

REUSE_MAX_BYTES = 32 * 2**20
"""Largest work array a layer keeps between forward passes (a memory cap, 32 MiB).
Provenance: above the largest work array of the CNN's auto-sized chunks (about 2.5 MB), so
chunked steps reuse all of theirs while an unchunked pass over a large batch keeps nothing."""

SMALL_PRODUCT_MACS = 3 * 2**18
"""Multiply-adds per block of :func:`~dpsgd_kernels.layers.row_product` (786,432), under the
10^6 ``M N K`` limit of OpenBLAS's single-precision small-matrix kernels, which skip packing.
Provenance: the MNIST CNN's row products per 32-example chunk (forward, window gradients) timed
in such blocks and in one call, and the DP step A/B round-robin."""

MIN_BLOCK_ROWS = 32
"""Fewest rows per block of :func:`~dpsgd_kernels.layers.row_product`; wider products run in
one call. Provenance: set with ``SMALL_PRODUCT_MACS`` (same measurement); not swept on its own."""

RUN_OVERHEAD_BYTES = 110
"""What starting a contiguous run costs a strided NumPy copy, in bytes copied
(:func:`~dpsgd_kernels.im2col.column_windows_shape` chooses one or two copies with it).
Provenance: im2col patch-copy times fitted to a per-run and a per-byte cost (the MNIST CNN's
convolutions, 32-example chunks)."""

ZERO_BLOCK = 2**16
"""Elements per block of :func:`~dpsgd_kernels.activations.relu_in_place` (256 KiB of float32
zeros, cached per dtype). Provenance: ReLU on the MNIST CNN's first-convolution output
(32-example chunk, float32) timed against a scalar zero and against cached blocks."""

SCALAR_RELU_MAX = 2048
"""Below this many elements :func:`~dpsgd_kernels.activations.relu_in_place` compares with a
scalar zero. Provenance: set so that per-example-sized arrays keep the scalar (the blocks'
per-call overhead would cost more there); not swept on its own."""

BLAS_MACS_PER_THREAD = 2**24
"""Multiply-adds of a step's largest product per BLAS thread that ``blas_threads="auto"``
allows (:func:`~dpsgd_kernels.blas.auto_blas_threads`): steps whose largest product is smaller
than twice this run on one thread. Provenance: single-precision products of the layers' shapes
(2^20 to 2^27 multiply-adds) timed on 1 and 2 BLAS threads, round-robin, with the second core
idle and busy; 2^24 gives each thread work far longer than a wake-up or a scheduler slice."""

BLAS_SERIAL_MACS = 2**18
"""Largest matrix product (multiply-adds) that OpenBLAS runs on one thread whatever its thread
count: its GEMM interface splits a product only above ``65536 * GEMM_MULTITHREAD_THRESHOLD`` (4
by default) multiply-adds (other BLAS libraries have rules of their own; this is a speed choice
only). A Dense-stack step whose products all stay below it leaves the BLAS's
thread count alone under ``blas_threads="auto"`` (limiting it would only cost the calls that read
and set it). Provenance: OpenBLAS ``interface/gemm.c`` (``SMP_THRESHOLD_MIN``), and the MLP DP
step at the default thread count timed with and without the limit (kernel_speed.py)."""

BLAS_SERIAL_VECTOR_MACS = 2304 * 4 - 1
"""Largest matrix-vector product (multiply-adds) that OpenBLAS runs on one thread whatever its
thread count: its GEMV interface (and GEMM with a dimension of 1, which it hands to GEMV) splits
a product from ``2304 * GEMM_MULTITHREAD_THRESHOLD`` (4 by default) multiply-adds on; the
companion of :data:`BLAS_SERIAL_MACS` for the products with one output unit. Provenance:
OpenBLAS ``interface/gemv.c`` and ``interface/gemm.c``; not timed on its own."""
