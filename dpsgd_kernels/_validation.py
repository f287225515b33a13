"""Argument checks for the kernel: every failure names the argument and its allowed range.

Wrong kinds of value raise ``TypeError``; values of the right kind out of range raise
``ValueError``. The checks mirror :mod:`accounting._validation` so both packages read alike.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_array",
    "check_dtype",
    "check_finite_positive",
    "check_nonnegative",
    "check_positive_int",
    "check_probability",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_finite_positive(value, name: str) -> float:
    """Return ``value`` as float after checking ``0 < value < inf``."""
    number = _real(value, name)
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as float after checking ``0 <= value < inf``."""
    number = _real(value, name)
    if not (np.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_probability(value, name: str, *, open_low: bool = False) -> float:
    """Return ``value`` as float after checking it lies in ``[0, 1]`` (``(0, 1]`` if open_low)."""
    number = _real(value, name)
    low_ok = number > 0 if open_low else number >= 0
    if not (low_ok and number <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return number


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int after checking it is a whole number ``>= minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    if isinstance(value, (numbers.Integral, np.integer)):
        number = int(value)
    elif isinstance(value, (numbers.Real, np.floating)) and float(value).is_integer():
        number = int(value)
    else:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if number < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def check_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Return ``dtype`` as a NumPy dtype after checking it is float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from error
    if resolved not in _FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {dtype!r}")
    return resolved


def check_array(value, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """Return ``value`` as an array (cast to ``dtype`` if given) after checking it is finite."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of numbers, got {value!r}")
    try:
        array = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return array
