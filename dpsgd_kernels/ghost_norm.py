"""Per-group gradients of a linear map, materialised or only their norms ("ghost norm").

A Dense layer (and a Conv2D layer seen through its im2col patches) computes ``z = a W + b`` where,
per example ``i``, ``a_i`` is a ``(T, K)`` matrix (``T`` = 1 for a Dense layer on flat input,
``T`` = output positions for a convolution) and ``delta_i = dL_i/dz_i`` is ``(T, P)``. The
gradient of example ``i`` with respect to the kernel is ``a_i^T delta_i`` (Goodfellow 2015,
"Efficient per-example gradient computations"). For a group ``b`` of ``m`` consecutive examples
(a TF Privacy microbatch, whose loss is the mean of its examples' losses) it is

    G_b = (1/m) A_b^T D_b,   A_b = stacked a_i (m T, K),   D_b = stacked delta_i (m T, P),

and its squared Frobenius norm follows from the two Gram matrices without forming ``G_b``:

    ||G_b||^2 = (1/m^2) sum_{s, s'} (A_b A_b^T)_{s s'} (D_b D_b^T)_{s s'}

(the "ghost norm" of Goodfellow 2015 and Li et al. 2022, "Large Language Models Can Be Strong
Differentially Private Learners", ghost clipping). With ``S = m T`` rows per group the ghost norm
adds about ``S^2 (K + P)`` operations per group (the Gram matrices; the clipped sum is then one
re-weighted product, the same as the non-private gradient), while materialising adds ``K P``
stored entries per group (a batched product, its squared norm, and the weighted sum of groups).
The ghost norm is preferred when ``S = 1`` or ``S^2 (K + P) < K P``: always for a Dense layer
on flat input with one example per group, rarely for a convolution with many output positions.

All functions take ``a`` of shape ``(n, T, K)`` and ``delta`` of shape ``(n, T, P)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ghost_is_cheaper",
    "ghost_sq_norms",
    "group_bias_gradients",
    "group_kernel_gradients",
    "row_sq_norms",
    "weighted_bias_gradient",
    "weighted_kernel_gradient",
]


def _grouped(array: np.ndarray, group_size: int) -> np.ndarray:
    """Reshape ``(n, T, F)`` to ``(n / group_size, group_size * T, F)`` (consecutive groups)."""
    n, tokens, features = array.shape
    return array.reshape(n // group_size, group_size * tokens, features)


def row_sq_norms(rows: np.ndarray) -> np.ndarray:
    """Squared L2 norm of every row of a 2-D array, as a batch of BLAS dot products (faster
    than ``einsum("bi,bi->b")`` on the long rows of materialised gradients)."""
    return np.matmul(rows[:, None, :], rows[:, :, None]).reshape(rows.shape[0])


def ghost_is_cheaper(rows_per_group: int, in_features: int, out_features: int) -> bool:
    """Whether the Gram-matrix norm beats materialising a ``(K, P)`` gradient per group."""
    if rows_per_group == 1:  # (||a||^2 + 1) ||d||^2: never more work than materialising
        return True
    return rows_per_group**2 * (in_features + out_features) < in_features * out_features


def group_kernel_gradients(
    a: np.ndarray, delta: np.ndarray, group_size: int, transposed: bool = False
) -> np.ndarray:
    """Kernel gradient of every group's mean loss, shape ``(n / group_size, K, P)``, or its
    transpose ``(n / group_size, P, K)`` (computed as ``D_b^T A_b``) with ``transposed``."""
    a_groups, d_groups = _grouped(a, group_size), _grouped(delta, group_size)
    if transposed:
        a_groups, d_groups = d_groups, a_groups
    if a_groups.shape[1] == 1:  # one row per group: an outer product, no contraction needed
        grads = a_groups[:, 0, :, None] * d_groups[:, 0, None, :]
    else:
        grads = np.matmul(a_groups.transpose(0, 2, 1), d_groups)
    if group_size != 1:
        grads /= group_size
    return grads


def _ones(count: int, dtype) -> np.ndarray:
    return np.ones(count, dtype=dtype)


def group_bias_gradients(delta: np.ndarray, group_size: int) -> np.ndarray:
    """Bias gradient of every group's mean loss, shape ``(n / group_size, P)``.

    The sum over a group's rows is a product with a vector of ones: BLAS reads the rows in
    memory order, where ``sum(axis=1)`` reduces along a strided axis.
    """
    groups = _grouped(delta, group_size)
    if groups.shape[1] == 1:
        grads = groups[:, 0, :].copy()
    else:
        grads = np.matmul(_ones(groups.shape[1], delta.dtype), groups)
    if group_size != 1:
        grads /= group_size
    return grads


def ghost_sq_norms(a: np.ndarray, delta: np.ndarray, group_size: int) -> np.ndarray:
    """Squared Frobenius norm of every group's kernel gradient, from Gram matrices only."""
    a_groups, d_groups = _grouped(a, group_size), _grouped(delta, group_size)
    if a_groups.shape[1] == 1:  # ||a^T d||^2 = ||a||^2 ||d||^2 for one row
        sq = np.einsum("bk,bk->b", a_groups[:, 0], a_groups[:, 0])
        sq = sq * np.einsum("bp,bp->b", d_groups[:, 0], d_groups[:, 0])
    else:
        gram_a = np.matmul(a_groups, a_groups.transpose(0, 2, 1))
        gram_d = np.matmul(d_groups, d_groups.transpose(0, 2, 1))
        sq = np.einsum("bst,bst->b", gram_a, gram_d)
    return sq / group_size**2 if group_size != 1 else sq


def weighted_kernel_gradient(a: np.ndarray, delta: np.ndarray, weights) -> np.ndarray:
    """``sum_i w_i a_i^T delta_i`` as one matrix product; ``weights`` is a scalar or ``(n,)``."""
    n, tokens, in_features = a.shape
    flat_a = a.reshape(n * tokens, in_features)
    flat_d = delta.reshape(n * tokens, delta.shape[2])
    if np.ndim(weights) == 0:
        return (flat_a.T @ flat_d) * weights
    per_row = np.asarray(weights, dtype=delta.dtype)
    if tokens != 1:
        per_row = np.repeat(per_row, tokens)
    return flat_a.T @ (flat_d * per_row[:, None])


def weighted_bias_gradient(delta: np.ndarray, weights) -> np.ndarray:
    """``sum_i w_i sum_t delta_{i, t}``; ``weights`` is a scalar or ``(n,)``."""
    n, tokens, out_features = delta.shape
    flat_d = delta.reshape(n * tokens, out_features)
    if np.ndim(weights) == 0:
        return (_ones(n * tokens, delta.dtype) @ flat_d) * weights
    per_row = np.asarray(weights, dtype=delta.dtype)
    if tokens != 1:
        per_row = np.repeat(per_row, tokens)
    return per_row @ flat_d
