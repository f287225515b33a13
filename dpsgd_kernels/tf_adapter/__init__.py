"""TensorFlow adapter: DP-SGD on Keras models, cross-checked against the NumPy kernel.

Optional: ``pip install 'dpsgd-accounting[tensorflow]'``. ``import dpsgd_kernels`` never imports
this subpackage, and importing it does not import TensorFlow either: the names below are loaded
on first use (PEP 562), and the ones that need TensorFlow raise an ImportError naming the extra
when it is missing. :class:`PrivateDataLoader` and :func:`get_privacy_budget` need no TensorFlow.

- Weight exchange: :func:`to_numpy_model`, :func:`to_keras_model`.
- The DP-SGD step: :class:`TFDPStep` (vectorized per-example gradients, TF Privacy microbatch
  semantics, GPU when present), :func:`default_device`, :func:`enable_determinism`.
- Several devices (``tf.distribute``): :class:`TFDPStep` and :class:`PrivateKerasModel` under
  a strategy's scope, :func:`poisson_dataset` for ``distribute_datasets_from_function``.
- Notebook API: :class:`PrivateKerasModel`, :class:`PrivateDataLoader`,
  :func:`get_privacy_budget`.
- Cross-check harness: :func:`crosscheck` (TF vs NumPy vs TF Privacy vs accounting), also
  ``python -m dpsgd_kernels.tf_adapter.crosscheck``.
"""

from __future__ import annotations

import importlib

__all__ = [
    "SUPPORTED_LAYERS",
    "CrossCheckReport",
    "PrivateDataLoader",
    "PrivateHistory",
    "PrivateKerasModel",
    "TFDPGradient",
    "TFDPStep",
    "crosscheck",
    "default_device",
    "enable_determinism",
    "get_privacy_budget",
    "numpy_loss",
    "per_example_loss",
    "poisson_dataset",
    "to_keras_model",
    "to_numpy_model",
]

_HOMES = {
    "SUPPORTED_LAYERS": "convert",
    "to_keras_model": "convert",
    "to_numpy_model": "convert",
    "CrossCheckReport": "crosscheck",
    "crosscheck": "crosscheck",
    "PrivateDataLoader": "data",
    "default_device": "device",
    "enable_determinism": "device",
    "TFDPGradient": "dp_step",
    "TFDPStep": "dp_step",
    "get_privacy_budget": "budget",
    "poisson_dataset": "distribute",
    "numpy_loss": "losses",
    "per_example_loss": "losses",
    "PrivateHistory": "private_model",
    "PrivateKerasModel": "private_model",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
