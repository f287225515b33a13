"""Lazy imports of the optional dependencies (TensorFlow, TF Privacy, pandas).

Nothing here runs at ``import dpsgd_kernels``: the adapter's modules call these functions when
they first need the library, so ``import dpsgd_kernels`` and ``import accounting`` never import
TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = [
    "INSTALL_HINT",
    "has_tensorflow",
    "keras_version",
    "require_tensorflow",
    "tf_privacy_or_none",
]

INSTALL_HINT = "pip install 'dpsgd-accounting[tensorflow]'"

# Keep TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) off the user's terminal
# unless they chose a level themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_tensorflow():
    """The ``tensorflow`` module, or an ImportError that says how to install it.

    Raises
    ------
    ImportError
        If TensorFlow is not installed, naming ``pip install 'dpsgd-accounting[tensorflow]'``.
    """
    try:
        return importlib.import_module("tensorflow")
    except ImportError as error:
        raise ImportError(
            "dpsgd_kernels.tf_adapter needs TensorFlow, which is not installed: "
            f"{INSTALL_HINT} (or the CPU build: pip install 'dpsgd-accounting[tensorflow-cpu]')"
        ) from error


def keras_version() -> str:
    """Version of the Keras behind ``tf.keras`` (``"2.15.0"`` on TF 2.15, ``"3.x"`` on 2.16+)."""
    keras = require_tensorflow().keras
    version = getattr(keras, "__version__", None)
    if version is None:
        top = importlib.import_module(keras.__name__.split(".")[0])
        version = getattr(top, "__version__", "2")
    return str(version)


def has_tensorflow() -> bool:
    """Whether TensorFlow can be imported (imports it if so)."""
    try:
        require_tensorflow()
    except ImportError:
        return False
    return True


def tf_privacy_or_none():
    """The ``tensorflow_privacy`` module, or ``None`` if it is missing or fails to import.

    TF Privacy 0.9.0 fails at import on TensorFlow >= 2.16 (its estimator dependency); that is
    reported as ``None`` too, since the cross-check treats TF Privacy as optional.
    """
    if "tensorflow_privacy" in sys.modules:
        return sys.modules["tensorflow_privacy"]
    require_tensorflow()
    try:
        return importlib.import_module("tensorflow_privacy")
    except Exception:  # any import failure means "not usable here"
        return None
