"""A privacy ledger: every DP-SGD step actually taken, composed in an RDP accountant.

Each step is recorded as one Poisson-subsampled Gaussian mechanism with its sample rate ``q`` and
noise multiplier ``sigma`` (Abadi et al. 2016; Mironov, Talwar and Zhang 2019) in an
:class:`accounting.RdpAccountant`. The ledger answers "how much has been spent" and "would one
more step exceed the budget", so a trainer can stop *before* the step that would exceed it.
"""

from __future__ import annotations

import accounting
from dpsgd_kernels._validation import check_finite_positive

__all__ = ["BudgetExceededError", "PrivacyLedger"]


class BudgetExceededError(RuntimeError):
    """Raised by :meth:`PrivacyLedger.record` when a step would exceed ``target_epsilon``."""


class PrivacyLedger:
    """Composes the steps taken and reports epsilon at a fixed ``delta``.

    Parameters
    ----------
    delta : float
        Target delta in ``(0, 1)``.
    target_epsilon : float, optional
        Budget; :meth:`record` refuses a step that would take epsilon above it.
    orders, conversion
        Passed to :class:`accounting.RdpAccountant`.
    """

    def __init__(
        self,
        delta: float,
        target_epsilon: float | None = None,
        orders=None,
        conversion: str = "improved",
    ):
        self.delta = check_finite_positive(delta, "delta")
        if self.delta >= 1:
            raise ValueError(f"delta must lie in the open interval (0, 1), got {delta!r}")
        self.target_epsilon = (
            None if target_epsilon is None else check_finite_positive(target_epsilon,
                                                                      "target_epsilon")
        )
        self._orders, self._conversion = orders, conversion
        self.accountant = accounting.RdpAccountant(orders=orders, conversion=conversion)
        self._epsilon_cache: tuple[int, float] | None = None

    @property
    def steps(self) -> int:
        """Number of steps recorded."""
        return self.accountant.steps

    @property
    def history(self) -> list[accounting.CompositionRecord]:
        """Recorded ``(sample_rate, noise_multiplier, steps)``, consecutive repeats merged."""
        return self.accountant.history

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta` (0 before any step)."""
        if self.steps == 0:
            return 0.0
        if self._epsilon_cache is None or self._epsilon_cache[0] != self.steps:
            self._epsilon_cache = (self.steps, self.accountant.get_epsilon(self.delta))
        return self._epsilon_cache[1]

    def epsilon_after(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> float:
        """Epsilon if ``steps`` more steps with ``(sample_rate, noise_multiplier)`` were taken."""
        trial = accounting.RdpAccountant(orders=self._orders, conversion=self._conversion)
        for record in self.history:
            trial.compose(record.sample_rate, record.noise_multiplier, record.steps)
        return trial.compose(sample_rate, noise_multiplier, steps).get_epsilon(self.delta)

    def can_afford(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> bool:
        """Whether the steps keep epsilon within ``target_epsilon`` (always, without a budget)."""
        if self.target_epsilon is None:
            return True
        return self.epsilon_after(sample_rate, noise_multiplier, steps) <= self.target_epsilon

    def record(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> None:
        """Compose ``steps`` steps; raises :class:`BudgetExceededError` past the budget."""
        if not self.can_afford(sample_rate, noise_multiplier, steps):
            raise BudgetExceededError(
                f"{steps} more step(s) with sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier} would exceed target_epsilon="
                f"{self.target_epsilon} at delta={self.delta}"
            )
        self.accountant.compose(sample_rate, noise_multiplier, steps)

    def __repr__(self) -> str:
        return f"PrivacyLedger(steps={self.steps}, epsilon={self.epsilon:.4g}, delta={self.delta})"
