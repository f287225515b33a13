"""Cross-check harness: the TF adapter against the NumPy kernel, TF Privacy and the accountant.

For a Keras model, a batch and DP-SGD hyper-parameters, :func:`crosscheck` compares

a. per-example (per-microbatch) gradients: TF adapter (both gradient methods) vs NumPy kernel;
b. one DP step without noise: TF adapter vs NumPy kernel vs TF Privacy's ``DPKerasSGDOptimizer``
   (when tensorflow-privacy is importable);
c. the noise: its standard deviation over ``sigma C`` measured from many draws (adapter, and TF
   Privacy when present), with a Kolmogorov-Smirnov test against the normal law;
d. a short training run (Poisson batches, SGD): the loss trajectory and final weights of the NumPy
   kernel vs the TF adapter with the same noise draws injected;
e. epsilon: :mod:`accounting` vs tensorflow-privacy's ``compute_dp_sgd_privacy_statement``, the
   function behind it, and ``compute_dp_sgd_privacy``, each at the orders it uses.

Differences are ``max |a - b|`` and that divided by ``max |b|`` (the reference's largest entry,
so entries near zero do not blow the ratio up). The NumPy reference runs in float64 with the
Keras model's weights. The model passed in is never modified (work happens on clones).

With ``strategy=`` (command line: ``--replicas N``) checks (b)-(d) run the adapter under that
``tf.distribute`` strategy: the global batch split over its replicas, the noise added once per
global step, the sum divided by the global batch size; the references stay single-device.

Run ``python -m dpsgd_kernels.tf_adapter.crosscheck`` for the MLP and the MNIST tutorial CNN.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import accounting
import dpsgd_kernels as dk
from dpsgd_kernels.tf_adapter._imports import (
    keras_version,
    require_tensorflow,
    tf_privacy_or_none,
)
from dpsgd_kernels.tf_adapter.convert import to_keras_model, to_numpy_model
from dpsgd_kernels.tf_adapter.device import default_device
from dpsgd_kernels.tf_adapter.dp_step import TFDPStep
from dpsgd_kernels.tf_adapter.losses import is_sparse_loss, numpy_loss

__all__ = ["CheckRow", "CrossCheckReport", "crosscheck", "main", "mirrored_strategy"]


@dataclass(frozen=True)
class CheckRow:
    """One comparison: ``max_abs``/``max_rel`` against ``tolerance`` (on ``max_rel``)."""

    check: str
    compared: str
    max_abs: float
    max_rel: float
    tolerance: float | None
    passed: bool | None
    note: str = ""


@dataclass
class CrossCheckReport:
    """All rows of a cross-check, with a text table and a JSON-able dict."""

    rows: list[CheckRow] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every row that has a tolerance is within it."""
        return all(row.passed is not False for row in self.rows)

    def add(self, check, compared, max_abs, max_rel, tolerance, note="") -> CheckRow:
        passed = None if tolerance is None or math.isnan(max_rel) else bool(max_rel <= tolerance)
        row = CheckRow(check, compared, float(max_abs), float(max_rel), tolerance, passed, note)
        self.rows.append(row)
        return row

    def skip(self, check, compared, why: str) -> None:
        self.rows.append(CheckRow(check, compared, math.nan, math.nan, None, None, why))

    def table(self) -> str:
        """A fixed-width text table, one line per row."""
        header = f"{'check':<24} {'compared':<46} {'max abs':>10} {'max rel':>10} {'tol':>8} result"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            result = {True: "ok", False: "FAIL", None: "-"}[row.passed]
            if row.note and row.passed is None and math.isnan(row.max_rel):
                result = f"skipped: {row.note}"
            elif row.note:
                result = f"{result} ({row.note})"
            tol = "" if row.tolerance is None else f"{row.tolerance:.0e}"
            lines.append(f"{row.check:<24} {row.compared:<46} {row.max_abs:>10.2e} "
                         f"{row.max_rel:>10.2e} {tol:>8} {result}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "info": self.info, "rows": [asdict(r) for r in self.rows]}

    def __str__(self) -> str:
        return self.table()


def _diff(values, reference) -> tuple[float, float]:
    values = [np.asarray(v, dtype=np.float64) for v in values]
    reference = [np.asarray(r, dtype=np.float64) for r in reference]
    if [v.shape for v in values] != [r.shape for r in reference]:
        raise ValueError("compared arrays differ in shape")
    max_abs = max(float(np.max(np.abs(v - r), initial=0.0)) for v, r in zip(values, reference,
                                                                            strict=True))
    scale = max(float(np.max(np.abs(r), initial=0.0)) for r in reference)
    return max_abs, (max_abs / scale if scale else (0.0 if max_abs == 0 else math.inf))


def _scope(strategy):
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _clone(keras_model, strategy=None):
    keras = require_tensorflow().keras
    with _scope(strategy):
        clone = keras.models.clone_model(keras_model)
    clone.set_weights(keras_model.get_weights())
    return clone


def _split_noise(flat: np.ndarray, shapes) -> list[np.ndarray]:
    arrays, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(flat[start:start + size].reshape(shape))
        start += size
    return arrays


def _check_gradients(report, keras_model, x, y, loss, clip, microbatches, tolerance):
    reference = to_numpy_model(keras_model, "float64")
    kernel_loss = numpy_loss(loss)
    expected = dk.microbatch_gradients(reference, x, y, kernel_loss, microbatches)
    for method in ("layerwise", "vectorized_map"):
        try:
            step = TFDPStep(_clone(keras_model), loss, clip, 0.0, num_microbatches=microbatches,
                            method=method)
        except ValueError as error:
            report.skip("a per-example grads", f"TF {method} vs NumPy", str(error))
            continue
        report.add("a per-example grads", f"TF {method} vs NumPy",
                   *_diff(step.per_example_gradients(x, y), expected), tolerance)


def _check_noise_free_step(report, keras_model, x, y, loss, clip, microbatches, tolerance,
                           strategy=None):
    reference = to_numpy_model(keras_model, "float64")
    numpy_step = dk.dp_gradient(reference, x, y, numpy_loss(loss), l2_norm_clip=clip,
                                noise_multiplier=0.0, rng=np.random.default_rng(0),
                                num_microbatches=microbatches).gradients
    adapter = TFDPStep(_clone(keras_model, strategy), loss, clip, 0.0,
                       num_microbatches=microbatches).dp_gradient(x, y).gradients
    report.add("b DP step, noise 0", f"TF adapter{_on(strategy)} vs NumPy kernel",
               *_diff(adapter, numpy_step), tolerance)
    if tf_privacy_or_none() is None:
        report.skip("b DP step, noise 0", "TF Privacy vs NumPy kernel",
                    "tensorflow-privacy not importable")
        return
    from dpsgd_kernels.tf_adapter.tf_privacy_bridge import tf_privacy_dp_gradient

    theirs = tf_privacy_dp_gradient(_clone(keras_model), x, y, loss, l2_norm_clip=clip,
                                    noise_multiplier=0.0, num_microbatches=microbatches)
    report.add("b DP step, noise 0", "TF Privacy vs NumPy kernel", *_diff(theirs, numpy_step),
               tolerance)
    report.add("b DP step, noise 0", "TF adapter vs TF Privacy", *_diff(adapter, theirs),
               tolerance)


def _noise_row(report, compared, samples):
    from scipy import stats

    samples = np.concatenate([s.ravel() for s in samples]).astype(np.float64)
    std = float(np.std(samples))
    # Standard error of a normal sample's standard deviation: 1 / sqrt(2 n); allow 5 of them.
    tolerance = 5.0 / math.sqrt(2.0 * samples.size)
    p_value = float(stats.kstest(samples, "norm").pvalue)
    row = report.add("c noise std / (sigma C)", compared, abs(std - 1.0), abs(std - 1.0),
                     tolerance, f"std {std:.4f}, n {samples.size}, KS p {p_value:.2g}")
    if p_value < 1e-4:
        report.rows[-1] = CheckRow(row.check, row.compared, row.max_abs, row.max_rel,
                                   row.tolerance, False, row.note + " KS rejects normal")


def _on(strategy) -> str:
    return "" if strategy is None else f" ({strategy.num_replicas_in_sync} replicas)"


def _check_noise(report, keras_model, x, y, loss, clip, sigma, microbatches, min_samples, seed,
                 strategy=None):
    model = _clone(keras_model, strategy)
    noisy = TFDPStep(model, loss, clip, sigma, num_microbatches=microbatches, seed=seed)
    clean = TFDPStep(model, loss, clip, 0.0, num_microbatches=microbatches).dp_gradient(x, y)
    per_draw = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    draws = max(1, math.ceil(min_samples / per_draw))
    samples = []
    for _ in range(draws):
        result = noisy.dp_gradient(x, y)
        samples += [(g - c) * result.denominator / (sigma * clip)
                    for g, c in zip(result.gradients, clean.gradients, strict=True)]
    _noise_row(report, f"TF adapter{_on(strategy)}", samples)
    if tf_privacy_or_none() is None:
        report.skip("c noise std / (sigma C)", "TF Privacy", "tensorflow-privacy not importable")
        return
    from dpsgd_kernels.tf_adapter.tf_privacy_bridge import tf_privacy_gradient_function

    denominator = microbatches or len(x)
    gradient = tf_privacy_gradient_function(model, loss, l2_norm_clip=clip,
                                            noise_multiplier=sigma,
                                            num_microbatches=microbatches, seed=seed)
    samples = []
    for _ in range(draws):
        samples += [(g - c) * denominator / (sigma * clip)
                    for g, c in zip(gradient(x, y), clean.gradients, strict=True)]
    _noise_row(report, "TF Privacy", samples)


def _check_training(report, keras_model, x, y, loss, clip, sigma, lr, steps, seed, tolerance,
                    strategy=None):
    keras = require_tensorflow().keras
    model = _clone(keras_model, strategy)
    reference = to_numpy_model(keras_model, "float64")
    kernel_loss = numpy_loss(loss)
    tf_step = TFDPStep(model, loss, clip, sigma)
    with _scope(strategy):
        tf_optimizer = keras.optimizers.SGD(learning_rate=lr)
    np_optimizer = dk.SGD(learning_rate=lr)
    shapes = [tuple(w.shape) for w in reference.get_weights()]
    total = sum(int(np.prod(s)) for s in shapes)
    rate = 0.5
    sampler = dk.PoissonSampler(len(x), rate, steps, np.random.default_rng(seed))
    np_losses, tf_losses = [], []
    for index, batch in enumerate(sampler):
        noise_seed = seed + 1000 + index
        result = dk.dp_gradient(reference, x[batch], y[batch], kernel_loss, l2_norm_clip=clip,
                                noise_multiplier=sigma, rng=np.random.default_rng(noise_seed),
                                expected_batch_size=rate * len(x))
        np_optimizer.apply(reference.params, result.gradients)
        # The same standard-normal draws dp_gradient used (one draw of the total size).
        draws = np.random.default_rng(noise_seed).standard_normal(total, dtype=np.float64)
        loss_value, _ = tf_step.apply(tf_optimizer, x[batch], y[batch],
                                      expected_batch_size=rate * len(x),
                                      noise=_split_noise(draws, shapes))
        np_losses.append(result.loss)
        tf_losses.append(float(loss_value))
    finite = [(a, b) for a, b in zip(tf_losses, np_losses, strict=True) if not math.isnan(b)]
    report.add("d training run", f"loss trajectory, {steps} steps TF{_on(strategy)} vs NumPy",
               *_diff([a for a, _ in finite], [b for _, b in finite]), tolerance)
    report.add("d training run", f"final weights TF{_on(strategy)} vs NumPy",
               *_diff(model.get_weights(), reference.get_weights()), tolerance)


def _check_epsilon(report, sample_size, batch_size, epochs, sigma, delta, tolerance):
    ours = accounting.get_privacy_budget(sample_size, batch_size, epochs, sigma, delta)
    from dpsgd_kernels.tf_adapter.budget import get_privacy_budget

    adapter = get_privacy_budget(sample_size, batch_size, epochs, sigma, delta)
    report.add("e epsilon", "tf_adapter vs accounting.get_privacy_budget",
               *_diff([adapter], [ours]), tolerance, f"eps {ours:.6f}")
    if tf_privacy_or_none() is None:
        report.skip("e epsilon", "accounting vs TF Privacy", "tensorflow-privacy not importable")
        return
    from dpsgd_kernels.tf_adapter.tf_privacy_bridge import tf_privacy_epsilons

    for microbatching in (False, True):
        theirs = tf_privacy_epsilons(sample_size, batch_size, epochs, sigma, delta, microbatching)
        for name, entry in theirs.items():
            if microbatching and name == "compute_dp_sgd_privacy":
                continue  # ignores microbatching: same as the row above
            acc = accounting.RdpAccountant(orders=entry["orders"], conversion="improved")
            value = acc.compose(batch_size / sample_size, entry["noise_multiplier"],
                                entry["steps"]).get_epsilon(delta)
            label = f"accounting vs TFP {name}" + (" (microbatched)" if microbatching else "")
            decimals = entry.get("decimals")
            if decimals is not None:  # printed value: agreement to its rounding
                value = round(value, decimals)
                tol = 0.5 * 10.0 ** -decimals / max(entry["epsilon"], 1e-300)
            else:
                tol = tolerance
            report.add("e epsilon", label, *_diff([value], [entry["epsilon"]]), tol,
                       f"eps {entry['epsilon']:.6f}")


def crosscheck(
    keras_model,
    x,
    y,
    loss,
    *,
    l2_norm_clip: float = 1.0,
    noise_multiplier: float = 1.1,
    num_microbatches: int | None = None,
    learning_rate: float = 0.1,
    train_steps: int = 5,
    sample_size: int = 60000,
    batch_size: int = 256,
    epochs: float = 60,
    target_delta: float = 1e-5,
    noise_samples: int = 20000,
    seed: int = 0,
    tolerance: float = 1e-5,
    trajectory_tolerance: float = 1e-5,
    epsilon_tolerance: float = 1e-9,
    strategy=None,
) -> CrossCheckReport:
    """Compare the TF adapter with the NumPy kernel, TF Privacy and the accountant.

    Parameters
    ----------
    keras_model : keras.Sequential
        A built model of supported layers (not modified).
    x, y : array_like
        A batch and its targets (``num_microbatches`` must divide its size).
    loss : str or keras.losses.Loss
        A loss the NumPy kernel has (binary/categorical/sparse cross-entropy, MSE).
    l2_norm_clip, noise_multiplier : float
        DP-SGD clipping norm and noise multiplier.
    num_microbatches : int, optional
        TF Privacy microbatches for checks (a)-(c); default one per example.
    learning_rate, train_steps : float, int
        SGD learning rate and steps of the training run (d), on Poisson batches of ``x``.
    sample_size, batch_size, epochs, target_delta
        The run whose epsilon (e) is compared.
    noise_samples : int
        At least this many noise coordinates are drawn for (c).
    seed : int
        Seeds the noise and the sampling.
    tolerance, trajectory_tolerance, epsilon_tolerance : float
        Largest relative difference accepted for (a)-(b), (d) and (e).
    strategy : tf.distribute.Strategy, optional
        Run the adapter of checks (b)-(d) under this strategy (``num_microbatches`` must then
        be ``None``).

    Returns
    -------
    CrossCheckReport
        ``report.table()`` for a text table, ``report.passed``, ``report.to_dict()``.
    """
    tf = require_tensorflow()
    x = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=np.float32)
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same number (>= 1) of examples, got "
                         f"{len(x)} and {len(y)}")
    if not is_sparse_loss(loss):
        y = y.astype(np.float32)
    if strategy is not None and num_microbatches is not None:
        raise ValueError("num_microbatches must be None with a strategy (every example is "
                         "clipped alone)")
    report = CrossCheckReport(info={
        "tensorflow": tf.__version__,
        "keras": keras_version(),
        "tensorflow_privacy": getattr(tf_privacy_or_none(), "__version__", None),
        "device": default_device(),
        "replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
        "replica_devices": None if strategy is None else list(strategy.extended.worker_devices),
        "batch": len(x),
        "parameters": int(sum(np.prod(v.shape) for v in keras_model.trainable_variables)),
    })
    started = time.perf_counter()
    _check_gradients(report, keras_model, x, y, loss, l2_norm_clip, num_microbatches, tolerance)
    _check_noise_free_step(report, keras_model, x, y, loss, l2_norm_clip, num_microbatches,
                           tolerance, strategy)
    _check_noise(report, keras_model, x, y, loss, l2_norm_clip, noise_multiplier,
                 num_microbatches, noise_samples, seed, strategy)
    _check_training(report, keras_model, x, y, loss, l2_norm_clip, noise_multiplier,
                    learning_rate, train_steps, seed, trajectory_tolerance, strategy)
    _check_epsilon(report, sample_size, batch_size, epochs, noise_multiplier, target_delta,
                   epsilon_tolerance)
    report.info["seconds"] = round(time.perf_counter() - started, 2)
    return report


def example_problem(name: str, batch: int, seed: int = 0):
    """``(keras_model, x, y, loss)`` for ``"mlp"`` or ``"cnn"`` on synthetic data."""
    rng = np.random.default_rng(seed)
    if name == "mlp":
        model = to_keras_model(dk.tf_privacy_mlp(rng=seed))
        x = rng.normal(size=(batch, 2)).astype(np.float32)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
        return model, x, y, "binary_crossentropy"
    if name == "cnn":
        keras = require_tensorflow().keras
        model = to_keras_model(dk.mnist_cnn(rng=seed))
        x = rng.random(size=(batch, 28, 28, 1)).astype(np.float32)
        y = rng.integers(0, 10, size=batch)
        return model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    raise ValueError(f"name must be 'mlp' or 'cnn', got {name!r}")


def mirrored_strategy(replicas: int):
    """A ``MirroredStrategy`` of ``replicas`` devices: the first GPUs when TensorFlow sees
    enough of them, else the CPU split into ``replicas`` logical devices (which must happen
    before TensorFlow initialises its devices: call this first)."""
    tf = require_tensorflow()
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 64:
        raise ValueError(f"replicas must be an integer in [1, 64], got {replicas!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(replicas)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])


def main(argv=None) -> int:
    """Command line: cross-check the MLP and/or CNN; tables, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mlp", "cnn", "both"), default="both")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--num-microbatches", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicas", type=int, default=None,
                        help="run checks (b)-(d) under a MirroredStrategy of N replicas: the "
                             "first N GPUs if TensorFlow sees that many, else N logical CPUs")
    args = parser.parse_args(argv)
    require_tensorflow().get_logger().setLevel("ERROR")  # pfor's while_loop notes
    strategy = None if args.replicas is None else mirrored_strategy(args.replicas)
    names = ("mlp", "cnn") if args.model == "both" else (args.model,)
    results = {}
    for name in names:
        model, x, y, loss = example_problem(name, args.batch, args.seed)
        report = crosscheck(model, x, y, loss, num_microbatches=args.num_microbatches,
                            seed=args.seed, strategy=strategy)
        print(f"\n== {name}: {json.dumps(report.info)}")
        print(report.table())
        results[name] = report.to_dict()
    print(json.dumps(results, default=float))
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
