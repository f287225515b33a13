"""Argument checks shared by the public API.

Every check raises a ``TypeError`` for a value of the wrong kind and a ``ValueError`` naming the
argument and its allowed range for a value out of range, so that a bad input never turns into a
NaN, a silent ``inf`` or a wrong number further down.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "MAX_ORDER",
    "check_delta",
    "check_epsilon",
    "check_noise_multiplier",
    "check_orders",
    "check_positive",
    "check_positive_int",
    "check_real_array",
    "check_sample_rate",
    "check_step_counts",
    "check_steps",
    "count_as_float",
]


#: Largest Rényi order accepted anywhere (orders, ``max_lambda + 1``, ``lambdas + 1``). An
#: integer order ``alpha`` is a sum of ``alpha - 1`` terms (summed in chunks of bounded size),
#: so this bounds the work and memory per order.
MAX_ORDER = 1_000_000


def check_real_array(value, name: str) -> np.ndarray:
    """Return ``value`` as a float array after checking it holds real numbers only (bools,
    complex numbers, strings and ints beyond the float range are refused, naming ``name``)."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise TypeError(f"{name} must be a real number or array of real numbers, got {value!r}")
    try:
        raw = np.asarray(value)
        array = None if raw.dtype.kind in "bcSUV" else np.asarray(raw, dtype=float)
    except OverflowError:
        raise ValueError(f"{name} lies beyond the float range, got {value!r:.60}") from None
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a real number or array of real numbers") from error
    if array is None:  # bools, complex numbers and strings are not real numbers
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {raw.dtype}")
    return array


def _scalar_or_array(array: np.ndarray, value, name: str, scalar: bool):
    if array.ndim == 0:
        return float(array)
    if scalar:
        raise TypeError(f"{name} must be a single real number, got an array of shape "
                        f"{array.shape}: {value!r}")
    return array


def _scalar(value, name: str) -> float:
    if type(value) is float:  # the common case, without the abstract-class checks
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range: the range checks then name it
        return math.inf if value > 0 else -math.inf


def _plain_number(value) -> float | None:
    """``value`` as float when it is a plain Python float or (float-range) int, else ``None``:
    the common case skips the array machinery, which costs microseconds per call."""
    kind = type(value)
    if kind is float or (kind is int and -(2**53) <= value <= 2**53):
        return float(value)
    return None


def check_sample_rate(value, name: str = "sample_rate", scalar: bool = False):
    """Return ``value`` as float (array) after checking ``0 <= value <= 1``.

    With ``scalar=True`` an array (even of one element) is a ``TypeError``.
    """
    number = _plain_number(value)
    if number is not None and 0.0 <= number <= 1.0:
        return number
    array = check_real_array(value, name)
    if np.any(np.isnan(array)) or np.any((array < 0) | (array > 1)):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return _scalar_or_array(array, value, name, scalar)


def check_noise_multiplier(value, name: str = "noise_multiplier", scalar: bool = False):
    """Return ``value`` as float (array) after checking ``0 < value < inf``.

    With ``scalar=True`` an array (even of one element) is a ``TypeError``.
    """
    number = _plain_number(value)
    if number is not None and 0.0 < number < math.inf:
        return number
    array = check_real_array(value, name)
    if np.any(~np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return _scalar_or_array(array, value, name, scalar)


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


def check_steps(value, name: str = "steps", minimum: int = 0) -> int:
    """Return ``value`` as int after checking it is a whole number ``>= minimum``.

    Any Python int is accepted (``10**400`` too); callers that need a float use
    :func:`count_as_float`, which gives ``inf`` beyond the float range.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    if isinstance(value, (numbers.Integral, np.integer)):
        steps = int(value)
    elif isinstance(value, (numbers.Real, np.floating)) and float(value).is_integer():
        steps = int(value)
    elif isinstance(value, (numbers.Real, np.floating)):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    else:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if steps < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return steps


def count_as_float(count: int) -> float:
    """``float(count)``, or ``inf`` for an int beyond the float range (e.g. ``10**400``)."""
    try:
        return float(count)
    except OverflowError:
        return float("inf")


def check_step_counts(steps) -> np.ndarray:
    """``steps`` as a float array of whole numbers ``>= 0`` (huge Python ints become ``inf``)."""
    if type(steps) is int and 0 <= steps <= 2**53:  # the common single count, without arrays
        return np.array(float(steps))
    if isinstance(steps, (str, bytes, bool, np.bool_)) or steps is None:
        raise TypeError(f"steps must be whole numbers, got {steps!r}")
    raw = np.asarray(steps)
    if raw.dtype == object:  # Python ints beyond int64: checked one by one
        flat = [count_as_float(check_steps(value)) for value in raw.ravel().tolist()]
        return np.array(flat, dtype=float).reshape(raw.shape)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"steps must be whole numbers, got an array of dtype {raw.dtype}")
    counts = raw.astype(float)
    if raw.dtype.kind in "iu":  # whole and finite already
        if raw.size and raw.min() < 0:
            raise ValueError(f"steps must be finite whole numbers >= 0, got {steps!r}"[:300])
        return counts
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.floor(counts)):
        raise ValueError(f"steps must be finite whole numbers >= 0, got {steps!r}"[:300])
    return counts


def check_positive_int(value, name: str, maximum: int | None = None) -> int:
    """Return ``value`` as int after checking it is an integer >= 1 (and <= ``maximum``)."""
    number = check_steps(value, name, minimum=1)
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be a whole number in [1, {maximum}], got {_short(value)}")
    return number


def check_orders(orders, name: str = "orders") -> np.ndarray:
    """Return ``orders`` as a 1-D float array after checking ``1 < order <= MAX_ORDER``."""
    array = np.atleast_1d(check_real_array(orders, name))
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of Renyi orders > 1")
    if np.any(~np.isfinite(array)) or np.any(array <= 1) or np.any(array > MAX_ORDER):
        raise ValueError(
            f"{name} must all be finite Renyi orders in (1, {MAX_ORDER:.0e}] (the largest order "
            f"accepted, MAX_ORDER, bounds the work per order), got {_short(orders)}"
        )
    return array


def _short(value) -> str:
    """``repr`` of a value, cut short so that a huge array does not flood the message."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
