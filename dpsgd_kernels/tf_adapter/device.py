"""Where the adapter runs (GPU when TensorFlow sees one) and optional determinism for tests."""

from __future__ import annotations

from dpsgd_kernels.tf_adapter._imports import require_tensorflow

__all__ = ["default_device", "enable_determinism"]


def default_device() -> str:
    """``"/GPU:0"`` if ``tf.config.list_physical_devices('GPU')`` finds one, else ``"/CPU:0"``."""
    tf = require_tensorflow()
    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def enable_determinism(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic.

    Wraps ``keras.utils.set_random_seed`` and ``tf.config.experimental.enable_op_determinism``:
    repeated runs then give bit-identical results (GPU kernels included), at some speed cost.
    This changes TensorFlow's global configuration for the whole process.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    tf = require_tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
