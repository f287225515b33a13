"""Poisson-sampled DP-SGD batches as a ``tf.data`` pipeline for ``tf.distribute`` strategies.

:func:`poisson_dataset` is meant for ``strategy.distribute_datasets_from_function``: every input
pipeline (one per worker) draws the same global Poisson batch of step ``k`` -- example ``i`` is
in it when ``u_k[i] < q``, ``u_k = tf.random.stateless_uniform([N], (seed, k))``, so each example
is included independently with probability ``q = batch_size / N`` (Abadi et al. 2016, Sec. 3.1;
the sampling the accountant's ``PoissonSampled(q, ...)`` event assumes) -- splits it into one
contiguous chunk per replica (sizes differing by at most one) and yields the chunks of its own
replicas. Every example of the global batch is thus on exactly one replica, and the global batch
does not depend on the number of replicas or workers.
"""

from __future__ import annotations

import numpy as np

from dpsgd_kernels._validation import check_positive_int
from dpsgd_kernels.tf_adapter._imports import require_tensorflow

__all__ = ["poisson_dataset"]

_MAX_EXAMPLES = 2**31 - 1  # int32 indices of tf.gather


def _examples(data, tf):
    """``(x, y)`` tensors of all examples of ``data`` (``(x, y)`` arrays or a finite dataset)."""
    if isinstance(data, tf.data.Dataset):
        cardinality = int(data.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError("data must be a finite tf.data.Dataset (Poisson sampling draws "
                             "from the whole data set), got an infinite one")
        elements = list(data.batch(_MAX_EXAMPLES).take(1))
        if not elements:
            raise ValueError("data must hold at least one example, got an empty dataset")
        data = elements[0]
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError("data must be (features, labels) or a tf.data.Dataset of "
                        "(features, labels) examples")
    x, y = (tf.convert_to_tensor(np.asarray(v) if not isinstance(v, tf.Tensor) else v)
            for v in data)
    if x.shape.rank == 0 or y.shape.rank == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"data must hold one label per example, got features of shape "
                         f"{x.shape} and labels of shape {y.shape}")
    rows = int(x.shape[0])
    if not 1 <= rows <= _MAX_EXAMPLES:
        raise ValueError(f"data must hold between 1 and {_MAX_EXAMPLES} examples, got {rows}")
    return x, y


def poisson_dataset(data, batch_size: int, steps: int, *, seed: int | None = None,
                    input_context=None):
    """``steps`` Poisson-sampled DP-SGD batches of ``data``, split over the replicas.

    Parameters
    ----------
    data : tuple of array_like or tf.data.Dataset
        ``(features, labels)`` with one row per example, or a finite ``tf.data.Dataset`` of
        ``(features, labels)`` examples (unbatched; read into memory once per input pipeline,
        so per-example preprocessing in it runs once; map per-batch augmentation onto the
        returned dataset).
    batch_size : int
        Expected global batch size ``1 <= qN <= N``; ``q = batch_size / N``. Give the same value
        to :meth:`TFDPStep.apply <dpsgd_kernels.tf_adapter.TFDPStep.apply>` as
        ``expected_batch_size`` and record ``PoissonSampled(q, Gaussian(sigma))`` per step.
    steps : int
        Number of global steps ``>= 0``.
    seed : int, optional
        Seed of the sampling. Required with several input pipelines (workers), which must all
        draw the same batches; ``None`` (one pipeline only): fresh entropy.
    input_context : tf.distribute.InputContext, optional
        What ``strategy.distribute_datasets_from_function`` passes to its function. ``None``: a
        single replica (each element is a whole global batch).

    Returns
    -------
    tf.data.Dataset
        Per step, one ``(x, y)`` element per replica of this input pipeline, in replica order
        (``steps * replicas_per_pipeline`` elements); an element may hold no example.
    """
    tf = require_tensorflow()
    steps = check_positive_int(steps, "steps", minimum=0)
    x, y = _examples(data, tf)
    rows = int(x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size > rows:
        raise ValueError(f"batch_size must lie in [1, {rows}] (the number of examples), "
                         f"got {batch_size}")
    if input_context is None:
        replicas, pipelines, pipeline = 1, 1, 0
    else:
        replicas = int(input_context.num_replicas_in_sync)
        pipelines = int(input_context.num_input_pipelines)
        pipeline = int(input_context.input_pipeline_id)
    if replicas % pipelines:
        raise ValueError(f"input_context must have the same number of replicas per input "
                         f"pipeline, got {replicas} replicas over {pipelines} pipelines")
    if seed is None:
        if pipelines > 1:
            raise ValueError("seed must be given with several input pipelines (every worker "
                             "must draw the same global batches)")
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0]) >> 1
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    local = replicas // pipelines
    first = pipeline * local
    rate = batch_size / rows
    seed = seed % 2**63

    def chunk(k):
        step = k // local
        replica = tf.cast(first + k % local, tf.int32)
        key = tf.stack([tf.constant(seed, tf.int64), step])
        chosen = tf.where(tf.random.stateless_uniform([rows], key, dtype=tf.float64) < rate)
        chosen = tf.cast(chosen[:, 0], tf.int32)
        size, extra = tf.size(chosen) // replicas, tf.size(chosen) % replicas
        start = replica * size + tf.minimum(replica, extra)  # the first `extra` hold one more
        end = start + size + tf.cast(replica < extra, tf.int32)
        return tf.gather(x, chosen[start:end]), tf.gather(y, chosen[start:end])

    return tf.data.Dataset.range(steps * local).map(chunk)
