"""Padding arithmetic (TensorFlow conventions) and im2col / col2im for NHWC images.

TensorFlow's ``padding="same"`` (``tf.nn.conv2d``, ``tf.nn.max_pool2d``): for input size ``n``,
kernel ``k`` and stride ``s`` the output size is ``ceil(n / s)``, the total padding is
``max((out - 1) s + k - n, 0)``, ``pad_total // 2`` goes before (top/left) and the rest after
(bottom/right). ``padding="valid"``: ``out = floor((n - k) / s) + 1`` and no padding.

Patches are gathered from a strided window view with one copy, or with two where window rows
are short (:func:`column_windows_shape`); their adjoint adds one block per kernel offset
(``kh * kw`` adds): loops run over kernel offsets, never over examples.

A strided convolution whose kernel is a whole number of strides (``kh = a sh``, ``kw = b sw``)
is the stride-1 convolution, with an ``a x b`` kernel, of the input rearranged into blocks of
``sh x sw`` pixels stacked on the channel axis ("space to depth": :func:`space_to_depth`; the
rewrite behind e.g. TensorFlow's ``tf.nn.space_to_depth``). Its patches are the same numbers
in another column order, but gathered in contiguous runs ``sh`` times longer, and its adjoint
needs ``a b`` block adds instead of ``kh kw`` (the MNIST CNN's ``8 x 8`` stride-2 first layer,
one channel, gathers runs of 16 numbers instead of 8).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from dpsgd_kernels import _tuning

__all__ = [
    "column_windows_shape",
    "depth_to_space",
    "extract_patches",
    "pad_images",
    "padding_1d",
    "scatter_patches",
    "space_to_depth",
]

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


def pad_images(
    x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0, buffer=None
) -> np.ndarray:
    """Pad ``(n, H, W, C)`` by ``(top, bottom, left, right)`` with ``value``.

    ``buffer`` (optional): an array of the padded shape whose padding already holds ``value``
    (one this function filled before, with the same geometry); only the inside is written.
    """
    top, bottom, left, right = pads
    if not any(pads):
        return x
    if buffer is None:
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)
    buffer[:, top : top + x.shape[1], left : left + x.shape[2], :] = x
    return buffer


def _copy_cost(runs: int, run_bytes: int) -> int:
    """A strided copy's cost in bytes copied, each run charged
    :data:`~dpsgd_kernels._tuning.RUN_OVERHEAD_BYTES` extra."""
    return runs * (_tuning.RUN_OVERHEAD_BYTES + run_bytes)


def column_windows_shape(
    x_shape: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, int],
    out: tuple[int, int], itemsize: int,
) -> tuple[int, int, int, int] | None:
    """Shape of the work array with which :func:`extract_patches` gathers in two copies, or
    ``None`` where one copy is cheaper.

    One copy moves every window row on its own: ``kh`` runs of ``kw C`` elements per patch.
    Two copies first gather, for every output column, the ``kw C`` elements of each input row
    its windows read (``(n, out_w, rows read, kw C)``), where every patch is then one run of
    ``kh kw C`` elements. That moves more bytes in fewer, longer runs: a win for short rows
    (e.g. the MNIST CNN's first convolution, 64-byte rows), a loss for long ones.
    """
    (kh, kw), (sh, _), (oh, ow) = kernel, strides, out
    n, channels = x_shape[0], x_shape[3]
    rows_read = sh * (oh - 1) + kh
    row_bytes = kw * channels * itemsize
    one = _copy_cost(n * oh * ow * kh, row_bytes)
    two = _copy_cost(n * ow * rows_read, row_bytes) + _copy_cost(n * oh * ow, kh * row_bytes)
    return (n, ow, rows_read, kw * channels) if two < one else None


def extract_patches(
    x_padded: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], out: tuple[int, int],
    buffer=None, columns=None,
) -> np.ndarray:
    """Windows of a padded NHWC batch, shape ``(n, out_h, out_w, kh, kw, C)``.

    A fresh array, or ``buffer`` (of that shape and the input's dtype) overwritten. With
    ``columns`` (a work array of :func:`column_windows_shape`), gathered in two copies.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out
    n, channels = x_padded.shape[0], x_padded.shape[3]
    if columns is not None:
        x0, x1, x2, x3 = x_padded.strides
        column_view = as_strided(
            x_padded, (n, ow, columns.shape[2], kw, channels), (x0, sw * x2, x1, x2, x3)
        )
        np.copyto(columns.reshape(column_view.shape), column_view)
        c0, c1, c2, c3 = columns.strides
        windows = as_strided(
            columns, (n, oh, ow, kh, kw, channels), (c0, sh * c2, c1, c2, channels * c3, c3)
        )
    else:
        # View (n, H', W', C, kh, kw) of every window, keep the strided ones.
        windows = sliding_window_view(x_padded, (kh, kw), axis=(1, 2))
        windows = windows[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]
        windows = windows.transpose(0, 1, 2, 4, 5, 3)
    if buffer is None:
        return np.ascontiguousarray(windows)
    np.copyto(buffer, windows)
    return buffer


def _start_phase(phase: np.ndarray, first: np.ndarray | None) -> None:
    """Write a phase's first window offset (its top-left ``first.shape`` block) and zero the
    rest of the phase (all of it when no offset falls in the phase)."""
    if first is None:
        phase[...] = 0
        return
    _, oh, ow, _ = first.shape
    phase[:, :oh, :ow] = first
    phase[:, oh:] = 0
    phase[:, :oh, ow:] = 0


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
    phases = np.empty((sh, sw, n, rows, cols, channels), dtype=d_offsets.dtype)
    for p in range(sh):
        for q in range(sw):
            _start_phase(phases[p, q], d_offsets[p, q] if p < kh and q < kw else None)
    for i in range(kh):
        for j in range(kw):
            if i < sh and j < sw:
                continue  # the phase's first offset, written by _start_phase
            qi, qj = i // sh, j // sw
            block = phases[i % sh, j % sw, :, qi : qi + oh, qj : qj + ow, :]
            block += d_offsets[i, j]
    images = phases.transpose(2, 3, 0, 4, 1, 5).reshape(n, rows * sh, cols * sw, channels)
    return images[:, :height, :width, :]


def _phase_slices(pad: int, size: int, block: int, blocks: int):
    """Per phase ``p`` (image row ``r`` with ``r % block == p`` in padded coordinates): the
    input rows of that phase as a slice, and the first block holding them.

    Only rows inside the ``blocks * block`` covered rows are kept (the rest no window reads).
    """
    covered = min(size, blocks * block - pad)
    phases = []
    for phase in range(block):
        first = (phase - pad) % block  # first input row r with (r + pad) % block == phase
        count = len(range(first, covered, block))
        phases.append((phase, slice(first, covered, block), (first + pad) // block, count))
    return phases


def space_to_depth(
    x: np.ndarray, pads: tuple[int, int, int, int], block: tuple[int, int],
    blocks: tuple[int, int], buffer=None,
) -> np.ndarray:
    """Zero-pad ``(n, H, W, C)`` by ``pads`` and regroup it into ``(n, bh, bw, sh * sw * C)``.

    Block ``(u, v)`` holds padded pixels ``(sh u + p, sw v + q)`` for ``0 <= p < sh``,
    ``0 <= q < sw``, channel index ``(p, q, c)`` in C order; ``blocks = (bh, bw)`` blocks are
    made (padding rows or columns past them are dropped; no window reads them). ``buffer``
    (optional): the result array of an earlier call with the same geometry (or zeros), whose
    padding is still zero; only the inside is written.
    """
    n, height, width, channels = x.shape
    (sh, sw), (bh, bw) = block, blocks
    top, _, left, _ = pads
    shape = (n, bh, bw, sh, sw, channels)
    if top == left == 0 and bh * sh <= height and bw * sw <= width:  # no padding read: 1 copy
        image = x[:, : bh * sh, : bw * sw].reshape(n, bh, sh, bw, sw, channels)
        image = image.transpose(0, 1, 3, 2, 4, 5)
        if buffer is None:
            out = np.ascontiguousarray(image)
        else:
            out = buffer.reshape(shape)
            np.copyto(out, image)
        return out.reshape(n, bh, bw, sh * sw * channels)
    out = np.zeros(shape, dtype=x.dtype) if buffer is None else buffer.reshape(shape)
    for p, rows, u, count_u in _phase_slices(top, height, sh, bh):
        for q, cols, v, count_v in _phase_slices(left, width, sw, bw):
            out[:, u : u + count_u, v : v + count_v, p, q, :] = x[:, rows, cols, :]
    return out.reshape(n, bh, bw, sh * sw * channels)


def depth_to_space(
    d_blocks: np.ndarray, pads: tuple[int, int, int, int], block: tuple[int, int],
    input_hw: tuple[int, int],
) -> np.ndarray:
    """Adjoint of :func:`space_to_depth`: ``(n, bh, bw, sh * sw * C)`` back to ``(n, H, W, C)``
    (padding dropped; input pixels no block holds get zero)."""
    n, bh, bw, depth = d_blocks.shape
    (sh, sw), (height, width) = block, input_hw
    channels = depth // (sh * sw)
    top, _, left, _ = pads
    blocks6 = d_blocks.reshape(n, bh, bw, sh, sw, channels)
    if top == left == 0 and bh * sh <= height and bw * sw <= width:
        full = (bh * sh, bw * sw) == (height, width)
        out = (np.empty if full else np.zeros)((n, height, width, channels), dtype=d_blocks.dtype)
        image = out[:, : bh * sh, : bw * sw].reshape(n, bh, sh, bw, sw, channels)
        image[...] = blocks6.transpose(0, 1, 3, 2, 4, 5)
        return out
    row_phases = _phase_slices(top, height, sh, bh)
    col_phases = _phase_slices(left, width, sw, bw)
    covered = (row_phases[0][1].stop, col_phases[0][1].stop)
    full = covered == (height, width)
    out = (np.empty if full else np.zeros)((n, height, width, channels), dtype=d_blocks.dtype)
    for p, rows, u, count_u in row_phases:
        for q, cols, v, count_v in col_phases:
            out[:, rows, cols, :] = blocks6[:, u : u + count_u, v : v + count_v, p, q, :]
    return out
