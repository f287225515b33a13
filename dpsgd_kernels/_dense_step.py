"""The DP step of a stack of Dense layers on flat input, in one pass over shared work arrays.

For a model made of Dense layers only (one row per example, Keras' MLPs) every quantity of
:func:`~dpsgd_kernels.dp_step.dp_gradient` is a handful of small matrix products, and the step's
cost is the number of NumPy calls rather than arithmetic. :class:`DenseStep` lays the step out so
that the number of calls does not grow with the per-layer bookkeeping of the general path:

- the inputs of all layers, each followed by a row of ones where the layer has a bias, are
  stacked in one ``(sum(K + 1), n)`` array (transposed: one column per example), and the
  forward products write each layer's activation straight into the next layer's rows
  (``matmul(..., out=...)``);
- the deltas of all layers are stacked in one ``(sum(P), n)`` array, filled by the backward
  products the same way;
- per-example gradient norms are ghost norms (Goodfellow 2015; Li et al. 2022, ghost
  clipping): for one row per example ``||a_i^T d_i||^2 + ||d_i||^2 = (||a_i||^2 + 1)
  ||d_i||^2``, the ``+ 1`` being the row of ones. The per-layer squared norms of all layers
  are two products of the squared arrays with 0/1 layer-by-row indicator matrices, so the
  norms take six calls whatever the depth;
- the clipped sum of a layer is ``[a, 1]^T (f * d)`` (book-keeping, Bu et al. 2023: no second
  backward pass), a ``(K + 1, P)`` block whose rows are the kernel's gradient and then the
  bias's: exactly the layer's parameters in Keras order, so each product is written straight
  into its place in the flat gradient, and the noise is added to that flat array in place.

The noise is drawn as in the general path (one ``standard_normal`` call of the total parameter
count, in Keras parameter order), so both paths give the same privatized gradient up to float
rounding from generators in the same state. The division by the denominator is folded into the
clip factors and the noise scale: ``sum_i (f_i / m) g_i + (sigma C / m) N``, the same Gaussian
mechanism output as ``(sum_i f_i g_i + sigma C N) / m`` (exactly in law, to rounding in value).
"""

from __future__ import annotations

import math

import numpy as np

from dpsgd_kernels.layers import Dense
from dpsgd_kernels.losses import EPSILON, BinaryCrossentropy
from dpsgd_kernels.model import Sequential

__all__ = ["DenseStep", "dense_step_for"]

_HIDDEN_ACTIVATIONS = ("relu", "linear")


def _eligible(model: Sequential) -> bool:
    """Dense layers only, flat input, and hidden activations that may be applied in place
    (ReLU, linear: their backward needs only the output, which the next layer keeps)."""
    layers = model.layers
    return (
        len(model.input_shape) == 1
        and all(type(layer) is Dense for layer in layers)
        and all(layer.activation.name in _HIDDEN_ACTIVATIONS for layer in layers[:-1])
    )


def dense_step_for(model: Sequential, batch: int) -> DenseStep | None:
    """The model's :class:`DenseStep` for batches of ``batch`` examples (kept on the model and
    reused), or ``None`` where the model is not a stack of Dense layers on flat input."""
    cache = model.__dict__.get("_dense_steps")
    if cache is None:
        cache = model.__dict__["_dense_steps"] = {} if _eligible(model) else None
    if cache is None:
        return None
    step = cache.get(batch)
    if step is None:
        if len(cache) >= 4:  # Poisson batches vary in size: keep a few, not one per size
            cache.clear()
        step = cache[batch] = DenseStep(model, batch)
    return step


class DenseStep:
    """Work arrays and row layout of the Dense-stack DP step for one batch size.

    The arrays are stored transposed, one row per feature and one column per example: every
    layer's block of rows is then a contiguous slab, so the element-wise passes (bias, ReLU and
    its derivative, squares, clip weights) run on contiguous memory and each product reads and
    writes whole slabs.
    """

    def __init__(self, model: Sequential, batch: int) -> None:
        dtype = model.dtype
        self.layers = layers = list(model.layers)
        self.dtype = dtype
        self.batch = batch
        self.auto_chunk: int | None = None  # auto_chunk_size(model), set by the first step
        a_rows, d_rows, blocks, start_a, start_d, start_g = [], [], [], 0, 0, 0
        for layer in layers:
            k, p, bias = layer.in_features, layer.out_features, int(layer.use_bias)
            a_rows.append((start_a, start_a + k, start_a + k + bias))
            d_rows.append((start_d, start_d + p))
            blocks.append((start_g, start_g + k * p, start_g + (k + bias) * p))
            start_a, start_d, start_g = start_a + k + bias, start_d + p, start_g + (k + bias) * p
        self.a_rows, self.d_rows, self.blocks, self.size = a_rows, d_rows, blocks, start_g
        self.acts = np.empty((start_a, batch), dtype=dtype)  # inputs of every layer, transposed
        for (_, stop, end) in a_rows:
            self.acts[stop:end] = 1  # the bias rows, written once
        self.deltas = np.empty((start_d, batch), dtype=dtype)
        self.weighted = np.empty((start_d, batch), dtype=dtype)
        self.noise: np.ndarray | None = None  # the noise draw's work array, made when needed
        # Layer-by-row indicators: squared column norms of every layer's slab in one product.
        self.seg_a = np.zeros((len(layers), start_a), dtype=dtype)
        self.seg_d = np.zeros((len(layers), start_d), dtype=dtype)
        for index, ((a0, _, a1), (d0, d1)) in enumerate(zip(a_rows, d_rows, strict=True)):
            self.seg_a[index, a0:a1] = 1
            self.seg_d[index, d0:d1] = 1
        self.ones = np.ones(len(layers), dtype=dtype)
        self.sigmoid_bce = layers[-1].activation.name == "sigmoid"
        # Largest product of the step (multiply-adds), and largest matrix-vector product (one
        # output unit, or the sum over a single layer's norms), for the BLAS thread choice.
        self.largest_macs = max(
            [batch * (end - start) * (d1 - d0)
             for (start, _, end), (d0, d1) in zip(a_rows, d_rows, strict=True)]
            + [batch * start_a * len(layers), batch * start_d * len(layers)]
        )
        self.largest_vector_macs = max(
            [batch * (end - start) for (start, _, end), (d0, d1) in zip(a_rows, d_rows,
                                                                        strict=True)
             if d1 - d0 == 1]
            + [batch * len(layers)] + ([batch * start_a, batch * start_d] if len(layers) == 1
                                       else [])
        )

    def forward_backward(self, x: np.ndarray, y, loss_grad):
        """Forward pass on validated ``x`` (``(batch, K0)``), then the deltas of every layer.

        ``loss_grad(y, output)`` is the loss' gradient with respect to the model output.
        Returns the model output ``(batch, units)`` (a view of a fresh array)."""
        acts, deltas, layers, a_rows = self.acts, self.deltas, self.layers, self.a_rows
        start, stop, _ = a_rows[0]
        acts[start:stop] = x.T
        for index, layer in enumerate(layers[:-1]):
            start, stop, _ = a_rows[index]
            out_start, out_stop, _ = a_rows[index + 1]
            out = acts[out_start:out_stop]
            np.matmul(layer.kernel.T, acts[start:stop], out=out)
            if layer.use_bias:
                out += layer.bias[:, None]
            if layer.activation.name == "relu":
                np.maximum(out, 0, out=out)
        last = layers[-1]
        start, stop, _ = a_rows[-1]
        z_t = last.kernel.T @ acts[start:stop]
        if last.use_bias:
            z_t += last.bias[:, None]
        z, activation = z_t.T, last.activation
        d0, d1 = self.d_rows[-1]
        if self.sigmoid_bce and getattr(loss_grad, "__func__", None) is BinaryCrossentropy._grad \
                and not loss_grad.__self__.from_logits:  # sigmoid then BCE on probabilities
            output = _sigmoid_for_bce(z)
            _sigmoid_bce_delta(output, y, deltas[d0:d1].T)
        else:
            if activation.forward_in_place is None:
                output = activation.forward(z)
            else:
                output = activation.forward_in_place(z)
            deltas[d0:d1] = activation.backward(z, output, loss_grad(y, output)).T
        self._backward()
        return output

    def _backward(self) -> None:
        """The deltas of the hidden layers from the last layer's, top down."""
        acts, deltas, layers, a_rows = self.acts, self.deltas, self.layers, self.a_rows
        for index in range(len(layers) - 1, 0, -1):
            d0, d1 = self.d_rows[index]
            p0, p1 = self.d_rows[index - 1]
            below = deltas[p0:p1]
            np.matmul(layers[index].kernel, deltas[d0:d1], out=below)
            if layers[index - 1].activation.name == "relu":  # ReLU': output > 0
                start, stop, _ = a_rows[index]
                below *= acts[start:stop] > 0

    def sq_norms(self) -> np.ndarray:
        """Squared norm of every example's gradient (all parameters), from the cached rows."""
        per_layer = self.seg_a @ np.square(self.acts)  # (layers, n): ||a||^2 (+ 1 with a bias)
        per_layer *= self.seg_d @ np.square(self.deltas)
        return self.ones @ per_layer

    def clipped_sum(self, factors) -> np.ndarray:
        """``sum_i f_i g_i`` as one flat array in Keras parameter order (fresh); ``factors``
        is an ``(n,)`` array or one scalar of the step's dtype for every example."""
        weighted = np.multiply(self.deltas, factors, out=self.weighted)
        flat = np.empty(self.size, dtype=self.dtype)
        acts = self.acts
        for (start, _, end), (d0, d1), (g0, _, g1) in zip(
            self.a_rows, self.d_rows, self.blocks, strict=True
        ):
            np.matmul(acts[start:end], weighted[d0:d1].T,
                      out=flat[g0:g1].reshape(end - start, d1 - d0))
        return flat

    def add_noise(self, flat: np.ndarray, stddev: float, rng: np.random.Generator) -> None:
        """``flat += N(0, stddev^2 I)`` in place: one ``rng.standard_normal`` draw of
        ``flat.size`` in the step's dtype (the values :func:`~dpsgd_kernels.dp_step.noisy_average`
        draws from a generator in the same state), into a work array kept between steps.
        Nothing is drawn when ``stddev == 0``."""
        if not stddev:
            return
        noise = self.noise
        if noise is None:
            noise = self.noise = np.empty(self.size, dtype=self.dtype)
        rng.standard_normal(out=noise, dtype=self.dtype)
        noise *= self.dtype.type(stddev)
        flat += noise

    def unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        """Views of the flat gradient, one per parameter in Keras order and shapes."""
        grads = []
        for layer, (g0, g_mid, g1) in zip(self.layers, self.blocks, strict=True):
            grads.append(flat[g0:g_mid].reshape(layer.kernel.shape))
            if layer.use_bias:
                grads.append(flat[g_mid:g1])
        return grads


def _sigmoid_for_bce(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` in place in ``z``, for binary cross-entropy only.

    Within a few ulps of the logistic function wherever ``exp(-z)`` is finite; below that
    (``z < -88`` in float32, ``-709`` in float64) ``z`` is first raised to the bound, so the
    result is a tiny positive number instead of the exact, tinier one. Binary cross-entropy
    clips its input to ``[EPSILON, 1 - EPSILON]`` (``EPSILON = 1e-7``), so its value and its
    gradient are the same for both. Five ufunc passes where the stable two-branch form
    (:func:`~dpsgd_kernels.activations.sigmoid`) takes eight."""
    low = -88.0 if z.dtype.itemsize == 4 else -709.0
    np.maximum(z, low, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1
    return np.reciprocal(z, out=z)


def _sigmoid_bce_delta(p: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """Binary cross-entropy on probabilities ``p = sigmoid(z)``, differentiated with respect to
    ``z`` in one expression: ``(p - y) / units`` where ``EPSILON < p < 1 - EPSILON`` and 0
    elsewhere (Keras clips ``p`` to that interval, so the loss is flat outside it). Equal to
    the chain rule through the loss' gradient and the sigmoid's, ``(-y/p + (1-y)/(1-p)) p (1-p)
    / units``, up to rounding."""
    np.subtract(p, y, out=out)
    inside = p > EPSILON
    inside &= p < 1 - EPSILON
    if p.shape[-1] != 1:
        out /= p.shape[-1]
    out *= inside


def finite_or_raise(norms: np.ndarray) -> None:
    """Raise the general path's error where some gradient norm is NaN or inf."""
    if norms.size and not math.isfinite(float(norms.max())):
        bad = np.flatnonzero(~np.isfinite(norms))
        raise ValueError(
            f"gradients of microbatch(es) {bad[:5].tolist()} are not finite (NaN or inf): "
            "check x, y and the model weights (a diverged run or a too large learning rate)"
        )
