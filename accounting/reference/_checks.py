"""Argument checks of :mod:`accounting.reference` and the limits they enforce.

Each ``check_*`` converts one argument to an exact ``mpmath.mpf`` (a binary float converts
without rounding) or an ``int`` and raises ``TypeError`` / ``ValueError`` naming the argument.
The public limits (:data:`MAX_ORDER`, :data:`MAX_DIGITS`, :data:`DEFAULT_DIGITS`,
:data:`INTEGRAL_NOISE_RANGE`, :data:`MAX_HOCKEY_STICK_EPSILON`) are defined here, next to the
checks, and re-exported by :mod:`accounting.reference`.
"""

from __future__ import annotations

import numbers

import mpmath

__all__ = [
    "DEFAULT_DIGITS",
    "GUARD_DIGITS",
    "INTEGRAL_NOISE_RANGE",
    "MAX_DIGITS",
    "MAX_HOCKEY_STICK_EPSILON",
    "MAX_ORDER",
    "check_alpha",
    "check_delta",
    "check_digits",
    "check_integer",
    "check_integral_sigma",
    "check_q",
    "check_sigma",
    "to_mpf",
]

#: Largest epsilon of :func:`~accounting.reference.hockey_stick_delta`: the bracketing of the
#: loss's root walks out to about ``epsilon sigma^2``, so this bounds its work (every
#: accountant's delta is 0 or vanishing long before).
MAX_HOCKEY_STICK_EPSILON = 1e6

#: Default number of significant decimal digits of the results.
DEFAULT_DIGITS = 50
#: Most significant digits accepted (the cost grows with the square of the precision or faster).
MAX_DIGITS = 100
#: Largest Rényi order the RDP functions accept (``lambda + 1`` for
#: :func:`~accounting.reference.log_moment`): the binomial sum costs ``alpha`` terms at full
#: precision.
MAX_ORDER = 100_000
#: Noise multipliers ``(smallest, largest)`` accepted by the numerical integration (fractional
#: orders, :func:`~accounting.reference.log_a_integral`,
#: :func:`~accounting.reference.log_moment`): its breakpoints are placed in floating point, which
#: fails beyond these. Integer orders by the binomial sum accept any ``sigma > 0``.
INTEGRAL_NOISE_RANGE = (1e-3, 1e6)

# Guard digits carried internally on top of the requested ``digits``.
GUARD_DIGITS = 10


def to_mpf(value, name: str) -> mpmath.mpf:
    """Convert a real number to an mpf exactly (a binary float converts without rounding)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, mpmath.mpf):
        return value
    if isinstance(value, numbers.Integral):
        return mpmath.mpf(int(value))
    if isinstance(value, numbers.Real):
        return mpmath.mpf(float(value))
    if isinstance(value, str):
        try:
            return mpmath.mpf(value)
        except ValueError:
            raise ValueError(f"{name} must be a real number, got {value!r}") from None
    raise TypeError(f"{name} must be a real number, got {type(value).__name__}")


def check_digits(digits) -> int:
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral):
        raise TypeError(f"digits must be an integer, got {digits!r}")
    if not 15 <= digits <= MAX_DIGITS:
        raise ValueError(f"digits must lie in [15, {MAX_DIGITS}] (MAX_DIGITS), got {digits!r}")
    return int(digits)


def check_q(q) -> mpmath.mpf:
    value = to_mpf(q, "q")
    if mpmath.isnan(value) or value < 0 or value > 1:
        raise ValueError(f"q (the sample rate) must lie in [0, 1], got {q!r}")
    return value


def check_sigma(sigma) -> mpmath.mpf:
    value = to_mpf(sigma, "sigma")
    if not mpmath.isfinite(value) or value <= 0:
        raise ValueError(f"sigma (the noise multiplier) must be finite and > 0, got {sigma!r}")
    return value


def check_alpha(alpha, limit: float = MAX_ORDER) -> mpmath.mpf:
    value = to_mpf(alpha, "alpha")
    if not mpmath.isfinite(value) or value <= 1 or value > limit:
        raise ValueError(
            f"alpha (the Renyi order) must lie in (1, {limit:.0e}], got {alpha!r}"
        )
    return value


def check_integral_sigma(sigma: mpmath.mpf) -> None:
    """The numerical integration's range of noise multipliers (see INTEGRAL_NOISE_RANGE)."""
    low, high = INTEGRAL_NOISE_RANGE
    if not low <= sigma <= high:
        raise ValueError(
            f"sigma must lie in [{low:g}, {high:g}] (INTEGRAL_NOISE_RANGE) for the numerical "
            f"integration (fractional orders, log_moment), got {mpmath.nstr(sigma, 6)}"
        )


def check_integer(value, name: str, minimum: int) -> int:
    """Return ``value`` as an int after checking it is integral (int, or integral float/mpf)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        real = to_mpf(value, name)
        if not mpmath.isfinite(real) or real != mpmath.floor(real):
            raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        number = int(real)
    if number < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def check_delta(delta) -> mpmath.mpf:
    value = to_mpf(delta, "delta")
    if mpmath.isnan(value) or not 0 < value < 1:
        raise ValueError(f"delta must lie in the open interval (0, 1), got {delta!r}")
    return value
