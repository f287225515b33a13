"""Layers, losses and the model: TF padding rules, Keras layout, hand-computed values, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dpsgd_kernels as dk
from dpsgd_kernels import _tuning as tuning_module
from dpsgd_kernels import activations as activations_module
from dpsgd_kernels import layers as layers_module
from dpsgd_kernels.im2col import (
    column_windows_shape,
    depth_to_space,
    extract_patches,
    padding_1d,
    scatter_patches,
    space_to_depth,
)


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (28, 8, 2, (14, 3, 3)),  # MNIST CNN first layer: pad_total = 13*2 + 8 - 28 = 6
        (4, 3, 2, (2, 0, 1)),  # pad_total 1: all of it after (bottom/right)
        (5, 3, 2, (3, 1, 1)),
        (7, 2, 1, (7, 0, 1)),
        (6, 1, 3, (2, 0, 0)),
        (5, 4, 4, (2, 1, 2)),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    assert padding_1d(size, kernel, stride, "same") == expected


@pytest.mark.parametrize("size, kernel, stride, out", [(13, 4, 2, 5), (14, 2, 1, 13), (5, 5, 3, 1)])
def test_valid_padding_sizes(size, kernel, stride, out):
    assert padding_1d(size, kernel, stride, "valid") == (out, 0, 0)


def _direct_conv(x, kernel, bias, strides, padding):
    """Convolution by explicit loops over output pixels, with TF's padding formula."""
    n, height, width, _ = x.shape
    kh, kw, _, filters = kernel.shape
    (oh, top, _), (ow, left, _) = (padding_1d(height, kh, strides[0], padding),
                                   padding_1d(width, kw, strides[1], padding))
    out = np.zeros((n, oh, ow, filters))
    for r in range(oh):
        for c in range(ow):
            for i in range(kh):
                for j in range(kw):
                    row, col = r * strides[0] + i - top, c * strides[1] + j - left
                    if 0 <= row < height and 0 <= col < width:
                        out[:, r, c, :] += x[:, row, col, :] @ kernel[i, j]
    return out + bias


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 3)])
def test_conv_forward_matches_direct_loops(padding, strides):
    rng = np.random.default_rng(0)
    model = dk.Sequential([dk.Conv2D(3, (3, 4), strides=strides, padding=padding)],
                          input_shape=(7, 9, 2), dtype="float64", rng=1)
    kernel, bias = model.get_weights()
    bias = rng.normal(size=bias.shape)
    model.set_weights([kernel, bias])
    x = rng.normal(size=(2, 7, 9, 2))
    np.testing.assert_allclose(model.predict(x), _direct_conv(x, kernel, bias, strides, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(
    "kernel_size, strides, shape",
    [
        ((4, 4), (2, 2), (7, 9, 2)),  # whole strides: the space-to-depth path
        ((4, 6), (2, 3), (7, 9, 2)),
        ((2, 3), (2, 3), (8, 10, 3)),  # blocks of one window each
        ((8, 8), (2, 2), (28, 28, 1)),  # the MNIST CNN's first layer
        ((6, 2), (3, 1), (9, 5, 2)),  # stride 1 along the width: blocks one column wide
    ],
)
def test_space_to_depth_convolutions_match_direct_loops(padding, kernel_size, strides, shape):
    rng = np.random.default_rng(2)
    conv = dk.Conv2D(3, kernel_size, strides=strides, padding=padding)
    model = dk.Sequential([conv], input_shape=shape, dtype="float64", rng=1)
    assert conv._blocked  # the im2col path is covered by test_conv_forward_matches_direct_loops
    kernel, bias = model.get_weights()
    bias = rng.normal(size=bias.shape)
    model.set_weights([kernel, bias])
    x = rng.normal(size=(2,) + shape)
    np.testing.assert_allclose(model.predict(x), _direct_conv(x, kernel, bias, strides, padding),
                               rtol=1e-12, atol=1e-12)
    # Input gradient: the adjoint of the (linear) map x -> conv(x) - bias.
    dy = rng.normal(size=(2,) + conv.output_shape)
    dx = conv.backward(dy)
    lhs = np.sum((_direct_conv(x, kernel, 0.0, strides, padding)) * dy)
    np.testing.assert_allclose(np.sum(x * dx), lhs, rtol=1e-12)


@pytest.mark.parametrize(
    "shape, pads, block, blocks",
    [
        ((28, 28, 1), (3, 3, 3, 3), (2, 2), (17, 17)),  # MNIST CNN first layer
        ((13, 13, 16), (0, 0, 0, 0), (2, 2), (6, 6)),  # second layer: last row/column unread
        ((12, 12, 3), (0, 0, 0, 0), (2, 2), (6, 6)),  # exactly covered
        ((7, 9, 2), (1, 2, 0, 1), (2, 3), (5, 4)),
        ((7, 9, 2), (0, 1, 2, 0), (3, 2), (3, 6)),
    ],
)
def test_space_to_depth_and_its_adjoint(shape, pads, block, blocks):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2,) + shape)
    got = space_to_depth(x, pads, block, blocks)
    (sh, sw), (bh, bw), (top, _, left, _) = block, blocks, pads
    padded = np.zeros((2, bh * sh + 9, bw * sw + 9, shape[2]))
    padded[:, top : top + shape[0], left : left + shape[1]] = x
    padded = padded[:, : bh * sh, : bw * sw]
    expected = padded.reshape(2, bh, sh, bw, sw, shape[2]).transpose(0, 1, 3, 2, 4, 5)
    np.testing.assert_array_equal(got, expected.reshape(got.shape))
    d_blocks = rng.normal(size=got.shape)  # <s2d(x), d> = <x, d2s(d)>
    back = depth_to_space(d_blocks, pads, block, shape[:2])
    np.testing.assert_allclose(np.sum(x * back), np.sum(got * d_blocks), rtol=1e-12)


def test_maxpool_hand_computed():
    x = np.array([[1, 5, 2], [4, 3, 9], [0, 8, 6]], dtype=float).reshape(1, 3, 3, 1)
    pool = dk.Sequential([dk.MaxPool2D(2, 1), dk.Flatten(), dk.Dense(1, use_bias=False)],
                         input_shape=(3, 3, 1), dtype="float64")
    np.testing.assert_array_equal(pool.layers[0].forward(x)[0, :, :, 0], [[5, 9], [8, 9]])
    same = dk.MaxPool2D(2, 2, padding="same")
    same.build((3, 3, 1), np.dtype(np.float64), np.random.default_rng(0))
    np.testing.assert_array_equal(same.forward(x)[0, :, :, 0], [[5, 9], [8, 6]])
    # Backward: each output's gradient goes to its window's maximum; 9 wins two windows.
    dy = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    pool.layers[0].forward(x)
    dx = pool.layers[0].backward(dy)[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[0, 1, 0], [0, 0, 6], [0, 3, 0]])


def _direct_maxpool(x, dy, pool, strides, padding):
    """Max pooling and its gradient by loops over windows; the gradient of each window goes
    to its first maximum in row-major order (padding never wins)."""
    n, height, width, channels = x.shape
    (oh, top, _), (ow, left, _) = (padding_1d(height, pool[0], strides[0], padding),
                                   padding_1d(width, pool[1], strides[1], padding))
    out, dx = np.zeros((n, oh, ow, channels)), np.zeros_like(x)
    for b in range(n):
        for c in range(channels):
            for r in range(oh):
                for q in range(ow):
                    best = None
                    for i in range(pool[0]):
                        for j in range(pool[1]):
                            row, col = r * strides[0] + i - top, q * strides[1] + j - left
                            inside = 0 <= row < height and 0 <= col < width
                            if inside and (best is None or x[b, row, col, c] > x[best]):
                                best = (b, row, col, c)
                    out[b, r, q, c] = x[best]
                    dx[best] += dy[b, r, q, c]
    return out, dx


@pytest.mark.parametrize(
    "pool, strides, padding",
    [
        ((2, 2), (1, 1), "valid"),  # the MNIST CNN's pooling
        ((2, 2), (2, 2), "valid"),
        ((3, 2), (2, 1), "valid"),
        ((3, 3), (1, 1), "valid"),
        ((2, 2), (2, 2), "same"),
        ((3, 3), (2, 2), "same"),
        ((2, 3), (1, 2), "same"),
        ((1, 1), (1, 1), "valid"),
        ((2, 1), (3, 1), "valid"),  # stride larger than the window: rows no window reads
        ((2, 2), (1, 1), "same"),  # stride 1 runs on the flat batch (shifted views)
        ((3, 2), (1, 1), "same"),
        ((1, 3), (1, 1), "valid"),
    ],
)
def test_maxpool_matches_direct_loops_with_ties(pool, strides, padding):
    rng = np.random.default_rng(4)
    # Small integers (and ReLU-like zeros): many ties, which must go to the first maximum.
    x = np.maximum(rng.integers(-3, 4, size=(2, 7, 8, 3)), 0).astype(np.float64)
    layer = dk.MaxPool2D(pool, strides, padding)
    shape = layer.build(x.shape[1:], np.dtype(np.float64), rng)
    dy = rng.normal(size=(2,) + shape)
    out, dx = _direct_maxpool(x, dy, pool, strides, padding)
    np.testing.assert_array_equal(layer.forward(x), out)
    # An input winning several windows sums their gradients in another order than the loop.
    np.testing.assert_allclose(layer.backward(dy), dx, rtol=1e-14, atol=0)


def test_keras_weight_layout_of_both_models():
    mlp = dk.tf_privacy_mlp()
    assert [w.shape for w in mlp.get_weights()] == [(2, 16), (16,), (16, 8), (8,), (8, 1), (1,)]
    cnn = dk.mnist_cnn()
    assert [w.shape for w in cnn.get_weights()] == [
        (8, 8, 1, 16), (16,), (4, 4, 16, 32), (32,), (512, 32), (32,), (32, 10), (10,)
    ]
    assert cnn.count_params() == 26010  # the figure Keras' summary prints for the tutorial CNN
    assert cnn.layers[1].output_shape == (13, 13, 16)
    assert cnn.layers[3].output_shape == (4, 4, 32)
    assert all(w.dtype == np.float32 for w in cnn.get_weights())
    assert all(not np.any(b) for b in cnn.get_weights()[1::2])  # Keras zero bias init


def test_flatten_is_row_major_nhwc():
    x = np.arange(2 * 2 * 3, dtype=float).reshape(1, 2, 2, 3)
    model = dk.Sequential([dk.Flatten(), dk.Dense(12, use_bias=False)], input_shape=(2, 2, 3),
                          dtype="float64")
    model.set_weights([np.eye(12)])
    np.testing.assert_array_equal(model.predict(x)[0], np.arange(12))


def test_set_weights_round_trip_and_errors():
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    other = dk.tf_privacy_mlp(dtype="float64", rng=1)
    other.set_weights(model.get_weights())
    x = np.random.default_rng(2).normal(size=(5, 2))
    np.testing.assert_array_equal(model.predict(x), other.predict(x))
    weights = model.get_weights()
    with pytest.raises(ValueError, match="weights must hold 6 arrays"):
        model.set_weights(weights[:-1])
    with pytest.raises(ValueError, match=r"weights\[2\] must have shape \(16, 8\)"):
        model.set_weights(weights[:2] + [np.zeros((8, 16))] + weights[3:])
    with pytest.raises(ValueError, match=r"weights\[0\] must contain only finite"):
        model.set_weights([np.full((2, 16), np.nan)] + weights[1:])


def test_model_input_validation():
    model = dk.mnist_cnn()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 28, 28, 1\)"):
        model.predict(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="x must contain only finite"):
        model.predict(np.full((1, 28, 28, 1), np.inf))
    with pytest.raises(ValueError, match="activation must be one of"):
        dk.Dense(3, "gelu")
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid'"):
        dk.Conv2D(3, 3, padding="full")
    with pytest.raises(ValueError, match="units must be a whole number >= 1"):
        dk.Dense(0)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        dk.tf_privacy_mlp(dtype="float16")
    with pytest.raises(ValueError, match="smaller than the window"):
        dk.mnist_cnn(input_shape=(8, 8, 1))


def test_losses_hand_computed():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    onehot = np.array([[1.0, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(dk.CategoricalCrossentropy().per_example(onehot, p),
                               [-np.log(0.7), -np.log(0.8)])
    np.testing.assert_allclose(dk.SparseCategoricalCrossentropy().per_example([0, 2], p),
                               [-np.log(0.7), -np.log(0.8)])
    logits = np.log(p) + 3.0  # softmax(logits) == p
    np.testing.assert_allclose(
        dk.SparseCategoricalCrossentropy(from_logits=True).per_example([0, 2], logits),
        [-np.log(0.7), -np.log(0.8)])
    probs = np.array([[0.9], [0.2]])
    np.testing.assert_allclose(dk.BinaryCrossentropy().per_example([1.0, 1.0], probs),
                               [-np.log(0.9), -np.log(0.2)])
    z = np.log(probs / (1 - probs))
    np.testing.assert_allclose(dk.BinaryCrossentropy(from_logits=True).per_example([1, 0], z),
                               [-np.log(0.9), -np.log(0.8)])
    np.testing.assert_allclose(dk.MeanSquaredError().per_example([[1.0, 2.0]], [[2.0, 4.0]]),
                               [2.5])
    assert dk.MeanSquaredError()([[1.0, 2.0]], [[2.0, 4.0]]) == 2.5
    # Keras clips probabilities to [1e-7, 1 - 1e-7]: a zero probability costs -log(1e-7).
    assert dk.CategoricalCrossentropy().per_example([[1.0, 0]], [[0.0, 1.0]])[0] == \
        pytest.approx(-np.log(1e-7))


def test_loss_target_validation():
    with pytest.raises(ValueError, match=r"y_true labels must lie in \[0, 2\]"):
        dk.SparseCategoricalCrossentropy().per_example([0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="y_true must have the shape"):
        dk.CategoricalCrossentropy().per_example(np.zeros((2, 2)), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="loss must be a Loss instance"):
        dk.get_loss("hinge")
    with pytest.raises(TypeError, match="from_logits must be a bool"):
        dk.BinaryCrossentropy(from_logits="yes")


def _pooled_cnn():
    layers = [dk.Conv2D(4, 4, strides=2, padding="same", activation="relu"), dk.MaxPool2D(2, 1),
              dk.Conv2D(3, 3, activation="relu"), dk.MaxPool2D(2, 2), dk.Flatten(), dk.Dense(2)]
    return dk.Sequential(layers, input_shape=(12, 12, 2), dtype="float64", rng=1)


def test_reused_work_arrays_do_not_leak_between_calls():
    """Layers keep private work arrays between passes; results must not depend on earlier
    calls (batch sizes up and down), and returned arrays must not change afterwards."""
    rng = np.random.default_rng(7)
    used = _pooled_cnn()
    x_big, x_small = rng.normal(size=(5, 12, 12, 2)), rng.normal(size=(3, 12, 12, 2))
    y_big, y_small = rng.normal(size=(5, 2)), rng.normal(size=(3, 2))
    first = used.predict(x_big)
    kept = first.copy()
    for x, y in ((x_small, y_small), (x_big, y_big), (x_small, y_small)):
        got = dk.per_example_gradients(used, x, y, "mse")
        want = dk.per_example_gradients(_pooled_cnn(), x, y, "mse")
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first, kept)


def test_work_arrays_above_the_reuse_cap_are_fresh(monkeypatch):
    """Above ``REUSE_MAX_BYTES`` layers work on fresh arrays; the results are the same."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(4, 12, 12, 2)), rng.normal(size=(4, 2))
    want = dk.per_example_gradients(_pooled_cnn(), x, y, "mse")
    monkeypatch.setattr(tuning_module, "REUSE_MAX_BYTES", 0)
    model = _pooled_cnn()
    for _ in range(2):  # a second pass must not see the first one's arrays
        got = dk.per_example_gradients(model, x, y, "mse")
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not any(getattr(layer, "_buffers", None) for layer in model.layers)


def _cropping_models():
    return {
        "mnist": lambda: dk.mnist_cnn(dtype="float64", rng=3).layers,
        "gaps": lambda: [dk.Conv2D(3, 3, padding="same", activation="tanh"),
                         dk.MaxPool2D(2, 3), dk.Conv2D(2, 2, strides=3, activation="relu"),
                         dk.Flatten(), dk.Dense(2)],
        "same": lambda: [dk.Conv2D(3, 2, activation="relu"),
                         dk.Conv2D(2, 3, strides=2, padding="same"), dk.MaxPool2D(3, 2, "same"),
                         dk.Conv2D(2, 2, strides=2), dk.Flatten(), dk.Dense(3)],
        # A stride-1 pool (flat path) whose last output row the next layer never reads.
        "flat": lambda: [dk.Conv2D(3, 3, activation="relu"), dk.MaxPool2D(2, 1),
                         dk.Conv2D(2, 2, strides=3), dk.Flatten(), dk.Dense(2)],
    }


@pytest.mark.parametrize("name", ["mnist", "gaps", "same", "flat"])
def test_layers_compute_only_what_the_next_layer_reads(name):
    """A Sequential's layers skip outputs nobody reads; outputs and gradients stay those of
    the same layers computing everything (built outside a Sequential)."""
    input_shape = {"mnist": (28, 28, 1), "gaps": (11, 11, 2), "same": (12, 13, 1),
                   "flat": (12, 11, 1)}[name]
    model = dk.Sequential(_cropping_models()[name](), input_shape, dtype="float64", rng=1)
    full, shape = _cropping_models()[name](), input_shape
    for layer in full:
        shape = layer.build(shape, np.dtype("float64"), np.random.default_rng(0))
    for layer, twin in zip(full, model.layers, strict=True):
        for param, value in zip(layer.params, twin.params, strict=True):
            param[...] = value + 0.1 * (param.ndim == 1)  # nonzero biases
        for param, value in zip(twin.params, layer.params, strict=True):
            param[...] = value
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3,) + input_shape)
    h = x
    for layer in full:
        h = layer.forward(h)
    np.testing.assert_allclose(model.forward(x), h, rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=h.shape)
    model.backward(dy)
    for position in range(len(full) - 1, -1, -1):
        dy = full[position].backward(dy)
    linear = [layer for layer in full if isinstance(layer, dk.LinearLayer)]
    for layer, twin in zip(linear, model.linear_layers, strict=True):
        for grad, expected in zip(twin.group_gradients(1), layer.group_gradients(1),
                                  strict=True):
            np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)
    if name == "mnist":  # the last row and column of conv1 and pool1 are never read
        assert model.layers[0].rows_per_example == 13 * 13
        assert model.layers[1].forward(np.zeros((1, 13, 13, 16))).shape == (1, 12, 12, 16)
        assert model.layers[0].output_shape == (14, 14, 16)  # Keras shapes unchanged


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), (0, 4)])
def test_relu_in_place_matches_maximum(monkeypatch, dtype, shape):
    """Blocked against cached zeros (across block ends) or, for views, plain; same bits as
    ``np.maximum(z, 0)`` (NaN and signed zeros included)."""
    monkeypatch.setattr(tuning_module, "ZERO_BLOCK", 4)
    monkeypatch.setattr(activations_module, "_zero_blocks", {})
    monkeypatch.setattr(tuning_module, "SCALAR_RELU_MAX", 1)
    rng = np.random.default_rng(9)
    z = rng.normal(size=shape).astype(dtype)
    z.reshape(-1)[:3] = [np.nan, -0.0, 0.0][: z.size]
    want = np.maximum(z, 0)
    got = activations_module.relu_in_place(z)
    assert got is z
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    wide = rng.normal(size=(4, 6)).astype(dtype)
    view = wide[:, ::2]  # not contiguous: np.maximum on the view, the rest untouched
    expected = wide.copy()
    expected[:, ::2] = np.maximum(view, 0)
    activations_module.relu_in_place(view)
    np.testing.assert_array_equal(wide, expected)


@pytest.mark.parametrize(
    "shape, kernel, strides",
    [
        ((9, 10, 1), (3, 3), (1, 1)),
        ((11, 9, 2), (3, 2), (2, 3)),  # strided, not whole strides
        ((16, 16, 4), (4, 4), (1, 1)),  # the MNIST CNN's first convolution, space-to-depth
        ((7, 8, 3), (1, 2), (2, 1)),
    ],
)
def test_patches_in_two_copies_match_one(shape, kernel, strides):
    """Column windows first, then whole patches: the same windows as the one-copy gather."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3,) + shape)
    out = tuple((shape[i] - kernel[i]) // strides[i] + 1 for i in range(2))
    want = extract_patches(x, kernel, strides, out)
    rows_read = strides[0] * (out[0] - 1) + kernel[0]
    columns = np.full((3, out[1], rows_read, kernel[1] * shape[2]), np.nan)
    got = extract_patches(x, kernel, strides, out, np.full(want.shape, np.nan), columns)
    np.testing.assert_array_equal(got, want)


def test_two_copy_patches_chosen_for_short_rows_only():
    cnn = dk.mnist_cnn()
    cnn.predict(np.zeros((2, 28, 28, 1)))
    first, second = cnn.layers[0], cnn.layers[2]
    assert first._buffers["columns"].shape == (2, 13, 16, 16)  # 64-byte rows: two copies
    assert "columns" not in second._buffers  # 512-byte rows: one copy
    assert column_windows_shape((2, 16, 16, 4), (4, 4), (1, 1), (13, 13), 4) is not None
    assert column_windows_shape((2, 6, 6, 64), (2, 2), (1, 1), (5, 5), 4) is None


@pytest.mark.parametrize(
    "shape, kernel, strides",
    [
        ((9, 10, 2), (3, 3), (1, 1)),
        ((11, 9, 2), (3, 2), (2, 3)),
        ((6, 6, 4), (2, 2), (1, 1)),  # the MNIST CNN's second convolution, space-to-depth
        ((10, 11, 1), (2, 1), (3, 2)),  # strides past the window: phases no offset reaches
    ],
)
def test_scatter_patches_is_the_adjoint_of_extract_patches(shape, kernel, strides):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2,) + shape)
    out = tuple((shape[i] - kernel[i]) // strides[i] + 1 for i in range(2))
    patches = extract_patches(x, kernel, strides, out)
    d_patches = rng.normal(size=patches.shape)
    d_offsets = d_patches.transpose(3, 4, 0, 1, 2, 5)  # offset-major
    d_x = scatter_patches(np.ascontiguousarray(d_offsets), x.shape, strides)
    assert d_x.shape == x.shape
    np.testing.assert_allclose(np.sum(x * d_x), np.sum(patches * d_patches), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "rows, matrix",
    [
        ((100, 7), (7, 5)),  # blocks of 22 rows: 4 whole blocks and a remainder
        ((88, 7), (7, 5)),  # whole blocks only
        ((100, 7), (3, 7, 4)),  # stacked matrices (Conv2D backward: one per window offset)
        ((10, 7), (7, 5)),  # one block: a single product
        ((100, 300), (300, 2)),  # blocks under MIN_BLOCK_ROWS rows: a single product
    ],
)
@pytest.mark.parametrize("transposed", [False, True])
def test_row_product_in_blocks_matches_matmul(monkeypatch, dtype, rows, matrix, transposed):
    """Blocks of rows (and a transposed matrix view copied first): np.matmul's result."""
    monkeypatch.setattr(tuning_module, "SMALL_PRODUCT_MACS", 800)
    monkeypatch.setattr(tuning_module, "MIN_BLOCK_ROWS", 4)
    rng = np.random.default_rng(12)
    a = rng.normal(size=rows).astype(dtype)
    shape = matrix[:-2] + matrix[:-3:-1] if transposed else matrix
    b = rng.normal(size=shape).astype(dtype)
    if transposed:
        b = np.swapaxes(b, -1, -2)
    got = layers_module.row_product(a, b)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-5 if dtype == np.float32 else 1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-750, 750), min_size=1, max_size=20),
       st.sampled_from([np.float32, np.float64]))
def test_sigmoid_matches_mpmath(values, dtype):
    """The stable logistic function: within a few ulps of 1 / (1 + e^-z) at 50 digits, in the
    input's dtype, over the whole range (no overflow for large |z|)."""
    import mpmath

    z = np.asarray(values, dtype=dtype)
    got = activations_module.sigmoid(z)
    assert got.dtype == dtype
    with mpmath.workdps(50):
        want = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in z])
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(got, want.astype(dtype), rtol=4 * np.finfo(dtype).eps,
                               atol=4 * tiny * np.finfo(dtype).eps)
