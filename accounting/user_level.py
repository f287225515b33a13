"""User-level privacy of DP-SGD: a user contributes up to ``k`` examples.

Two routes from example-level accounting to a guarantee for every user's whole data:

**The mixture-of-Gaussians step** (:func:`user_level_step`, tight for Poisson sampling). With
each example drawn into a batch independently with probability ``q``, ``J ~ Binomial(k, q)`` of
a user's ``k`` examples enter a step, and their clipped gradients move the noisy sum by a vector
of norm at most ``J`` (in clipping norms). When all the user's gradients point the same way
(aligned gradients: e.g. ``k`` copies of one example) the shift is exactly ``J`` along one line,
so one step is the mixture-of-Gaussians (MoG) mechanism of Choquette-Choo, Ganesh, Steinke and
Thakurta (2023, "Privacy amplification for matrix mechanisms", arXiv:2310.15526): ``N(0,
sigma^2)`` against ``sum_j P(J = j) N(j, sigma^2)``. That case is attainable (a user holding
``k`` copies of one example), so no smaller epsilon can hold for every user. It is also the
worst case: shifts of norm at most ``j`` pointing different ways mix components that partly
cancel in the likelihood ratio, and the MoG analysis of that paper (which dp_accounting's
``MixtureOfGaussiansDpEvent`` implements) takes every component collinear at its largest norm.
Composing the step with the certified PLD accountant
(:func:`user_level_epsilon_bounds`) gives a certified bracket on the user-level epsilon for
add-or-remove-one-user neighbours.

**Group privacy** (:func:`group_privacy_epsilon`), TF Privacy's method for its user-level lines
(``compute_dp_sgd_privacy_statement``): an ``(eps, delta)``-DP mechanism is ``(k eps, delta
(e^{k eps} - 1) / (e^eps - 1))``-DP for groups of ``k`` (Vadhan 2017, "The complexity of
differential privacy", Lemma 2.2, in the tighter form of the penultimate line of its proof:
``delta sum_{i<k} e^{i eps}``). The example-level delta is found by a line search so that the
group's delta is the target. It applies to any sampler and any accountant, but it is loose:
``k`` times an epsilon computed at a much smaller delta.
"""

from __future__ import annotations

import math

import numpy as np

from accounting import _scipy
from accounting._validation import (
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    check_positive,
    check_positive_int,
    check_sample_rate,
    check_steps,
    count_as_float,
)
from accounting.accountant import Accountant
from accounting.events import (
    _MAX_MIXTURE_COMPONENTS,
    Event,
    MixtureOfGaussians,
)
from accounting.registry import make_accountant

__all__ = [
    "MAX_EXAMPLES_PER_USER_MOG",
    "group_privacy_delta",
    "group_privacy_epsilon",
    "user_level_epsilon_bounds",
    "user_level_step",
]

#: Largest ``max_examples_per_user`` :func:`user_level_step` represents (a mixture event holds at
#: most 4096 components: sensitivities ``0..k``).
MAX_EXAMPLES_PER_USER_MOG: int = _MAX_MIXTURE_COMPONENTS - 1

# The line search moves the example-level log delta down by at least log(10) per round, so it
# meets the float range (delta = 5e-324) after about 330 rounds; the cap is a safety net.
_MAX_BRACKET_ROUNDS = 400
_LOG_TEN = math.log(10.0)


def user_level_step(
    sample_rate: float, noise_multiplier: float, max_examples_per_user: int
) -> MixtureOfGaussians:
    """One Poisson-sampled DP-SGD step as seen by a user with up to ``k`` examples.

    Parameters
    ----------
    sample_rate : float
        Each example's inclusion probability ``q`` in ``[0, 1]``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, ``sigma > 0``.
    max_examples_per_user : int
        ``k``, the most examples one user holds, in ``[1, MAX_EXAMPLES_PER_USER_MOG]`` (4095).

    Returns
    -------
    MixtureOfGaussians
        ``MixtureOfGaussians(sigma, (0, 1, .., k), Binomial(k, q) probabilities)``: the MoG
        mechanism of Choquette-Choo et al. 2023 (arXiv:2310.15526) with the user's gradients
        aligned, the worst case (see the module docstring). For ``k = 1`` the probabilities are
        exactly ``(1 - q, q)``: the Poisson-subsampled Gaussian step.
    """
    rate = check_sample_rate(sample_rate, scalar=True)
    sigma = check_noise_multiplier(noise_multiplier, scalar=True)
    k = check_positive_int(max_examples_per_user, "max_examples_per_user",
                           MAX_EXAMPLES_PER_USER_MOG)
    if k == 1:  # exactly the Poisson step's pair, not a rounded binomial
        return MixtureOfGaussians(sigma, (0.0, 1.0), (1.0 - rate, rate))
    counts = np.arange(k + 1, dtype=float)
    # scipy's binomial pmf keeps relative precision where comb(k, j) q^j overflows or underflows
    probabilities = _scipy_binom_pmf(counts, k, rate)
    return MixtureOfGaussians(sigma, tuple(counts.tolist()), tuple(probabilities.tolist()))


def _scipy_binom_pmf(counts: np.ndarray, k: int, rate: float) -> np.ndarray:
    if rate in (0.0, 1.0):  # a point mass; the pmf's 0^0 conventions differ between versions
        probabilities = np.zeros(counts.shape)
        probabilities[0 if rate == 0.0 else -1] = 1.0
        return probabilities
    import scipy.stats  # noqa: PLC0415 - imported on first use, like accounting._scipy

    try:
        return np.asarray(scipy.stats.binom.pmf(counts, k, rate), dtype=float)
    except OverflowError:
        # SciPy's pmf overflows inside its incomplete-beta derivative for some subnormal rates
        # (e.g. 1.1e-308, SciPy 1.17); its log-pmf does not, and every term is then far from
        # needing the pmf's relative precision (the j >= 1 terms are below e^-700)
        return np.exp(np.asarray(scipy.stats.binom.logpmf(counts, k, rate), dtype=float))


def user_level_epsilon_bounds(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    max_examples_per_user: int,
    *,
    tolerance: float = 1e-3,
):
    """Certified bracket on the user-level epsilon of Poisson-sampled DP-SGD (tight MoG route).

    ``steps`` compositions of :func:`user_level_step` in the PLD accountant
    (``make_accountant("pld", tolerance=tolerance)``), add-or-remove-one-user neighbours.

    Parameters
    ----------
    sample_rate, noise_multiplier, max_examples_per_user :
        As for :func:`user_level_step`.
    steps : int
        Training steps, a whole number ``>= 0``.
    delta : float
        Target delta in ``(0, 1)``.
    tolerance : float
        The PLD accountant's target bracket width (default ``1e-3``).

    Returns
    -------
    EpsilonBounds
        ``(lower, upper, value_discretization)`` from
        :meth:`accounting.PldAccountant.get_epsilon_bounds`.

    Raises
    ------
    UnsupportedEventError
        If the PLD accountant cannot compose mixture-of-Gaussians events.
    """
    step = user_level_step(sample_rate, noise_multiplier, max_examples_per_user)
    steps = check_steps(steps)
    delta = check_delta(delta)
    tolerance = check_positive(tolerance, "tolerance")
    accountant = make_accountant("pld", tolerance=tolerance).compose(step, steps)
    return accountant.get_epsilon_bounds(delta)


def _log_group_factor(epsilon: float, group_size: int) -> float:
    """``log((e^{k eps} - 1) / (e^eps - 1))`` = ``log sum_{i<k} e^{i eps}``, stably.

    ``log k`` at ``eps = 0`` (the limit); ``inf`` for ``eps = inf``.
    """
    if epsilon == 0.0:
        return math.log(group_size)
    if math.isinf(epsilon):
        return math.inf
    group_epsilon = count_as_float(group_size) * epsilon
    if math.isinf(group_epsilon):
        return math.inf
    return _log_expm1(group_epsilon) - _log_expm1(epsilon)


def _log_expm1(x: float) -> float:
    """``log(e^x - 1)`` for ``x > 0`` without overflow."""
    return x + math.log(-math.expm1(-x)) if x > 1.0 else math.log(math.expm1(x))


def group_privacy_delta(epsilon: float, delta: float, group_size: int) -> float:
    """Delta of an ``(epsilon, delta)``-DP mechanism for groups of ``group_size``.

    Vadhan 2017 ("The complexity of differential privacy", Lemma 2.2; the tighter form of the
    penultimate line of its proof): the mechanism is ``(k epsilon, delta sum_{i=0}^{k-1}
    e^{i epsilon})``-DP for data sets differing in ``k`` records, and ``sum_{i<k} e^{i eps} =
    (e^{k eps} - 1) / (e^eps - 1)``. The group epsilon is ``k epsilon``.

    Parameters
    ----------
    epsilon : float
        Example-level epsilon, finite and ``>= 0``.
    delta : float
        Example-level delta in ``(0, 1)``.
    group_size : int
        ``k >= 1``.

    Returns
    -------
    float
        The group delta, capped at 1 (a delta of 1 says nothing).
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    k = check_positive_int(group_size, "group_size")
    if k == 1:
        return delta
    log_delta = math.log(delta) + _log_group_factor(epsilon, k)
    return 1.0 if log_delta >= 0.0 else math.exp(log_delta)


def group_privacy_epsilon(
    source: Event | Accountant,
    group_size: int,
    delta: float,
    *,
    accountant: str = "rdp",
    **accountant_options,
) -> float:
    """User-level (group) epsilon by group privacy, as TF Privacy's privacy statement does.

    Finds the example-level delta ``d`` for which Vadhan's Lemma 2.2
    (:func:`group_privacy_delta`) turns ``(eps(d), d)`` into a group delta equal to ``delta``,
    and returns ``k eps(d)``. The search is TF Privacy's (``_compute_dp_sgd_user_privacy`` in
    ``compute_dp_sgd_privacy_lib``, tensorflow-privacy 0.9): start from ``d = delta / 10``, step
    the bracket down by the gap in log delta until the group delta at its lower end is at most
    the target, then solve with Brent's method in ``log d``; so the numbers agree with TF
    Privacy's for the same example-level accountant. The result is certified whatever the
    search finds: it is ``k eps(d)`` at a ``d`` whose group delta was checked to be at most
    ``delta``.

    Parameters
    ----------
    source : Event or Accountant
        What the group's examples go through: an event (composed once in ``make_accountant(
        accountant, **accountant_options)``) or an accountant with everything composed already
        (then ``accountant`` and its options must be left out). Its ``get_epsilon`` is the
        example-level epsilon.
    group_size : int
        ``k >= 1``, the examples per user (any Python int).
    delta : float
        Target group (user-level) delta in ``(0, 1)``.
    accountant : str
        Registry name of the example-level accountant (default ``"rdp"``, TF Privacy's).
    **accountant_options :
        Options for it, e.g. ``orders=``, ``neighboring=``.

    Returns
    -------
    float
        The group epsilon; ``k eps(delta)`` itself for ``k = 1``; ``inf`` when no example-level
        delta within the float range gives the target (TF Privacy prints ``inf`` then too).
    """
    k = check_positive_int(group_size, "group_size")
    target = math.log(check_delta(delta))
    if isinstance(source, Accountant):
        if accountant != "rdp" or accountant_options:
            raise TypeError("accountant and its options apply to an event source, not to an "
                            "Accountant, which is used as composed")
        ledger = source
    elif isinstance(source, Event):
        ledger = make_accountant(accountant, **accountant_options).compose(source)
    else:
        raise TypeError(f"source must be an accounting event or an Accountant, got "
                        f"{type(source).__name__}")
    if k == 1:
        return float(ledger.get_epsilon(delta))
    cache: dict[float, float] = {}

    def example_epsilon(log_delta: float) -> float:
        if log_delta not in cache:
            cache[log_delta] = float(ledger.get_epsilon(math.exp(log_delta)))
        return cache[log_delta]

    def gap(log_delta: float) -> float:
        """log(group delta) - log(target) at example-level delta exp(log_delta)."""
        if math.exp(log_delta) == 0.0:  # below the float range: no bound there
            return math.inf
        return log_delta + _log_group_factor(example_epsilon(log_delta), k) - target

    # the group delta exceeds the example delta, so the example delta lies below the target
    high = target
    low = high - _LOG_TEN
    gap_low = gap(low)
    rounds = 0
    while gap_low > 0.0:
        rounds += 1
        if not math.isfinite(gap_low) or rounds > _MAX_BRACKET_ROUNDS:
            return math.inf
        # epsilon decreases in delta, so the root lies at least gap_low further down
        high = low - gap_low
        low = high - _LOG_TEN
        gap_low = gap(low)
    if not math.isfinite(gap_low):  # nan from an accountant: no certified answer
        return math.inf
    # the same shortcut upwards (TF Privacy's); kept only if it still brackets the root
    tightened = low - gap_low
    if tightened < high and gap(tightened) <= 0.0:
        low = tightened
    if gap(high) <= 0.0:  # the upper end already meets the target (and has the larger delta)
        root = high
    else:
        root = _scipy.optimize.brentq(gap, low, high, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                                      maxiter=200)
    # certify: the answer must come from a delta whose group delta is at most the target
    for candidate in (root, root - 1e-10 * max(1.0, abs(root)), low):
        if gap(candidate) <= 0.0:
            epsilon = example_epsilon(candidate)
            return 0.0 if epsilon == 0.0 else count_as_float(k) * epsilon
    return math.inf  # unreachable: gap(low) <= 0 was checked
