"""The DP-SGD step on TensorFlow: vectorized per-example gradients, clipping and noise.

Semantics are TF Privacy's ``DPKerasSGDOptimizer`` (and :func:`dpsgd_kernels.dp_gradient`): the
batch is split into ``num_microbatches`` consecutive microbatches (default: one per example), the
gradient of every microbatch's mean loss is clipped to L2 norm ``C`` over all trainable variables
jointly (``g * C / max(||g||, C)``), the clipped gradients are summed, ``N(0, (sigma C)^2)`` noise
is added to every coordinate and the result is divided by the number of microbatches, or by the
expected batch size ``q N`` in the Poisson variant.

Two vectorized ways to get the per-microbatch gradients, neither looping over examples:

``"vectorized_map"``
    One ``tf.vectorized_map`` over the microbatches of a function running the forward pass and
    ``GradientTape.gradient`` on one microbatch; TensorFlow's pfor turns it into batched kernels.
    Works for any Keras model. (pfor has no batched rule for ``Conv2DBackpropFilter`` and falls
    back to a ``tf.while_loop`` inside the graph for convolution kernels, which is slow.)
``"layerwise"``
    For models made of the supported layers (:data:`~dpsgd_kernels.tf_adapter.convert.
    SUPPORTED_LAYERS`): one forward pass keeping every Dense/Conv2D layer's input and one
    backward pass for the gradients with respect to the pre-activations ("deltas"). A Dense
    layer with one input row per example gets its per-example norms from ``||a||^2 ||d||^2``
    (ghost norm, no per-example gradient formed) and its clipped sum from one matrix product of
    the inputs and the deltas scaled by each example's clip factor (book-keeping: no second
    backward pass). A convolution's per-example kernel gradients come from one grouped filter-
    gradient kernel with the batch moved into the channels (depthwise for one input channel),
    which forms no patch matrices.

``method="auto"`` (default) takes ``"layerwise"`` when the model allows it. Every step runs as one
traced ``ConcreteFunction`` (cached per purpose, microbatch size, injected noise and example
shape, with the batch axis unknown so Poisson batches of any size reuse it) on
:func:`~dpsgd_kernels.tf_adapter.device.default_device` (the GPU when there is one). XLA is not
used: it would compile once per batch size, and Poisson batches vary in size.

Under a ``tf.distribute`` strategy (a model built in ``strategy.scope()``: ``MirroredStrategy``,
``MultiWorkerMirroredStrategy``) a global batch is split so that every example is on exactly
one replica; each replica clips its examples and scales its clipped sum by ``1 / B`` (``B`` the
global batch size, or the expected one ``q N``), replica 0 alone adds the noise
``N(0, (sigma C)^2) / B``, and the Keras optimizer sums the replicas' contributions (its
all-reduce), so the noise is added once per global step. The noise is a counter-based draw
(``tf.random.stateless_normal`` of the seed and the step number): the same seed gives the same
noise on any number of replicas and without a strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dpsgd_kernels._validation import (
    check_array,
    check_finite_positive,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_positive_int,
)
from dpsgd_kernels.tf_adapter._imports import require_tensorflow
from dpsgd_kernels.tf_adapter.convert import numpy_layers
from dpsgd_kernels.tf_adapter.device import default_device
from dpsgd_kernels.tf_adapter.losses import check_targets, is_sparse_loss, per_example_loss

__all__ = ["METHODS", "TFDPGradient", "TFDPStep"]

METHODS = ("auto", "layerwise", "vectorized_map")


@dataclass(frozen=True)
class TFDPGradient:
    """Result of :meth:`TFDPStep.dp_gradient` (NumPy arrays).

    Attributes
    ----------
    gradients : list of numpy.ndarray
        Privatized gradient per trainable variable (Keras ``get_weights()`` order).
    loss : float
        Mean per-example loss (not privatized; ``nan`` for an empty batch).
    norms : numpy.ndarray
        Unclipped L2 norm of every microbatch gradient (not privatized).
    outputs : numpy.ndarray
        Model outputs for the batch (for monitoring metrics; not privatized).
    denominator : float
        What the noisy sum was divided by.
    """

    gradients: list[np.ndarray]
    loss: float
    norms: np.ndarray
    outputs: np.ndarray
    denominator: float


def _check_keras_model(model):
    if not hasattr(model, "trainable_variables") or not callable(model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    if not model.trainable_variables:
        raise ValueError("model must be built and have trainable variables")
    return model


def model_shape(model, attribute: str) -> tuple | None:
    """``model.input_shape`` or ``model.output_shape`` as a tuple with ``None`` for the batch,
    or ``None`` where Keras does not know it (unbuilt, several inputs or outputs)."""
    try:
        shape = getattr(model, attribute)
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, (tuple, list)) and shape and all(
        d is None or isinstance(d, (int, np.integer)) for d in shape
    ):
        return tuple(None if d is None else int(d) for d in shape)
    return None


class TFDPStep:
    """DP-SGD gradients and updates for a Keras model (TF Privacy microbatch semantics).

    Parameters
    ----------
    model : keras.Model
        A built Keras model (Keras 2 or 3); its trainable variables are what is privatized.
    loss : str, keras.losses.Loss or callable
        Any standard Keras loss (reduced per example internally).
    l2_norm_clip : float
        Clipping norm ``0 < C <= 1e12``.
    noise_multiplier : float
        ``0 <= sigma <= 1e6``; the noise standard deviation is ``sigma * C``.
    num_microbatches : int, optional
        Microbatches per batch; must divide every batch. Default: one per example.
    seed : int, optional
        Seed of the noise: step ``k`` (counted by this object from 0) draws
        ``tf.random.stateless_normal`` with the key ``(seed, k)``, so the same seed gives the same
        noise with or without a strategy and on any number of replicas. ``None``: fresh entropy.
    device : str, optional
        TensorFlow device; default :func:`~dpsgd_kernels.tf_adapter.device.default_device`. Must
        be ``None`` under a strategy (the strategy places the replicas).
    method : {"auto", "layerwise", "vectorized_map"}
        How per-microbatch gradients are computed (see the module docstring).
    strategy : tf.distribute.Strategy, optional
        Data-parallel training over the strategy's replicas. Default: the strategy in whose
        scope the model's variables were made (or the current one), none for the default
        strategy. ``num_microbatches`` must then be ``None`` (every example clipped alone).

    Notes
    -----
    Under a strategy, :meth:`apply` and :meth:`dp_gradient` take a global batch: arrays (split
    into contiguous chunks, one per replica, every worker holding the same global batch) or the
    ``(x, y)`` distributed values of a distributed dataset (e.g.
    :func:`~dpsgd_kernels.tf_adapter.distribute.poisson_dataset` through
    ``strategy.distribute_datasets_from_function``). The result is the single-device step on
    the union of the replicas' examples: ``(sum of clipped gradients + N(0, (sigma C)^2 I)) / B``
    with one noise draw per global step, ``B`` the ``expected_batch_size`` or the global batch
    size. The optimizer must be a Keras optimizer made in the strategy's scope: it sums the
    replicas' gradients (the ``tf.distribute`` convention), which is where the contributions
    meet; the first update checks that every local replica holds the same weights after it.
    """

    def __init__(self, model, loss, l2_norm_clip: float, noise_multiplier: float, *,
                 num_microbatches: int | None = None, seed: int | None = None,
                 device: str | None = None, method: str = "auto", strategy=None):
        tf = require_tensorflow()
        self._tf = tf
        self.model = _check_keras_model(model)
        self.loss = loss
        self._loss_fn = per_example_loss(loss)
        self._sparse = is_sparse_loss(loss)
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier)
        self._output_shape = model_shape(model, "output_shape")
        self.num_microbatches = (
            None if num_microbatches is None
            else check_positive_int(num_microbatches, "num_microbatches")
        )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        self.strategy = _model_strategy(tf, model) if strategy is None else strategy
        if self.strategy is not None and not isinstance(self.strategy, tf.distribute.Strategy):
            raise TypeError(f"strategy must be a tf.distribute.Strategy or None, "
                            f"got {type(self.strategy).__name__}")
        if self.strategy is not None and device is not None:
            raise ValueError("device must be None under a tf.distribute strategy (it places the "
                             f"replicas), got {device!r}")
        if self.strategy is not None and (self._output_shape is None
                                          or None in self._output_shape[1:]):
            raise ValueError("model must have a known output shape under a tf.distribute "
                             f"strategy, got {self._output_shape}")
        if self.strategy is not None and self.num_microbatches is not None:
            raise ValueError("num_microbatches must be None under a tf.distribute strategy "
                             "(every example is clipped alone)")
        self.device = default_device() if device is None else device
        self.method = self._choose_method(method)
        self.variables = list(model.trainable_variables)
        self.dtype = tf.as_dtype(self.variables[0].dtype)
        # stateless keys (seed, step): int64, so a seed is taken modulo 2**63
        self.seed = (int(np.random.SeedSequence().generate_state(1, np.uint64)[0]) >> 1
                     if seed is None else seed % 2**63)
        self.steps_drawn = 0
        self._concrete: dict[tuple, object] = {}
        self._distributed: dict[tuple, object] = {}
        self._synced_checked = False
        self._local_ids: list[int] | None = None
        self._denominators: dict[float, object] = {}
        self._apply_optimizer = None

    def _choose_method(self, method) -> str:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if method == "vectorized_map":
            return method
        try:
            numpy_layers(self.model)
            supported = type(self.model).__name__ == "Sequential" and len(
                self.model.trainable_variables) == len(self.model.get_weights())
        except (ValueError, TypeError, AttributeError, KeyError):
            supported = False
        if method == "layerwise" and not supported:
            raise ValueError("method='layerwise' needs a Sequential of the supported layers "
                             "(Dense, Conv2D, MaxPooling2D, Flatten); use 'vectorized_map'")
        return "layerwise" if supported else "vectorized_map"

    # ----- graph code ------------------------------------------------------------------------

    def _microbatch_gradients(self, x, y, group: int):
        if self.method == "layerwise":
            return self._layerwise_gradients(x, y, group)
        return self._vectorized_gradients(x, y, group)

    def _layerwise_pass(self, x, y, group: int):
        """One forward and one backward pass keeping every linear layer's input and delta.

        Returns ``(records, losses, outputs)``. ``records`` holds per Dense/Conv2D layer
        ``(layer, inputs, delta)``: a Dense layer's input rows, ``(n, K)`` for a rank-2 input or
        ``(n, T, K)``, and the gradient of the microbatch-mean loss with respect to its
        pre-activation, ``(n, P)`` or ``(n, T, P)``; a convolution's input image ``(n, H, W, C)``
        and the gradient with respect to its pre-activation ``(n, H', W', P)``.
        """
        tf = self._tf
        n = tf.shape(x)[0]
        inputs, pre_activations, linear = [], [], []
        with tf.GradientTape() as tape:
            h = x
            for layer in self.model.layers:
                kind = type(layer).__name__
                if kind == "InputLayer":
                    continue
                if kind not in ("Dense", "Conv2D"):
                    h = layer(h)
                    continue
                kernel = tf.convert_to_tensor(layer.kernel)
                if kind == "Dense" and h.shape.rank == 2:
                    a = h
                    z = tf.matmul(h, kernel)
                elif kind == "Dense":
                    features = kernel.shape[0]
                    a = tf.reshape(h, [n, -1, features])
                    z = tf.reshape(tf.matmul(tf.reshape(a, [-1, features]), kernel),
                                   tf.concat([tf.shape(h)[:-1], [kernel.shape[1]]], 0))
                else:
                    a = h
                    z = tf.nn.conv2d(h, kernel, strides=[1, *layer.strides, 1],
                                     padding=layer.padding.upper())
                if layer.use_bias:
                    z = tf.nn.bias_add(z, tf.convert_to_tensor(layer.bias))
                inputs.append(a)
                pre_activations.append(z)
                linear.append(layer)
                h = layer.activation(z)
            outputs = h
            losses = self._loss_fn(y, outputs)
            total = tf.reduce_sum(losses)
            if group > 1:
                total = total / tf.cast(group, losses.dtype)
        deltas = tape.gradient(total, pre_activations)
        records = []
        for a, delta, layer in zip(inputs, deltas, linear, strict=True):
            if type(layer).__name__ == "Dense" and a.shape.rank == 3:
                delta = tf.reshape(delta, [n, -1, layer.kernel.shape[-1]])
            records.append((layer, a, delta))
        return records, losses, outputs

    def _conv_example_kernel_grads(self, h, delta, layer):
        """Every example's kernel gradient of a convolution, ``(kh * kw * C, n, P)``.

        The batch goes into the channels of one image: the filter gradient of a grouped
        convolution with one group per example (``C = 1``: a depthwise one) is the stack of the
        per-example filter gradients, one batched kernel and no patch matrices.
        """
        tf = self._tf
        kh, kw, channels, filters = layer.kernel.shape
        n = tf.shape(h)[0]
        size = tf.shape(h)
        out_size = tf.shape(delta)
        strides = [1, *layer.strides, 1]
        padding = layer.padding.upper()
        out = tf.reshape(tf.transpose(delta, [1, 2, 0, 3]),
                         tf.stack([1, out_size[1], out_size[2], n * filters]))
        if channels == 1:
            image = tf.transpose(h, [3, 1, 2, 0])
            grads = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=image, filter_sizes=tf.stack([kh, kw, n, filters]), out_backprop=out,
                strides=strides, padding=padding)
        else:
            image = tf.reshape(tf.transpose(h, [1, 2, 0, 3]),
                               tf.stack([1, size[1], size[2], n * channels]))
            grads = tf.raw_ops.Conv2DBackpropFilter(
                input=image, filter_sizes=tf.stack([kh, kw, channels, n * filters]),
                out_backprop=out, strides=strides, padding=padding)
        return tf.reshape(grads, tf.stack([kh * kw * channels, n, filters]))

    def _record_gradients(self, record, group: int):
        """``(kernel, bias)`` gradients of every microbatch for one layer record.

        Layouts: a Dense layer with one row per microbatch gives ``None`` for the kernel (its
        gradient is the outer product of input and delta, never formed); others give the kernel
        as ``(m, K, P)`` (Dense) or ``(kh * kw * C, m, P)`` (Conv2D). Bias: ``(m, P)`` or
        ``None``.
        """
        tf = self._tf
        layer, a, delta = record
        p = layer.kernel.shape[-1]
        if type(layer).__name__ == "Conv2D":
            grads = self._conv_example_kernel_grads(a, delta, layer)
            bias = tf.reduce_sum(delta, axis=[1, 2]) if layer.use_bias else None
            if group > 1:
                grads = tf.reduce_sum(tf.reshape(grads, [grads.shape[0], -1, group, p]), axis=2)
                bias = None if bias is None else tf.reduce_sum(tf.reshape(bias, [-1, group, p]), 1)
            return grads, bias
        if a.shape.rank == 2 and group == 1:
            return None, (delta if layer.use_bias else None)
        k = layer.kernel.shape[0]
        a_m = tf.reshape(a, [-1, group * (1 if a.shape.rank == 2 else tf.shape(a)[1]), k])
        d_m = tf.reshape(delta, [-1, tf.shape(a_m)[1], p])
        grads = tf.matmul(a_m, d_m, transpose_a=True)
        return grads, (tf.reduce_sum(d_m, axis=1) if layer.use_bias else None)

    def _layerwise_gradients(self, x, y, group: int):
        """Per-microbatch gradients, materialised ``(m, *variable.shape)`` per variable."""
        tf = self._tf
        records, losses, outputs = self._layerwise_pass(x, y, group)
        grads = []
        for record in records:
            layer, a, delta = record
            kernel, bias = self._record_gradients(record, group)
            if kernel is None:  # Dense, one row per example: the outer product
                kernel = a[:, :, None] * delta[:, None, :]
            elif type(layer).__name__ == "Conv2D":
                kernel = tf.transpose(kernel, [1, 0, 2])
            grads.append(tf.reshape(kernel, tf.concat([[-1], layer.kernel.shape], 0)))
            if bias is not None:
                grads.append(bias)
        return grads, losses, outputs

    def _layerwise_clipped_sum(self, x, y, group: int, clip, scale):
        """``(scale * clipped sums, losses, norms, outputs)``, forming few gradients.

        Norms: a Dense layer with one input row per microbatch uses ``||a||^2 ||d||^2`` ("ghost
        norm", nothing per example is formed); a convolution reduces its per-example kernel
        gradients (:meth:`_conv_example_kernel_grads`); other Dense layers reduce a batched
        matrix product. Sums ("book-keeping", no second backward pass): the stored inputs times
        the deltas scaled by each example's clip factor (Dense), or the per-example gradients
        weighted by the factors (Conv2D).
        """
        tf = self._tf
        records, losses, outputs = self._layerwise_pass(x, y, group)
        sq_norms, kept = [], []
        for record in records:
            layer, a, delta = record
            kernel, bias = self._record_gradients(record, group)
            if kernel is None:
                sq_a = tf.reduce_sum(tf.square(a), axis=1)
                sq_d = tf.reduce_sum(tf.square(delta), axis=1)
                sq_norms.append(sq_d * (sq_a + 1.0) if layer.use_bias else sq_d * sq_a)
            elif type(layer).__name__ == "Conv2D":
                # (R, m, P): a matrix product sums the squares over R without a reduce_sum
                # over the non-adjacent axes (0, 2), which is slow.
                rows = kernel.shape[0]
                squares = tf.reshape(tf.square(kernel), [rows, -1])
                column_sums = tf.matmul(tf.ones([1, rows], squares.dtype), squares)
                sq_norms.append(tf.reduce_sum(tf.reshape(column_sums, [-1, kernel.shape[2]]), 1))
            else:
                sq_norms.append(tf.reduce_sum(tf.square(kernel), axis=[1, 2]))
            if kernel is not None and bias is not None:
                sq_norms.append(tf.reduce_sum(tf.square(bias), axis=1))
            kept.append((kernel, bias))
        norms = tf.sqrt(tf.add_n(sq_norms))
        factors = clip * scale / tf.maximum(norms, clip)
        per_example = tf.repeat(factors, group) if group > 1 else factors
        m = tf.shape(factors)[0]
        sums, column = [], None
        for (layer, a, delta), (kernel, bias) in zip(records, kept, strict=True):
            p = layer.kernel.shape[-1]
            if type(layer).__name__ == "Conv2D":
                weights = tf.broadcast_to(factors[None, None, :], [kernel.shape[0], 1, m])
                total = tf.matmul(weights, kernel)  # (R, 1, P): sum over the microbatches
                sums.append(tf.reshape(total, layer.kernel.shape))
                if bias is not None:
                    sums.append(tf.linalg.matvec(bias, factors, transpose_a=True))
                continue
            if a.shape.rank == 2:
                if column is None:
                    column = per_example[:, None]
                weighted = delta * column
            else:
                weighted = tf.reshape(delta * per_example[:, None, None], [-1, p])
                a = tf.reshape(a, [-1, layer.kernel.shape[0]])
            sums.append(tf.matmul(a, weighted, transpose_a=True))
            if layer.use_bias:
                sums.append(tf.reduce_sum(weighted, axis=0))
        return sums, losses, norms, outputs

    def _vectorized_gradients(self, x, y, group: int):
        """``(grads per microbatch [(m, *shape)], per-example losses (n,), outputs (n, ...))``."""
        tf = self._tf
        n = tf.shape(x)[0]
        m = n // group
        xs = tf.reshape(x, tf.concat([[m, group], tf.shape(x)[1:]], 0))
        ys = tf.reshape(y, tf.concat([[m, group], tf.shape(y)[1:]], 0))

        def one_microbatch(args):
            xb, yb = args
            with tf.GradientTape() as tape:
                outputs = self.model(xb, training=True)
                losses = self._loss_fn(yb, outputs)
                mean = tf.reduce_mean(losses)
            grads = tape.gradient(mean, self.variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return grads, losses, outputs

        grads, losses, outputs = tf.vectorized_map(one_microbatch, (xs, ys))
        losses = tf.reshape(losses, [-1])
        outputs = tf.reshape(outputs, tf.concat([[n], tf.shape(outputs)[2:]], 0))
        return grads, losses, outputs

    def _noise(self, stddev, key, noise=None):
        """Gaussian noise of standard deviation ``stddev`` per variable.

        ``noise`` (standard-normal draws, one per variable) times ``stddev``, or one stateless
        draw for all variables under the int64 ``key`` ``(seed, step)``, split up (one random op
        instead of one per variable).
        """
        tf = self._tf
        if noise is not None:
            return [stddev * tf.cast(draw, self.dtype) for draw in noise]
        sizes = [int(np.prod(var.shape)) for var in self.variables]
        draws = tf.split(tf.random.stateless_normal([sum(sizes)], key, stddev=stddev,
                                                    dtype=self.dtype), sizes)
        return [tf.reshape(draw, var.shape) for draw, var in zip(draws, self.variables,
                                                                  strict=True)]

    def _privatize(self, x, y, group: int, denominator, key, noise=None, add_noise=True):
        """``(noisy clipped sum / denominator per variable, mean loss, norms, outputs)``.

        The division is folded into the clip factors and the noise scale, so every variable
        costs one weighted sum and one multiply-add of noise.
        """
        tf = self._tf
        clip = tf.constant(self.l2_norm_clip, self.dtype)
        scale = 1.0 / tf.cast(denominator, self.dtype)
        if self.method == "layerwise":
            sums, losses, norms, outputs = self._layerwise_clipped_sum(x, y, group, clip, scale)
        else:
            grads, losses, outputs = self._vectorized_gradients(x, y, group)
            m = tf.shape(grads[0])[0]
            norms = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.reshape(g, [m, -1])), axis=1)
                                      for g in grads]))
            factors = clip * scale / tf.maximum(norms, clip)
            sums = [tf.tensordot(factors, g, axes=1) for g in grads]
        if add_noise and (noise is not None or self.noise_multiplier):
            stddev = tf.constant(self.noise_multiplier * self.l2_norm_clip, self.dtype) * scale
            sums = [total + draw
                    for total, draw in zip(sums, self._noise(stddev, key, noise), strict=True)]
        return sums, tf.reduce_mean(losses), norms, outputs

    def _noise_only(self, denominator, key, noise=None):
        tf = self._tf
        scale = tf.constant(self.noise_multiplier * self.l2_norm_clip, self.dtype) / tf.cast(
            denominator, self.dtype)
        if noise is None and not self.noise_multiplier:
            return [tf.zeros(var.shape, self.dtype) for var in self.variables]
        return self._noise(scale, key, noise)

    def _next_key(self):
        """The int64 key ``(seed, step)`` of the next step's noise; counts the step."""
        key = self._tf.constant([self.seed, self.steps_drawn], self._tf.int64)
        self.steps_drawn += 1
        return key

    # ----- Python-side helpers ---------------------------------------------------------------

    def _tensor_inputs(self, x, y):
        """``(x, y)`` for TensorFlow tensors without a round trip through NumPy, or ``None``."""
        tf = self._tf
        if not (isinstance(x, tf.Tensor) and isinstance(y, tf.Tensor)):
            return None
        if self._sparse and not y.dtype.is_integer:
            return None  # the NumPy path checks that float labels are whole numbers
        if x.shape.rank == 0 or y.shape.rank == 0 or x.shape[0] != y.shape[0]:
            return None  # the NumPy path raises the error
        x = x if x.dtype == self.dtype else tf.cast(x, self.dtype)
        target = tf.int64 if self._sparse else self.dtype
        return x, (y if y.dtype == target else tf.cast(y, target))

    def _inputs(self, x, y):
        tf = self._tf
        tensors = self._tensor_inputs(x, y)
        if tensors is not None:
            return tensors
        x_array = check_array(x, "x", dtype=np.dtype(self.dtype.name))
        if x_array.ndim == 0:
            raise ValueError("x must be an array with a leading batch axis")
        y_array = np.asarray(y)
        if y_array.ndim == 0 or y_array.shape[0] != x_array.shape[0]:
            raise ValueError(
                f"y must hold one target per example of x ({x_array.shape[0]}), "
                f"got shape {y_array.shape}"
            )
        output = self._output_shape
        if output is not None and len(output) == 2 and output[1] is not None:
            check_targets(self.loss, y_array, (len(y_array), output[1]))  # e.g. BCE labels 0/5
        if not self._sparse:
            return tf.convert_to_tensor(x_array), tf.convert_to_tensor(y_array, self.dtype)
        if y_array.dtype.kind == "f" and not np.all(y_array == np.round(y_array)):
            raise ValueError("y must hold integer class labels for a sparse loss")
        return tf.convert_to_tensor(x_array), tf.convert_to_tensor(y_array.astype(np.int64))

    def _split(self, batch: int, expected_batch_size) -> tuple[int, float]:
        """``(examples per microbatch, denominator)`` after validating the split."""
        if expected_batch_size is not None:
            expected = check_finite_positive(expected_batch_size, "expected_batch_size")
            if self.num_microbatches is not None:
                raise ValueError(
                    "num_microbatches must be None with expected_batch_size (the Poisson variant "
                    "clips every example separately)"
                )
            return 1, expected
        if batch == 0:
            raise ValueError("x must hold at least one example (empty batches need the Poisson "
                             "variant, expected_batch_size)")
        if self.num_microbatches is None:
            return 1, float(batch)
        if batch % self.num_microbatches:
            raise ValueError(
                f"num_microbatches must divide the batch size {batch}, got {self.num_microbatches}"
            )
        return batch // self.num_microbatches, float(self.num_microbatches)

    def _noise_tensors(self, noise):
        if noise is None:
            return None
        noise = list(noise)
        shapes = [tuple(v.shape) for v in self.variables]
        if len(noise) != len(shapes) or any(
            np.shape(n) != s for n, s in zip(noise, shapes, strict=True)
        ):
            raise ValueError(
                f"noise must be one standard-normal array per variable, shapes {shapes}"
            )
        return [self._tf.convert_to_tensor(np.asarray(n), dtype=self.dtype) for n in noise]

    # ----- public API ------------------------------------------------------------------------

    def _compiled(self, purpose: str, x, y, group: int, noise=None):
        """The traced step for ``purpose`` and this batch layout, cached.

        ``purpose`` is ``"per_example"`` (arguments ``x, y``), ``"gradient"`` or ``"apply"``
        (``x, y, denominator, key, *noise``). The batch axis is left unknown, so Poisson batches of
        any size reuse one graph; ``group`` and whether noise is injected are traced in. A
        ``ConcreteFunction`` is called to skip ``tf.function``'s per-call argument dispatch.
        """
        key = (purpose, group, noise is not None, x.dtype, tuple(x.shape[1:]), y.dtype,
               tuple(y.shape[1:]))
        function = self._concrete.get(key)
        if function is not None:
            return function
        tf = self._tf
        optimizer = self._apply_optimizer
        specs = [tf.TensorSpec([None, *x.shape[1:]], x.dtype),
                 tf.TensorSpec([None, *y.shape[1:]], y.dtype)]
        if purpose == "per_example":
            def body(x, y):
                return self._microbatch_gradients(x, y, group)
        else:
            specs += [tf.TensorSpec([], tf.float64), tf.TensorSpec([2], tf.int64)]
            if noise is not None:
                specs += [tf.TensorSpec(var.shape, self.dtype) for var in self.variables]

            def body(x, y, denominator, key, *draws):
                result = self._privatize(x, y, group, denominator, key, list(draws) or None)
                if purpose == "gradient":
                    return result
                grads, loss, _, outputs = result
                optimizer.apply_gradients(zip(grads, self.variables, strict=True))
                return loss, outputs
        with tf.device(self.device):
            function = tf.function(body).get_concrete_function(*specs)
        self._concrete[key] = function
        return function

    def _denominator(self, value: float):
        """A float64 scalar tensor of ``value`` (cached: creating one costs a little per step)."""
        tensor = self._denominators.get(value)
        if tensor is None:
            if len(self._denominators) > 64:
                self._denominators.clear()
            tensor = self._denominators[value] = self._tf.constant(value, self._tf.float64)
        return tensor

    def per_example_gradients(self, x, y) -> list[np.ndarray]:
        """Gradient of every microbatch's mean loss (every example's by default).

        Returns one array ``(num_microbatches, *variable.shape)`` per trainable variable.
        """
        x, y = self._inputs(x, y)
        group, _ = self._split(int(x.shape[0]), None)
        with self._tf.device(self.device):
            grads, _, _ = self._compiled("per_example", x, y, group)(x, y)
        return [g.numpy() for g in grads]

    def _prepared(self, x, y, expected_batch_size, noise):
        """A step's inputs as the compiled functions take them: ``(x, y, batch, group,
        denominator, denominator tensor, noise tensors)``."""
        x, y = self._inputs(x, y)
        batch = int(x.shape[0])
        group, denominator = self._split(batch, expected_batch_size)
        return (x, y, batch, group, denominator, self._denominator(denominator),
                self._noise_tensors(noise))

    def _run(self, x, y, expected_batch_size, noise):
        tf = self._tf
        if self.strategy is not None:
            return self._run_distributed("gradient", None, x, y, expected_batch_size, noise)
        x, y, batch, group, denominator, denominator_t, noise = self._prepared(
            x, y, expected_batch_size, noise
        )
        key = self._next_key()
        with tf.device(self.device):
            if batch == 0:
                grads = self._noise_only(denominator_t, key, noise)
                empty = np.zeros((0,) + tuple(self.model.output_shape[1:]), self.dtype.name)
                return grads, tf.constant(np.nan), tf.zeros([0], self.dtype), empty, denominator
            function = self._compiled("gradient", x, y, group, noise)
            grads, loss, norms, outputs = function(x, y, denominator_t, key, *(noise or ()))
        return grads, loss, norms, outputs, denominator

    def dp_gradient(self, x, y, *, expected_batch_size: float | None = None,
                    noise: Sequence[np.ndarray] | None = None) -> TFDPGradient:
        """The privatized gradient of one batch (the model is not changed).

        Parameters
        ----------
        x, y : array_like
            The batch and its targets.
        expected_batch_size : float, optional
            Poisson variant: divide by ``q N`` instead of the number of microbatches (the batch
            may then be empty).
        noise : sequence of array_like, optional
            Standard-normal draws to use instead of the step's generator, one per variable (they
            are multiplied by ``sigma C``); lets a test inject the NumPy kernel's noise.
        """
        grads, loss, norms, outputs, denominator = self._run(x, y, expected_batch_size, noise)
        return TFDPGradient([np.asarray(g) for g in grads], float(loss), np.asarray(norms),
                            np.asarray(outputs), denominator)

    def apply(self, optimizer, x, y, *, expected_batch_size: float | None = None,
              noise: Sequence[np.ndarray] | None = None):
        """One DP-SGD update: privatized gradient, then ``optimizer.apply_gradients``.

        Returns ``(loss, outputs)`` as tensors (mean loss and the model outputs, not privatized).
        """
        tf = self._tf
        if self._apply_optimizer is not optimizer:
            already = getattr(optimizer, "built", False) or getattr(optimizer, "_built", False)
            if not already and callable(getattr(optimizer, "build", None)):
                if self.strategy is not None:
                    with self.strategy.scope():  # slots mirrored like the model's variables
                        optimizer.build(self.variables)
                else:
                    optimizer.build(self.variables)  # create slots outside the tf.function
            self._apply_optimizer = optimizer
            self._concrete = {key: fn for key, fn in self._concrete.items() if key[0] != "apply"}
            self._distributed = {k: fn for k, fn in self._distributed.items() if k[0] != "apply"}
        if self.strategy is not None:
            loss, _, _, outputs, _ = self._run_distributed("apply", optimizer, x, y,
                                                           expected_batch_size, noise)
            if not self._synced_checked:
                self._check_replicas_agree()
            return loss, outputs
        x, y, batch, group, _, denominator_t, noise = self._prepared(
            x, y, expected_batch_size, noise
        )
        key = self._next_key()
        with tf.device(self.device):
            if batch == 0:
                grads = self._noise_only(denominator_t, key, noise)
                optimizer.apply_gradients(zip(grads, self.variables, strict=True))
                return tf.constant(np.nan), None
            function = self._compiled("apply", x, y, group, noise)
            return function(x, y, denominator_t, key, *(noise or ()))

    # ----- under a tf.distribute strategy ---------------------------------------------------

    def _replica_step(self, purpose: str, x, y, denominator, key, draws, count: bool):
        """One replica's part of a global step (runs inside ``strategy.run``).

        The replica's clipped sum times ``1 / B``, plus, on replica 0 only, the noise
        ``N(0, (sigma C)^2) / B``; for ``"apply"`` the Keras optimizer sums these over the
        replicas, for ``"gradient"`` they are summed here. ``count``: ``B`` is the global number
        of examples (one all-reduce of the replicas' counts) instead of ``denominator``.
        """
        tf = self._tf
        ctx = tf.distribute.get_replica_context()
        x = tf.cast(x, self.dtype)
        y = tf.cast(y, tf.int64 if self._sparse else self.dtype)
        n = tf.shape(x)[0]
        if count:
            denominator = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(n, tf.float64))
            denominator = tf.maximum(denominator, 1.0)  # no example anywhere: nothing to scale

        def examples():
            sums, loss, norms, outputs = self._privatize(x, y, 1, denominator, key,
                                                         add_noise=False)
            return sums, loss * tf.cast(n, self.dtype), norms, outputs

        def no_examples():  # a replica can draw no example of a Poisson batch
            return ([tf.zeros(v.shape, self.dtype) for v in self.variables],
                    tf.zeros([], self.dtype), tf.zeros([0], self.dtype),
                    tf.zeros([0, *self._output_shape[1:]], self.dtype))

        sums, loss_sum, norms, outputs = tf.cond(n > 0, examples, no_examples)
        if draws or self.noise_multiplier:
            stddev = tf.constant(self.noise_multiplier * self.l2_norm_clip,
                                 self.dtype) / tf.cast(denominator, self.dtype)
            noise = tf.cond(tf.equal(ctx.replica_id_in_sync_group, 0),
                            lambda: self._noise(stddev, key, list(draws) or None),
                            lambda: [tf.zeros(v.shape, self.dtype) for v in self.variables])
            sums = [total + draw for total, draw in zip(sums, noise, strict=True)]
        totals = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                tf.stack([loss_sum, tf.cast(n, self.dtype)]))
        loss = totals[0] / totals[1]  # nan when the global batch is empty
        # outputs and norms stay on their replica (all_gather fails when every replica is empty)
        if purpose == "gradient":
            sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
            return sums, loss, norms, outputs, denominator
        self._apply_optimizer.apply_gradients(zip(sums, self.variables, strict=True))
        return loss, outputs, denominator

    def _distributed_function(self, purpose: str, injected: bool, count: bool):
        key = (purpose, injected, count)
        function = self._distributed.get(key)
        if function is None:
            strategy = self.strategy

            def body(x, y, denominator, step_key, *draws):
                return strategy.run(self._replica_step,
                                    args=(purpose, x, y, denominator, step_key, draws, count))

            function = self._distributed[key] = self._tf.function(body, reduce_retracing=True)
        return function

    def split(self, x, y):
        """``(x, y)`` of a global batch as distributed values: contiguous chunks of sizes
        differing by at most one, chunk ``r`` on replica ``r`` (every example on exactly one)."""
        x, y = self._inputs(x, y)
        starts = self._starts(int(x.shape[0]))

        def chunk(ctx):
            r = ctx.replica_id_in_sync_group
            return x[starts[r]:starts[r + 1]], y[starts[r]:starts[r + 1]]

        return self.strategy.experimental_distribute_values_from_function(chunk)

    def _run_distributed(self, purpose, optimizer, x, y, expected_batch_size, noise):
        """``(loss, grads or None, norms or None, outputs, denominator)`` of one global step."""
        tf = self._tf
        if expected_batch_size is not None:
            expected_batch_size = check_finite_positive(expected_batch_size,
                                                        "expected_batch_size")
        distributed = isinstance(x, tf.distribute.DistributedValues)
        if distributed != isinstance(y, tf.distribute.DistributedValues):
            raise TypeError("x and y must both be distributed values (from a distributed "
                            "dataset) or both arrays")
        if not distributed:
            batch = int(np.shape(x)[0]) if not isinstance(x, tf.Tensor) else int(x.shape[0])
            if batch == 0 and expected_batch_size is None:
                raise ValueError("x must hold at least one example (empty batches need the "
                                 "Poisson variant, expected_batch_size)")
            x, y = self.split(x, y)
        count = expected_batch_size is None
        denominator = self._denominator(1.0 if count else expected_batch_size)
        noise = self._noise_tensors(noise)
        function = self._distributed_function(purpose, noise is not None, count)
        result = function(x, y, denominator, self._next_key(), *(noise or ()))
        local = self.strategy.experimental_local_results
        if purpose == "apply":
            loss, outputs, used = result
            return (local(loss)[0], None, None, tf.concat(local(outputs), 0),
                    float(local(used)[0]))
        grads, loss, norms, outputs, used = result
        grads = [local(g)[0] for g in grads]
        return (grads, local(loss)[0], tf.concat(local(norms), 0), tf.concat(local(outputs), 0),
                float(local(used)[0]))

    def local_rows(self, batch: int) -> slice:
        """The rows of a global batch of ``batch`` examples (split by :meth:`split`) that this
        worker's replicas hold: the rows of the outputs :meth:`apply` returns under a strategy
        (all of them on one worker)."""
        if self._local_ids is None:
            ids = self.strategy.experimental_distribute_values_from_function(
                lambda ctx: ctx.replica_id_in_sync_group)
            self._local_ids = [int(i) for i in self.strategy.experimental_local_results(ids)]
        starts = self._starts(batch)
        return slice(starts[min(self._local_ids)], starts[max(self._local_ids) + 1])

    def _starts(self, batch: int) -> list[int]:
        replicas = self.strategy.num_replicas_in_sync
        size, extra = divmod(batch, replicas)  # the first `extra` chunks hold one more
        return [r * size + min(r, extra) for r in range(replicas + 1)]

    def _check_replicas_agree(self) -> None:
        """After the first update: every local replica holds the same weights, i.e. the
        optimizer summed the replicas' contributions (noise only on replica 0 otherwise)."""
        self._synced_checked = True
        for variable in self.variables:
            values = self.strategy.experimental_local_results(_tf_variable(self._tf, variable))
            first = np.asarray(values[0])
            if any(not np.array_equal(first, np.asarray(v)) for v in values[1:]):
                raise RuntimeError(
                    "the optimizer did not sum the replicas' gradients (the replicas' weights "
                    "differ after the update): use a Keras optimizer made in strategy.scope()"
                )


def _model_strategy(tf, model):
    """The strategy in whose scope the model's variables were made, or the current one;
    ``None`` for the default (no) strategy."""
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    variable = _tf_variable(tf, model.trainable_variables[0])
    if isinstance(variable, tf.distribute.DistributedValues):
        return variable.distribute_strategy
    return None


def _tf_variable(tf, variable):
    """The ``tf.Variable`` behind a Keras variable (Keras 3 wraps it in ``.value``)."""
    return variable if isinstance(variable, tf.Variable) else variable.value
