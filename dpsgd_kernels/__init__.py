"""NumPy DP-SGD reference kernel: per-example gradients, clipping, noise, batch samplers.

A TensorFlow-free implementation of DP-SGD (Abadi et al. 2016, "Deep Learning with Differential
Privacy") with TensorFlow Privacy's ``DPKerasSGDOptimizer`` semantics, meant as the reference a
TensorFlow adapter is checked against. Per-example gradients are vectorised (no loop over
examples); Dense-layer norms use the ghost-norm trick when cheaper; every step taken is recorded
as an event by a :class:`PrivacyLedger` in an accounting accountant (RDP by default, any
registered one by name): the event of the sampler actually used (Poisson, fixed-size, truncated
Poisson, shuffled, balls in bins; :mod:`dpsgd_kernels.sampling`).

>>> import numpy as np
>>> import dpsgd_kernels as dk
>>> model = dk.tf_privacy_mlp(dtype="float64", rng=0)
>>> x = np.random.default_rng(1).normal(size=(8, 2)); y = (x[:, 0] > 0).astype(float)
>>> step = dk.dp_gradient(model, x, y, dk.BinaryCrossentropy(), l2_norm_clip=1.0,
...                       noise_multiplier=1.1, rng=np.random.default_rng(2))
>>> [g.shape for g in step.gradients] == [w.shape for w in model.get_weights()]
True
"""

from accounting._version import __version__ as __version__  # one distribution, one version
from dpsgd_kernels.activations import ACTIVATIONS
from dpsgd_kernels.architectures import mnist_cnn, tf_privacy_mlp
from dpsgd_kernels.blas import blas_thread_count, limit_blas_threads
from dpsgd_kernels.dp_step import (
    DPGradient,
    auto_chunk_size,
    batch_gradient,
    clip_factors,
    dp_gradient,
    microbatch_gradient_norms,
    microbatch_gradients,
    noisy_average,
    per_example_gradients,
)
from dpsgd_kernels.layers import Conv2D, Dense, Flatten, Layer, LinearLayer, MaxPool2D
from dpsgd_kernels.ledger import BudgetExceededError, PrivacyLedger
from dpsgd_kernels.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    get_loss,
)
from dpsgd_kernels.metrics import accuracy
from dpsgd_kernels.model import Sequential
from dpsgd_kernels.naive import naive_dp_gradient, naive_per_example_gradients
from dpsgd_kernels.optimizers import SGD, Adam, Optimizer
from dpsgd_kernels.sampling import (
    SAMPLINGS,
    BallsInBinsSampler,
    FixedSizeSampler,
    PoissonSampler,
    ShuffledBatchSampler,
    TruncatedPoissonSampler,
    make_sampler,
)
from dpsgd_kernels.trainer import DPSGDTrainer, EpochReport

__all__ = [
    "ACTIVATIONS",
    "SAMPLINGS",
    "SGD",
    "Adam",
    "BallsInBinsSampler",
    "BinaryCrossentropy",
    "BudgetExceededError",
    "CategoricalCrossentropy",
    "Conv2D",
    "DPGradient",
    "DPSGDTrainer",
    "Dense",
    "EpochReport",
    "FixedSizeSampler",
    "Flatten",
    "Layer",
    "LinearLayer",
    "Loss",
    "MaxPool2D",
    "MeanSquaredError",
    "Optimizer",
    "PoissonSampler",
    "PrivacyLedger",
    "Sequential",
    "ShuffledBatchSampler",
    "SparseCategoricalCrossentropy",
    "TruncatedPoissonSampler",
    "accuracy",
    "auto_chunk_size",
    "batch_gradient",
    "blas_thread_count",
    "clip_factors",
    "dp_gradient",
    "get_loss",
    "limit_blas_threads",
    "make_sampler",
    "microbatch_gradient_norms",
    "microbatch_gradients",
    "mnist_cnn",
    "naive_dp_gradient",
    "naive_per_example_gradients",
    "noisy_average",
    "per_example_gradients",
    "tf_privacy_mlp",
]
