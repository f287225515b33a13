"""Batch, per-example and per-microbatch gradients, and the DP-SGD privatized gradient.

:func:`dp_gradient` follows TensorFlow Privacy's ``DPKerasSGDOptimizer`` (the
``make_keras_optimizer_class`` gradient path of ``tensorflow_privacy``), which implements the
Gaussian mechanism of Abadi et al. 2016, "Deep Learning with Differential Privacy":

1. the batch of ``n`` examples is split into ``num_microbatches`` consecutive microbatches
   (``tf.reshape(loss, [num_microbatches, -1])``; default one example per microbatch) and the
   loss is averaged within each microbatch;
2. every microbatch gradient ``g_b`` (all parameters jointly) is clipped to L2 norm
   ``l2_norm_clip``: ``g_b * C / max(||g_b||, C)`` (``tf.clip_by_global_norm``);
3. the clipped gradients are summed and ``N(0, (noise_multiplier * C)^2)`` noise is added to
   every coordinate;
4. the result is divided by ``num_microbatches``.

With ``expected_batch_size`` (the Poisson-sampling variant of Abadi et al., whose privacy the RDP
accountant computes) every example is its own microbatch and the noisy sum is divided by the
*expected* batch size ``q * N`` instead of the realised one; empty batches are allowed.

Microbatch gradients are never formed example by example: the per-layer rows and deltas of one
backward pass give them as batched products (:mod:`dpsgd_kernels.ghost_norm`), and for layers
where it is cheaper only their norms are computed ("ghost norm"); the clipped sum is then one
re-weighted matrix product per layer ("book-keeping": no second backward pass; Bu et al. 2023,
"Differentially Private Optimization on Large Model at Small Cost").

Large batches run in chunks of whole microbatches (:func:`auto_chunk_size`): every quantity
but the final sums is per example, so the chunks' clipped sums (or gradient sums) simply add up,
a step's memory is bounded and a chunk's activations stay closer to the CPU caches. The noise is
drawn once, after the last chunk.

A model made of Dense layers only (on flat input, one example per microbatch, one pass) runs
a step of its own (:mod:`dpsgd_kernels._dense_step`): the same quantities, with every layer's
rows and deltas in two shared work arrays, so that the step takes a fixed handful of NumPy
calls per layer; the naive references (:mod:`dpsgd_kernels.naive`) keep to the layer-by-layer
path, and the tests compare the two.

The step's products are small for small models, where BLAS threads cost more than they
compute: by default (``blas_threads="auto"``) a step lets BLAS use one thread per
``BLAS_MACS_PER_THREAD`` multiply-adds of its largest product (:mod:`dpsgd_kernels.blas`); a
Dense-stack step whose products are all below the sizes OpenBLAS splits at all
(``BLAS_SERIAL_MACS``, ``BLAS_SERIAL_VECTOR_MACS``) leaves the thread count alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpsgd_kernels import _tuning
from dpsgd_kernels._dense_step import DenseStep, dense_step_for, finite_or_raise
from dpsgd_kernels._validation import (
    MAX_L2_NORM_CLIP,
    MAX_NOISE_MULTIPLIER,
    all_finite,
    check_array,
    check_finite_positive,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_nonnegative,
    check_positive_int,
)
from dpsgd_kernels.blas import _Limit, _step_threads, check_blas_threads
from dpsgd_kernels.ghost_norm import row_sq_norms
from dpsgd_kernels.layers import LinearLayer
from dpsgd_kernels.losses import Loss, get_loss
from dpsgd_kernels.model import Sequential

__all__ = [
    "DPGradient",
    "auto_chunk_size",
    "batch_gradient",
    "clip_factors",
    "dp_gradient",
    "microbatch_gradient_norms",
    "microbatch_gradients",
    "noisy_average",
    "per_example_gradients",
]

GHOST_MODES = ("auto", True, False)


@dataclass(frozen=True)
class DPGradient:
    """Result of :func:`dp_gradient`.

    Attributes
    ----------
    gradients : list of numpy.ndarray
        The privatized gradient, one array per parameter in Keras order.
    loss : float
        Mean per-example loss of the batch (``nan`` for an empty batch). Not privatized: use it
        for monitoring only.
    norms : numpy.ndarray
        Unclipped L2 norm of every microbatch gradient (not privatized).
    num_microbatches : int
        Number of microbatches the batch was split into.
    denominator : float
        What the noisy sum was divided by (``num_microbatches``, or the expected batch size).
    """

    gradients: list[np.ndarray]
    loss: float
    norms: np.ndarray
    num_microbatches: int
    denominator: float


def _check_model(model) -> Sequential:
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a dpsgd_kernels.Sequential, got {type(model).__name__}")
    return model


def _check_ghost(ghost):
    valid = ghost == "auto" if isinstance(ghost, str) else isinstance(ghost, (bool, np.bool_))
    if not valid:
        raise ValueError(f"ghost must be 'auto', True or False, got {ghost!r}")
    return ghost


class _CheckedTargets:
    """The batch's targets after the loss' own checks, done once per step: chunks then use
    the loss' unchecked value and gradient (a loss that overrides ``per_example`` or
    ``gradient`` keeps being called through them, with its own checks, chunk by chunk)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _uses_base_checks(loss: Loss) -> bool:
    kind = type(loss)
    return (kind.gradient is Loss.gradient and kind.per_example is Loss.per_example
            and kind._targets is Loss._targets)


def _validated(model, x, y, loss, *, x_checked: bool = False, targets: bool = False):
    """``(model, x, y, loss)`` after the checks every entry point shares (x cast, y sliceable);
    with ``targets``, ``y`` is a :class:`_CheckedTargets` where the loss' target checks could
    run once here (for :func:`_run`, :func:`_part` and :func:`_mean_loss` only)."""
    model = _check_model(model)
    loss = get_loss(loss)
    if not x_checked:
        x = model.check_input(x)
    y_shape = y.shape if isinstance(y, np.ndarray) else np.shape(y)
    if not y_shape or y_shape[0] != x.shape[0]:
        raise ValueError(
            f"y must hold one target per example of x ({x.shape[0]}), got shape {y_shape}"
        )
    if targets and _uses_base_checks(loss) and x.shape[0]:
        shape = (x.shape[0], *model.output_shape)
        return model, x, _CheckedTargets(loss.check_targets(y, shape, model.dtype)), loss
    return model, x, np.asarray(y), loss


def _part(y, part: slice):
    """The targets of one chunk."""
    return _CheckedTargets(y.array[part]) if isinstance(y, _CheckedTargets) else y[part]


def _run(model: Sequential, x: np.ndarray, y, loss: Loss) -> np.ndarray:
    """Forward and backward on validated input; returns the model output (see
    :func:`_mean_loss`)."""
    output = model.forward(x)
    if isinstance(y, _CheckedTargets):
        model.backward(loss._grad(y.array, output))
    else:
        model.backward(loss.gradient(y, output))
    return output


def _mean_loss(loss: Loss, y, outputs: list[np.ndarray]) -> float:
    """Mean per-example loss of a batch from its chunks' outputs, evaluated once over the batch
    (per-example losses do not depend on the chunking; one evaluation instead of one per chunk
    saves the loss' fixed costs on every chunk after the first)."""
    values = (loss._value(y.array, _stacked(outputs)) if isinstance(y, _CheckedTargets)
              else np.asarray(loss.per_example(y, _stacked(outputs))))
    if values.dtype.kind != "f" or values.ndim != 1:
        return float(np.mean(values))
    # np.mean's own sum and division, without its Python-level wrapper.
    return float(np.add.reduce(values) / values.size) if values.size else float("nan")


def _forward_backward(model: Sequential, x, y, loss: Loss | str) -> np.ndarray:
    """Validate, run forward and backward; return the validated ``x``."""
    model, x, y, loss = _validated(model, x, y, loss, targets=True)
    _run(model, x, y, loss)
    return x


def auto_chunk_size(model: Sequential) -> int:
    """Examples per forward/backward pass whose cached activations fill about
    :data:`~dpsgd_kernels._tuning.CHUNK_BYTES`.

    The estimate counts, per example, every layer's input rows (im2col patches for a
    convolution) and its output twice (pre-activation and activation). Small models get chunks
    far larger than any batch (one pass); the MNIST CNN gets 34 (batch 256: 8 chunks of 32).
    """
    model = _check_model(model)
    floats = 0
    for layer in model.layers:
        out = math.prod(layer.output_shape)
        if isinstance(layer, LinearLayer):
            floats += layer.rows_per_example * layer.in_features + 2 * out
        else:
            floats += math.prod(layer.input_shape) + out
    return max(1, _tuning.CHUNK_BYTES // (floats * model.dtype.itemsize))


def _largest_product_macs(model: Sequential, batch: int, parts: list[slice]) -> int:
    """Multiply-adds of the largest single matrix product of a step over ``parts``: a layer's
    rows of one chunk (of the whole batch for one-row Dense layers, whose clipped sum may be
    formed once over it) times its ``(K + 1, P)`` kernel."""
    chunk = max((part.stop - part.start for part in parts), default=0)
    return max((
        (batch if layer.rows_per_example == 1 else chunk) * layer.rows_per_example
        * (layer.in_features + 1) * layer.out_features
        for layer in model.linear_layers), default=0)


def _check_chunk_size(chunk_size):
    if chunk_size is None or (isinstance(chunk_size, str) and chunk_size == "auto"):
        return chunk_size
    if isinstance(chunk_size, str):
        raise ValueError(f"chunk_size must be 'auto', None or an integer >= 1, got {chunk_size!r}")
    return check_positive_int(chunk_size, "chunk_size")


def _chunks(model: Sequential, batch: int, group_size: int, chunk_size) -> list[slice]:
    """Consecutive slices of whole microbatches, each at most ``chunk_size`` examples (but at
    least one microbatch), as few and as even as possible; ``"auto"`` means
    :func:`auto_chunk_size`, ``None`` one pass."""
    chunk_size = _check_chunk_size(chunk_size)
    if chunk_size is None or batch == 0:
        return [slice(0, batch)]
    if chunk_size == "auto":
        chunk_size = auto_chunk_size(model)
    groups, per_chunk = batch // group_size, max(1, chunk_size // group_size)
    count = -(-groups // per_chunk)  # as few chunks as allowed, as even as whole groups allow
    bounds = [group_size * (groups * k // count) for k in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def _check_grads_finite(grads: list[np.ndarray]) -> None:
    for index, grad in enumerate(grads):
        if not np.all(np.isfinite(grad)):
            raise ValueError(
                f"gradients[{index}] is not finite (NaN or inf): check x, y and the model "
                "weights (a diverged run or a too large learning rate)"
            )


def _group_size(batch: int, num_microbatches) -> tuple[int, int]:
    """``(num_microbatches, examples per microbatch)`` after checking the split is exact."""
    if num_microbatches is None:
        return batch, 1
    num_microbatches = check_positive_int(num_microbatches, "num_microbatches")
    if batch % num_microbatches:
        raise ValueError(
            f"num_microbatches must divide the batch size {batch}, got {num_microbatches}"
        )
    return num_microbatches, batch // num_microbatches


def batch_gradient(
    model: Sequential, x, y, loss: Loss | str, *, chunk_size="auto", blas_threads="auto"
) -> tuple[list[np.ndarray], float]:
    """Gradient of the mean loss over the batch (the ordinary, non-private step).

    Parameters
    ----------
    chunk_size : int, "auto" or None
        Largest number of examples per forward/backward pass (the gradient is the same up to
        rounding): ``"auto"`` (:func:`auto_chunk_size`), an integer, or ``None`` for one pass.
    blas_threads : "auto", int or None
        Threads NumPy's BLAS may use during the step (see :func:`dp_gradient`).

    Returns
    -------
    gradients : list of numpy.ndarray
        One array per parameter, Keras order.
    loss : float
        Mean loss over the batch.
    """
    return _batch_gradient(model, x, y, loss, chunk_size, blas_threads, dense=True)


def _batch_gradient(model, x, y, loss, chunk_size, blas_threads, dense: bool):
    """:func:`batch_gradient`; ``dense=False`` keeps to the layer-by-layer path (the naive
    references use it, so that they share no code with the Dense-stack step)."""
    blas_threads = check_blas_threads(blas_threads)
    model, x, y, loss = _validated(model, x, y, loss, targets=True)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one example")
    scale = 1.0 / x.shape[0]
    step = dense_step_for(model, x.shape[0]) if dense else None
    if step is not None and _one_pass(model, step, _check_chunk_size(chunk_size)):
        targets, loss_grad = _loss_gradient(y, loss)
        with _dense_threads(blas_threads, step):
            output = step.forward_backward(x, targets, loss_grad)
            flat = step.clipped_sum(step.dtype.type(scale))
        grads = step.unflatten(flat)
        if not all_finite(flat):
            _check_grads_finite(grads)
        return grads, _mean_loss(loss, y, [output])
    grads, outputs = [], []
    parts = _chunks(model, x.shape[0], 1, chunk_size)
    with _step_threads(blas_threads, _largest_product_macs(model, x.shape[0], parts)):
        for part in parts:
            outputs.append(_run(model, x[part], _part(y, part), loss))
            _accumulate_into(
                grads,
                [g for layer in model.linear_layers for g in layer.weighted_gradients(scale)],
            )
    _check_grads_finite(grads)
    return grads, _mean_loss(loss, y, outputs)


def microbatch_gradients(
    model: Sequential, x, y, loss: Loss | str, num_microbatches: int | None = None
) -> list[np.ndarray]:
    """Gradient of every microbatch's mean loss, each array ``(num_microbatches, *shape)``."""
    x = _forward_backward(model, x, y, loss)
    _, group_size = _group_size(x.shape[0], num_microbatches)
    return [g for layer in model.linear_layers for g in layer.group_gradients(group_size)]


def per_example_gradients(model: Sequential, x, y, loss: Loss | str) -> list[np.ndarray]:
    """Gradient of every example's loss, each array ``(batch, *param.shape)``."""
    return microbatch_gradients(model, x, y, loss)


def clip_factors(norms: np.ndarray, l2_norm_clip: float) -> np.ndarray:
    """``min(1, C / norm)`` written as ``C / max(norm, C)`` (``tf.clip_by_global_norm``).

    ``norms`` must be finite and ``0 < C <= MAX_L2_NORM_CLIP``.
    """
    l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
    norms = check_array(norms, "norms")
    if norms.size and norms.min() < 0:
        raise ValueError("norms must be >= 0 (L2 norms)")
    return _clip_factors(norms, l2_norm_clip)


def _clip_factors(norms: np.ndarray, l2_norm_clip: float) -> np.ndarray:
    """:func:`clip_factors` on validated arguments (the step's own, checked once per step)."""
    return l2_norm_clip / np.maximum(norms, l2_norm_clip)


class _ClippedSums:
    """Per-step norms and clipped sums, fed one chunk at a time by :meth:`add_chunk`.

    The choice between ghost norms and materialised gradients is made once per step, per
    layer. A layer with materialised gradients adds each chunk's clipped sum (one
    vector-matrix product per parameter) into running totals. A ghost-norm layer with one row
    per example (Dense on flat input) in a step of several ``chunks`` keeps every chunk's rows,
    deltas and clip weights and forms its clipped sum once, at the end, over the whole batch
    (two products; per chunk that saves the products, their reshapes and the adds). Other
    ghost-norm layers add a re-weighted product per chunk (book-keeping, see the module
    docstring).
    """

    def __init__(
        self, model: Sequential, group_size: int, ghost, l2_norm_clip, chunks: int = 1
    ) -> None:
        self.group_size = group_size
        self.l2_norm_clip = l2_norm_clip
        self.dtype = model.dtype
        self.plan = []  # (layer, "materialised" | "ghost" | "rows") per linear layer
        for layer in model.linear_layers:
            if not (layer.prefers_ghost(group_size) if ghost == "auto" else ghost):
                self.plan.append((layer, "materialised"))
            elif chunks > 1 and layer.rows_per_example == 1:
                self.plan.append((layer, "rows"))
            else:
                self.plan.append((layer, "ghost"))
        self.totals: list = [[] for _ in self.plan]  # running sums, or rows and deltas
        self.weights: list[np.ndarray] = []

    def add_chunk(self, first: int = 0) -> np.ndarray:
        """Norms of the chunk's microbatches (from the layers' cached rows and deltas); with a
        clipping norm, also adds their clipped gradients to the sums. ``first`` is the index
        of the chunk's first microbatch (for error messages only)."""
        group_size = self.group_size
        sq_norms, materialised = None, []
        for layer, mode in self.plan:
            if mode == "materialised":
                grads = layer.group_flat_gradients(group_size)
                materialised.append(grads)
                for grad in grads:
                    term = row_sq_norms(grad)
                    sq_norms = term if sq_norms is None else np.add(sq_norms, term, out=sq_norms)
            else:
                term = layer.group_sq_norms_ghost(group_size)
                sq_norms = term if sq_norms is None else np.add(sq_norms, term, out=sq_norms)
                materialised.append(None)
        norms = np.sqrt(sq_norms)
        if not np.isfinite(norms).all():
            bad = first + np.flatnonzero(~np.isfinite(norms))
            raise ValueError(
                f"gradients of microbatch(es) {bad[:5].tolist()} are not finite (NaN or inf): "
                "check x, y and the model weights (a diverged run or a too large learning rate)"
            )
        if self.l2_norm_clip is None:
            return norms
        factors = _clip_factors(norms, self.l2_norm_clip).astype(self.dtype, copy=False)
        weights = factors if group_size == 1 else np.repeat(factors / group_size, group_size)
        self.weights.append(weights)
        for (layer, mode), grads, total in zip(self.plan, materialised, self.totals, strict=True):
            if mode == "rows":
                total.append(layer.weighted_rows())
            elif grads is None:
                _accumulate_into(total, layer.weighted_gradients(weights))
            else:  # the clipped sum of materialised gradients: one vector-matrix product each
                _accumulate_into(total, [factors @ grad for grad in grads])
        return norms

    def finish(self) -> list[np.ndarray]:
        """The clipped sums, one array per parameter in Keras order and shapes."""
        sums, weights = [], None
        for (layer, mode), total in zip(self.plan, self.totals, strict=True):
            if mode == "rows":
                rows, delta = zip(*total, strict=True)
                weights = _stacked(self.weights) if weights is None else weights
                sums.extend(layer.gradients_from_rows(_stacked(rows), _stacked(delta), weights))
            elif mode == "ghost":
                sums.extend(total)
            else:
                sums.extend(layer.unflatten_gradients(total))
        return sums


def _accumulate_into(totals: list[np.ndarray], parts: list[np.ndarray]) -> None:
    """Add a chunk's (fresh) arrays into running totals in place; an empty list takes them."""
    if not totals:
        totals.extend(parts)
        return
    for total, part in zip(totals, parts, strict=True):
        total += part


def _stacked(arrays) -> np.ndarray:
    """The arrays of a list concatenated along the first axis (the array itself if only one)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def microbatch_gradient_norms(
    model: Sequential,
    x,
    y,
    loss: Loss | str,
    num_microbatches: int | None = None,
    ghost="auto",
    *,
    chunk_size="auto",
) -> np.ndarray:
    """L2 norm (all parameters jointly) of every microbatch gradient, shape ``(num_microbatches,)``.

    Parameters
    ----------
    ghost : {"auto", True, False}
        Per layer, compute the norm from Gram matrices without materialising the gradient
        (``True``), by materialising it (``False``), or whichever is cheaper (``"auto"``).
    chunk_size : int, "auto" or None
        Largest number of examples per forward/backward pass (see :func:`batch_gradient`);
        rounded down to whole microbatches.
    """
    ghost = _check_ghost(ghost)
    model, x, y, loss = _validated(model, x, y, loss, targets=True)
    _, group_size = _group_size(x.shape[0], num_microbatches)
    if x.shape[0] == 0:
        return np.zeros(0, dtype=model.dtype)
    norms, sums = [], _ClippedSums(model, group_size, ghost, None)
    for part in _chunks(model, x.shape[0], group_size, chunk_size):
        _run(model, x[part], _part(y, part), loss)
        norms.append(sums.add_chunk(part.start // group_size))
    return _stacked(norms)


def noisy_average(
    sums: list[np.ndarray], stddev: float, denominator: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """``(sum + N(0, stddev^2 I)) / denominator`` for every parameter.

    The noise for all parameters is one ``rng.standard_normal`` draw of their total size, laid
    out in parameter order (Keras order, each array in C order); nothing is drawn when
    ``stddev == 0``. Returns new arrays of the sums' dtype.
    """
    stddev = check_nonnegative(stddev, "stddev", maximum=MAX_L2_NORM_CLIP * MAX_NOISE_MULTIPLIER)
    denominator = check_finite_positive(denominator, "denominator")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(sums, np.ndarray) or not sums or not all(
        isinstance(total, np.ndarray) and total.dtype in (np.float32, np.float64) for total in sums
    ):
        raise TypeError("sums must be a non-empty list of float32 or float64 arrays")
    return _noisy_average(sums, stddev, denominator, rng)


def _noisy_average(sums: list[np.ndarray], stddev: float, denominator: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """:func:`noisy_average` on validated arguments (the step's own)."""
    dtype = sums[0].dtype
    flat = np.concatenate([total.ravel() for total in sums])
    if stddev:
        flat += rng.standard_normal(flat.size, dtype=dtype) * dtype.type(stddev)
    flat /= dtype.type(denominator)
    grads, start = [], 0
    for total in sums:
        grads.append(flat[start : start + total.size].reshape(total.shape))
        start += total.size
    return grads


def _one_pass(model: Sequential, dense: DenseStep, chunk_size) -> bool:
    """Whether ``dense``'s batch runs in one forward/backward pass at this ``chunk_size``."""
    if chunk_size is None:
        return True
    if chunk_size == "auto":
        if dense.auto_chunk is None:
            dense.auto_chunk = auto_chunk_size(model)
        chunk_size = dense.auto_chunk
    return dense.batch <= chunk_size


def _dense_threads(blas_threads, step: DenseStep) -> _Limit:
    """The thread limit of a Dense-stack step: none at all under ``"auto"`` where every
    product is too small for the BLAS to split (:data:`~dpsgd_kernels._tuning.BLAS_SERIAL_MACS`
    and :data:`~dpsgd_kernels._tuning.BLAS_SERIAL_VECTOR_MACS`: reading and setting the count
    would be all the limit does), else :func:`_step_threads`."""
    if (blas_threads == "auto" and step.largest_macs <= _tuning.BLAS_SERIAL_MACS
            and step.largest_vector_macs <= _tuning.BLAS_SERIAL_VECTOR_MACS):
        return _Limit(None, [])
    return _step_threads(blas_threads, step.largest_macs)


def _loss_gradient(y, loss: Loss):
    """The targets and the loss-gradient call :func:`_run` would use for them."""
    if isinstance(y, _CheckedTargets):
        return y.array, loss._grad
    return y, loss.gradient


def _dense_dp_gradient(dense: DenseStep, x, y, loss: Loss, l2_norm_clip: float,
                       stddev: float, denominator: float, rng, blas_threads) -> DPGradient:
    """:func:`dp_gradient` of a stack of Dense layers, one example per microbatch, in one
    pass (:mod:`dpsgd_kernels._dense_step`); arguments validated."""
    targets, loss_grad = _loss_gradient(y, loss)
    with _dense_threads(blas_threads, dense):
        output = dense.forward_backward(x, targets, loss_grad)
        norms = np.sqrt(dense.sq_norms())
        finite_or_raise(norms)
        # C / max(norm, C), already divided by the denominator (one pass fewer over the sum).
        factors = np.maximum(norms, l2_norm_clip)
        np.divide(l2_norm_clip / denominator, factors, out=factors)
        flat = dense.clipped_sum(factors)
    dense.add_noise(flat, stddev / denominator, rng)
    return DPGradient(dense.unflatten(flat), _mean_loss(loss, y, [output]), norms,
                      dense.batch, denominator)


def check_dp_arguments(l2_norm_clip, noise_multiplier, rng, expected_batch_size, num_microbatches):
    """Validate the DP-SGD arguments shared by :func:`dp_gradient` and the naive reference."""
    l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
    noise_multiplier = check_noise_multiplier(noise_multiplier)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if expected_batch_size is not None:
        expected_batch_size = check_finite_positive(expected_batch_size, "expected_batch_size")
        if num_microbatches is not None:
            raise ValueError(
                "num_microbatches must be None with expected_batch_size (the Poisson variant "
                "clips every example separately)"
            )
    return l2_norm_clip, noise_multiplier, expected_batch_size


def dp_gradient(
    model: Sequential,
    x,
    y,
    loss: Loss | str,
    *,
    l2_norm_clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
    num_microbatches: int | None = None,
    expected_batch_size: float | None = None,
    ghost="auto",
    chunk_size="auto",
    blas_threads="auto",
) -> DPGradient:
    """The DP-SGD privatized gradient of one batch (TF Privacy ``DPKerasSGDOptimizer``).

    Parameters
    ----------
    model : Sequential
        The model; its parameters are not changed.
    x, y : array_like
        The batch and its targets (the loss defines the target format).
    loss : Loss or str
        Per-example loss.
    l2_norm_clip : float
        Clipping norm ``C`` of every microbatch gradient, ``0 < C <= 1e12``
        (:data:`~dpsgd_kernels._validation.MAX_L2_NORM_CLIP`).
    noise_multiplier : float
        ``0 <= sigma <= 1e6``; the noise standard deviation is ``sigma * C``.
    rng : numpy.random.Generator
        Source of the noise (pass a seeded generator for reproducible steps).
    num_microbatches : int, optional
        Number of microbatches; must divide the batch size. Default: one per example.
    expected_batch_size : float, optional
        Poisson variant: divide by this (``q * N``) instead of ``num_microbatches``; the batch
        may then be empty.
    ghost : {"auto", True, False}
        Norm computation for Dense/Conv2D layers (see :func:`microbatch_gradient_norms`).
    chunk_size : int, "auto" or None
        Largest number of examples per forward/backward pass, rounded down to whole
        microbatches (at least one): ``"auto"`` (:func:`auto_chunk_size`), an integer, or
        ``None`` for one pass. The result is the same up to rounding; only speed and memory
        change.
    blas_threads : "auto", int or None
        Threads NumPy's BLAS may use during the step; the count in force before is restored
        after it. ``"auto"`` (default): one thread per
        :data:`~dpsgd_kernels._tuning.BLAS_MACS_PER_THREAD` multiply-adds of the step's largest
        product, at least one and at most the BLAS's current count (small models run on one
        thread, where BLAS threading only adds synchronisation; a Dense-stack step whose
        products are all too small for OpenBLAS to split leaves the count alone, see
        :data:`~dpsgd_kernels._tuning.BLAS_SERIAL_MACS`). An integer in ``[1, 4096]``:
        that many. ``None``: leave the BLAS's count alone. The result is the same up to
        rounding; see :mod:`dpsgd_kernels.blas`.

    Raises
    ------
    ValueError
        ``l2_norm_clip`` outside ``(0, 1e12]``, ``noise_multiplier`` outside ``[0, 1e6]``,
        ``num_microbatches`` not dividing the batch, shape mismatches, an empty batch without
        ``expected_batch_size``, ``blas_threads`` not ``"auto"``, ``None`` or an integer in
        ``[1, 4096]``, or non-finite gradients.
    """
    l2_norm_clip, noise_multiplier, expected_batch_size = check_dp_arguments(
        l2_norm_clip, noise_multiplier, rng, expected_batch_size, num_microbatches
    )
    ghost = _check_ghost(ghost)
    chunk_size = _check_chunk_size(chunk_size)
    blas_threads = check_blas_threads(blas_threads)
    model = _check_model(model)
    if isinstance(x, (list, tuple)) and not x:  # an empty Poisson batch given as []
        x = np.zeros((0, *model.input_shape), model.dtype)
    x = model.check_input(x)
    batch = x.shape[0]
    if batch == 0 and expected_batch_size is None:
        raise ValueError("x must hold at least one example (empty batches need the Poisson "
                         "variant, expected_batch_size)")
    if batch == 0:
        sums = [np.zeros_like(p) for p in model.params]
        norms, loss_value, count = np.zeros(0, dtype=model.dtype), float("nan"), 0
    else:
        count, group_size = _group_size(batch, num_microbatches)
        model, x, y, loss = _validated(model, x, y, loss, x_checked=True, targets=True)
        dense = dense_step_for(model, batch) if group_size == 1 and ghost is not False else None
        if dense is not None and _one_pass(model, dense, chunk_size):
            denominator = float(count) if expected_batch_size is None else expected_batch_size
            return _dense_dp_gradient(dense, x, y, loss, l2_norm_clip,
                                      noise_multiplier * l2_norm_clip, denominator, rng,
                                      blas_threads)
        parts = _chunks(model, batch, group_size, chunk_size)
        clipped = _ClippedSums(model, group_size, ghost, l2_norm_clip, len(parts))
        norms, outputs = [], []
        with _step_threads(blas_threads, _largest_product_macs(model, batch, parts)):
            for part in parts:
                outputs.append(_run(model, x[part], _part(y, part), loss))
                norms.append(clipped.add_chunk(part.start // group_size))
            sums = clipped.finish()
        norms = _stacked(norms)
        loss_value = _mean_loss(loss, y, outputs)
    denominator = float(count) if expected_batch_size is None else expected_batch_size
    gradients = _noisy_average(sums, noise_multiplier * l2_norm_clip, denominator, rng)
    return DPGradient(gradients, loss_value, norms, count, denominator)
