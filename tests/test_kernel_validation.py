"""The kernel rejects bad data and arguments up front, naming the argument and its range."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import dpsgd_kernels as dk


def _classifier(classes=3, dtype="float32"):
    return dk.Sequential([dk.Dense(4, activation="relu"), dk.Dense(classes, activation="softmax")],
                         input_shape=(2,), dtype=dtype, rng=0)


def _trainer(model, loss="sparse_categorical_crossentropy", **kwargs):
    kwargs = dict(batch_size=30, l2_norm_clip=1.0, noise_multiplier=1.1, delta=1e-5) | kwargs
    return dk.DPSGDTrainer(model, loss, dk.SGD(0.5), **kwargs)


def _assert_untouched(trainer, before):
    assert trainer.total_steps == 0 and trainer.ledger.steps == 0 and trainer.epsilon == 0.0
    for now, then in zip(trainer.model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)


# ----- item 7: the whole data set is validated before the first step ---------------------------

def test_out_of_range_label_deep_in_the_data_fails_before_any_step():
    """A label 3 for a 3-class model at the last of 2000 examples: before, found only when
    first sampled (after dozens of steps and privacy spent); now before the first step."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = rng.integers(0, 3, size=2000)
    y[-1] = 3
    trainer = _trainer(_classifier())
    before = trainer.model.get_weights()
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, 2\].*example 1999 has "
                                         r"label 3$"):
        trainer.fit(x, y, epochs=2)
    _assert_untouched(trainer, before)


@pytest.mark.parametrize(
    "loss, bad, message",
    [
        ("sparse_categorical_crossentropy", 1.5, "y must hold integer class labels; example 1234"),
        ("sparse_categorical_crossentropy", -1, r"y labels must lie in \[0, 2\]"),
        ("sparse_categorical_crossentropy", np.nan, "y must contain only finite values"),
        ("categorical_crossentropy", [0.0, 0.0, 0.0], "rows summing to 1.*row 1234 sums to 0"),
        ("categorical_crossentropy", [2.0, -1.0, 0.0], r"y labels must lie in \[0, 1\]"),
        ("binary_crossentropy", 5.0, r"y labels must lie in \[0, 1\].*example 1234"),
        ("mean_squared_error", np.inf, "y must contain only finite values"),
    ],
)
def test_bad_target_anywhere_fails_before_any_step(loss, bad, message):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 2))
    units = 1 if loss in ("binary_crossentropy", "mean_squared_error") else 3
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, 3, size=1500).astype(float)
    elif loss == "categorical_crossentropy":
        y = np.eye(3)[rng.integers(0, 3, size=1500)]
    else:
        y = rng.integers(0, 2, size=(1500, 1)).astype(float)
    y[1234] = bad
    model = _classifier(units) if units == 3 else dk.tf_privacy_mlp(rng=0)
    trainer = _trainer(model, loss)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        trainer.fit(x, y)
    _assert_untouched(trainer, before)


def test_target_shape_and_model_width_are_checked_before_any_step():
    x = np.random.default_rng(2).normal(size=(100, 2))
    trainer = _trainer(_classifier(3), "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"y must have the shape of the model output \(100, 3\)"):
        trainer.fit(x, np.eye(4)[np.zeros(100, int)])  # one-hot for 4 classes, model has 3
    with pytest.raises(ValueError, match="y must hold one target per example"):
        trainer.fit(x, np.zeros(99, int))
    assert trainer.total_steps == 0


@pytest.mark.parametrize("bad, error, message", [
    (np.nan, ValueError, "x must contain only finite values"),
    (np.inf, ValueError, "x must contain only finite values"),
    (1e300, ValueError, r"x must lie within float32's range"),
])
def test_bad_feature_deep_in_the_data_fails_before_any_step(bad, error, message):
    x = np.random.default_rng(3).normal(size=(3000, 2))
    x[2999, 1] = bad
    trainer = _trainer(dk.tf_privacy_mlp(rng=0), "binary_crossentropy")
    before = trainer.model.get_weights()
    with pytest.raises(error, match=message):
        trainer.fit(x, (x[:, 0] > 0).astype(float))
    _assert_untouched(trainer, before)


def test_validation_does_not_copy_x_of_the_model_dtype():
    model = dk.tf_privacy_mlp(rng=0)
    x = np.random.default_rng(4).normal(size=(50, 2)).astype(np.float32)
    assert model.check_input(x) is x
    assert dk.BinaryCrossentropy().check_targets(np.ones((50, 1), np.float32), (50, 1),
                                                 np.float32).base is None


# ----- item 8: binary cross-entropy labels must lie in [0, 1] ---------------------------------

@pytest.mark.parametrize("labels", [[0.0, 5.0, 0.0, 5.0], [-1.0, 1.0, -1.0, 1.0]])
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_rejects_labels_outside_the_unit_interval(labels, from_logits):
    loss = dk.BinaryCrossentropy(from_logits=from_logits)
    y_pred = np.full((4, 1), 0.3)
    with pytest.raises(ValueError, match=r"y_true labels must lie in \[0, 1\]"):
        loss(labels, y_pred)
    with pytest.raises(ValueError, match=r"y_true labels must lie in \[0, 1\]"):
        loss.gradient(labels, y_pred)
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    x = np.random.default_rng(5).normal(size=(4, 2))
    with pytest.raises(ValueError, match=r"y_true labels must lie in \[0, 1\]"):
        dk.dp_gradient(model, x, labels, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0))


def test_binary_crossentropy_labels_zero_five_and_minus_one_do_not_train():
    """The reported runs: labels 0/5 and -1/+1 trained silently to a negative mean loss."""
    x = np.random.default_rng(1).normal(size=(1000, 2))
    y = (x.sum(axis=1) > 0).astype(float)
    for labels in (5 * y, 2 * y - 1):
        trainer = dk.DPSGDTrainer(dk.tf_privacy_mlp(rng=0), "binary_crossentropy", dk.SGD(0.5),
                                  batch_size=50, l2_norm_clip=1.0, noise_multiplier=1.1,
                                  delta=1e-5, target_epsilon=3.0)
        with pytest.raises(ValueError, match=r"y labels must lie in \[0, 1\]"):
            trainer.fit(x, labels, epochs=5)
        assert trainer.total_steps == 0
    soft = dk.BinaryCrossentropy().per_example([0.0, 0.25, 1.0], np.full((3, 1), 0.5))
    np.testing.assert_allclose(soft, np.log(2))  # soft labels inside [0, 1] are still fine


# ----- item 15: messages name the right argument and its range --------------------------------

def test_complex_x_is_a_type_error_naming_x():
    model = dk.tf_privacy_mlp(rng=0)
    x = np.random.default_rng(1).normal(size=(100, 2)).astype(complex)
    y = (x.real.sum(axis=1) > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: nothing is cast before the check
        with pytest.raises(TypeError, match="x must be an array of real numbers, got dtype "
                                            "complex128"):
            _trainer(model, "binary_crossentropy").fit(x, y)
        with pytest.raises(TypeError, match="x must be an array of real numbers"):
            dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1.0,
                           noise_multiplier=1.0, rng=np.random.default_rng(0))
        with pytest.raises(TypeError, match="y_true must be an array of real numbers"):
            dk.MeanSquaredError()(y.astype(complex), np.zeros((100, 1)))


@pytest.mark.parametrize("make", [
    lambda rng: _trainer(dk.tf_privacy_mlp(), "binary_crossentropy", rng=rng),
    lambda rng: dk.PoissonSampler(10, 0.5, 1, rng),
    lambda rng: dk.ShuffledBatchSampler(10, 2, 1, rng),
    lambda rng: dk.tf_privacy_mlp(rng=rng),
])
def test_negative_seed_is_a_value_error_naming_rng(make):
    with pytest.raises(ValueError, match=r"rng must be a numpy.random.Generator or an int seed "
                                         r">= 0, got -1"):
        make(-1)
    with pytest.raises(TypeError, match=r"rng must be .* seed >= 0, got 1.5"):
        make(1.5)


def test_huge_l2_norm_clip_and_noise_multiplier_are_value_errors_naming_them():
    model = dk.tf_privacy_mlp(rng=0)
    x = np.random.default_rng(1).normal(size=(40, 2))
    y = (x.sum(axis=1) > 0).astype(float)
    step = dict(rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"l2_norm_clip must be a finite number > 0 and "
                                         r"<= 1e\+12, got 1e\+300"):
        _trainer(model, "binary_crossentropy", l2_norm_clip=1e300)
    with pytest.raises(ValueError, match=r"l2_norm_clip must be .* <= 1e\+12, got 1e\+300"):
        dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1e300,
                       noise_multiplier=1.0, **step)
    with pytest.raises(ValueError, match=r"noise_multiplier must be a finite number >= 0 and "
                                         r"<= 1e\+06, got 1e\+300"):
        dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1.0,
                       noise_multiplier=1e300, **step)
    with pytest.raises(ValueError, match=r"l2_norm_clip must be .* <= 1e\+12"):
        dk.clip_factors(np.ones(3), 1e300)


def test_largest_clip_and_noise_stay_finite_in_float32():
    """At the limits (C = 1e12, sigma = 1e6) a float32 step and its Adam update are finite."""
    model = dk.tf_privacy_mlp(rng=0)
    x = np.random.default_rng(1).normal(size=(40, 2))
    y = (x.sum(axis=1) > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow anywhere
        clean = dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1e12,
                               noise_multiplier=0.0, rng=np.random.default_rng(0))
        plain, _ = dk.batch_gradient(model, x, y, "binary_crossentropy")
        for a, b in zip(clean.gradients, plain, strict=True):  # C above every norm: no clipping
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
        noisy = dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1e12,
                               noise_multiplier=1e6, rng=np.random.default_rng(0))
        assert all(np.isfinite(g).all() for g in noisy.gradients)
        dk.Adam(1e-3).apply(model.params, noisy.gradients)
    assert all(np.isfinite(p).all() for p in model.params)


def test_other_entry_points_name_the_argument():
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    x = np.random.default_rng(1).normal(size=(4, 2))
    y = np.array([0.0, 1.0, 1.0, 0.0])
    ok = dict(l2_norm_clip=1.0, noise_multiplier=1.0, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="input_shape must be an integer or a tuple"):
        dk.Sequential([dk.Dense(1)], input_shape=None)
    with pytest.raises(TypeError, match="input_shape must be an integer or a tuple"):
        dk.mnist_cnn(input_shape=28.0)
    for scalar in (None, 1.0, True):  # was: "x must hold at least one example" / reshape error
        with pytest.raises((TypeError, ValueError), match=r"x must (have shape|be an array)"):
            dk.dp_gradient(model, scalar, y, "mse", **ok)
        with pytest.raises((TypeError, ValueError), match=r"x must (have shape|be an array)"):
            dk.dp_gradient(model, scalar, y, "mse", expected_batch_size=2.0, **ok)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        dk.naive_dp_gradient(model, 1.0, y, "mse", **ok)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        dk.naive_per_example_gradients(model, 1.0, y, "mse")
    with pytest.raises(TypeError, match="model must be a dpsgd_kernels.Sequential"):
        dk.naive_dp_gradient(None, x, y, "mse", **ok)
    empty = dk.dp_gradient(model, [], [], "mse", expected_batch_size=2.0, **ok)
    assert empty.norms.size == 0 and np.isnan(empty.loss)
    with pytest.raises(TypeError, match="epochs must be an integer, got 1e\\+300"):
        _trainer(model, "mse").fit(x, y, epochs=1e300)
    with pytest.raises(ValueError, match="stddev must be a finite number >= 0"):
        dk.noisy_average([np.ones(2)], np.nan, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="denominator must be a finite number > 0"):
        dk.noisy_average([np.ones(2)], 1.0, 0.0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="sums must be a non-empty list"):
        dk.noisy_average(None, 1.0, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="norms must contain only finite values"):
        dk.clip_factors(np.array([np.nan]), 1.0)
    with pytest.raises(ValueError, match=r"y_true must have the shape of the model output"):
        dk.accuracy("binary_crossentropy", [1.0, 0.0, 1.0], np.full((2, 1), 0.7))
    with pytest.raises(TypeError, match="y_pred must be an array of real numbers"):
        dk.accuracy("binary_crossentropy", [1.0, 0.0], "pred")
    with pytest.raises(TypeError, match="y_pred must be an array of real numbers"):
        dk.BinaryCrossentropy()([1.0, 0.0], None)
    assert dk.accuracy("sparse_categorical_crossentropy", [[2], [0]],
                       [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]) == 1.0
