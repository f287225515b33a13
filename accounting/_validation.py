"""Argument checks shared by the public API.

Every check raises a ``TypeError`` for a value of the wrong kind and a ``ValueError`` naming the
argument and its allowed range for a value out of range, so that a bad input never turns into a
NaN, a silent ``inf`` or a wrong number further down.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_delta",
    "check_epsilon",
    "check_noise_multiplier",
    "check_orders",
    "check_positive",
    "check_positive_int",
    "check_sample_rate",
    "check_steps",
]


def _as_float_array(value, name: str) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number or array of real numbers, got {value!r}")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real number or array of real numbers") from error
    return array


def _scalar(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_sample_rate(value, name: str = "sample_rate"):
    """Return ``value`` as float (array) after checking ``0 <= value <= 1``."""
    array = _as_float_array(value, name)
    if np.any(np.isnan(array)) or np.any((array < 0) | (array > 1)):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(array) if array.ndim == 0 else array


def check_noise_multiplier(value, name: str = "noise_multiplier"):
    """Return ``value`` as float (array) after checking ``0 < value < inf``."""
    array = _as_float_array(value, name)
    if np.any(~np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(array) if array.ndim == 0 else array


def check_delta(value, name: str = "delta") -> float:
    """Return ``value`` as float after checking ``0 < value < 1``."""
    delta = _scalar(value, name)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return delta


def check_epsilon(value, name: str = "epsilon") -> float:
    """Return ``value`` as float after checking ``0 <= value < inf``."""
    epsilon = _scalar(value, name)
    if not 0.0 <= epsilon < np.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return epsilon


def check_positive(value, name: str) -> float:
    """Return ``value`` as float after checking ``0 < value < inf``."""
    number = _scalar(value, name)
    if not 0.0 < number < np.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_steps(value, name: str = "steps") -> int:
    """Return ``value`` as int after checking it is a non-negative integer."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    if isinstance(value, (numbers.Integral, np.integer)):
        steps = int(value)
    elif isinstance(value, (numbers.Real, np.floating)) and float(value).is_integer():
        steps = int(value)
    elif isinstance(value, (numbers.Real, np.floating)):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    else:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if steps < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return steps


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as int after checking it is an integer >= 1."""
    number = check_steps(value, name)
    if number < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return number


def check_orders(orders, name: str = "orders") -> np.ndarray:
    """Return ``orders`` as a 1-D float array after checking every order is finite and > 1."""
    array = np.atleast_1d(_as_float_array(orders, name))
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of Renyi orders > 1")
    if np.any(~np.isfinite(array)) or np.any(array <= 1):
        raise ValueError(f"{name} must all be finite Renyi orders > 1, got {orders!r}")
    return array
