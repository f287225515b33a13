"""Per-step time: non-private Keras SGD vs the TF adapter's DP step vs TF Privacy's optimizer.

For the MLP and the MNIST tutorial CNN at batch 256 (synthetic data): a non-private Keras SGD
step (one ``tf.function`` of GradientTape + ``apply_gradients``, and Keras' ``train_on_batch``),
the adapter's DP-SGD step (:class:`dpsgd_kernels.tf_adapter.TFDPStep`, both gradient methods) and
TF Privacy's ``DPKerasSGDOptimizer`` with ``num_microbatches = batch`` via ``train_on_batch``
(only where tensorflow-privacy imports: the TF 2.15 venv of ``make test-tensorflow``).

The non-private baseline is compiled as Keras compiles its own train step on a CPU-only machine:
``tf.function`` without XLA (Keras 3's ``jit_compile="auto"`` turns XLA off when there is no
accelerator; Keras 2 defaults to no XLA). Its batch is captured as tensors; the adapter's step is
given the same tensors (``TFDPStep.apply`` accepts tensors without converting them), so neither
pays for moving NumPy data and the DP step also pays for its Python entry (argument checks).

Goals: adapter DP step <= 2x the non-private step (<= 1.5x on a GPU), and >= 5x faster than TF
Privacy. Prints a table, then one JSON line of the figures (seconds per step, medians).

Runs on the GPU when TensorFlow sees one (the adapter's default device). ``--replicas N`` runs the
non-private step and the adapter's step under a ``MirroredStrategy`` of N replicas (the first N
GPUs when there are that many, else N logical CPU devices), the global batch split over them
(distributed once, outside the timed steps); TF Privacy is then left out (it has no strategy
support).

    .venv-tf/bin/python benchmarks/tf_step_speed.py     # TF 2.21 / Keras 3
    .venv-tfp/bin/python benchmarks/tf_step_speed.py    # TF 2.15 / Keras 2 + TF Privacy
    .venv-tf/bin/python benchmarks/tf_step_speed.py --replicas 2 --batch 1024
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import dpsgd_kernels as dk
from dpsgd_kernels.tf_adapter import TFDPStep, default_device, to_keras_model
from dpsgd_kernels.tf_adapter._imports import keras_version, require_tensorflow, tf_privacy_or_none
from dpsgd_kernels.tf_adapter.crosscheck import mirrored_strategy

tf = require_tensorflow()
tf.get_logger().setLevel("ERROR")


def _problem(name: str, batch: int):
    rng = np.random.default_rng(0)
    if name == "mlp":
        x = rng.normal(size=(batch, 2)).astype(np.float32)
        return dk.tf_privacy_mlp, x, (x[:, 0] > 0).astype(np.float32), "binary_crossentropy"
    x = rng.random(size=(batch, 28, 28, 1)).astype(np.float32)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return dk.mnist_cnn, x, rng.integers(0, 10, batch), loss


def _time_interleaved(steps: dict, repeats: int, inner: dict) -> dict:
    """Median over ``repeats`` rounds of the mean time of ``inner[name]`` steps, per step.

    Rounds go round-robin over the variants, so load changes on a shared machine hit them alike.
    """
    for step in steps.values():
        for _ in range(3):
            step()
    rounds = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(inner[name]):
                step()
            rounds[name].append((time.perf_counter() - start) / inner[name])
    return {name: statistics.median(values) for name, values in rounds.items()}


def _scope(strategy):
    return strategy.scope() if strategy is not None else _NoScope()


class _NoScope:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _fresh(build, strategy=None):
    with _scope(strategy):
        return to_keras_model(build(rng=0))


def _sgd(strategy=None):
    with _scope(strategy):
        return tf.keras.optimizers.SGD(0.01)


def bench(name: str, batch: int, repeats: int, strategy=None) -> dict:
    build, x, y, loss = _problem(name, batch)
    inner_fast = 20 if name == "mlp" else 4
    xt, yt = tf.constant(x), tf.constant(y)
    steps, inner = {}, {}

    plain_model = _fresh(build, strategy)
    plain_optimizer = _sgd(strategy)
    mean_loss = tf.keras.losses.BinaryCrossentropy() if isinstance(loss, str) else loss
    y_plain = tf.reshape(yt, (-1, 1)) if name == "mlp" else yt

    if strategy is None:
        @tf.function
        def plain_step():
            with tf.GradientTape() as tape:
                value = mean_loss(y_plain, plain_model(xt, training=True))
            grads = tape.gradient(value, plain_model.trainable_variables)
            plain_optimizer.apply_gradients(zip(grads, plain_model.trainable_variables,
                                                strict=True))
            return value
    else:
        # the tf.distribute convention: per-replica loss sum / global batch, the optimizer sums
        sizes = [len(c) for c in np.array_split(np.arange(batch), strategy.num_replicas_in_sync)]
        starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: (xt[starts[ctx.replica_id_in_sync_group]:
                            starts[ctx.replica_id_in_sync_group + 1]],
                         y_plain[starts[ctx.replica_id_in_sync_group]:
                                 starts[ctx.replica_id_in_sync_group + 1]]))

        def replica_step(xr, yr):
            with tf.GradientTape() as tape:
                value = mean_loss(yr, plain_model(xr, training=True)) * tf.cast(
                    tf.shape(xr)[0], tf.float32) / batch
            grads = tape.gradient(value, plain_model.trainable_variables)
            plain_optimizer.apply_gradients(zip(grads, plain_model.trainable_variables,
                                                strict=True))
            return value

        @tf.function
        def plain_step():
            values = strategy.run(replica_step, args=dist)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None)

    steps["keras_sgd_tf_function"] = lambda: plain_step().numpy()
    inner["keras_sgd_tf_function"] = inner_fast
    if strategy is None:
        # For reference only: the same graph called as a ConcreteFunction (how the adapter calls
        # its step), without tf.function's per-call dispatch; not how Keras runs its train step.
        plain_concrete = plain_step.get_concrete_function()
        steps["keras_sgd_concrete_function"] = lambda: plain_concrete().numpy()
        inner["keras_sgd_concrete_function"] = inner_fast

    fit_model = _fresh(build, strategy)
    with _scope(strategy):
        fit_model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss=mean_loss)
    steps["keras_sgd_train_on_batch"] = lambda: fit_model.train_on_batch(x, y)
    inner["keras_sgd_train_on_batch"] = inner_fast

    for method in ("layerwise", "vectorized_map"):
        step = TFDPStep(_fresh(build, strategy), loss, 1.0, 1.1, seed=0, method=method)
        optimizer = _sgd(strategy)
        key = f"adapter_dp_{method}"
        xs, ys = (xt, yt) if strategy is None else step.split(xt, yt)
        # a fixed batch: the same division by its size as the non-private mean loss
        steps[key] = (lambda step=step, optimizer=optimizer, xs=xs, ys=ys:
                      np.asarray(step.apply(optimizer, xs, ys,
                                            expected_batch_size=float(batch))[0]))
        inner[key] = inner_fast if method == "layerwise" or name == "mlp" else 1

    tfp = tf_privacy_or_none()
    if tfp is not None and strategy is None:
        tfp_model = _fresh(build)
        dp_optimizer = tfp.DPKerasSGDOptimizer(l2_norm_clip=1.0, noise_multiplier=1.1,
                                               num_microbatches=batch, learning_rate=0.01)
        # As in TF Privacy's tutorials: the loss per example (reduction NONE, Keras 2 only).
        unreduced = (tf.keras.losses.BinaryCrossentropy(reduction="none") if name == "mlp" else
                     tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                   reduction="none"))
        tfp_model.compile(optimizer=dp_optimizer, loss=unreduced)
        steps["tf_privacy_dp_keras_sgd"] = lambda: tfp_model.train_on_batch(x, y)
        inner["tf_privacy_dp_keras_sgd"] = inner_fast if name == "mlp" else 1
    return _time_interleaved(steps, repeats, inner)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--replicas", type=int, default=None,
                        help="run under a MirroredStrategy of N replicas (GPUs, else logical "
                             "CPUs)")
    args = parser.parse_args(argv)
    strategy = None if args.replicas is None else mirrored_strategy(args.replicas)
    info = {"tensorflow": tf.__version__, "keras": keras_version(), "device": default_device(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "replicas": None if strategy is None else strategy.num_replicas_in_sync,
            "replica_devices": None if strategy is None else list(
                strategy.extended.worker_devices),
            "tensorflow_privacy": getattr(tf_privacy_or_none(), "__version__", None),
            "batch": args.batch}
    print(f"TF DP-SGD step speed, {json.dumps(info)}")
    header = f"{'model':<5} {'step':<28} {'ms/step':>10} {'vs Keras SGD':>13}"
    print(header)
    print("-" * len(header))
    figures = {}
    for name in args.models.split(","):
        results = bench(name, args.batch, args.repeats, strategy)
        base = results["keras_sgd_tf_function"]
        for key, seconds in results.items():
            print(f"{name:<5} {key:<28} {1e3 * seconds:>10.2f} {seconds / base:>12.2f}x")
        summary = {"seconds": results,
                   "dp_over_plain": results["adapter_dp_layerwise"] / base,
                   "dp_over_plain_train_on_batch":
                       results["adapter_dp_layerwise"] / results["keras_sgd_train_on_batch"]}
        if "keras_sgd_concrete_function" in results:
            summary["dp_over_plain_concrete_function"] = (
                results["adapter_dp_layerwise"] / results["keras_sgd_concrete_function"])
        if "tf_privacy_dp_keras_sgd" in results:
            summary["tf_privacy_over_dp"] = (results["tf_privacy_dp_keras_sgd"]
                                             / results["adapter_dp_layerwise"])
        figures[name] = summary
        goal = (f"{name}: adapter DP step = {summary['dp_over_plain']:.2f}x the non-private "
                f"tf.function step (goal <= 2x, <= 1.5x on GPU), "
                f"{summary['dp_over_plain_train_on_batch']:.2f}x train_on_batch")
        if "dp_over_plain_concrete_function" in summary:
            goal += (f", {summary['dp_over_plain_concrete_function']:.2f}x the "
                     "concrete-function call")
        if "tf_privacy_over_dp" in summary:
            goal += f"; {summary['tf_privacy_over_dp']:.1f}x faster than TF Privacy (goal >= 5x)"
        print(goal)
    print(json.dumps({"info": info, "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
