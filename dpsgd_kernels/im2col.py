"""Padding arithmetic (TensorFlow conventions) and im2col / col2im for NHWC images.

TensorFlow's ``padding="same"`` (``tf.nn.conv2d``, ``tf.nn.max_pool2d``): for input size ``n``,
kernel ``k`` and stride ``s`` the output size is ``ceil(n / s)``, the total padding is
``max((out - 1) s + k - n, 0)``, ``pad_total // 2`` goes before (top/left) and the rest after
(bottom/right). ``padding="valid"``: ``out = floor((n - k) / s) + 1`` and no padding.

Patches are gathered from a strided window view with one copy; their adjoint adds one block per
kernel offset (``kh * kw`` adds): loops run over kernel offsets, never over examples.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["extract_patches", "pad_images", "padding_1d", "scatter_patches"]

PADDINGS = ("same", "valid")


def padding_1d(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """``(output_size, pad_before, pad_after)`` along one spatial axis.

    Raises
    ------
    ValueError
        If ``padding`` is not ``"same"`` or ``"valid"``, or a valid window does not fit.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    if padding == "valid":
        if size < kernel:
            raise ValueError(
                f"input size {size} is smaller than the window {kernel} with padding='valid'"
            )
        return (size - kernel) // stride + 1, 0, 0
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def pad_images(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad ``(n, H, W, C)`` by ``(top, bottom, left, right)`` with ``value``."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def extract_patches(
    x_padded: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], out: tuple[int, int]
) -> np.ndarray:
    """Windows of a padded NHWC batch, shape ``(n, out_h, out_w, kh, kw, C)`` (a fresh array)."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out
    # View (n, H', W', C, kh, kw) of every window, keep the strided ones, copy once.
    windows = sliding_window_view(x_padded, (kh, kw), axis=(1, 2))
    windows = windows[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]
    return np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3))


def scatter_patches(
    d_offsets: np.ndarray, padded_shape: tuple[int, ...], strides: tuple[int, int]
) -> np.ndarray:
    """Adjoint of :func:`extract_patches`: add every window back into a padded image batch.

    ``d_offsets`` holds the window gradients offset-major, shape ``(kh, kw, n, out_h, out_w, C)``.
    The sum is accumulated in a phase-major buffer (one sub-image per (row, column) phase
    modulo the stride), where every window offset is a contiguous block add, then interleaved
    back into ``(n, H_pad, W_pad, C)``.
    """
    kh, kw, n, oh, ow, channels = d_offsets.shape
    sh, sw = strides
    _, height, width, _ = padded_shape
    rows, cols = -(-height // sh), -(-width // sw)
    phases = np.zeros((sh, sw, n, rows, cols, channels), dtype=d_offsets.dtype)
    for i in range(kh):
        for j in range(kw):
            qi, qj = i // sh, j // sw
            block = phases[i % sh, j % sw, :, qi : qi + oh, qj : qj + ow, :]
            block += d_offsets[i, j]
    images = phases.transpose(2, 3, 0, 4, 1, 5).reshape(n, rows * sh, cols * sw, channels)
    return images[:, :height, :width, :]
