"""Argument checks for the kernel: every failure names the argument and its allowed range.

Wrong kinds of value raise ``TypeError``; values of the right kind out of range raise
``ValueError``. The checks mirror :mod:`accounting._validation` so both packages read alike.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "MAX_L2_NORM_CLIP",
    "MAX_NOISE_MULTIPLIER",
    "all_finite",
    "check_array",
    "check_dtype",
    "check_finite_positive",
    "check_l2_norm_clip",
    "check_noise_multiplier",
    "check_nonnegative",
    "check_positive_int",
    "check_probability",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Together they keep the noise sigma * C <= 1e18, whose squares (Adam's second moment) stay
# finite in float32; clipping norms beyond any gradient norm already mean "no clipping".
MAX_L2_NORM_CLIP = 1e12
MAX_NOISE_MULTIPLIER = 1e6


def _real(value, name: str) -> float:
    if type(value) is float:  # the common case, without the ABC check below
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _at_most(maximum: float | None) -> str:
    return "" if maximum is None else f" and <= {maximum:g}"


def check_finite_positive(value, name: str, *, maximum: float | None = None) -> float:
    """Return ``value`` as float after checking ``0 < value < inf`` (and ``<= maximum``)."""
    number = _real(value, name)
    if not (math.isfinite(number) and number > 0 and (maximum is None or number <= maximum)):
        raise ValueError(f"{name} must be a finite number > 0{_at_most(maximum)}, got {value!r}")
    return number


def check_nonnegative(value, name: str, *, maximum: float | None = None) -> float:
    """Return ``value`` as float after checking ``0 <= value < inf`` (and ``<= maximum``)."""
    number = _real(value, name)
    if not (math.isfinite(number) and number >= 0 and (maximum is None or number <= maximum)):
        raise ValueError(f"{name} must be a finite number >= 0{_at_most(maximum)}, got {value!r}")
    return number


def check_l2_norm_clip(value, name: str = "l2_norm_clip") -> float:
    """Return the clipping norm as float after checking ``0 < value <= MAX_L2_NORM_CLIP``."""
    return check_finite_positive(value, name, maximum=MAX_L2_NORM_CLIP)


def check_noise_multiplier(value, name: str = "noise_multiplier", *, allow_zero=True) -> float:
    """Return the noise multiplier as float after checking it lies in ``[0, MAX_NOISE_MULTIPLIER]``
    (``(0, MAX_NOISE_MULTIPLIER]`` without ``allow_zero``)."""
    check = check_nonnegative if allow_zero else check_finite_positive
    return check(value, name, maximum=MAX_NOISE_MULTIPLIER)


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
    elif (isinstance(value, (numbers.Real, np.floating)) and float(value).is_integer()
          and abs(float(value)) <= 2**53):  # beyond 2**53 a float no longer counts exactly
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


def all_finite(array: np.ndarray) -> bool:
    """Whether a numeric array holds no NaN or inf, in two reductions and no temporary array
    (``min`` and ``max`` propagate NaN, and any inf is the one or the other)."""
    if array.dtype.kind != "f" or array.size == 0:
        return True
    # The ufuncs' own reductions: ndarray.min/max add a Python-level wrapper per call.
    low, high = np.minimum.reduce(array, axis=None), np.maximum.reduce(array, axis=None)
    if array.dtype.itemsize > 8:  # long double: beyond a Python float's range
        return bool(np.isfinite(low) and np.isfinite(high))
    return math.isfinite(low) and math.isfinite(high)


def check_array(value, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    """Return ``value`` as an array (cast to ``dtype`` if given) after checking it is finite.

    Complex, string and other non-real arrays raise ``TypeError`` before any cast (a cast would
    silently drop imaginary parts); an array is copied only when ``dtype`` differs from its own.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of numbers, got {value!r}")
    try:
        array = np.asarray(value)
        if array.dtype.kind == "O":  # e.g. a pandas object column of numbers
            array = array.astype(np.float64 if dtype is None else dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    if not all_finite(array):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    if dtype is not None and array.dtype != dtype:
        narrowing = array.dtype.kind == "f" and np.dtype(dtype).itemsize < array.dtype.itemsize
        with np.errstate(over="ignore"):
            array = array.astype(dtype)
        if narrowing and not all_finite(array):
            limit = np.finfo(dtype).max
            raise ValueError(
                f"{name} must lie within {np.dtype(dtype).name}'s range (|{name}| <= {limit:.3g})"
            )
    return array
