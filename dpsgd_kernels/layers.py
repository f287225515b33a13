"""Layers with forward, backward and per-example (per-microbatch) parameter gradients.

Parameters use Keras' layout and order so that ``Sequential.get_weights()`` maps one-to-one onto
``keras.Model.get_weights()``: kernel then bias; a Dense kernel is ``(in, units)``, a Conv2D
kernel ``(kh, kw, in_channels, filters)``; images are NHWC. Initialisation is Keras' default
(Glorot uniform kernel, zero bias).

Dense and Conv2D are both linear maps over "rows": after the forward pass a layer keeps its input
as ``a`` of shape ``(n, T, K)`` (``T`` = 1 for a flat Dense input, the output positions for a
convolution, whose rows are im2col patches, followed by a column of ones that carries the bias)
and after the backward pass the gradient of every example's loss with respect to its
pre-activation as ``delta`` of shape ``(n, T, P)``. Every per-example or per-microbatch gradient
is then a batched product of these two arrays (:mod:`dpsgd_kernels.ghost_norm`); nothing loops
over examples. Inside a :class:`~dpsgd_kernels.model.Sequential`, layers compute only the part of
their output images the next layer reads (:meth:`Layer.limit_output`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from dpsgd_kernels import _tuning, ghost_norm
from dpsgd_kernels._validation import check_positive_int
from dpsgd_kernels.activations import get_activation
from dpsgd_kernels.im2col import (
    column_windows_shape,
    depth_to_space,
    extract_patches,
    pad_images,
    padding_1d,
    scatter_patches,
    space_to_depth,
)

__all__ = ["Conv2D", "Dense", "Flatten", "Layer", "LinearLayer", "MaxPool2D"]


def row_product(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` for ``rows`` of shape ``(M, K)`` and ``matrix`` of shape
    ``(..., K, N)``, in blocks of rows of at most
    :data:`~dpsgd_kernels._tuning.SMALL_PRODUCT_MACS` multiply-adds (OpenBLAS's small-matrix
    kernels, which skip packing the operands, take products up to 10^6 multiply-adds).

    Same result as ``np.matmul(rows, matrix)`` up to rounding: every output row is one
    row's product, whichever block it falls in. From ``MIN_BLOCK_ROWS`` rows on, a transposed
    (or otherwise not C-contiguous) ``matrix`` is copied first: OpenBLAS has no small-matrix
    kernel for it beyond 1200 outputs and packs it for every block instead.
    """
    m, k = rows.shape
    n = matrix.shape[-1]
    if m * k * n <= _tuning.SMALL_PRODUCT_MACS and matrix.flags.c_contiguous:
        return np.matmul(rows, matrix)  # one block at most (and nothing to copy)
    min_rows = _tuning.MIN_BLOCK_ROWS
    if m >= min_rows and not matrix.flags.c_contiguous:
        matrix = np.ascontiguousarray(matrix)
    block = _tuning.SMALL_PRODUCT_MACS // max(k * n, 1)
    if block < min_rows or m <= block:
        return np.matmul(rows, matrix)
    lead = matrix.shape[:-2]
    out = np.empty(lead + (m, n), dtype=np.result_type(rows, matrix))
    whole = m - m % block
    np.matmul(rows[:whole].reshape(-1, block, k), matrix[..., None, :, :],
              out=out[..., :whole, :].reshape(lead + (whole // block, block, n)))
    if whole < m:
        np.matmul(rows[whole:], matrix, out=out[..., whole:, :])
    return out


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return tuple(check_positive_int(v, name) for v in value)


def _check_padding(padding) -> str:
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return padding


def _read_extent(input_hw, out_hw, window, strides, pads) -> tuple[int, int]:
    """How many leading input ``(rows, columns)`` the first ``out_hw`` windows read, for
    windows of ``window`` at ``strides`` over the input padded by ``pads`` (top, bottom, left,
    right)."""
    top, _, left, _ = pads
    return (min(input_hw[0], (out_hw[0] - 1) * strides[0] + window[0] - top),
            min(input_hw[1], (out_hw[1] - 1) * strides[1] + window[1] - left))


def _smaller(used_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int]:
    """The element-wise minimum of two ``(rows, columns)`` pairs."""
    return (min(used_hw[0], out_hw[0]), min(used_hw[1], out_hw[1]))


def _glorot_uniform(rng: np.random.Generator, shape, fan_in, fan_out, dtype) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class Layer:
    """Base layer: ``build`` fixes shapes and creates parameters, then forward/backward."""

    def __init__(self) -> None:
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    @property
    def params(self) -> list[np.ndarray]:
        """Parameters in Keras order (the live arrays, updated in place by optimizers)."""
        return []

    def build(self, input_shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator):
        """Fix the per-example input shape, create parameters, return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def limit_output(self, used_hw: tuple[int, int] | None) -> tuple[int, int] | None:
        """Compute only the leading ``used_hw`` (rows, columns) of every output image.

        :class:`~dpsgd_kernels.model.Sequential` calls this once, last layer first, with the
        part of the output the next layer reads (``None``: all of it); the return value is the
        part of the input this layer then reads (``None``: all of it), which the previous
        layer is asked to compute in turn. Afterwards :meth:`forward` takes and returns the
        cropped images (``output_shape`` keeps the full Keras shape); nothing read downstream
        changes. Layers that read all of their input (the default) return ``None``.
        """
        return None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Output for a batch ``x``; caches what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Gradient with respect to the input, example by example (``None`` if not needed)."""
        raise NotImplementedError

    def _reusable(self, key: str, shape: tuple[int, ...], dtype, fill=0) -> np.ndarray:
        """A work array kept between calls, filled with ``fill`` when first made (a fresh one,
        so filled, above :data:`~dpsgd_kernels._tuning.REUSE_MAX_BYTES`).

        Passes over chunks of the same size then allocate (and page-fault) nothing new for
        it. Only for arrays that are private to the layer and dead (or rewritten) by the time
        the same key is asked for again: never for returned arrays.
        """
        if math.prod(shape) * np.dtype(dtype).itemsize > _tuning.REUSE_MAX_BYTES:
            return np.full(shape, fill, dtype=dtype)
        buffers = self.__dict__.setdefault("_buffers", {})
        buffer = buffers.get(key)
        if buffer is None or buffer.dtype != dtype or buffer.shape[1:] != shape[1:] or (
            buffer.shape[0] < shape[0]
        ):
            buffer = buffers[key] = np.full(shape, fill, dtype=dtype)
        return buffer[: shape[0]]


class LinearLayer(Layer):
    """A layer ``y = activation(a W + b)`` over rows ``a``: the base of Dense and Conv2D.

    After ``build``: ``in_features`` (``K``, row length), ``out_features`` (``P``, units or
    filters) and ``rows_per_example`` (``T``: 1 for a flat Dense input, output positions for a
    convolution).

    A layer that copies its rows anyway (Conv2D's im2col patches) may set ``_bias_in_rows``: its
    rows then end in a column of ones and the bias is the last row of the ``(K + 1, P)`` row
    kernel, so the forward product adds it (no separate pass) and every gradient product over
    the rows gives the bias gradient as its last row (and ghost norms include it).
    """

    _bias_in_rows = False
    _reuses_rows = False  # whether the rows array is a work array rewritten on every pass

    def __init__(self, activation: str | None = None, use_bias: bool = True) -> None:
        super().__init__()
        self.activation = get_activation(activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias must be a bool, got {type(use_bias).__name__}")
        self.use_bias = bool(use_bias)
        self.kernel: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self._a = self._z = self._y = self._delta = None

    @property
    def params(self) -> list[np.ndarray]:
        return [self.kernel, self.bias] if self.use_bias else [self.kernel]

    def build(self, input_shape, dtype, rng):
        output_shape = super().build(input_shape, dtype, rng)
        # Plain ints, fixed once built (read on every step).
        self.in_features = int(np.prod(self.kernel.shape[:-1]))
        self.out_features = int(self.kernel.shape[-1])
        self.rows_per_example = int(np.prod(output_shape[:-1])) if len(output_shape) > 1 else 1
        self._flat_shape = (self.in_features, self.out_features)
        return output_shape

    def _activate(self, rows: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
        if self._bias_in_rows:
            flat = row_product(rows.reshape(-1, self.in_features + 1), self._augmented_kernel())
        else:
            flat = row_product(rows.reshape(-1, self.in_features), self._row_kernel())
            if self.use_bias:
                flat += self.bias
        self._a = rows
        z = flat.reshape(out_shape)
        if self.activation.forward_in_place is not None:
            self._z = self._y = self.activation.forward_in_place(z)  # z itself is not needed
        else:
            self._z, self._y = z, self.activation.forward(z)
        return self._y

    def _row_kernel(self) -> np.ndarray:
        """The kernel as a ``(K, P)`` matrix in the rows' column order."""
        return self.kernel.reshape(self._flat_shape)

    def _augmented_kernel(self) -> np.ndarray:
        """``[W; b]``, ``(K + 1, P)``: the row kernel with the bias as its last row."""
        kernel = np.empty((self.in_features + 1, self.out_features), dtype=self.kernel.dtype)
        kernel[:-1] = self._row_kernel()
        kernel[-1] = self.bias
        return kernel

    def _kernel_from_rows(self, grads: np.ndarray) -> np.ndarray:
        """Kernel gradients ``(..., K, P)`` in the rows' order to ``(..., *kernel.shape)``."""
        return grads.reshape(grads.shape[:-2] + self.kernel.shape)

    def _params_from_rows(self, grads: np.ndarray) -> list[np.ndarray]:
        """Gradients ``(..., K + 1, P)`` over rows ending in a one to ``[kernel, bias]``."""
        return [self._kernel_from_rows(grads[..., :-1, :]), grads[..., -1, :]]

    def _delta_rows(self, dy: np.ndarray) -> np.ndarray:
        dz = self.activation.backward(self._z, self._y, dy)
        self._delta = dz.reshape(dz.shape[0], -1, self.out_features)
        return self._delta

    def _row_input_grad(self) -> np.ndarray:
        """``delta W^T`` as ``(n, T, K)``: the gradient with respect to the rows."""
        n, tokens, _ = self._delta.shape
        flat = row_product(self._delta.reshape(n * tokens, -1), self._row_kernel().T)
        return flat.reshape(n, tokens, self.in_features)

    # Gradients from the cached rows and deltas (valid after forward + backward).

    def group_gradients(self, group_size: int) -> list[np.ndarray]:
        """Gradient of every group's mean loss, each ``(n / group_size, *param.shape)``."""
        kernel = ghost_norm.group_kernel_gradients(self._a, self._delta, group_size)
        if self._bias_in_rows:
            return self._params_from_rows(kernel)
        grads = [self._kernel_from_rows(kernel)]
        if self.use_bias:
            grads.append(ghost_norm.group_bias_gradients(self._delta, group_size))
        return grads

    def _flat_transposed(self) -> bool:
        """Whether :meth:`group_flat_gradients` lays kernel gradients out transposed.

        ``(P, K)`` per group, as ``delta^T a``: the product then reads the rows in memory order
        instead of walking them column-wise once per output tile, which pays where an example
        has more rows than a row has entries (e.g. the MNIST CNN's first convolution, 169 rows
        of 65).
        """
        return self.rows_per_example > self.in_features + self._bias_in_rows

    def group_flat_gradients(self, group_size: int) -> list[np.ndarray]:
        """Every group's gradient flattened, ``(groups, size)`` per parameter; the kernel's
        entries in the rows' order, possibly transposed (:meth:`unflatten_gradients` restores
        the Keras layout). With the bias in the rows, one array holds kernel and bias."""
        kernel = ghost_norm.group_kernel_gradients(
            self._a, self._delta, group_size, transposed=self._flat_transposed()
        )
        grads = [kernel.reshape(kernel.shape[0], -1)]
        if self.use_bias and not self._bias_in_rows:
            grads.append(ghost_norm.group_bias_gradients(self._delta, group_size))
        return grads

    def unflatten_gradients(self, flat: list[np.ndarray]) -> list[np.ndarray]:
        """One flat gradient per parameter in :meth:`group_flat_gradients`' layout (e.g. a
        weighted sum over groups) to the parameter's shape."""
        rows = self.in_features + self._bias_in_rows
        if self._flat_transposed():
            kernel = flat[0].reshape(self.out_features, rows).T
        else:
            kernel = flat[0].reshape(rows, self.out_features)
        if self._bias_in_rows:
            return self._params_from_rows(kernel)
        grads = [self._kernel_from_rows(kernel)]
        if self.use_bias:
            grads.append(flat[1])
        return grads

    def prefers_ghost(self, group_size: int) -> bool:
        """Whether the ghost norm is cheaper than materialising for groups of this size."""
        rows = group_size * self.rows_per_example
        return ghost_norm.ghost_is_cheaper(rows, self.in_features, self.out_features)

    def group_sq_norms_ghost(self, group_size: int) -> np.ndarray:
        """Squared norm of every group's gradient (all parameters) without materialising it."""
        if group_size * self.rows_per_example == 1:
            # One row per group: ||a d^T||^2 + ||d||^2 = (||a||^2 + 1) ||d||^2.
            a, delta = self._a[:, 0, :], self._delta[:, 0, :]
            sq_delta = np.einsum("np,np->n", delta, delta)
            sq_a = np.einsum("nk,nk->n", a, a)  # with the bias in the rows, includes the one
            if self.use_bias and not self._bias_in_rows:
                sq_a += 1
            return sq_delta * sq_a
        sq = ghost_norm.ghost_sq_norms(self._a, self._delta, group_size)
        if self.use_bias and not self._bias_in_rows:
            bias = ghost_norm.group_bias_gradients(self._delta, group_size)
            sq = sq + np.einsum("bp,bp->b", bias, bias)
        return sq

    def weighted_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """For one row per example: ``(a, delta)``, shapes ``(n, K)`` and ``(n, P)``, from which
        :meth:`gradients_from_rows` forms ``sum_i w_i g_i``; rows of several passes may be
        stacked first. ``a`` is a copy where the layer rewrites its rows array on every pass
        (Conv2D), so both stay valid after the next one."""
        rows = self._a[:, 0, :]
        return (rows.copy() if self._reuses_rows else rows), self._delta[:, 0, :]

    def gradients_from_rows(self, rows: np.ndarray, delta: np.ndarray, weights: np.ndarray):
        """``sum_i w_i g_i`` for one row per example: kernel ``a^T (w * delta)``, bias
        ``w delta`` (see :meth:`weighted_rows`)."""
        weights = weights.astype(delta.dtype, copy=False)
        kernel = rows.T @ (delta * weights[:, None])
        if self._bias_in_rows:
            return self._params_from_rows(kernel)
        grads = [self._kernel_from_rows(kernel)]
        if self.use_bias:
            grads.append(weights @ delta)
        return grads

    def weighted_gradients(self, weights) -> list[np.ndarray]:
        """``sum_i w_i g_i`` over examples; ``weights`` is a scalar or an ``(n,)`` array."""
        if self._delta.shape[1] == 1 and isinstance(weights, np.ndarray) and weights.ndim == 1:
            # One row per example (Dense on flat input): a^T (w * d) and w d, no reshapes.
            return self.gradients_from_rows(self._a[:, 0, :], self._delta[:, 0, :], weights)
        kernel = ghost_norm.weighted_kernel_gradient(self._a, self._delta, weights)
        if self._bias_in_rows:
            return self._params_from_rows(kernel)
        grads = [self._kernel_from_rows(kernel)]
        if self.use_bias:
            grads.append(ghost_norm.weighted_bias_gradient(self._delta, weights))
        return grads


class Dense(LinearLayer):
    """Fully connected layer on the last axis (``keras.layers.Dense``).

    Parameters
    ----------
    units : int
        Output size ``>= 1``.
    activation : str or None
        ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softmax"``, ``"linear"`` or ``None``.
    use_bias : bool
        Whether to add a bias (Keras' default ``True``).
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True):
        super().__init__(activation, use_bias)
        self.units = check_positive_int(units, "units")

    def build(self, input_shape, dtype, rng):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"Dense needs an input of rank >= 1 per example, got {input_shape}")
        fan_in = input_shape[-1]
        self.kernel = _glorot_uniform(rng, (fan_in, self.units), fan_in, self.units, dtype)
        self.bias = np.zeros(self.units, dtype=dtype)
        return super().build(input_shape, dtype, rng)

    def _output_shape(self, input_shape):
        return input_shape[:-1] + (self.units,)

    def forward(self, x):
        rows = x.reshape(x.shape[0], -1, x.shape[-1])
        return self._activate(rows, x.shape[:-1] + (self.units,))

    def backward(self, dy, need_input_grad=True):
        self._delta_rows(dy)
        if not need_input_grad:
            return None
        return self._row_input_grad().reshape(dy.shape[:-1] + (self.in_features,))

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation.name!r})"


class Conv2D(LinearLayer):
    """2-D convolution on NHWC images (``keras.layers.Conv2D``), via im2col.

    Parameters
    ----------
    filters : int
        Output channels ``>= 1``.
    kernel_size : int or (int, int)
        Window height and width.
    strides : int or (int, int)
        Strides along height and width (default 1).
    padding : {"valid", "same"}
        TensorFlow padding (see :mod:`dpsgd_kernels.im2col`).
    activation : str or None
        As for :class:`Dense`.
    use_bias : bool
        Whether to add a bias per filter.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        activation: str | None = None,
        use_bias: bool = True,
    ):
        super().__init__(activation, use_bias)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _check_padding(padding)

    def _geometry(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"Conv2D needs (height, width, channels) input per example, got {input_shape}"
            )
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh, top, bottom = padding_1d(input_shape[0], kh, sh, self.padding)
        ow, left, right = padding_1d(input_shape[1], kw, sw, self.padding)
        return (oh, ow), (top, bottom, left, right)

    def build(self, input_shape, dtype, rng):
        input_shape = tuple(input_shape)
        self._out_hw, self._pads = self._geometry(input_shape)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        channels = input_shape[2]
        shape = (kh, kw, channels, self.filters)
        self.kernel = _glorot_uniform(
            rng, shape, kh * kw * channels, kh * kw * self.filters, dtype
        )
        self.bias = np.zeros(self.filters, dtype=dtype)
        self._bias_in_rows = self.use_bias  # the patches are a copy: a ones column is free
        self._reuses_rows = True  # the patches go into a work array (Layer._reusable)
        # Strided with a kernel of whole strides: a stride-1 convolution over space-to-depth
        # blocks (see dpsgd_kernels.im2col), whose patches are gathered in longer runs.
        self._blocked = (sh, sw) != (1, 1) and kh % sh == 0 and kw % sw == 0
        if self._blocked:
            self._window = (kh // sh, kw // sw)
            self._blocks_hw = (self._out_hw[0] + kh // sh - 1, self._out_hw[1] + kw // sw - 1)
            self._window_strides = (1, 1)
        else:
            self._window, self._window_strides = self.kernel_size, self.strides
        return super().build(input_shape, dtype, rng)

    def _output_shape(self, input_shape):
        return self._out_hw + (self.filters,)

    def limit_output(self, used_hw):
        if used_hw is not None:
            self._out_hw = _smaller(used_hw, self._out_hw)
            self.rows_per_example = math.prod(self._out_hw)
            if self._blocked:
                (a, b), (oh, ow) = self._window, self._out_hw
                self._blocks_hw = (oh + a - 1, ow + b - 1)
        return _read_extent(
            self.input_shape[:2], self._out_hw, self.kernel_size, self.strides, self._pads
        )

    def _row_kernel(self):
        if not self._blocked:
            return super()._row_kernel()
        # Rows hold (a, b, p, q, c) for kernel offset (a sh + p, b sw + q) and channel c.
        (a, b), (sh, sw) = self._window, self.strides
        blocked = self.kernel.reshape(a, sh, b, sw, -1, self.filters).transpose(0, 2, 1, 3, 4, 5)
        return blocked.reshape(self._flat_shape)

    def _kernel_from_rows(self, grads):
        if not self._blocked:
            return super()._kernel_from_rows(grads)
        (a, b), (sh, sw) = self._window, self.strides
        lead = grads.shape[:-2]
        split = grads.reshape(lead + (a, b, sh, sw, -1, self.filters))
        k = len(lead)
        axes = tuple(range(k)) + (k, k + 2, k + 1, k + 3, k + 4, k + 5)
        return split.transpose(axes).reshape(lead + self.kernel.shape)

    def _image(self, x):
        """What the windows slide over: the padded input, or its space-to-depth blocks."""
        n, (top, bottom, left, right) = x.shape[0], self._pads
        if self._blocked:
            shape = (n,) + self._blocks_hw + (self.in_features // math.prod(self._window),)
            buffer = self._reusable("image", shape, x.dtype)
            return space_to_depth(x, self._pads, self.strides, self._blocks_hw, buffer)
        if not any(self._pads):
            return x
        _, height, width, channels = x.shape
        shape = (n, height + top + bottom, width + left + right, channels)
        return pad_images(x, self._pads, buffer=self._reusable("image", shape, x.dtype))

    def forward(self, x):
        n = x.shape[0]
        self._in_hw = x.shape[1:3]
        image = self._image(x)
        self._image_shape = image.shape
        shape = (n,) + self._out_hw + self._window + (image.shape[3],)
        # Rows (n, T, K [+ 1]); with the bias in the rows, the last column is ones, set once.
        columns = self.in_features + self._bias_in_rows
        row_shape = (n, self.rows_per_example, columns)
        rows = self._reusable("rows", row_shape, x.dtype, fill=1)
        columns_shape = column_windows_shape(
            image.shape, self._window, self._window_strides, self._out_hw, x.dtype.itemsize
        )
        columns = None if columns_shape is None else self._reusable(
            "columns", columns_shape, x.dtype
        )
        extract_patches(image, self._window, self._window_strides, self._out_hw,
                        rows[:, :, : self.in_features].reshape(shape), columns)
        return self._activate(rows, (n,) + self._out_hw + (self.filters,))

    def backward(self, dy, need_input_grad=True):
        self._delta_rows(dy)
        if not need_input_grad:
            return None
        n = dy.shape[0]
        wh, ww = self._window
        depth = self._image_shape[3]
        # Window gradients offset-major: (wh * ww, n * T, depth) = delta @ W[i, j]^T per offset.
        per_offset = self._row_kernel().reshape(wh * ww, depth, self.filters).transpose(0, 2, 1)
        d_offsets = row_product(self._delta.reshape(-1, self.filters), per_offset)
        d_offsets = d_offsets.reshape((wh, ww, n) + self._out_hw + (depth,))
        d_image = scatter_patches(d_offsets, self._image_shape, self._window_strides)
        if self._blocked:
            return depth_to_space(d_image, self._pads, self.strides, self._in_hw)
        top, _, left, _ = self._pads
        height, width = self._in_hw
        return d_image[:, top : top + height, left : left + width, :]

    def __repr__(self) -> str:
        return (
            f"Conv2D({self.filters}, {self.kernel_size}, strides={self.strides}, "
            f"padding={self.padding!r}, activation={self.activation.name!r})"
        )


def _strided_windows(array: np.ndarray, axis: int, size: int, stride: int, count: int):
    """The ``size`` strided views ``array[..., k : k + stride (count - 1) + 1 : stride, ...]``.

    View ``k`` holds element ``k`` of every one of the ``count`` windows along ``axis``.
    """
    views = []
    for k in range(size):
        index = [slice(None)] * array.ndim
        index[axis] = slice(k, k + stride * (count - 1) + 1, stride)
        views.append(array[tuple(index)])
    return views


def _shifted_views(flat: np.ndarray, size: int, step: int, length: int) -> list[np.ndarray]:
    """The ``size`` views ``flat[k step : k step + length]`` of a 1-D array."""
    return [flat[k * step : k * step + length] for k in range(size)]


def _max_with_first_winner(views: list[np.ndarray], out=None, winner=None):
    """Element-wise maximum of equally shaped views and the index of its first occurrence.

    For two views the index is the boolean ``second > first`` (ties go to the first); for more,
    an unsigned integer array. ``out`` (optional): an array to write the maximum into;
    ``winner`` (optional, two views only): one for the boolean index.
    """
    if len(views) == 2:
        first, second = views
        return np.maximum(first, second, out=out), np.greater(second, first, out=winner)
    if out is None:
        out = views[0].copy()
    else:
        out[...] = views[0]
    if len(views) == 1:
        return out, np.zeros(out.shape, dtype=bool)
    index_type = np.uint8 if len(views) < 256 else np.int32
    winner = np.zeros(out.shape, dtype=index_type)
    for k, window in enumerate(views[1:], start=1):
        better = window > out
        # winner = k where better (arithmetic: much faster than np.where / copyto(where=)).
        winner *= ~better
        winner += better.view(np.uint8).astype(index_type, copy=False) * index_type(k)
        np.maximum(out, window, out=out)
    return out, winner


def _route_to_winner(dy: np.ndarray, winner: np.ndarray, views: list[np.ndarray], temp=None):
    """Add ``dy`` into the view that won each maximum; the views are of a buffer that is zero
    outside the first view.

    The first view is written, not added to: views of one offset never overlap each other.
    Masks multiply (``np.where`` is several times slower here). ``temp`` (optional, two views
    only): an array of ``dy``'s shape to hold the second view's share.
    """
    if len(views) == 1:
        views[0][...] = dy
        return
    if len(views) == 2:
        second = np.multiply(dy, winner, out=temp)
        np.subtract(dy, second, out=views[0])  # exact: dy - dy = 0 where the second won
        views[1] += second
        return
    np.multiply(dy, winner == 0, out=views[0])
    for k, view in enumerate(views[1:], start=1):
        view += dy * (winner == k)


class MaxPool2D(Layer):
    """Max pooling on NHWC images (``keras.layers.MaxPool2D``).

    Parameters
    ----------
    pool_size : int or (int, int)
        Window height and width (default 2).
    strides : int, (int, int) or None
        Strides; ``None`` (Keras' default) means ``pool_size``.
    padding : {"valid", "same"}
        TensorFlow padding; "same" pads with ``-inf`` so padding never wins the max.

    Notes
    -----
    The gradient goes to the first maximum of each window in row-major order (ties, which ReLU
    zeros make common, go to the earliest element). The maximum is separable: a maximum along
    the width, then one along the height of those row maxima, each keeping the index of its
    first winner. The first row holding the window's maximum and the first column of that row
    holding it is exactly the first maximum in row-major order, and each pass touches every
    element once or twice instead of ``pool_h * pool_w`` times. With stride 1 (the MNIST CNN's
    pooling) both passes, and their adjoints, run on the flat batch: window offsets are flat
    shifts, so no pass iterates over short strided rows.
    """

    def __init__(self, pool_size=2, strides=None, padding: str = "valid"):
        super().__init__()
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = _check_padding(padding)

    def _output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"MaxPool2D needs (height, width, channels) input per example, got {input_shape}"
            )
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        oh, top, bottom = padding_1d(input_shape[0], ph, sh, self.padding)
        ow, left, right = padding_1d(input_shape[1], pw, sw, self.padding)
        self._out_hw, self._pads = (oh, ow), (top, bottom, left, right)
        return (oh, ow, input_shape[2])

    def limit_output(self, used_hw):
        if used_hw is not None:
            self._out_hw = _smaller(used_hw, self._out_hw)
        return _read_extent(
            self.input_shape[:2], self._out_hw, self.pool_size, self.strides, self._pads
        )

    def _width_views(self, array):
        return _strided_windows(array, 2, self.pool_size[1], self.strides[1], self._out_hw[1])

    def _height_views(self, array):
        return _strided_windows(array, 1, self.pool_size[0], self.strides[0], self._out_hw[0])

    def _row_max_shape(self):
        n, height_pad, _, channels = self._padded_shape
        return (n, height_pad, self._out_hw[1], channels)

    def forward(self, x):
        self._in_hw = x.shape[1:3]
        padded = pad_images(x, self._pads, value=-np.inf)
        self._padded_shape = padded.shape
        if self.strides == (1, 1):
            return self._forward_shifted(padded)
        row_shape = self._row_max_shape()
        out_shape = (x.shape[0],) + self._out_hw + (x.shape[3],)
        # Private work arrays are reused between calls (see Layer._reusable); `out` is not.
        row_max, self._width_winner = _max_with_first_winner(
            self._width_views(padded), self._reusable("row_max", row_shape, x.dtype),
            self._reusable("width_winner", row_shape, bool),
        )
        out, self._height_winner = _max_with_first_winner(
            self._height_views(row_max), None, self._reusable("height_winner", out_shape, bool)
        )
        return out

    def _shifted_lengths(self):
        """Stride 1: lengths of the flat row maxima and window maxima (see
        :meth:`_forward_shifted`)."""
        (ph, pw), (_, _, width, channels) = self.pool_size, self._padded_shape
        row_length = math.prod(self._padded_shape) - (pw - 1) * channels
        return row_length, row_length - (ph - 1) * width * channels

    def _forward_shifted(self, padded):
        """Stride-1 pooling on the flat padded batch: window offsets are flat shifts.

        Every pass runs over whole contiguous arrays (element-wise passes over strided views
        of short rows cost several times as much): element ``i`` of the row maxima is the
        maximum of ``flat[i + j C]`` over ``j < pool_w``, and the window maximum of row maxima
        ``i + k W C`` over ``k < pool_h``, so the output lands on the input's grid; positions
        whose window leaves its row or image are computed and never read.
        """
        (ph, pw), (_, _, width, channels) = self.pool_size, padded.shape
        row_length, out_length = self._shifted_lengths()
        flat = np.ascontiguousarray(padded).reshape(-1)
        row_max, self._width_winner = _max_with_first_winner(
            _shifted_views(flat, pw, channels, row_length),
            self._reusable("row_max", (row_length,), flat.dtype),
            self._reusable("width_winner", (row_length,), bool),
        )
        grid = np.empty(padded.shape, dtype=flat.dtype)  # returned: fresh
        _, self._height_winner = _max_with_first_winner(
            _shifted_views(row_max, ph, width * channels, out_length),
            grid.reshape(-1)[:out_length],
            self._reusable("height_winner", (out_length,), bool),
        )
        oh, ow = self._out_hw
        return grid[:, :oh, :ow, :]

    def _zeroed(self, key, shape, dtype, stride, axis):
        """A buffer (reusable under ``key``, fresh if ``key`` is None) that is zero except
        possibly where the first window view along ``axis`` will write."""
        buffer = np.empty(shape, dtype=dtype) if key is None else self._reusable(key, shape, dtype)
        if stride != 1:
            buffer[...] = 0
        else:  # the first view covers positions [0, out): zero the rest
            index = [slice(None)] * 4
            index[axis] = slice(self._out_hw[axis - 1], None)
            buffer[tuple(index)] = 0
        return buffer

    def backward(self, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if self.strides == (1, 1):
            d_padded = self._backward_shifted(dy)
        else:
            d_padded = self._backward_strided(dy)
        if not any(self._pads):
            return d_padded
        top, _, left, _ = self._pads
        height, width = self._in_hw
        return d_padded[:, top : top + height, left : left + width, :]

    def _backward_shifted(self, dy):
        """Adjoint of :meth:`_forward_shifted`: the gradient, on the input grid with zeros
        where no output was computed, routed back along the flat shifts."""
        (ph, pw), (_, _, width, channels) = self.pool_size, self._padded_shape
        row_length, out_length = self._shifted_lengths()
        oh, ow = self._out_hw
        grid = self._reusable("d_out", self._padded_shape, dy.dtype)
        grid[:, :oh, :ow, :] = dy  # the rest stays zero (never written)
        d_row_max = self._reusable("d_row_max", (row_length,), dy.dtype)
        d_row_max[out_length:] = 0
        _route_to_winner(
            grid.reshape(-1)[:out_length], self._height_winner,
            _shifted_views(d_row_max, ph, width * channels, out_length),
            self._reusable("d_out_share", (out_length,), dy.dtype),
        )
        d_padded = np.empty(math.prod(self._padded_shape), dtype=dy.dtype)  # returned: fresh
        d_padded[row_length:] = 0
        _route_to_winner(
            d_row_max, self._width_winner, _shifted_views(d_padded, pw, channels, row_length),
            self._reusable("d_row_share", (row_length,), dy.dtype),
        )
        return d_padded.reshape(self._padded_shape)

    def _backward_strided(self, dy):
        sh, sw = self.strides
        d_row_max = self._zeroed("d_row_max", self._row_max_shape(), dy.dtype, sh, 1)
        temp = self._reusable("d_out", dy.shape, dy.dtype)
        _route_to_winner(dy, self._height_winner, self._height_views(d_row_max), temp)
        d_padded = self._zeroed(None, self._padded_shape, dy.dtype, sw, 2)  # returned: fresh
        temp = self._reusable("d_row_share", d_row_max.shape, dy.dtype)
        _route_to_winner(d_row_max, self._width_winner, self._width_views(d_padded), temp)
        return d_padded

    def __repr__(self) -> str:
        return f"MaxPool2D({self.pool_size}, strides={self.strides}, padding={self.padding!r})"


class Flatten(Layer):
    """Flatten every example to a vector in C (row-major, NHWC) order, as Keras does."""

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return dy.reshape((dy.shape[0],) + self.input_shape)

    def __repr__(self) -> str:
        return "Flatten()"
