"""Weight exchange between a Keras ``Sequential`` and the NumPy reference model.

Both hold parameters in the same order and shapes (``get_weights()``: kernel then bias per layer,
Dense ``(in, units)``, Conv2D ``(kh, kw, in, filters)``, NHWC images), so converting is building
the same stack of layers and copying the weights. Supported Keras layers: ``Dense``, ``Conv2D``,
``MaxPooling2D`` (``MaxPool2D``), ``Flatten``, ``InputLayer`` and an ``Activation`` layer directly
after a linear Dense/Conv2D (folded into it); activations ``relu``, ``sigmoid``, ``tanh``,
``softmax`` and ``linear``. Works on Keras 2 (TF 2.15) and Keras 3 models.
"""

from __future__ import annotations

import numpy as np

from dpsgd_kernels.activations import ACTIVATIONS
from dpsgd_kernels.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D
from dpsgd_kernels.model import Sequential
from dpsgd_kernels.tf_adapter._imports import require_tensorflow

__all__ = ["SUPPORTED_LAYERS", "numpy_layers", "to_keras_model", "to_numpy_model"]

SUPPORTED_LAYERS = ("Dense", "Conv2D", "MaxPooling2D", "Flatten", "InputLayer", "Activation")


def _activation_name(value, where: str) -> str:
    name = value if isinstance(value, str) else getattr(value, "__name__", None)
    if isinstance(value, dict):  # Keras 3 may serialise built-in activations as a dict
        name = value.get("config", value.get("class_name"))
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{where}: activation must be one of {sorted(ACTIVATIONS)}, got {value!r}"
        )
    return name


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    return tuple(int(v) for v in value)


def _check_plain(config: dict, where: str) -> None:
    """Refuse options the NumPy layers cannot represent (they would change the results)."""
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                "kernel_constraint", "bias_constraint", "lora_rank"):
        if config.get(key) is not None:
            raise ValueError(f"{where}: {key} is not supported by the NumPy kernel")
    if config.get("data_format", "channels_last") not in ("channels_last", None):
        raise ValueError(f"{where}: data_format must be 'channels_last'")
    if "dilation_rate" in config and _pair(config["dilation_rate"]) != (1, 1):
        raise ValueError(f"{where}: dilation_rate must be 1")
    if config.get("groups", 1) != 1:
        raise ValueError(f"{where}: groups must be 1")


def numpy_layers(keras_model) -> list[Layer]:
    """Unbuilt NumPy layers equivalent to the layers of ``keras_model``.

    Raises
    ------
    ValueError
        For a layer type or option the NumPy kernel does not support (the message names the
        layer and the supported types).
    """
    layers: list[Layer] = []
    for index, layer in enumerate(keras_model.layers):
        kind = type(layer).__name__
        where = f"keras_model.layers[{index}] ({kind} {layer.name!r})"
        config = layer.get_config()
        if kind == "InputLayer":
            continue
        if kind in ("Dense", "Conv2D", "MaxPooling2D", "Flatten"):
            _check_plain(config, where)
        if kind == "Dense":
            layers.append(Dense(int(config["units"]), _activation_name(config["activation"], where),
                                bool(config.get("use_bias", True))))
        elif kind == "Conv2D":
            padding = config["padding"]
            if padding not in ("same", "valid"):
                raise ValueError(f"{where}: padding must be 'same' or 'valid', got {padding!r}")
            layers.append(Conv2D(int(config["filters"]), _pair(config["kernel_size"]),
                                 strides=_pair(config["strides"]), padding=padding,
                                 activation=_activation_name(config["activation"], where),
                                 use_bias=bool(config.get("use_bias", True))))
        elif kind == "MaxPooling2D":
            strides = config.get("strides")
            layers.append(MaxPool2D(_pair(config["pool_size"]),
                                    None if strides is None else _pair(strides),
                                    padding=config["padding"]))
        elif kind == "Flatten":
            layers.append(Flatten())
        elif kind == "Activation":
            name = _activation_name(config["activation"], where)
            previous = layers[-1] if layers else None
            if not isinstance(previous, (Dense, Conv2D)) or previous.activation.name != "linear":
                raise ValueError(
                    f"{where}: an Activation layer is supported only directly after a Dense or "
                    "Conv2D layer without activation"
                )
            previous.activation = ACTIVATIONS[name]
        else:
            raise ValueError(
                f"{where}: unsupported layer type; supported: {', '.join(SUPPORTED_LAYERS)}"
            )
    return layers


def _input_shape(keras_model) -> tuple[int, ...]:
    try:
        shape = keras_model.input_shape
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "keras_model must be built with a known input shape (start it with "
            "keras.Input(shape=...) or call model.build)"
        ) from error
    if isinstance(shape, list) or shape is None or any(d is None for d in shape[1:]):
        raise ValueError(f"keras_model must have one input of fixed shape, got {shape}")
    return tuple(int(d) for d in shape[1:])


def to_numpy_model(keras_model, dtype="float32") -> Sequential:
    """The NumPy reference :class:`~dpsgd_kernels.Sequential` with ``keras_model``'s weights.

    Parameters
    ----------
    keras_model : keras.Sequential
        A built model of supported layers (see :data:`SUPPORTED_LAYERS`).
    dtype : {"float32", "float64"}
        Dtype of the NumPy model (float64 makes a more accurate reference).

    Returns
    -------
    Sequential
        Same layers, same weights; ``predict`` equals ``keras_model(x)`` to float32 rounding.
    """
    if not hasattr(keras_model, "layers") or not hasattr(keras_model, "get_weights"):
        raise TypeError(f"keras_model must be a keras.Sequential, got {type(keras_model).__name__}")
    if hasattr(keras_model, "trainable_variables") and (
        len(keras_model.trainable_variables) != len(keras_model.get_weights())
    ):
        raise ValueError("keras_model must have only trainable weights (no frozen layers)")
    model = Sequential(numpy_layers(keras_model), input_shape=_input_shape(keras_model),
                       dtype=dtype, rng=0)
    model.set_weights(keras_model.get_weights())
    return model


def to_keras_model(numpy_model: Sequential):
    """A ``keras.Sequential`` (of ``tf.keras``) with the layers and weights of ``numpy_model``."""
    keras = require_tensorflow().keras
    if not isinstance(numpy_model, Sequential):
        raise TypeError(
            f"numpy_model must be a dpsgd_kernels.Sequential, got {type(numpy_model).__name__}"
        )
    dtype = numpy_model.dtype.name
    stack = [keras.Input(shape=numpy_model.input_shape, dtype=dtype)]
    for layer in numpy_model.layers:
        if isinstance(layer, Dense):
            stack.append(keras.layers.Dense(layer.units, activation=layer.activation.name,
                                            use_bias=layer.use_bias, dtype=dtype))
        elif isinstance(layer, Conv2D):
            stack.append(keras.layers.Conv2D(layer.filters, layer.kernel_size,
                                             strides=layer.strides, padding=layer.padding,
                                             activation=layer.activation.name,
                                             use_bias=layer.use_bias, dtype=dtype))
        elif isinstance(layer, MaxPool2D):
            stack.append(keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides,
                                                   padding=layer.padding, dtype=dtype))
        elif isinstance(layer, Flatten):
            stack.append(keras.layers.Flatten(dtype=dtype))
        else:
            raise ValueError(f"numpy_model: layer {layer!r} has no Keras equivalent here")
    model = keras.Sequential(stack)
    model.set_weights(numpy_model.get_weights())
    return model
