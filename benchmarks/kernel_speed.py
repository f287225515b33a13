"""Speed of one training step of the NumPy DP-SGD kernel, batch 256, MLP and MNIST CNN.

For each model three steps are timed (gradient + SGD update, float32, median of repeats):

- ``non-private``: mean-loss batch gradient (one forward, one backward, one product per layer);
- ``dp``: vectorised per-example gradients or ghost norms, clipping, noise (``dp_gradient``);
- ``naive dp``: the same DP step with a Python loop over examples (``naive_dp_gradient``).

Goals: dp <= 1.3x non-private (MLP) and <= 2.5x (CNN); dp >= 10x faster than naive.
Prints a table, then (last) one JSON line of figures.

The variants are timed round-robin (one repeat of each per round, the naive step in evenly
spread rounds), so that load drift on a shared machine hits all of them alike and the ratios,
taken from the same run, stay comparable.

BLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` are set: the
layers' matrix products are small and skinny, where BLAS threading costs more than it gains (and
the numbers are meant per core).

    python benchmarks/kernel_speed.py [--repeats N] [--batch B]
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before NumPy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dpsgd_kernels as dk  # noqa: E402


def _interleaved_medians(functions, repeats) -> list[float]:
    """Median seconds of every function, timed round-robin.

    ``repeats[k]`` timed calls of ``functions[k]`` (after one warm-up call each), spread evenly
    over ``max(repeats)`` rounds.
    """
    for function in functions:
        function()  # warm-up (allocations, caches)
    rounds = max(repeats)
    times: list[list[float]] = [[] for _ in functions]
    for r in range(rounds):
        for k, function in enumerate(functions):
            # Rounds where the k-th function's count of timed calls steps up.
            if (r + 1) * repeats[k] // rounds == r * repeats[k] // rounds:
                continue
            start = time.perf_counter()
            function()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _setups(batch: int):
    rng = np.random.default_rng(0)
    x_mlp = rng.normal(size=(batch, 2)).astype(np.float32)
    y_mlp = (x_mlp[:, 0] * x_mlp[:, 1] > 0).astype(np.float32)
    x_cnn = rng.random(size=(batch, 28, 28, 1), dtype=np.float32)
    y_cnn = rng.integers(0, 10, size=batch)
    return {
        "mlp": (dk.tf_privacy_mlp(dtype="float32", rng=1), x_mlp, y_mlp,
                dk.BinaryCrossentropy()),
        "cnn": (dk.mnist_cnn(dtype="float32", rng=1), x_cnn, y_cnn,
                dk.SparseCategoricalCrossentropy(from_logits=True)),
    }


def _steps(model, x, y, loss):
    optimizer = dk.SGD(learning_rate=1e-3)
    noise_rng = np.random.default_rng(2)
    dp_args = {"l2_norm_clip": 1.0, "noise_multiplier": 1.1, "rng": noise_rng}

    def non_private():
        grads, _ = dk.batch_gradient(model, x, y, loss)
        optimizer.apply(model.params, grads)

    def dp():
        optimizer.apply(model.params, dk.dp_gradient(model, x, y, loss, **dp_args).gradients)

    def naive():
        result = dk.naive_dp_gradient(model, x, y, loss, **dp_args)
        optimizer.apply(model.params, result.gradients)

    return non_private, dp, naive


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed repeats per fast step")
    parser.add_argument("--naive-repeats", type=int, default=5, help="timed repeats, naive step")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)

    figures: dict[str, float | int | str] = {
        "batch": args.batch,
        "dtype": "float32",
        "numpy": np.__version__,
        "machine": platform.machine(),
        "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
    }
    print(f"DP-SGD step time, batch {args.batch}, float32 (median; ms)")
    header = f"{'model':<5} {'non-private':>12} {'dp':>10} {'naive dp':>10} "
    header += f"{'dp/non-priv':>12} {'naive/dp':>9}"
    print(header)
    print("-" * len(header))
    for name, (model, x, y, loss) in _setups(args.batch).items():
        non_private, dp, naive = _steps(model, x, y, loss)
        t_plain, t_dp, t_naive = _interleaved_medians(
            (non_private, dp, naive), (args.repeats, args.repeats, args.naive_repeats)
        )
        print(
            f"{name:<5} {t_plain * 1e3:>12.3f} {t_dp * 1e3:>10.3f} {t_naive * 1e3:>10.1f} "
            f"{t_dp / t_plain:>12.2f} {t_naive / t_dp:>9.1f}"
        )
        figures.update({
            f"{name}_nonprivate_ms": round(t_plain * 1e3, 4),
            f"{name}_dp_ms": round(t_dp * 1e3, 4),
            f"{name}_naive_dp_ms": round(t_naive * 1e3, 2),
            f"{name}_dp_over_nonprivate": round(t_dp / t_plain, 3),
            f"{name}_naive_over_dp": round(t_naive / t_dp, 1),
        })
    print("goals: mlp dp/non-private <= 1.3, cnn <= 2.5, naive/dp >= 10")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
