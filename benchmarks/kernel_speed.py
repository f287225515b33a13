"""Speed of one DP-SGD training step, batch 256, float32: the NumPy kernel beside Opacus,
torch.func and JAX, at 1 thread and at each library's default thread count.

Every step is a full training step on the same models (TF Privacy's MLP and MNIST CNN,
:mod:`dpsgd_kernels.architectures`) and the same batch: gradient, then an SGD update.

- ``ours``: ``dp_gradient`` (per-example clipping, Gaussian noise), ``batch_gradient``
  (non-private), ``naive_dp_gradient`` (a Python loop over examples, 1 thread only) and, at the
  default thread count, ``dp_gradient(blas_threads=None)`` (BLAS left with all its threads);
- ``opacus``: ``PrivacyEngine.make_private`` (hooks, flat clipping, no Poisson resampling:
  the batch is fed directly), ``zero_grad``, forward, backward, ``step``;
- ``torch.func``: ``vmap(grad(...))`` per-example gradients, clipping, noise, update (eager);
  ``torch`` non-private: autograd and ``torch.optim.SGD``;
- ``jax``: one ``jax.jit``-compiled function each for the DP step (``vmap(grad)``, clipping,
  noise, update) and the non-private step.

Threads: every (library, thread count) runs in its own worker process, started with the
thread settings a user would set before import (``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/
``MKL_NUM_THREADS`` = 1, ``torch.set_num_threads(1)``, XLA's ``intra_op_parallelism_threads=1``)
or with none of them (the default: every library picks its own count). Workers wait on a pipe
between blocks of steps; the coordinator runs blocks round-robin over every (worker, step), so
load drift on a shared machine hits all of them alike and the ratios, taken from the same run,
stay comparable. Every block is followed by the same pause (``IDLE_GAP_S``; longer after the
BLAS-unlimited steps, whose threads spin), so every step is timed after the same idle gap, as
the first step after a pause (colder caches than back-to-back steps). Figures are medians of
single-step times.

Peers are optional (``make bench`` installs them in .venv-bench from
benchmarks/requirements-peers.txt); a missing one is reported and skipped.
Prints a table, then (last) one JSON line of figures.

    python benchmarks/kernel_speed.py [--repeats N] [--naive-repeats N] [--batch B]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THREADS = ("1", "default")
IMPLS = ("ours", "opacus", "torch_func", "jax")
LABELS = {"ours": "ours", "opacus": "Opacus", "torch_func": "torch.func", "jax": "JAX"}
MODELS = ("mlp", "cnn")
LEARNING_RATE, CLIP, SIGMA = 1e-3, 1.0, 1.1
IDLE_GAP_S = 0.02  # pause after every timed block (see _measure)
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS",
                     "TF_NUM_INTRAOP_THREADS")


# --------------------------------------------------------------------------- the workers


def _data(batch: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x_mlp = rng.normal(size=(batch, 2)).astype(np.float32)
    y_mlp = (x_mlp[:, 0] * x_mlp[:, 1] > 0).astype(np.float32)
    x_cnn = rng.random(size=(batch, 28, 28, 1), dtype=np.float32)
    y_cnn = rng.integers(0, 10, size=batch)
    return {"mlp": (x_mlp, y_mlp), "cnn": (x_cnn, y_cnn)}


def _ours_steps(batch: int, threads: str) -> dict:
    import numpy as np

    import dpsgd_kernels as dk

    steps = {}
    for name, (x, y) in _data(batch).items():
        if name == "mlp":
            model, loss = dk.tf_privacy_mlp(dtype="float32", rng=1), dk.BinaryCrossentropy()
        else:
            model = dk.mnist_cnn(dtype="float32", rng=1)
            loss = dk.SparseCategoricalCrossentropy(from_logits=True)
        optimizer = dk.SGD(learning_rate=LEARNING_RATE)
        dp_args = {"l2_norm_clip": CLIP, "noise_multiplier": SIGMA,
                   "rng": np.random.default_rng(2)}

        def non_private(model=model, x=x, y=y, loss=loss, optimizer=optimizer):
            optimizer.apply(model.params, dk.batch_gradient(model, x, y, loss)[0])

        def dp(model=model, x=x, y=y, loss=loss, optimizer=optimizer, dp_args=dp_args, **kw):
            optimizer.apply(model.params, dk.dp_gradient(model, x, y, loss, **dp_args,
                                                         **kw).gradients)

        def naive(model=model, x=x, y=y, loss=loss, optimizer=optimizer, dp_args=dp_args):
            optimizer.apply(model.params, dk.naive_dp_gradient(model, x, y, loss,
                                                               **dp_args).gradients)

        steps[f"{name}_nonprivate"], steps[f"{name}_dp"] = non_private, dp
        if threads == "1":
            steps[f"{name}_naive"] = naive
        else:
            steps[f"{name}_dp_unlimited"] = lambda dp=dp: dp(blas_threads=None)
    return steps


def _torch_models():
    import torch

    torch.manual_seed(1)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
        torch.nn.Linear(8, 1), torch.nn.Flatten(0),
    )
    cnn = torch.nn.Sequential(  # NCHW; padding 3 is TF's "same" for 8x8 stride 2 on 28x28
        torch.nn.Conv2d(1, 16, 8, stride=2, padding=3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2, 1),
        torch.nn.Conv2d(16, 32, 4, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 1),
        torch.nn.Flatten(), torch.nn.Linear(512, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10),
    )
    return {"mlp": (mlp, torch.nn.BCEWithLogitsLoss()), "cnn": (cnn, torch.nn.CrossEntropyLoss())}


def _torch_data(batch: int):
    import torch

    data = _data(batch)
    x_mlp, y_mlp = data["mlp"]
    x_cnn, y_cnn = data["cnn"]
    return {"mlp": (torch.from_numpy(x_mlp), torch.from_numpy(y_mlp)),
            "cnn": (torch.from_numpy(x_cnn).permute(0, 3, 1, 2).contiguous(),
                    torch.from_numpy(y_cnn))}


def _opacus_steps(batch: int, threads: str) -> dict:
    import warnings

    import torch
    from opacus import PrivacyEngine

    warnings.filterwarnings("ignore")  # secure-RNG and hook warnings, once per model
    steps = {}
    data = _torch_data(batch)
    for name, (model, criterion) in _torch_models().items():
        x, y = data[name]
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                             batch_size=batch)
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        model, optimizer, _ = PrivacyEngine(accountant="rdp").make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=SIGMA,
            max_grad_norm=CLIP, poisson_sampling=False,
        )

        def dp(model=model, optimizer=optimizer, criterion=criterion, x=x, y=y):
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            optimizer.step()

        steps[f"{name}_dp"] = dp
    return steps


def _torch_func_steps(batch: int, threads: str) -> dict:
    import torch
    from torch.func import functional_call, grad, vmap

    steps = {}
    data = _torch_data(batch)
    generator = torch.Generator().manual_seed(2)
    for name, (model, criterion) in _torch_models().items():
        x, y = data[name]
        params = {k: v.detach().clone() for k, v in model.named_parameters()}

        def loss_one(p, xi, yi, model=model, criterion=criterion):
            return criterion(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

        per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))

        def dp(params=params, x=x, y=y, per_example=per_example):
            with torch.no_grad():
                grads = per_example(params, x, y)
                sq = sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values())
                factors = CLIP / torch.clamp(sq.sqrt(), min=CLIP)
                for key, g in grads.items():
                    total = torch.tensordot(factors, g, dims=1)
                    total += torch.normal(0.0, SIGMA * CLIP, total.shape, generator=generator)
                    params[key] -= LEARNING_RATE / x.shape[0] * total

        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

        def non_private(model=model, optimizer=optimizer, criterion=criterion, x=x, y=y):
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            optimizer.step()

        steps[f"{name}_dp"], steps[f"{name}_nonprivate"] = dp, non_private
    return steps


def _jax_steps(batch: int, threads: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    rng = np.random.default_rng(1)

    def glorot(shape, fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return jnp.asarray(rng.uniform(-limit, limit, size=shape).astype(np.float32))

    def dense(p, h, relu=True):
        z = h @ p[0] + p[1]
        return jax.nn.relu(z) if relu else z

    def conv(p, h, stride, padding):
        z = lax.conv_general_dilated(h, p[0], (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(z + p[1])

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 1, 1, 1), "VALID")

    def mlp(params, x):
        h = dense(params[1], dense(params[0], x))
        return dense(params[2], h, relu=False)[..., 0]

    def cnn(params, x):
        h = pool(conv(params[0], x, 2, [(3, 3), (3, 3)]))
        h = pool(conv(params[1], h, 2, "VALID"))
        h = dense(params[2], h.reshape(h.shape[0], -1))
        return dense(params[3], h, relu=False)

    def bce(logits, y):
        return jnp.mean(jax.nn.softplus(logits) - y * logits)

    def cross_entropy(logits, y):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    models = {
        "mlp": (mlp, bce, [(glorot((2, 16), 2, 16), jnp.zeros(16)),
                           (glorot((16, 8), 16, 8), jnp.zeros(8)),
                           (glorot((8, 1), 8, 1), jnp.zeros(1))]),
        "cnn": (cnn, cross_entropy, [(glorot((8, 8, 1, 16), 64, 1024), jnp.zeros(16)),
                                     (glorot((4, 4, 16, 32), 256, 512), jnp.zeros(32)),
                                     (glorot((512, 32), 512, 32), jnp.zeros(32)),
                                     (glorot((32, 10), 32, 10), jnp.zeros(10))]),
    }
    steps = {}
    for name, (x, y) in _data(batch).items():
        forward, loss, params = models[name]
        x, y = jnp.asarray(x), jnp.asarray(y)

        def batch_loss(p, x, y, forward=forward, loss=loss):
            return loss(forward(p, x), y)

        @jax.jit
        def non_private_step(p, x, y, batch_loss=batch_loss):
            return jax.tree_util.tree_map(lambda w, g: w - LEARNING_RATE * g, p,
                                          jax.grad(batch_loss)(p, x, y))

        @jax.jit
        def dp_step(p, x, y, key, batch_loss=batch_loss):
            def one(p, xi, yi):
                return batch_loss(p, xi[None], yi[None])

            grads = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(p, x, y)
            leaves, tree = jax.tree_util.tree_flatten(grads)
            sq = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in leaves)
            factors = CLIP / jnp.maximum(jnp.sqrt(sq), CLIP)
            key, *keys = jax.random.split(key, len(leaves) + 1)
            noisy = [jnp.tensordot(factors, g, axes=1)
                     + SIGMA * CLIP * jax.random.normal(k, g.shape[1:], g.dtype)
                     for g, k in zip(leaves, keys, strict=True)]
            update = jax.tree_util.tree_unflatten(tree, noisy)
            new = jax.tree_util.tree_map(lambda w, g: w - LEARNING_RATE / x.shape[0] * g,
                                         p, update)
            return new, key

        state = {"np": params, "dp": params, "key": jax.random.PRNGKey(2)}

        def non_private(state=state, x=x, y=y, step=non_private_step):
            state["np"] = jax.block_until_ready(step(state["np"], x, y))

        def dp(state=state, x=x, y=y, step=dp_step):
            state["dp"], state["key"] = jax.block_until_ready(
                step(state["dp"], x, y, state["key"]))

        steps[f"{name}_dp"], steps[f"{name}_nonprivate"] = dp, non_private
    return steps


def _worker(impl: str, threads: str, batch: int) -> None:
    """Build the steps, warm them up, then time blocks of steps on request (stdin lines
    ``STEP COUNT``; an empty line ends), answering with one JSON list of seconds each."""
    if threads == "1" and impl in ("opacus", "torch_func"):
        import torch

        torch.set_num_threads(1)
    builders = {"ours": _ours_steps, "opacus": _opacus_steps, "torch_func": _torch_func_steps,
                "jax": _jax_steps}
    try:
        steps = builders[impl](batch, threads)
    except ImportError as error:
        print(json.dumps({"unavailable": str(error)}), flush=True)
        return
    for step in steps.values():
        step()
        step()  # warm-up: compilation, allocations, caches
    info = {"steps": sorted(steps)}
    if impl == "ours":
        import dpsgd_kernels as dk

        info["blas_threads"] = dk.blas_thread_count()
    elif impl in ("opacus", "torch_func"):
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
    else:
        import jax

        info["jax"] = jax.__version__
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        name, count = line.split()
        times = []
        for _ in range(int(count)):
            start = time.perf_counter()
            steps[name]()
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


# --------------------------------------------------------------------------- the coordinator


def _worker_env(threads: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARIABLES}
    if threads == "1":
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(HERE), env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    def __init__(self, impl: str, threads: str, batch: int) -> None:
        self.impl, self.threads = impl, threads
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", impl, "--threads", threads,
             "--batch", str(batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_worker_env(threads),
        )
        self.info: dict | None = None

    def ready(self) -> dict:
        if self.info is None:
            line = self.process.stdout.readline()
            self.info = json.loads(line) if line else {"unavailable": "worker failed to start"}
        return self.info

    def run(self, step: str, count: int) -> list[float]:
        self.process.stdin.write(f"{step} {count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
            self.process.wait(timeout=60)


def _spread(total: int, rounds: int, r: int) -> int:
    """Steps in round ``r`` of ``rounds`` so that ``total`` are spread evenly."""
    return total * (r + 1) // rounds - total * r // rounds


def _measure(args) -> tuple[dict, dict]:
    """Median seconds per (impl, threads, step), and every worker's info."""
    workers = [_Worker(impl, threads, args.batch) for threads in THREADS for impl in IMPLS]
    try:
        infos = {(w.impl, w.threads): w.ready() for w in workers}  # started concurrently
        live = [w for w in workers if "steps" in w.ready()]
        counts = {}
        for w in live:
            for step in w.info["steps"]:
                slow = step.endswith(("_naive", "_unlimited"))
                counts[(w, step)] = args.naive_repeats if slow else args.repeats
        rounds = max(counts.values(), default=0)
        times: dict = {key: [] for key in counts}
        for r in range(rounds):
            order = list(counts)
            order = order[r % len(order):] + order[: r % len(order)]  # rotate the start
            for w, step in order:
                count = _spread(counts[(w, step)], rounds, r)
                if count:
                    times[(w, step)] += w.run(step, count)
                    # Threads that just ran spin-wait for a while before they sleep (OpenBLAS
                    # for up to ~0.1 s): let them go idle before the next worker is timed. The
                    # pause is the same after every other block: a step timed after a longer
                    # idle gap starts with colder caches, which would bias the comparison of
                    # thread counts (the 1-thread and default workers alike get the same gap).
                    time.sleep(0.3 if step.endswith("_unlimited") else IDLE_GAP_S)
        medians = {(w.impl, w.threads, step): statistics.median(t)
                   for (w, step), t in times.items() if t}
    finally:
        for w in workers:
            w.close()
    return medians, infos


def _ms(value) -> str:
    return "-" if value is None else f"{value * 1e3:.3f}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per fast step")
    parser.add_argument("--naive-repeats", type=int, default=3,
                        help="timed steps, naive and BLAS-unlimited steps")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--threads", choices=THREADS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.threads, args.batch)
        return {}

    medians, infos = _measure(args)
    default_threads = infos[("ours", "default")].get("blas_threads")

    def get(impl, threads, step):
        return medians.get((impl, threads, step))

    figures: dict = {
        "batch": args.batch, "dtype": "float32", "machine": platform.machine(),
        "cpus": os.cpu_count(), "blas_threads": "1", "default_blas_threads": default_threads,
    }
    for (impl, threads), info in infos.items():
        if "unavailable" in info:
            figures[f"{impl}_unavailable"] = info["unavailable"]
        for key in ("torch", "jax", "torch_threads"):
            if key in info:
                figures[f"{impl}_t{threads}_{key}" if key == "torch_threads" else key] = info[key]

    print(f"DP-SGD training step, batch {args.batch}, float32 (median ms). Threads: 1, and each "
          f"library's default ({os.cpu_count()} CPUs; our BLAS: {default_threads})")
    header = f"{'model':<5} {'step':<12} {'threads':>7}" + "".join(
        f"{LABELS[i]:>12}" for i in IMPLS) + f"{'ours/best peer':>16}"
    print(header)
    print("-" * len(header))
    goals = []
    for model in MODELS:
        for kind in ("dp", "nonprivate"):
            for threads in THREADS:
                row = {impl: get(impl, threads, f"{model}_{kind}") for impl in IMPLS}
                peers = [v for impl, v in row.items() if impl != "ours" and v is not None]
                best = min(peers) if peers else None
                ratio = row["ours"] / best if best and row["ours"] else None
                print(f"{model:<5} {kind:<12} {threads:>7}"
                      + "".join(f"{_ms(row[i]):>12}" for i in IMPLS)
                      + f"{'-' if ratio is None else f'{ratio:.2f}':>16}")
                for impl, value in row.items():
                    if value is not None:
                        figures[f"{model}_{impl}_{kind}_t{threads}_ms"] = round(value * 1e3, 4)
                if ratio is not None:
                    figures[f"{model}_{kind}_t{threads}_over_best_peer"] = round(ratio, 3)
                    if kind == "dp":
                        goals.append((f"{model} DP step at {threads} thread(s) faster than "
                                      f"every peer's DP step", ratio < 1))
        for threads in THREADS:
            jax_np, ours_dp = get("jax", threads, "mlp_nonprivate"), get("ours", threads, "mlp_dp")
            if model == "mlp" and jax_np and ours_dp:
                ratio = ours_dp / jax_np
                figures[f"mlp_dp_t{threads}_over_jax_nonprivate"] = round(ratio, 3)
                goals.append((f"mlp DP step at {threads} thread(s) within 1.5x of JAX's jitted "
                              f"non-private step ({ratio:.2f}x)", ratio <= 1.5))
    print()
    for model in MODELS:
        limited = get("ours", "default", f"{model}_dp")
        unlimited = get("ours", "default", f"{model}_dp_unlimited")
        one = get("ours", "1", f"{model}_dp")
        plain, naive = get("ours", "1", f"{model}_nonprivate"), get("ours", "1", f"{model}_naive")
        if one and plain:  # the figures earlier runs reported, at 1 thread
            figures.update({
                f"{model}_nonprivate_ms": round(plain * 1e3, 4),
                f"{model}_dp_ms": round(one * 1e3, 4),
                f"{model}_dp_over_nonprivate": round(one / plain, 3),
            })
        if naive and one:
            figures[f"{model}_naive_dp_ms"] = round(naive * 1e3, 2)
            figures[f"{model}_naive_over_dp"] = round(naive / one, 1)
        if limited and unlimited and one:
            figures[f"{model}_dp_tdefault_unlimited_ms"] = round(unlimited * 1e3, 4)
            print(f"ours {model} DP at the default thread count: blas_threads='auto' "
                  f"{_ms(limited)} ms, blas_threads=None (BLAS unlimited) {_ms(unlimited)} ms, "
                  f"1 thread {_ms(one)} ms; naive (1 thread) {_ms(naive)} ms")
            goals.append((f"{model} DP step not slower at the default thread count than at 1 "
                          f"({limited / one:.2f}x)", limited <= 1.1 * one))
    for text, met in goals:
        print(f"goal {'met' if met else 'NOT met'}: {text}")
    figures["goals_met"] = sum(met for _, met in goals)
    figures["goals"] = len(goals)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
