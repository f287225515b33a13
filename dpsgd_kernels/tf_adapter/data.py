"""``PrivateDataLoader``: DP-SGD batches from NumPy arrays or pandas objects.

By default every batch includes each example independently with probability ``q = batch_size /
N`` (Poisson sampling; batch sizes vary and may be zero). ``sampling=`` selects another sampler
of :mod:`dpsgd_kernels.sampling` (fixed-size batches, truncated Poisson, shuffled epochs, balls
in bins); the loader says what one unit of it releases (:meth:`PrivateDataLoader.event`), which
is what :class:`~dpsgd_kernels.tf_adapter.PrivateKerasModel` records. Needs neither TensorFlow
nor pandas: pandas objects are read through their ``to_numpy()`` method.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from accounting.events import Event
from dpsgd_kernels._validation import all_finite, check_positive_int
from dpsgd_kernels.sampling import NEIGHBORING, check_sampling, make_sampler

__all__ = ["PrivateDataLoader"]


def _as_array(value, name: str) -> np.ndarray:
    if hasattr(value, "to_numpy"):  # pandas DataFrame / Series (pandas is not imported here)
        value = value.to_numpy()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array, a pandas DataFrame or Series, got {value!r}")
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a leading axis of examples, got a scalar")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if not all_finite(array):  # checked once here, not when a batch first draws the example
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return array


class PrivateDataLoader:
    """Batches of ``(features, labels)`` drawn by a DP-SGD sampler (Poisson by default).

    Parameters
    ----------
    feature_df : array_like or pandas.DataFrame
        Features, one row per example (``N >= 1`` rows; images as ``(N, H, W, C)`` arrays).
    label_df : array_like, pandas.Series or pandas.DataFrame
        Labels, one per example.
    batch_size : int
        Batch size ``1 <= b <= N``: the expected one for the Poisson samplers (``q = b / N``),
        the exact one for ``"fixed"`` and ``"shuffle"``, the nominal one for
        ``"balls_in_bins"`` (``t = N // b`` steps per epoch).
    seed : int, optional
        Seed of the sampling (``None``: fresh entropy).
    sampling : {"poisson", "fixed", "truncated", "shuffle", "balls_in_bins"}
        The sampler (see :mod:`dpsgd_kernels.sampling` for each one's event, relation and
        normalisation, :attr:`expected_batch_size`).
    max_batch_size : int, optional
        The cap ``B >= 1`` of ``sampling="truncated"`` (required there, refused otherwise).

    Notes
    -----
    All features and labels are checked when the loader is made (real numbers, finite, one label
    per row); :meth:`PrivateKerasModel.fit <dpsgd_kernels.tf_adapter.PrivateKerasModel.fit>`
    checks them against the model's input shape and the loss before its first step.

    Iterating gives one epoch of :attr:`steps_per_epoch` batches. With the step samplers
    (Poisson, fixed, truncated) ``fit`` draws exactly ``ceil(epochs N / batch_size)`` batches
    over ``epochs`` epochs (TF Privacy's and :func:`accounting.get_privacy_budget`'s step count)
    through :meth:`batches`; with the epoch samplers (shuffle, balls in bins) ``N // b`` per
    epoch.
    """

    def __init__(self, feature_df, label_df, batch_size: int, *, seed: int | None = None,
                 sampling: str = "poisson", max_batch_size: int | None = None):
        self.sampling = check_sampling(sampling, max_batch_size)
        self.max_batch_size = (None if max_batch_size is None
                               else check_positive_int(max_batch_size, "max_batch_size"))
        self.features = _as_array(feature_df, "feature_df")
        self.labels = _as_array(label_df, "label_df")
        if self.labels.ndim == 2 and self.labels.shape[1] == 1 and hasattr(label_df, "to_numpy"):
            self.labels = self.labels[:, 0]  # a one-column DataFrame of labels
        if self.features.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"label_df must hold one label per row of feature_df ({self.features.shape[0]}), "
                f"got {self.labels.shape[0]}"
            )
        if self.features.dtype.kind != "f":
            self.features = self.features.astype(np.float32)
        sample_size = check_positive_int(self.features.shape[0], "feature_df rows")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if self.batch_size > sample_size:
            raise ValueError(f"batch_size must lie in [1, {sample_size}] (the number of examples), "
                             f"got {batch_size}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def sample_size(self) -> int:
        """Number of examples ``N``."""
        return int(self.features.shape[0])

    @property
    def sample_rate(self) -> float:
        """``q = batch_size / N`` (the Poisson sampling rate)."""
        return self.batch_size / self.sample_size

    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the sampler's guarantee (``"replace_one"`` for fixed-size
        batches, ``"zero_out"`` for shuffling, else ``"add_remove"``)."""
        return NEIGHBORING[self.sampling]

    @property
    def unit(self) -> str:
        """What :meth:`event` covers: ``"step"``, or ``"epoch"`` for shuffle and balls in bins."""
        return self._sampler(0).unit

    @property
    def expected_batch_size(self) -> float:
        """What the privatized gradient sum is divided by: ``q N`` (= ``batch_size``) for the
        Poisson samplers, ``b`` for fixed and shuffled batches, ``N / t`` for balls in bins."""
        return self._sampler(0).expected_batch_size

    @property
    def steps_per_epoch(self) -> int:
        """``ceil(N / batch_size)`` (``N // batch_size`` for shuffle and balls in bins)."""
        if self.unit == "epoch":
            return self.sample_size // self.batch_size
        return math.ceil(self.sample_size / self.batch_size)

    def event(self, noise_multiplier: float) -> Event:
        """What one :attr:`unit` releases with DP-SGD noise multiplier ``noise_multiplier``
        (per-example clipping), as ``fit`` records it."""
        return self._sampler(0).event(noise_multiplier)

    def _sampler(self, steps: int):
        return make_sampler(self.sampling, self.sample_size, self.batch_size, steps, self._rng,
                            max_batch_size=self.max_batch_size)

    def batches(self, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``steps`` batches ``(x, y)`` of the sampler (Poisson and balls-in-bins batches may
        be empty); the epoch samplers start a fresh epoch on each call."""
        steps = check_positive_int(steps, "steps", minimum=0)
        for index in self._sampler(steps):
            yield self.features[index], self.labels[index]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.batches(self.steps_per_epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __repr__(self) -> str:
        cap = "" if self.max_batch_size is None else f", max_batch_size={self.max_batch_size}"
        return (f"PrivateDataLoader(sample_size={self.sample_size}, batch_size={self.batch_size}, "
                f"sampling={self.sampling!r}{cap}, sample_rate={self.sample_rate:.6g})")
