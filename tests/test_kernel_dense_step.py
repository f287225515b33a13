"""The Dense-stack DP step (:mod:`dpsgd_kernels._dense_step`): the same privatized gradient as
the naive per-example loop and the general path, exact Gaussian noise of std sigma * C drawn
from the user's generator, and the general path's errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import dpsgd_kernels as dk
from dpsgd_kernels.losses import EPSILON

TOL = {"float32": dict(rtol=2e-4, atol=2e-6), "float64": dict(rtol=1e-9, atol=1e-13)}


def _model(activations, biases, dtype, seed=1, features=3):
    layers = [dk.Dense(width, act, use_bias=bias)
              for width, act, bias in zip((7, 5, activations[2][1]), (activations[0],
                                          activations[1], activations[2][0]), biases,
                                          strict=True)]
    return dk.Sequential(layers, input_shape=(features,), dtype=dtype, rng=seed)


CASES = [  # hidden activations, (last activation, units), loss
    (("relu", "relu", ("sigmoid", 1)), "binary_crossentropy"),
    (("relu", "linear", ("sigmoid", 2)), "binary_crossentropy"),
    (("linear", "relu", (None, 1)), dk.BinaryCrossentropy(from_logits=True)),
    (("relu", "relu", ("softmax", 3)), "sparse_categorical_crossentropy"),
    (("relu", "relu", ("tanh", 2)), "mse"),
]


def _targets(rng, n, units, loss):
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, units, n)
    if loss == "mse":
        return rng.normal(size=(n, units))
    return rng.integers(0, 2, (n, units)).astype(float)


def _uses_dense_step(model) -> bool:
    return bool(model.__dict__.get("_dense_steps"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("biases", [(True, True, True), (False, True, False)])
def test_dense_step_equals_the_naive_loop_and_the_general_path(dtype, case, biases):
    activations, loss = CASES[case]
    rng = np.random.default_rng(case)
    model = _model(activations, biases, dtype)
    x = rng.normal(size=(37, 3)) * 2
    y = _targets(rng, 37, activations[2][1], loss)
    for extra in ({}, {"expected_batch_size": 50.0}):
        kwargs = dict(l2_norm_clip=0.1, noise_multiplier=1.3, **extra)
        fast = dk.dp_gradient(model, x, y, loss, rng=np.random.default_rng(3), **kwargs)
        assert _uses_dense_step(model)
        naive = dk.naive_dp_gradient(model, x, y, loss, rng=np.random.default_rng(3), **kwargs)
        general = dk.dp_gradient(model, x, y, loss, rng=np.random.default_rng(3), ghost=False,
                                 **kwargs)
        for reference in (naive, general):
            assert len(fast.gradients) == len(reference.gradients)
            for a, b in zip(fast.gradients, reference.gradients, strict=True):
                assert a.shape == b.shape and a.dtype == np.dtype(dtype)
                np.testing.assert_allclose(a, b, **TOL[dtype])
            np.testing.assert_allclose(fast.norms, reference.norms, **TOL[dtype])
            assert fast.loss == pytest.approx(reference.loss, rel=1e-5)
            assert fast.denominator == reference.denominator
            assert fast.num_microbatches == reference.num_microbatches


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.floats(0.01, 10.0), st.integers(0, 2**31 - 1))
def test_dense_step_matches_the_general_path_for_any_batch_and_clip(batch, clip, seed):
    rng = np.random.default_rng(seed)
    model = dk.tf_privacy_mlp(dtype="float64", rng=seed % 7)
    x = rng.normal(size=(batch, 2)) * 3
    y = rng.integers(0, 2, batch).astype(float)
    kwargs = dict(l2_norm_clip=clip, noise_multiplier=0.0, rng=np.random.default_rng(0))
    fast = dk.dp_gradient(model, x, y, "binary_crossentropy", **kwargs)
    general = dk.dp_gradient(model, x, y, "binary_crossentropy", ghost=False, **kwargs)
    for a, b in zip(fast.gradients, general.gradients, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
    # Clipping: every clipped gradient's norm is at most C, so the sum's is at most n C / n.
    total = np.sqrt(sum(np.sum(g**2) for g in fast.gradients))
    assert total <= clip * (1 + 1e-9)


def test_saturated_sigmoid_outputs_have_zero_gradient_as_in_keras():
    """Where Keras clips p to [eps, 1 - eps] the loss is flat: the fused sigmoid-BCE delta is 0
    there, as the chain rule through the clipped loss gives."""
    model = dk.tf_privacy_mlp(dtype="float32", rng=0)
    model.set_weights([w * 40 for w in model.get_weights()])  # saturate the sigmoid
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 2)).astype(np.float32) * 5
    y = rng.integers(0, 2, 64).astype(np.float32)
    p = model.predict(x)[:, 0]
    assert np.any((p <= EPSILON) | (p >= 1 - EPSILON))
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    fast = dk.dp_gradient(model, x, y, "binary_crossentropy", **kwargs)
    naive = dk.naive_dp_gradient(model, x, y, "binary_crossentropy", **kwargs)
    for a, b in zip(fast.gradients, naive.gradients, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(fast.norms, naive.norms, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_step_noise_is_gaussian_with_std_sigma_times_clip(dtype):
    rng = np.random.default_rng(4)
    model = dk.tf_privacy_mlp(dtype=dtype, rng=rng)
    x, y = rng.normal(size=(6, 2)), rng.integers(0, 2, 6).astype(float)
    clip, sigma = 0.7, 1.3
    base = dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=clip,
                          noise_multiplier=0.0, rng=np.random.default_rng(0))
    assert _uses_dense_step(model)
    base_flat = np.concatenate([g.ravel() for g in base.gradients]).astype(np.float64)
    noise_rng = np.random.default_rng(12345)
    draws = [np.concatenate([g.ravel() for g in dk.dp_gradient(
        model, x, y, "binary_crossentropy", l2_norm_clip=clip, noise_multiplier=sigma,
        rng=noise_rng).gradients]) - base_flat for _ in range(300)]
    standardised = np.array(draws).ravel() * 6 / (sigma * clip)  # undo the mean over 6
    assert standardised.size == 300 * model.count_params()  # 57,900 draws: std error ~0.003
    assert abs(standardised.std() - 1) < 0.015
    assert abs(standardised.mean()) < 0.015
    assert stats.kstest(standardised, "norm").pvalue > 0.001


def test_dense_step_noise_is_the_generators_draw_and_reproducible():
    model = dk.tf_privacy_mlp(dtype="float32", rng=3)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16).astype(float)
    kwargs = dict(l2_norm_clip=0.5, noise_multiplier=2.0)
    a = dk.dp_gradient(model, x, y, "binary_crossentropy", rng=np.random.default_rng(9), **kwargs)
    b = dk.dp_gradient(model, x, y, "binary_crossentropy", rng=np.random.default_rng(9), **kwargs)
    c = dk.dp_gradient(model, x, y, "binary_crossentropy", rng=np.random.default_rng(10),
                       **kwargs)
    clean = dk.dp_gradient(model, x, y, "binary_crossentropy", rng=np.random.default_rng(0),
                           l2_norm_clip=0.5, noise_multiplier=0.0)
    for ga, gb, gc in zip(a.gradients, b.gradients, c.gradients, strict=True):
        np.testing.assert_array_equal(ga, gb)
        assert not np.array_equal(ga, gc)
    # The noise is one standard_normal draw of every parameter, in Keras order, times sigma C.
    expected = np.random.default_rng(9).standard_normal(model.count_params(), dtype=np.float32)
    noise = np.concatenate([(g - h).ravel() for g, h in zip(a.gradients, clean.gradients,
                                                             strict=True)]) * 16
    np.testing.assert_allclose(noise, expected * 1.0, rtol=1e-4, atol=1e-5)


def test_dense_step_refuses_non_finite_gradients_by_example():
    model = dk.tf_privacy_mlp(dtype="float64", rng=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2)), rng.integers(0, 2, 8).astype(float)
    x[5, 0] = 1e308
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"microbatch\(es\) \[5\]"):
        dk.dp_gradient(model, x, y, "binary_crossentropy", l2_norm_clip=1.0,
                       noise_multiplier=1.0, rng=np.random.default_rng(0))


def test_varying_batch_sizes_reuse_a_bounded_cache_and_stay_exact():
    model = dk.tf_privacy_mlp(dtype="float64", rng=2)
    rng = np.random.default_rng(5)
    for n in (3, 9, 1, 9, 14, 22, 5, 3):
        x, y = rng.normal(size=(n, 2)), rng.integers(0, 2, n).astype(float)
        kwargs = dict(l2_norm_clip=0.3, noise_multiplier=0.0, rng=np.random.default_rng(0),
                      expected_batch_size=10.0)
        fast = dk.dp_gradient(model, x, y, "binary_crossentropy", **kwargs)
        naive = dk.naive_dp_gradient(model, x, y, "binary_crossentropy", **kwargs)
        for a, b in zip(fast.gradients, naive.gradients, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
        assert len(model._dense_steps) <= 4


def test_other_models_and_settings_take_the_general_path(monkeypatch):
    from dpsgd_kernels import _dense_step

    calls = []
    inner = _dense_step.DenseStep.forward_backward
    monkeypatch.setattr(_dense_step.DenseStep, "forward_backward",
                        lambda self, *args: calls.append(1) or inner(self, *args))
    rng = np.random.default_rng(0)
    flat = dk.tf_privacy_mlp(dtype="float64", rng=0)
    x, y = rng.normal(size=(8, 2)), rng.integers(0, 2, 8).astype(float)
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    for settings_ in ({"num_microbatches": 4}, {"chunk_size": 3}, {"ghost": False}):
        dk.dp_gradient(flat, x, y, "binary_crossentropy", **kwargs, **settings_)
        assert not calls
    hidden_sigmoid = dk.Sequential([dk.Dense(4, "sigmoid"), dk.Dense(1)], input_shape=(2,),
                                   dtype="float64")
    dk.dp_gradient(hidden_sigmoid, x, y, "mse", **kwargs)
    assert not calls
    dk.dp_gradient(flat, x, y, "binary_crossentropy", **kwargs)
    assert calls == [1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_dense_batch_gradient_equals_the_layer_by_layer_path(dtype, case):
    from dpsgd_kernels.dp_step import _batch_gradient

    activations, loss = CASES[case]
    rng = np.random.default_rng(10 + case)
    model = _model(activations, (True, False, True), dtype)
    x = rng.normal(size=(29, 3))
    y = _targets(rng, 29, activations[2][1], loss)
    fast, fast_loss = dk.batch_gradient(model, x, y, loss)
    assert _uses_dense_step(model)
    general, general_loss = _batch_gradient(model, x, y, loss, "auto", "auto", dense=False)
    for a, b in zip(fast, general, strict=True):
        assert a.shape == b.shape and a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])
    assert fast_loss == pytest.approx(general_loss, rel=1e-6)
    # The mean gradient is the mean of the naive loop's per-example gradients.
    per_example = dk.naive_per_example_gradients(model, x, y, loss)
    for a, b in zip(fast, per_example, strict=True):
        np.testing.assert_allclose(a, b.mean(axis=0), **TOL[dtype])


def test_dense_batch_gradient_refuses_non_finite_gradients_by_name():
    from dpsgd_kernels.dp_step import _batch_gradient

    model = dk.Sequential([dk.Dense(4, "relu"), dk.Dense(1)], input_shape=(2,), rng=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=8)
    x[2] = 1e30  # float32: the kernel gradients overflow
    for dense in (True, False):
        with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"gradients\[0\] is not"):
            _batch_gradient(model, x, y, "mse", "auto", "auto", dense=dense)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-800, 800), min_size=1, max_size=20),
       st.sampled_from([np.float32, np.float64]))
def test_sigmoid_for_bce_is_the_logistic_function_where_bce_reads_it(values, dtype):
    """Within a few ulps of 1 / (1 + e^-z) at 50 digits where that is at least EPSILON; below,
    under EPSILON as well (BCE clips both to EPSILON); no overflow anywhere."""
    import mpmath

    from dpsgd_kernels._dense_step import _sigmoid_for_bce

    z = np.asarray(values, dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        got = _sigmoid_for_bce(z.copy())
    assert got.dtype == dtype
    with mpmath.workdps(50):
        want = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in z])
    readable = want >= EPSILON
    np.testing.assert_allclose(got[readable], want[readable].astype(dtype),
                               rtol=4 * np.finfo(dtype).eps)
    assert np.all(got[~readable] < EPSILON) and np.all(got >= 0)
