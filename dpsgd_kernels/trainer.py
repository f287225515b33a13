"""DP-SGD training loop: sampler, privatized gradient, optimizer and privacy ledger.

Every step draws a batch with the chosen sampler, computes the privatized gradient
(:func:`~dpsgd_kernels.dp_step.dp_gradient`), applies the optimizer to it and records what the
sampler released in a :class:`~dpsgd_kernels.ledger.PrivacyLedger` (with the accountant chosen
by ``accountant=``: RDP by default, ``"pld"`` for certified upper bounds). With
``target_epsilon`` the trainer checks *before* every step (every epoch, for the epoch samplers)
whether it would take epsilon above the budget and stops instead of taking it. ``private=False``
trains the same way on ordinary mean-loss gradients (no clipping, no noise, no ledger) for
comparison.

The ledger composes the event of the sampler actually used (:mod:`dpsgd_kernels.sampling`):

=================  ===============================================  ===========================
``sampling``       recorded                                         relation
=================  ===============================================  ===========================
``"poisson"``      ``PoissonSampled(q, Gaussian(sigma))`` per step  add/remove
``"fixed"``        ``SampledWithoutReplacement(n, b,                replace-one (the accountant
                   Gaussian(sigma / 2))`` per step                  is made with
                                                                    ``neighboring="replace_one"``)
``"truncated"``    ``TruncatedPoissonGaussian(n, q, B, sigma)``     add/remove
                   per step
``"shuffle"``      ``ShuffledEpoch(t, Gaussian(sigma))`` per epoch  zero-out
                   (at its first step)
``"balls_in_bins"``  ``RandomAllocation(t, Gaussian(sigma))`` per   add/remove
                   epoch (at its first step)
=================  ===============================================  ===========================

with ``q = b / n``. One epoch is ``ceil(n / b)`` steps for the step samplers (TF Privacy's
``compute_dp_sgd_privacy`` convention) and ``t = n // b`` steps for the epoch samplers. If the
accountant cannot compose the sampler's event, ``fit`` refuses before the first step
(:class:`accounting.UnsupportedEventError` naming the sampler, the accountant and the
accountants that can), with or without a budget: no other sampler's epsilon (in particular not
the Poisson one, which is not a bound for shuffling; Chua et al. 2024, "How Private are DP-SGD
Implementations?") is ever reported in its place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import accounting
from accounting.events import Event, NoOp
from dpsgd_kernels._validation import (
    check_array,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_positive_int,
)
from dpsgd_kernels.blas import check_blas_threads
from dpsgd_kernels.dp_step import batch_gradient, dp_gradient
from dpsgd_kernels.ledger import (
    PrivacyLedger,
    check_accounts_for,
    relation_text,
    sampler_accountant,
)
from dpsgd_kernels.losses import Loss, get_loss
from dpsgd_kernels.metrics import accuracy
from dpsgd_kernels.model import Sequential, as_generator
from dpsgd_kernels.optimizers import Optimizer
from dpsgd_kernels.sampling import NEIGHBORING, check_sampling, make_sampler

__all__ = ["DPSGDTrainer", "EpochReport"]

# samplers whose batches all have batch_size examples, so microbatches can divide them
_FIXED_SHAPE = ("shuffle", "fixed")


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
    sampling : str
        The sampler (one of :data:`~dpsgd_kernels.sampling.SAMPLINGS`).
    neighboring : str
        Relation the epsilon is for: ``"add_remove"``, ``"replace_one"`` or ``"zero_out"``.
    """

    epoch: int
    steps: int
    total_steps: int
    loss: float
    epsilon: float
    sampling: str = "poisson"
    neighboring: str = "add_remove"

    def __str__(self) -> str:
        return (f"Epoch {self.epoch} - {self.steps} steps - loss: {self.loss:.4f} - epsilon: "
                f"{self.epsilon:.4f} ({self.sampling} sampling, "
                f"{relation_text(self.neighboring)} neighbours)")


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
        Expected batch size ``q N`` (Poisson, truncated), the batch size (fixed, shuffle), or
        the nominal one giving ``t = N // b`` steps per epoch (balls in bins).
    l2_norm_clip, noise_multiplier : float
        ``0 < C <= 1e12`` and ``0 < sigma <= 1e6`` (ignored when ``private=False``).
    delta : float
        Delta at which epsilon is reported.
    target_epsilon : float, optional
        Budget: training stops before the step that would exceed it.
    sampling : {"poisson", "fixed", "truncated", "shuffle", "balls_in_bins"}
        Batch sampler (:mod:`dpsgd_kernels.sampling`); each is accounted for as what it is (see
        the module docstring). The privatized sum is divided by ``q N`` (Poisson, truncated),
        ``b`` (fixed, shuffle; with grouped microbatches by their number, as TF Privacy) or
        ``N / t`` (balls in bins).
    max_batch_size : int, optional
        The cap ``B >= 1`` of ``sampling="truncated"`` (required there, refused otherwise).
    num_microbatches : int, optional
        TF Privacy microbatches (``"shuffle"`` and ``"fixed"`` only, whose batches all have
        ``batch_size`` examples; must divide ``batch_size``).
    rng : numpy.random.Generator or int
        Source of sampling and noise randomness (or a seed ``>= 0``).
    private : bool
        ``False`` for ordinary mini-batch training (the non-private baseline).
    accountant : str or accounting.Accountant
        What the ledger composes the steps in: a registry name (``"rdp"``, the default,
        ``"moments"``, ``"pld"``, ...; made with ``neighboring="replace_one"`` for
        ``sampling="fixed"``) or an accountant instance (composed into, not copied), see
        :class:`~dpsgd_kernels.ledger.PrivacyLedger`. Unused when ``private=False``.
    blas_threads : "auto", int or None
        Threads NumPy's BLAS may use during each step (``"auto"``: as many as the step's
        largest product keeps busy, one for small models; see
        :func:`~dpsgd_kernels.dp_step.dp_gradient`). Results are the same up to rounding.

    Raises
    ------
    accounting.UnsupportedEventError
        From :meth:`fit`, before any step, when the accountant cannot compose the sampler's
        event (e.g. ``"truncated"`` needs ``accountant="pld"``); here already when a named
        accountant has no replace-one mode for ``"fixed"``.
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
        max_batch_size: int | None = None,
        num_microbatches: int | None = None,
        rng: np.random.Generator | int = 0,
        private: bool = True,
        accountant: str | accounting.Accountant = "rdp",
        blas_threads="auto",
    ):
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an Optimizer, got {type(optimizer).__name__}")
        sampling = check_sampling(sampling, max_batch_size)
        self.model, self.loss, self.optimizer = model, get_loss(loss), optimizer
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.private = bool(private)
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier, allow_zero=False)
        self.sampling = sampling
        self.max_batch_size = (None if max_batch_size is None
                               else check_positive_int(max_batch_size, "max_batch_size"))
        if num_microbatches is not None:
            if sampling not in _FIXED_SHAPE:
                raise ValueError(
                    f"num_microbatches needs sampling='shuffle' or 'fixed', got {sampling!r} "
                    "(its batches vary in size and are clipped per example)"
                )
            num_microbatches = check_positive_int(num_microbatches, "num_microbatches")
            if self.batch_size % num_microbatches:
                raise ValueError(
                    f"num_microbatches must divide batch_size={self.batch_size}, "
                    f"got {num_microbatches}"
                )
        self.num_microbatches = num_microbatches
        self.microbatch_size = 1 if num_microbatches is None else batch_size // num_microbatches
        # A microbatch of several examples is clipped as a whole, so adding or removing one
        # example can move its clipped gradient by up to 2 C: the accountant must see half the
        # noise multiplier (TF Privacy's compute_dp_sgd_privacy_statement does the same). For
        # fixed batches (replace-one) a replaced example moves it by up to 2 C in any case.
        grouped = self.microbatch_size > 1 or sampling == "fixed"
        self.accounted_noise_multiplier = self.noise_multiplier / (2.0 if grouped else 1.0)
        self.rng = as_generator(rng)
        self.blas_threads = check_blas_threads(blas_threads)
        self.ledger = None
        if self.private:
            self.ledger = PrivacyLedger(
                delta, target_epsilon,
                accountant=sampler_accountant(accountant, NEIGHBORING[sampling],
                                              sampling=sampling),
            )
        self.total_steps = 0
        self.budget_exhausted = False
        self.history: list[EpochReport] = []

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far (``inf`` for a non-private trainer)."""
        return self.ledger.epsilon if self.private else math.inf

    @property
    def neighboring(self) -> str:
        """Relation the reported epsilon is for: ``"replace_one"`` with a replace-one
        accountant, else the sampler's (``"add_remove"``, or ``"zero_out"`` for shuffling)."""
        if self.private and self.ledger.neighboring == "replace_one":
            return "replace_one"
        return NEIGHBORING[self.sampling]

    def _sampler(self, sample_size: int, steps: int):
        return make_sampler(self.sampling, sample_size, self.batch_size, steps, self.rng,
                            max_batch_size=self.max_batch_size)

    def steps_per_epoch(self, sample_size: int) -> int:
        """Steps in one epoch over ``sample_size`` examples: ``ceil(N / b)`` for the step
        samplers, ``N // b`` for ``"shuffle"`` and ``"balls_in_bins"``."""
        if self.sampling in ("shuffle", "balls_in_bins"):
            return sample_size // self.batch_size
        return math.ceil(sample_size / self.batch_size)

    def sampler_event(self, sample_size: int) -> Event:
        """What one unit of the sampler (a step, or an epoch for ``"shuffle"`` and
        ``"balls_in_bins"``) releases over ``sample_size`` examples, as the ledger records it."""
        sampler = self._sampler(sample_size, 0)
        return sampler.event(self.noise_multiplier, self.microbatch_size)

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
            grads, value = batch_gradient(self.model, x_batch, y_batch, self.loss,
                                          blas_threads=self.blas_threads)
        else:
            result = dp_gradient(
                self.model, x_batch, y_batch, self.loss,
                l2_norm_clip=self.l2_norm_clip,
                noise_multiplier=self.noise_multiplier,
                rng=self.rng,
                num_microbatches=self.num_microbatches,
                expected_batch_size=expected_batch_size,
                blas_threads=self.blas_threads,
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
        sampler = self._sampler(sample_size, epochs * per_epoch)
        unit_event = sampler.event(self.noise_multiplier, self.microbatch_size)
        per_epoch_event = sampler.unit == "epoch"
        if self.private:  # before any step, with or without a budget
            check_accounts_for(self.ledger.accountant, unit_event, sampling=self.sampling,
                               neighboring=NEIGHBORING[self.sampling])
        rate = sampler.sample_rate
        # Poisson keeps the call form step(x, y, q, q N) of earlier versions; the fixed-shape
        # samplers divide by the number of microbatches in dp_gradient (b per example)
        expected = None if self.sampling in _FIXED_SHAPE else sampler.expected_batch_size
        batches = iter(sampler)
        reports = []

        def step_event(position: int) -> Event:
            """What a step at ``position`` in its epoch spends (see the module docstring)."""
            if per_epoch_event and position > 0:
                return NoOp()  # the epoch's release was recorded at its first step
            return unit_event

        def out_of_budget(position: int = 0) -> bool:
            if not self.private or (per_epoch_event and position > 0):
                return False
            return not self.ledger.can_afford_event(unit_event)

        for _ in range(epochs):
            if out_of_budget():
                self.budget_exhausted = True  # not even one more step: no empty epoch
                break
            loss_sum, examples, steps = 0.0, 0, 0
            for position in range(per_epoch):
                if position and out_of_budget(position):
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
                sampling=self.sampling,
                neighboring=self.neighboring,
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
