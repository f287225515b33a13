"""Privacy spent by a DP-SGD run, from the training hyper-parameters."""

from __future__ import annotations

import numpy as np

from accounting._validation import (
    check_delta,
    check_noise_multiplier,
    check_orders,
    check_sample_rate,
    check_step_counts,
    check_steps,
    count_as_float,
)
from accounting.rdp.accountant import RdpAccountant, poisson_gaussian_epsilon
from accounting.rdp.conversions import Conversion, check_conversion, epsilon_objective
from accounting.rdp.curve import epsilon_curve
from accounting.rdp.order_search import kl_lower_bound, minimize_over_orders
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.rdp.sampled_gaussian import rdp_items
from accounting.registry import accountant_info, make_accountant
from accounting.sampling import _sample_rate_and_steps, dpsgd_run, dpsgd_sample_rate_and_steps

__all__ = [
    "compute_epsilon",
    "dpsgd_epsilon",
    "dpsgd_sample_rate_and_steps",
    "epsilon_grid",
    "get_privacy_budget",
]


def compute_epsilon(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    conversion: Conversion = "improved",
    orders=None,
    pld_tolerance: float = 1e-3,
) -> float:
    """Epsilon after ``steps`` Poisson-subsampled Gaussian steps, at ``delta``.

    ``conversion`` and ``orders`` apply to the RDP accountant; the moments accountant always uses
    its tail bound (equal to the classic conversion); ``"pld"`` answers with the certified upper
    bound of a bracket at most ``pld_tolerance`` wide.
    """
    if orders is None and accountant_info(accountant).factory is RdpAccountant:
        # RdpAccountant's own search without building one: the same checks in the same order
        # (conversion, steps, noise, sample rate, delta) and the same value
        conversion = "improved" if conversion is None else check_conversion(conversion)
        count = count_as_float(check_steps(steps))
        sigma = check_noise_multiplier(noise_multiplier, scalar=True)
        q = check_sample_rate(sample_rate, scalar=True)
        delta = check_delta(delta)
        if q > 0.0 and 0.0 < count < np.inf:
            return poisson_gaussian_epsilon(q, sigma, count, delta, conversion)[0]
    return (
        make_accountant(accountant, conversion, orders, pld_tolerance)
        .compose(sample_rate, noise_multiplier, steps)
        .get_epsilon(delta)
    )


def dpsgd_epsilon(
    sample_size: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float,
    accountant: str = "rdp",
    conversion: Conversion = "improved",
    *,
    sampling: str = "poisson",
    max_batch_size: int | None = None,
) -> float:
    """Epsilon spent by DP-SGD with the batch sampler ``sampling``.

    Parameters
    ----------
    sample_size : int
        Number of training examples ``n >= 1``.
    batch_size : int
        (Expected) batch size, ``1 <= batch_size <= n``.
    epochs : float
        Number of epochs ``>= 0``; ``steps = ceil(epochs n / batch_size)``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, ``> 0``.
    delta : float
        Target delta in ``(0, 1)``.
    accountant : {"rdp", "moments", "pld"}
        ``"pld"`` gives the certified upper bound of :class:`accounting.PldAccountant`.
    conversion : {"improved", "classic"}
    sampling : {"poisson", "shuffle", "fixed", "truncated", "balls-in-bins"}
        The sampler the run used (:func:`accounting.dpsgd_run` lists the event and neighbouring
        relation of each); ``"fixed"`` is accounted for replace-one neighbours, with the
        doubled sensitivity of a replaced example.
    max_batch_size : int, optional
        The batch cap of ``sampling="truncated"``.

    Raises
    ------
    UnsupportedEventError
        If ``accountant`` cannot account for ``sampling`` (the message names those that can).
    """
    run = dpsgd_run(sample_size, batch_size, noise_multiplier, epochs=epochs,
                    sampling=sampling, max_batch_size=max_batch_size)
    if run.sampling == "poisson":
        sample_rate = run.unit_event.sample_rate
        return compute_epsilon(sample_rate, noise_multiplier, run.count, delta, accountant,
                               conversion)
    check_delta(delta)
    ledger = make_accountant(accountant, conversion, **run.accountant_options)
    return ledger.compose(run.unit_event, run.count).get_epsilon(delta)


def get_privacy_budget(
    sample_size: int,
    batch_size: int,
    num_epochs: float,
    noise_multiplier: float,
    target_delta: float,
) -> float:
    """Epsilon of a DP-SGD run by the RDP accountant with the improved conversion.

    The budget-estimate call of hosted DP-SGD notebooks: ``q = batch_size / sample_size``,
    ``steps = ceil(num_epochs sample_size / batch_size)``.

    Examples
    --------
    >>> round(get_privacy_budget(100000, 4, 20, 1.2, 1e-5), 8)
    0.27788024
    """
    check_delta(target_delta, "target_delta")
    sample_rate, steps = _sample_rate_and_steps(sample_size, batch_size, num_epochs, "num_epochs")
    return compute_epsilon(sample_rate, noise_multiplier, steps, target_delta)


def epsilon_grid(
    sample_rate,
    noise_multiplier,
    steps,
    delta: float,
    conversion: Conversion = "improved",
    orders=None,
) -> tuple[np.ndarray, np.ndarray]:
    """RDP epsilon and optimal order for every configuration of a parameter grid at once.

    Parameters
    ----------
    sample_rate, noise_multiplier, steps : array_like
        Broadcast against each other; one configuration per element of the broadcast shape.
        ``steps`` are whole numbers ``>= 0`` (Python ints beyond the float range count as
        ``inf``; a float ``inf`` is not a number of steps). An empty grid gives empty arrays.
    delta : float
        Target delta in ``(0, 1)``.
    conversion : {"improved", "classic"}
    orders : array_like, optional
        Rényi orders; :data:`accounting.DEFAULT_ORDERS` by default.

    Returns
    -------
    (epsilon, order) : ndarrays of the broadcast shape
        Equal, element by element, to ``RdpAccountant(orders, conversion).compose(q, sigma,
        steps).get_epsilon_and_order(delta)`` (so ``(0, orders[0])`` where nothing is spent:
        ``q = 0`` or ``steps = 0``); the orders that cannot attain the minimum are never
        evaluated (:mod:`accounting.rdp.order_search`).
    """
    rates = np.asarray(check_sample_rate(sample_rate), dtype=float)
    noises = np.asarray(check_noise_multiplier(noise_multiplier), dtype=float)
    counts = check_step_counts(steps)
    delta = check_delta(delta)
    conversion = check_conversion(conversion)
    orders = DEFAULT_ORDERS if orders is None else np.sort(check_orders(orders))
    try:
        rates, noises, counts = np.broadcast_arrays(rates, noises, counts)
    except ValueError:
        raise ValueError(
            "sample_rate, noise_multiplier and steps must broadcast together, got shapes "
            f"{rates.shape}, {noises.shape} and {counts.shape}"
        ) from None
    shape = rates.shape
    rates, noises, counts = rates.ravel(), noises.ravel(), counts.ravel()
    if rates.size == 0:
        return np.zeros(shape), np.zeros(shape)
    if (rates.size > 1 and np.all(rates == rates[0]) and np.all(noises == noises[0])
            and np.all(np.isfinite(counts))):
        # one (q, sigma), many step counts: one RDP vector, every count read off at once
        best, order = epsilon_curve(rates[0], noises[0], counts, delta, conversion, orders)
        return best.reshape(shape), order.reshape(shape)

    def evaluate(mask):
        config, order = np.nonzero(mask)
        with np.errstate(all="ignore"):
            per_step = rdp_items(rates[config], noises[config], orders[order])
            # steps beyond the float range are inf; 0 per step stays 0 (not inf * 0)
            return np.where(per_step > 0.0, counts[config] * per_step, 0.0)

    objective = epsilon_objective(orders, delta, conversion)
    floor = kl_lower_bound(rates, noises, counts)
    best, index = minimize_over_orders(evaluate, orders, rates.size, objective, floor)
    nothing_spent = (rates == 0.0) | (counts == 0.0)  # as RdpAccountant: (0, 0)-DP
    best[nothing_spent], index[nothing_spent] = 0.0, 0
    return best.reshape(shape), orders[index].reshape(shape)
