"""The TF adapter under tf.distribute: MirroredStrategy over 1, 2 and 4 logical CPU devices and a
two-process MultiWorkerMirroredStrategy on localhost.

Logical devices must be configured before TensorFlow initialises its devices, and TF 2.15 cannot
hold two MirroredStrategy objects of different sizes in one process, so every configuration runs
in a subprocess of its own (``python -m tests.test_tf_distribute ...``) that writes its figures
as JSON; the tests compare them with the NumPy kernel (float64), ``accounting`` and each other.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import accounting
import dpsgd_kernels as dk

ROOT = Path(__file__).resolve().parent.parent
CLIP, SIGMA, EXPECTED = 0.5, 1.1, 40.0  # clipping norm, noise multiplier, global B = q N
N, STEPS, SEED = 120, 6, 3  # data set size, training steps, seed of sampling and noise
DELTA = 1e-5
NOISE_STEPS = 100  # empty-batch updates whose noise is measured
TIMEOUT = 240  # seconds per subprocess


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 2)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)


# ----- the subprocess side -----------------------------------------------------------------


def _flat(weights) -> list[float]:
    return np.concatenate([np.ravel(w) for w in weights]).astype(np.float64).tolist()


def _worker(strategy, tf) -> dict:
    """Everything one configuration reports (the same code for every strategy)."""
    from dpsgd_kernels.tf_adapter import (
        PrivateDataLoader,
        PrivateKerasModel,
        TFDPStep,
        poisson_dataset,
        to_keras_model,
    )

    def mlp():
        if strategy is None:
            return to_keras_model(dk.tf_privacy_mlp(rng=0))
        with strategy.scope():
            return to_keras_model(dk.tf_privacy_mlp(rng=0))

    def optimizer(rate):
        if strategy is None:
            return tf.keras.optimizers.SGD(rate)
        with strategy.scope():
            return tf.keras.optimizers.SGD(rate)

    x, y = _data()
    out = {"replicas": 1 if strategy is None else strategy.num_replicas_in_sync}
    # (1) one noise-free global step, global batch of 37 (arrays split over the replicas)
    step = TFDPStep(mlp(), "binary_crossentropy", CLIP, 0.0)
    out["has_strategy"] = step.strategy is not None
    result = step.dp_gradient(x[:37], y[:37], expected_batch_size=EXPECTED)
    out["noise_free"] = _flat(result.gradients)
    out["noise_free_loss"] = result.loss
    fixed = step.dp_gradient(x[:37], y[:37])  # divided by the global batch size, 37
    out["noise_free_fixed"], out["fixed_denominator"] = _flat(fixed.gradients), fixed.denominator
    # the CNN (layerwise convolutions) on 3 examples: with 4 replicas one of them gets none
    with (strategy.scope() if strategy is not None else _nothing()):
        cnn = to_keras_model(dk.mnist_cnn(rng=0))
    images = np.random.default_rng(1).random(size=(3, 28, 28, 1)).astype(np.float32)
    labels = np.array([1, 7, 3])
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out["cnn_noise_free"] = _flat(TFDPStep(cnn, loss, CLIP, 0.0).dp_gradient(
        images, labels, expected_batch_size=4.0).gradients)
    # (2) noise: empty global batches, SGD(1): the update is -noise / B, through the optimizer
    model = mlp()
    noisy = TFDPStep(model, "binary_crossentropy", CLIP, SIGMA, seed=SEED)
    sgd = optimizer(1.0)
    draws = []
    for _ in range(NOISE_STEPS):
        before = _flat(model.get_weights())
        noisy.apply(sgd, x[:0], y[:0], expected_batch_size=EXPECTED)
        draws.append((np.array(before) - np.array(_flat(model.get_weights()))).tolist())
    out["noise_updates"] = draws
    # the gradient path (its own all-reduce): noisy minus noise-free gradient of one batch
    gradient = TFDPStep(mlp(), "binary_crossentropy", CLIP, SIGMA, seed=SEED)
    out["noise_gradients"] = [
        (np.array(_flat(gradient.dp_gradient(x[:37], y[:37], expected_batch_size=EXPECTED)
                        .gradients)) - np.array(out["noise_free"])).tolist()
        for _ in range(20)]
    # (3) PrivateKerasModel.fit on Poisson batches of the loader: weights and epsilon
    private = PrivateKerasModel(mlp(), l2_norm_clip=CLIP, noise_multiplier=SIGMA, seed=SEED)
    private.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    loader = PrivateDataLoader(x, y, batch_size=int(EXPECTED), seed=SEED)
    history = private.fit(loader, epochs=2, target_delta=DELTA, verbose=0)
    out["fit_weights"] = _flat(private.model.get_weights())
    out["fit_epsilon"] = history.history["epsilon"][-1]
    out["fit_steps"] = history.steps
    out["fit_ledger_steps"] = sum(record.count for record in private.accountant.history)
    out["fit_loss"] = history.history["loss"]
    # (4) poisson_dataset through distribute_datasets_from_function, TFDPStep.apply, SGD
    model = mlp()
    step = TFDPStep(model, "binary_crossentropy", CLIP, SIGMA, seed=SEED)
    sgd = optimizer(0.5)

    def dataset_fn(context=None):
        return poisson_dataset((x, y), int(EXPECTED), STEPS, seed=SEED, input_context=context)

    if strategy is None:
        batches = iter(dataset_fn())
    else:
        batches = iter(strategy.distribute_datasets_from_function(dataset_fn))
    for _ in range(STEPS):
        xb, yb = next(batches)
        step.apply(sgd, xb, yb, expected_batch_size=EXPECTED)
    out["dataset_weights"] = _flat(model.get_weights())
    # which examples each step's replicas got (an index column), in this worker's replicas
    index = np.arange(N, dtype=np.float32)

    def indices(context=None):
        return poisson_dataset((index, index), int(EXPECTED), STEPS, seed=SEED,
                               input_context=context)

    seen = []
    if strategy is None:
        for xi, _ in indices():
            seen.append([np.asarray(xi).astype(int).tolist()])
    else:
        for xi, _ in strategy.distribute_datasets_from_function(indices):
            seen.append([np.asarray(v).astype(int).tolist()
                         for v in strategy.experimental_local_results(xi)])
    out["dataset_rows"] = seen
    return out


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _main(argv) -> int:
    kind, output = argv[0], argv[1]
    import tensorflow as tf

    if kind == "mirrored":
        replicas = int(argv[2])
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
        strategy = (None if replicas == 0 else
                    tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)]))
    else:  # multiworker: TF_CONFIG is set by the parent
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tf.get_logger().setLevel("ERROR")
    result = _worker(strategy, tf)
    Path(output).write_text(json.dumps(result))
    return 0


# ----- the pytest side ---------------------------------------------------------------------

if __name__ != "__main__":
    pytest.importorskip("tensorflow")
    pytestmark = pytest.mark.tensorflow


def _run(args, tmp_path, env=None, name="out"):
    output = tmp_path / f"{name}.json"
    process = subprocess.run(
        [sys.executable, "-m", "tests.test_tf_distribute", args[0], str(output), *args[1:]],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Figures of no strategy (0) and MirroredStrategy over 1, 2 and 4 logical CPUs."""
    tmp = tmp_path_factory.mktemp("mirrored")
    return {r: _run(["mirrored", str(r)], tmp, name=f"r{r}") for r in (0, 1, 2, 4)}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def multiworker(tmp_path_factory):
    """Both workers' figures of a two-process MultiWorkerMirroredStrategy on localhost."""
    tmp = tmp_path_factory.mktemp("multiworker")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    try:
        for index in range(2):
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": config}
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.test_tf_distribute", "multiworker",
                 str(tmp / f"w{index}.json")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True))
        logs = [p.communicate(timeout=TIMEOUT) for p in processes]
    finally:
        for process in processes:  # a hung collective must not outlive the test
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    for process, (_, err) in zip(processes, logs, strict=True):
        assert process.returncode == 0, err[-3000:]
    return [json.loads((tmp / f"w{i}.json").read_text()) for i in range(2)]


def _reference(expected=EXPECTED, rows=37):
    """The NumPy kernel's noise-free step (float64) on the first ``rows`` examples."""
    x, y = _data()
    return dk.dp_gradient(dk.tf_privacy_mlp(rng=0), x[:rows], y[:rows], dk.BinaryCrossentropy(),
                          l2_norm_clip=CLIP, noise_multiplier=0.0, rng=np.random.default_rng(0),
                          expected_batch_size=expected)


def _close(ours, reference, rtol=1e-6):
    ours, reference = np.asarray(ours), np.asarray(reference)
    scale = float(np.abs(reference).max())
    assert float(np.abs(ours - reference).max()) <= rtol * scale


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_noise_free_global_step_equals_the_single_device_step(runs, replicas):
    run = runs[replicas]
    assert run["has_strategy"] and run["replicas"] == replicas
    _close(run["noise_free"], _flat(_reference().gradients), rtol=1e-5)  # float32 vs 64
    _close(run["noise_free"], runs[0]["noise_free"])  # the adapter without a strategy
    # no expected_batch_size: divided by the global batch size (37), not a replica's
    assert run["fixed_denominator"] == 37.0
    _close(run["noise_free_fixed"], _flat(_reference(expected=None).gradients), rtol=1e-5)
    _close(run["cnn_noise_free"], runs[0]["cnn_noise_free"], rtol=1e-5)
    assert math.isclose(run["noise_free_loss"], runs[0]["noise_free_loss"], rel_tol=1e-6)


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_noise_is_added_once_per_global_step(runs, replicas):
    """std of the update's noise = sigma C / B_global (sqrt(R) times that if every replica
    added its own); 19,300 draws: standard error of the std 0.5 %."""
    for key in ("noise_updates", "noise_gradients"):
        draws = np.asarray(runs[replicas][key]) * EXPECTED / (SIGMA * CLIP)
        std = float(np.std(draws))
        assert abs(std - 1.0) <= 5.0 / math.sqrt(2.0 * draws.size), (key, std)
        assert abs(float(np.mean(draws))) <= 5.0 / math.sqrt(draws.size)


def test_same_seed_same_model_on_1_2_and_4_replicas(runs):
    for key in ("fit_weights", "dataset_weights", "noise_updates"):
        for replicas in (1, 2, 4):
            _close(np.ravel(runs[replicas][key]), np.ravel(runs[0][key]), rtol=1e-5)


@pytest.mark.parametrize("replicas", [0, 1, 2, 4])
def test_ledger_records_one_event_per_global_step(runs, replicas):
    run = runs[replicas]
    steps = math.ceil(2 * N / EXPECTED)  # two epochs
    assert run["fit_steps"] == steps == run["fit_ledger_steps"]
    expected = accounting.get_privacy_budget(N, int(EXPECTED), 2, SIGMA, DELTA)
    assert math.isclose(run["fit_epsilon"], expected, rel_tol=1e-12)


def _global_batches(seed_rows):
    return [sorted(sum(replica_rows, [])) for replica_rows in seed_rows]


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_poisson_dataset_puts_every_sampled_example_on_exactly_one_replica(runs, replicas):
    rows = runs[replicas]["dataset_rows"]
    assert len(rows) == STEPS
    single = _global_batches(runs[0]["dataset_rows"])
    for step_rows, batch in zip(rows, single, strict=True):
        assert len(step_rows) == replicas
        assert sorted(sum(step_rows, [])) == batch  # the same global batch, no repeats
        sizes = [len(r) for r in step_rows]
        assert max(sizes) - min(sizes) <= 1
    # Poisson rate q = B / N: all draws together are Binomial(N * STEPS, q)
    total = sum(len(b) for b in single)
    mean, sd = N * STEPS * EXPECTED / N, math.sqrt(N * STEPS * (EXPECTED / N) * (1 - EXPECTED / N))
    assert abs(total - mean) <= 5 * sd


def test_multiworker_mirrored_strategy_on_localhost(multiworker, runs):
    first, second = multiworker
    for worker in (first, second):
        assert worker["has_strategy"] and worker["replicas"] == 2
        _close(worker["noise_free"], runs[0]["noise_free"])
        for key in ("fit_weights", "dataset_weights"):
            _close(worker[key], runs[0][key], rtol=1e-5)  # the same model as one device
        assert math.isclose(worker["fit_epsilon"],
                            accounting.get_privacy_budget(N, int(EXPECTED), 2, SIGMA, DELTA),
                            rel_tol=1e-12)
        draws = np.asarray(worker["noise_updates"]) * EXPECTED / (SIGMA * CLIP)
        assert abs(float(np.std(draws)) - 1.0) <= 5.0 / math.sqrt(2.0 * draws.size)
    # each worker holds one replica: together they saw every sampled example once
    single = _global_batches(runs[0]["dataset_rows"])
    for step, batch in enumerate(single):
        together = first["dataset_rows"][step][0] + second["dataset_rows"][step][0]
        assert sorted(together) == batch



def test_crosscheck_replicas_option_runs_checks_b_to_d_under_a_strategy():
    process = subprocess.run(
        [sys.executable, "-m", "dpsgd_kernels.tf_adapter.crosscheck", "--model", "mlp",
         "--replicas", "2"], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])["mlp"]
    assert report["passed"] and report["info"]["replicas"] == 2
    under = [row for row in report["rows"] if "(2 replicas)" in row["compared"]]
    assert {row["check"][0] for row in under} == {"b", "c", "d"}
    assert all(row["passed"] for row in under)



# The README's "Training on several devices" example (the README's own block is run instead
# when the README has one: the python block that calls distribute_datasets_from_function).
EXAMPLE = """\
import numpy as np
import tensorflow as tf

import dpsgd_kernels as dk
from dpsgd_kernels.ledger import PrivacyLedger
from dpsgd_kernels.tf_adapter import (PrivateDataLoader, PrivateKerasModel, TFDPStep,
                                      poisson_dataset, to_keras_model)

rng = np.random.default_rng(0)
features = rng.normal(size=(2000, 2)).astype(np.float32)
labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(np.float32)
strategy = tf.distribute.MirroredStrategy()  # every local GPU (the CPU when there is none)

# 1. Keras style: every global batch the loader draws is split over the replicas.
with strategy.scope():
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=0))
model = PrivateKerasModel(keras_model, l2_norm_clip=1.0, noise_multiplier=1.1, seed=0)
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
loader = PrivateDataLoader(features, labels, batch_size=100, seed=0)
history = model.fit(loader, epochs=2, target_delta=1e-5, verbose=0)
print(f"fit: epsilon {history.history['epsilon'][-1]:.4f} after {history.steps} steps")

# 2. Your own loop over a tf.data pipeline of Poisson batches.
batch_size, steps = 100, 40  # expected global batch; 40 steps = 2 epochs of 2000 examples
dataset = strategy.distribute_datasets_from_function(
    lambda context: poisson_dataset((features, labels), batch_size, steps, seed=0,
                                    input_context=context))
with strategy.scope():
    keras_model = to_keras_model(dk.tf_privacy_mlp(rng=0))
    optimizer = tf.keras.optimizers.SGD(0.1)
step = TFDPStep(keras_model, "binary_crossentropy", l2_norm_clip=1.0, noise_multiplier=1.1,
                seed=0)
ledger = PrivacyLedger(1e-5)
for x, y in dataset:
    step.apply(optimizer, x, y, expected_batch_size=batch_size)  # divide by the global B
    ledger.record(batch_size / len(features), 1.1)  # one event per global step
print(f"loop: epsilon {ledger.epsilon:.4f} after {ledger.steps} steps")
"""


def _example() -> str:
    import re

    readme = ROOT / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    chosen = [b for b in blocks if "distribute_datasets_from_function" in b]
    return chosen[0] if chosen else EXAMPLE


def test_readme_several_devices_example_runs_and_reports_the_accountants_epsilon(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_example())
    process = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                             text=True, timeout=TIMEOUT,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert process.returncode == 0, process.stderr[-3000:]
    expected = accounting.get_privacy_budget(2000, 100, 2, 1.1, 1e-5)
    lines = process.stdout.strip().splitlines()[-2:]
    assert lines == [f"fit: epsilon {expected:.4f} after 40 steps",
                     f"loop: epsilon {expected:.4f} after 40 steps"]


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
