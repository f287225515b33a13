"""DP-SGD training loop: sampler, privatized gradient, optimizer and privacy ledger.

Every step draws a batch (Poisson by default, the sampling the accountant assumes), computes the
privatized gradient (:func:`~dpsgd_kernels.dp_step.dp_gradient`), applies the optimizer to it and
records the step in a :class:`~dpsgd_kernels.ledger.PrivacyLedger` (with the accountant chosen by
``accountant=``: RDP by default, ``"pld"`` for certified upper bounds). With ``target_epsilon`` the
trainer checks *before* every step whether it would take epsilon above the budget and stops
instead of taking it. ``private=False`` trains the same way on ordinary mean-loss gradients (no
clipping, no noise, no ledger) for comparison.

One epoch is ``ceil(N / batch_size)`` steps (TF Privacy's ``compute_dp_sgd_privacy`` convention)
with Poisson sampling, and ``N // batch_size`` steps with the shuffled fixed-batch sampler.

The ledger composes what the sampler actually did. Poisson steps are Poisson-subsampled Gaussian
steps. A shuffled epoch uses each example at most once, so it releases no more than one Gaussian
mechanism on the whole data set: the ledger records ``Gaussian(sigma)`` at the first step of each
epoch and nothing for the other steps (TF Privacy's "each example once per epoch" figure,
``compute_dp_sgd_privacy_statement``); no amplification by sampling is claimed for shuffling,
whose Poisson figure is not a bound (Chua et al. 2024, "How Private are DP-SGD
Implementations?").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import accounting
from accounting.events import Event, Gaussian, NoOp, PoissonSampled
from dpsgd_kernels._validation import (
    check_array,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_positive_int,
)
from dpsgd_kernels.dp_step import batch_gradient, dp_gradient
from dpsgd_kernels.ledger import PrivacyLedger
from dpsgd_kernels.losses import Loss, get_loss
from dpsgd_kernels.metrics import accuracy
from dpsgd_kernels.model import Sequential, as_generator
from dpsgd_kernels.optimizers import Optimizer
from dpsgd_kernels.sampling import PoissonSampler, ShuffledBatchSampler

__all__ = ["DPSGDTrainer", "EpochReport"]

SAMPLINGS = ("poisson", "shuffle")


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did.

    Attributes
    ----------
    epoch : int
        1-based epoch number.
    steps : int
        Steps taken in this epoch (fewer than planned if the budget stopped training).
    total_steps : int
        Steps taken since the trainer was created.
    loss : float
        Mean training loss over the examples of the epoch's batches (not privatized).
    epsilon : float
        Epsilon spent at the end of the epoch (``inf`` for a non-private trainer); the certified
        upper bound with a tight accountant (``accountant="pld"``).
    """

    epoch: int
    steps: int
    total_steps: int
    loss: float
    epsilon: float


class DPSGDTrainer:
    """Train a :class:`Sequential` model with DP-SGD and account for every step.

    Parameters
    ----------
    model : Sequential
        The model, updated in place.
    loss : Loss or str
        Per-example loss.
    optimizer : Optimizer
        Applied to the privatized gradient (post-processing).
    batch_size : int
        Expected batch size ``q N`` (Poisson) or the fixed batch size (shuffle).
    l2_norm_clip, noise_multiplier : float
        ``0 < C <= 1e12`` and ``0 < sigma <= 1e6`` (ignored when ``private=False``).
    delta : float
        Delta at which epsilon is reported.
    target_epsilon : float, optional
        Budget: training stops before the step that would exceed it.
    sampling : {"poisson", "shuffle"}
        Batch sampler; each is accounted for as what it is (see the module docstring): Poisson
        steps with amplification by sampling, shuffled epochs as one Gaussian release each.
    num_microbatches : int, optional
        TF Privacy microbatches (shuffle sampling only; must divide ``batch_size``).
    rng : numpy.random.Generator or int
        Source of sampling and noise randomness (or a seed ``>= 0``).
    private : bool
        ``False`` for ordinary mini-batch training (the non-private baseline).
    accountant : str or accounting.Accountant
        What the ledger composes the steps in: a registry name (``"rdp"``, the default,
        ``"moments"``, ``"pld"``, ...) or an accountant instance (composed into, not copied),
        see :class:`~dpsgd_kernels.ledger.PrivacyLedger`. Unused when ``private=False``.
    """

    def __init__(
        self,
        model: Sequential,
        loss: Loss | str,
        optimizer: Optimizer,
        *,
        batch_size: int,
        l2_norm_clip: float = 1.0,
        noise_multiplier: float = 1.0,
        delta: float = 1e-5,
        target_epsilon: float | None = None,
        sampling: str = "poisson",
        num_microbatches: int | None = None,
        rng: np.random.Generator | int = 0,
        private: bool = True,
        accountant: str | accounting.Accountant = "rdp",
    ):
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an Optimizer, got {type(optimizer).__name__}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.model, self.loss, self.optimizer = model, get_loss(loss), optimizer
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.private = bool(private)
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier, allow_zero=False)
        self.sampling = sampling
        if num_microbatches is not None:
            if sampling == "poisson":
                raise ValueError(
                    "num_microbatches needs sampling='shuffle' (Poisson batches vary in size and "
                    "are clipped per example)"
                )
            num_microbatches = check_positive_int(num_microbatches, "num_microbatches")
            if self.batch_size % num_microbatches:
                raise ValueError(
                    f"num_microbatches must divide batch_size={self.batch_size}, "
                    f"got {num_microbatches}"
                )
        self.num_microbatches = num_microbatches
        # A microbatch of several examples is clipped as a whole, so adding or removing one
        # example can move its clipped gradient by up to 2 C: the accountant must see half the
        # noise multiplier (TF Privacy's compute_dp_sgd_privacy_statement does the same).
        grouped = num_microbatches is not None and self.batch_size // num_microbatches > 1
        self.accounted_noise_multiplier = self.noise_multiplier / (2.0 if grouped else 1.0)
        self.rng = as_generator(rng)
        self.ledger = (
            PrivacyLedger(delta, target_epsilon, accountant=accountant) if self.private else None
        )
        self.total_steps = 0
        self.budget_exhausted = False
        self.history: list[EpochReport] = []

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far (``inf`` for a non-private trainer)."""
        return self.ledger.epsilon if self.private else math.inf

    def _sampler(self, sample_size: int, steps: int):
        if self.sampling == "poisson":
            rate = self.batch_size / sample_size
            return PoissonSampler(sample_size, rate, steps, self.rng), rate
        sampler = ShuffledBatchSampler(sample_size, self.batch_size, steps, self.rng)
        return sampler, sampler.sample_rate

    def steps_per_epoch(self, sample_size: int) -> int:
        """Steps in one epoch over ``sample_size`` examples."""
        if self.sampling == "poisson":
            return math.ceil(sample_size / self.batch_size)
        return sample_size // self.batch_size

    def step(
        self,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        sample_rate: float,
        expected_batch_size: float | None = None,
        event: Event | None = None,
    ) -> float:
        """One training step on a batch drawn with ``sample_rate``; returns its mean loss.

        ``expected_batch_size`` selects the Poisson normalisation (``q N``); without it the
        privatized gradient is divided by the number of microbatches (TF Privacy). The ledger
        records ``event`` when given (``NoOp()`` records nothing), else a Poisson-subsampled
        Gaussian step at ``sample_rate``.
        """
        if not self.private:
            grads, value = batch_gradient(self.model, x_batch, y_batch, self.loss)
        else:
            result = dp_gradient(
                self.model, x_batch, y_batch, self.loss,
                l2_norm_clip=self.l2_norm_clip,
                noise_multiplier=self.noise_multiplier,
                rng=self.rng,
                num_microbatches=self.num_microbatches,
                expected_batch_size=expected_batch_size,
            )
            grads, value = result.gradients, result.loss
            if event is None:
                self.ledger.record(sample_rate, self.accounted_noise_multiplier)
            elif not isinstance(event, NoOp):
                self.ledger.record_event(event)
        self.optimizer.apply(self.model.params, grads)
        self.total_steps += 1
        return value

    def fit(self, x, y, epochs: int = 1, verbose: bool = False) -> list[EpochReport]:
        """Train for ``epochs`` epochs (fewer if the privacy budget runs out).

        All of ``x`` and ``y`` is validated before the first step (shapes, finiteness, and the
        targets against the loss and the model's output width, e.g. class labels in range), so
        a bad example deep in the data set fails the call before any privacy is spent.

        Returns the reports of the epochs run by this call (also appended to :attr:`history`).
        """
        epochs = check_positive_int(epochs, "epochs")
        x = self.model.check_input(x)
        y = check_array(y, "y")
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"y must hold one target per example ({x.shape[0]}), got {y.shape}")
        y = self.loss.check_targets(
            y, (x.shape[0], *self.model.output_shape), self.model.dtype, name="y"
        )
        sample_size = x.shape[0]
        if self.batch_size > sample_size:
            raise ValueError(
                f"batch_size must lie in [1, {sample_size}] (the sample size), "
                f"got {self.batch_size}"
            )
        per_epoch = self.steps_per_epoch(sample_size)
        sampler, rate = self._sampler(sample_size, epochs * per_epoch)
        expected = rate * sample_size if self.sampling == "poisson" else None
        batches = iter(sampler)
        reports = []

        def step_event(position: int) -> Event:
            """What a step at ``position`` in its epoch spends (see the module docstring)."""
            if self.sampling == "poisson":
                return PoissonSampled(rate, Gaussian(self.accounted_noise_multiplier))
            return Gaussian(self.accounted_noise_multiplier) if position == 0 else NoOp()

        def out_of_budget(position: int = 0) -> bool:
            return self.private and not self.ledger.can_afford_event(step_event(position))

        for _ in range(epochs):
            if out_of_budget():
                self.budget_exhausted = True  # not even one more step: no empty epoch
                break
            loss_sum, examples, steps = 0.0, 0, 0
            for position in range(per_epoch):
                if out_of_budget(position):
                    self.budget_exhausted = True
                    break
                index = next(batches)
                if self.sampling == "poisson":
                    value = self.step(x[index], y[index], rate, expected)
                else:
                    value = self.step(x[index], y[index], rate, expected, step_event(position))
                if index.size:
                    loss_sum += value * index.size
                    examples += index.size
                steps += 1
            report = EpochReport(
                epoch=len(self.history) + 1,
                steps=steps,
                total_steps=self.total_steps,
                loss=loss_sum / examples if examples else math.nan,
                epsilon=self.epsilon,
            )
            self.history.append(report)
            reports.append(report)
            if verbose:
                print(report)
            if self.budget_exhausted:
                break
        return reports

    def evaluate(self, x, y) -> tuple[float, float]:
        """``(mean loss, accuracy)`` of the model on ``(x, y)``."""
        output = self.model.predict(x)
        return self.loss(y, output), accuracy(self.loss, y, output)
