"""Opacus accountants backed by this package's RDP and PLD accountants.

Optional: ``pip install 'dpsgd-accounting[opacus]'`` (Opacus 1.6 and PyTorch). Importing this
module imports Opacus; ``import accounting`` never does.

Both classes implement Opacus 1.6's accountant interface
(:class:`opacus.accountants.accountant.IAccountant`; Yousefpour et al. 2021, "Opacus:
User-Friendly Differential Privacy Library in PyTorch", arXiv:2109.12298): ``step`` records one
Poisson-subsampled Gaussian step in ``history`` exactly as Opacus' own accountants do (a list of
``(noise_multiplier, sample_rate, num_steps)`` with consecutive repeats merged), so the
optimizer hook, ``state_dict`` / ``load_state_dict`` and ``PrivacyEngine`` checkpoints work
unchanged. Epsilon comes from our accountant composed from that history.

Importing this module registers the mechanisms ``"accounting-rdp"`` and ``"accounting-pld"``
with Opacus, so ``PrivacyEngine(accountant="accounting-rdp")`` works, and so does
``make_private_with_epsilon`` (its noise calibration uses a default-constructed accountant of the
mechanism). An instance with other options can be set directly:

>>> from opacus import PrivacyEngine                            # doctest: +SKIP
>>> engine = PrivacyEngine()                                    # doctest: +SKIP
>>> engine.accountant = RdpOpacusAccountant(orders=[2, 4, 8])   # doctest: +SKIP

(before ``make_private``, which attaches the accountant's hook to the optimizer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import accounting

try:
    from opacus.accountants import register_accountant
    from opacus.accountants.accountant import IAccountant
except ImportError as error:  # Opacus, or the torch it imports, is missing
    raise ImportError(
        "accounting.integrations.opacus needs Opacus 1.6 and PyTorch: "
        "pip install 'dpsgd-accounting[opacus]'"
    ) from error

__all__ = ["PldOpacusAccountant", "RdpOpacusAccountant"]


class _HistoryAccountant(IAccountant):
    """Opacus' step bookkeeping; our accountant composed from ``history``, cached by content.

    The cache key is the whole history, not its length: Opacus' noise calibration
    (``get_noise_multiplier``) and ``load_state_dict`` assign ``history`` directly, often with
    one entry each time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._key: tuple | None = None
        self._composed: Any = None
        self._answers: dict[tuple, Any] = {}

    def _new_accountant(self, variant: Any) -> Any:
        raise NotImplementedError

    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
        """Record one step; equal to the last entry's (sigma, q) it adds to its count."""
        if self.history:
            last_noise, last_rate, num_steps = self.history[-1]
            if last_noise == noise_multiplier and last_rate == sample_rate:
                self.history[-1] = (last_noise, last_rate, num_steps + 1)
                return
        self.history.append((noise_multiplier, sample_rate, 1))

    def __len__(self) -> int:
        """Number of ``history`` entries, as Opacus' own accountants count (not the steps)."""
        return len(self.history)

    def _answer(self, query: tuple, compute: Callable[[Any], Any], variant: Any = None) -> Any:
        """``compute(accountant)`` for the current history, remembered until it changes."""
        key = (tuple(tuple(entry) for entry in self.history), variant)
        if key != self._key:
            composed = self._new_accountant(variant)
            for noise_multiplier, sample_rate, num_steps in self.history:
                composed.compose(
                    sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=num_steps
                )
            self._key, self._composed, self._answers = key, composed, {}
        if query not in self._answers:
            self._answers[query] = compute(self._composed)
        return self._answers[query]


class RdpOpacusAccountant(_HistoryAccountant):
    """Opacus accountant backed by :class:`accounting.RdpAccountant` (mechanism ``accounting-rdp``).

    Rényi DP of the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019, "Rényi
    Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530), converted to
    (epsilon, delta) by Balle et al. 2020 (AISTATS, Theorem 21) by default - the conversion
    Opacus' ``RDPAccountant`` uses - so with ``orders=RDPAccountant.DEFAULT_ALPHAS`` it gives
    Opacus' epsilon, and with our denser default orders an epsilon that is never larger.

    Parameters
    ----------
    orders : array_like, optional
        Rényi orders in ``(1, 1e6]``; :data:`accounting.DEFAULT_ORDERS` by default.
    conversion : {"improved", "classic"}
        RDP to (epsilon, delta) conversion (:class:`accounting.RdpAccountant`).
    """

    def __init__(self, orders: Sequence[float] | None = None, conversion: str = "improved"):
        super().__init__()
        template = accounting.RdpAccountant(orders, conversion)  # checks the options now
        self._orders = template.orders
        self.conversion = template.conversion

    @property
    def orders(self) -> np.ndarray:
        """The Rényi orders searched by default."""
        return self._orders.copy()

    @classmethod
    def mechanism(cls) -> str:
        return "accounting-rdp"

    def _new_accountant(self, variant: tuple | None) -> accounting.RdpAccountant:
        orders = self._orders if variant is None else variant
        return accounting.RdpAccountant(orders, self.conversion)

    def get_privacy_spent(
        self, *, delta: float, alphas: Sequence[float] | None = None
    ) -> tuple[float, float]:
        """Epsilon spent at ``delta`` and the order attaining it (as Opacus' ``RDPAccountant``).

        ``alphas`` replaces the orders for this query. With nothing spent the answer is
        ``(0.0, smallest order)`` (Opacus answers ``(0, 0)``).
        """
        variant = None if alphas is None else tuple(float(alpha) for alpha in alphas)
        return self._answer(("epsilon", delta), lambda acc: acc.get_epsilon_and_order(delta),
                            variant)

    def get_epsilon(
        self,
        delta: float,
        alphas: Sequence[float] | None = None,
        *,
        return_order: bool = False,
        **kwargs: Any,
    ) -> float | tuple[float, float]:
        """Epsilon spent at ``delta``; with ``return_order=True``, ``(epsilon, order)``.

        Other keyword arguments are ignored, as Opacus' ``RDPAccountant`` ignores them
        (``PrivacyEngine`` passes its own through).
        """
        epsilon, order = self.get_privacy_spent(delta=delta, alphas=alphas)
        return (epsilon, order) if return_order else epsilon


class PldOpacusAccountant(_HistoryAccountant):
    """Opacus accountant backed by :class:`accounting.PldAccountant` (mechanism ``accounting-pld``).

    Privacy loss distributions composed by FFT (Koskela, Jälkö, Honkela 2020, AISTATS) with
    dominating and dominated discretisations (Doroshenko et al. 2022, "Connect the Dots", PETS),
    so the true epsilon lies in a certified bracket; :meth:`get_epsilon` returns its upper end,
    the role the upper estimate plays in Opacus' ``PRVAccountant`` (Gopi, Lee, Wutschitz 2021).

    Parameters
    ----------
    tolerance : float
        Target width of the epsilon bracket (:class:`accounting.PldAccountant`).
    neighboring : {"add_remove", "replace_one"}
        Neighbouring relation.
    """

    def __init__(self, tolerance: float = 1e-3, neighboring: str = "add_remove"):
        super().__init__()
        template = accounting.PldAccountant(tolerance=tolerance, neighboring=neighboring)
        self.tolerance = float(tolerance)
        self.neighboring = template.neighboring

    @classmethod
    def mechanism(cls) -> str:
        return "accounting-pld"

    def _new_accountant(self, variant: None) -> accounting.PldAccountant:
        return accounting.PldAccountant(tolerance=self.tolerance, neighboring=self.neighboring)

    def get_epsilon_bounds(self, delta: float) -> accounting.EpsilonBounds:
        """Certified bracket ``(lower, upper, value_discretization)`` on epsilon at ``delta``."""
        return self._answer(("bounds", delta), lambda acc: acc.get_epsilon_bounds(delta))

    def get_epsilon(self, delta: float, **kwargs: Any) -> float:
        """Certified upper bound on epsilon at ``delta``; other keyword arguments are ignored."""
        return float(self.get_epsilon_bounds(delta).upper)


for _accountant in (RdpOpacusAccountant, PldOpacusAccountant):
    # force: a second import of this module (importlib.reload) registers its classes again
    register_accountant(_accountant.mechanism(), _accountant, force=True)
del _accountant
