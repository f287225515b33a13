"""The TensorFlow DP-SGD step against the NumPy kernel: per-example gradients, clipping,
microbatches, the Poisson variant, injected and drawn noise, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import dpsgd_kernels as dk

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter import TFDPStep, to_keras_model, to_numpy_model  # noqa: E402

RTOL = 1e-5  # float32 TF vs float64 NumPy, relative to the largest entry


def _assert_close(ours, reference, rtol=RTOL):
    scale = max(float(np.abs(r).max()) for r in reference)
    for a, b in zip(ours, reference, strict=True):
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) <= rtol * scale


def _mlp(batch=24, seed=0):
    rng = np.random.default_rng(seed)
    model = to_keras_model(dk.tf_privacy_mlp(rng=seed))
    x = rng.normal(size=(batch, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    return model, x, y, "binary_crossentropy", dk.BinaryCrossentropy()


def _cnn(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    model = to_keras_model(dk.mnist_cnn(rng=seed))
    x = rng.random(size=(batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, x, y, loss, dk.SparseCategoricalCrossentropy(from_logits=True)


PROBLEMS = {"mlp": _mlp, "cnn": _cnn}


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("method", ["layerwise", "vectorized_map"])
@pytest.mark.parametrize("microbatches", [None, 2])
def test_per_microbatch_gradients_equal_the_numpy_kernel(name, method, microbatches):
    model, x, y, loss, kernel_loss = PROBLEMS[name]()
    step = TFDPStep(model, loss, 1.0, 0.0, num_microbatches=microbatches, method=method)
    expected = dk.microbatch_gradients(to_numpy_model(model, "float64"), x, y, kernel_loss,
                                       microbatches)
    _assert_close(step.per_example_gradients(x, y), expected)


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("method", ["layerwise", "vectorized_map"])
@pytest.mark.parametrize("microbatches, clip", [(None, 0.5), (4, 0.5), (None, 1e3)])
def test_noise_free_step_equals_the_numpy_kernel(name, method, microbatches, clip):
    model, x, y, loss, kernel_loss = PROBLEMS[name]()
    step = TFDPStep(model, loss, clip, 0.0, num_microbatches=microbatches, method=method)
    ours = step.dp_gradient(x, y)
    reference = dk.dp_gradient(to_numpy_model(model, "float64"), x, y, kernel_loss,
                               l2_norm_clip=clip, noise_multiplier=0.0,
                               rng=np.random.default_rng(0), num_microbatches=microbatches)
    _assert_close(ours.gradients, reference.gradients)
    np.testing.assert_allclose(ours.norms, reference.norms, rtol=RTOL)
    assert ours.loss == pytest.approx(reference.loss, rel=RTOL)
    assert ours.denominator == reference.denominator
    np.testing.assert_allclose(ours.outputs, to_numpy_model(model, "float64").predict(x),
                               rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("name", PROBLEMS)
def test_tensor_inputs_give_the_same_step_as_arrays(name):
    model, x, y, loss, _ = PROBLEMS[name]()
    step = TFDPStep(model, loss, 0.5, 0.0)
    expected = step.dp_gradient(x, y)
    other_dtype = np.float64 if name == "mlp" else np.int32
    for labels in (tf.constant(y), tf.constant(y.astype(other_dtype))):
        ours = step.dp_gradient(tf.constant(x), labels)
        for a, b in zip(ours.gradients, expected.gradients, strict=True):
            np.testing.assert_array_equal(a, b)
    if name == "cnn":  # float labels of a sparse loss are checked on the NumPy path
        with pytest.raises(ValueError, match="integer class labels"):
            step.dp_gradient(tf.constant(x), tf.constant(y + 0.5))
    with pytest.raises(ValueError, match="y must hold one target per example"):
        step.dp_gradient(tf.constant(x), tf.constant(y[:3]))


def test_poisson_batches_of_any_size_reuse_one_traced_step():
    model, x, y, loss, kernel_loss = _cnn(batch=9)
    reference = to_numpy_model(model, "float64")
    step = TFDPStep(model, loss, 0.5, 0.0)
    for size in (9, 4, 7, 1):
        ours = step.dp_gradient(x[:size], y[:size], expected_batch_size=6.0)
        expected = dk.dp_gradient(reference, x[:size], y[:size], kernel_loss, l2_norm_clip=0.5,
                                  noise_multiplier=0.0, rng=np.random.default_rng(0),
                                  expected_batch_size=6.0)
        _assert_close(ours.gradients, expected.gradients)
    assert len(step._concrete) == 1  # the batch axis is traced as unknown


def test_a_huge_clip_gives_the_ordinary_gradient():
    model, x, y, loss, kernel_loss = _cnn()
    grads, _ = dk.batch_gradient(to_numpy_model(model, "float64"), x, y, kernel_loss)
    _assert_close(TFDPStep(model, loss, 1e6, 0.0).dp_gradient(x, y).gradients, grads)


def test_injected_noise_and_poisson_denominator_equal_the_numpy_kernel():
    model, x, y, loss, kernel_loss = _mlp()
    reference = to_numpy_model(model, "float64")
    step = TFDPStep(model, loss, 0.7, 1.3)
    total = reference.count_params()
    shapes = [w.shape for w in reference.get_weights()]
    for batch in (np.arange(len(x)) % 3 == 0, np.zeros(len(x), bool)):  # incl. an empty batch
        expected = dk.dp_gradient(reference, x[batch], y[batch], kernel_loss, l2_norm_clip=0.7,
                                  noise_multiplier=1.3, rng=np.random.default_rng(9),
                                  expected_batch_size=10.0)
        flat = np.random.default_rng(9).standard_normal(total)
        noise = np.split(flat, np.cumsum([np.prod(s) for s in shapes])[:-1])
        ours = step.dp_gradient(x[batch], y[batch], expected_batch_size=10.0,
                                noise=[n.reshape(s) for n, s in zip(noise, shapes, strict=True)])
        assert ours.denominator == expected.denominator == 10.0
        _assert_close(ours.gradients, expected.gradients)


def test_drawn_noise_is_gaussian_with_stddev_sigma_c_and_seeded():
    model, x, y, loss, _ = _cnn(batch=4)
    clean = TFDPStep(model, loss, 0.5, 0.0).dp_gradient(x, y).gradients
    noisy = TFDPStep(model, loss, 0.5, 2.0, seed=7)
    result = noisy.dp_gradient(x, y)
    samples = np.concatenate([((g - c) * 4 / (2.0 * 0.5)).ravel()
                              for g, c in zip(result.gradients, clean, strict=True)])
    # 26010 draws: the sample sd has standard error 1/sqrt(2n) ~ 0.0044.
    assert abs(samples.std() - 1.0) < 5 / np.sqrt(2 * samples.size)
    assert abs(samples.mean()) < 5 / np.sqrt(samples.size)
    assert stats.kstest(samples, "norm").pvalue > 1e-4
    again = TFDPStep(model, loss, 0.5, 2.0, seed=7).dp_gradient(x, y).gradients
    for a, b in zip(result.gradients, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = noisy.dp_gradient(x, y).gradients  # the generator moves on
    assert not np.array_equal(other[0], result.gradients[0])


def test_apply_updates_like_sgd_on_the_privatized_gradient():
    model, x, y, loss, kernel_loss = _cnn()
    reference = to_numpy_model(model, "float64")
    step = TFDPStep(model, loss, 1.0, 0.0)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.5)
    for _ in range(2):
        expected = dk.dp_gradient(reference, x, y, kernel_loss, l2_norm_clip=1.0,
                                  noise_multiplier=0.0, rng=np.random.default_rng(0))
        dk.SGD(0.5).apply(reference.params, expected.gradients)
        loss_value, _ = step.apply(optimizer, x, y)
        assert float(loss_value) == pytest.approx(expected.loss, rel=RTOL)
    _assert_close(model.get_weights(), reference.get_weights())


def test_any_model_uses_vectorized_map():
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="elu"),
                                 tf.keras.layers.Dense(1)])
    step = TFDPStep(model, "mse", 1.0, 0.0)
    assert step.method == "vectorized_map"
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    y = np.ones(6, np.float32)
    per_example = step.per_example_gradients(x, y)
    for i in range(6):  # independent: the ordinary gradient of one example at a time
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(tf.keras.losses.MeanSquaredError()(y[i:i + 1, None],
                                                                      model(x[i:i + 1])))
        for ours, theirs in zip(per_example, tape.gradient(value, model.trainable_variables),
                                strict=True):
            np.testing.assert_allclose(ours[i], theirs.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="method='layerwise' needs"):
        TFDPStep(model, "mse", 1.0, 0.0, method="layerwise")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(l2_norm_clip=0.0), ValueError, "l2_norm_clip must be a finite number > 0"),
    (dict(noise_multiplier=-1.0), ValueError, "noise_multiplier must be a finite number >= 0"),
    (dict(num_microbatches=0), ValueError, "num_microbatches must be a whole number >= 1"),
    (dict(seed=-3), ValueError, "seed must be an integer >= 0"),
    (dict(method="loop"), ValueError, "method must be one of"),
    (dict(loss="no_such_loss"), ValueError, "loss must name a Keras loss"),
    (dict(loss=3), TypeError, "loss must be"),
    (dict(model=np.zeros(3)), TypeError, "model must be a Keras model"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    model, _, _, loss, _ = _mlp()
    args = dict(model=model, loss=loss, l2_norm_clip=1.0, noise_multiplier=1.0) | kwargs
    with pytest.raises(error, match=match):
        TFDPStep(args.pop("model"), args.pop("loss"), **args)


def test_bad_batches():
    model, x, y, loss, _ = _mlp(batch=6)
    step = TFDPStep(model, loss, 1.0, 1.0, num_microbatches=4)
    with pytest.raises(ValueError, match="num_microbatches must divide the batch size 6"):
        step.dp_gradient(x, y)
    with pytest.raises(ValueError, match="num_microbatches must be None with expected_batch"):
        step.dp_gradient(x[:4], y[:4], expected_batch_size=4.0)
    plain = TFDPStep(model, loss, 1.0, 1.0)
    with pytest.raises(ValueError, match="y must hold one target per example"):
        plain.dp_gradient(x, y[:3])
    with pytest.raises(ValueError, match="x must hold at least one example"):
        plain.dp_gradient(x[:0], y[:0])
    with pytest.raises(ValueError, match="expected_batch_size must be a finite number > 0"):
        plain.dp_gradient(x, y, expected_batch_size=0.0)
    with pytest.raises(ValueError, match="noise must be one standard-normal array per variable"):
        plain.dp_gradient(x, y, noise=[np.zeros(3)])
