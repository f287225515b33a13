"""The DP-SGD step: clipping, noise, microbatches, the Poisson variant, ghost norms, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import dpsgd_kernels as dk

SQRT2, SQRT10, SQRT5 = np.sqrt(2), np.sqrt(10), np.sqrt(5)


def _linear_model():
    """``Dense(1, linear, no bias)`` with zero weights: with MSE, ``g_i = -2 y_i x_i``."""
    model = dk.Sequential([dk.Dense(1, use_bias=False)], input_shape=(2,), dtype="float64")
    model.set_weights([np.zeros((2, 1))])
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    y = np.ones((4, 1))
    return model, x, y  # per-example gradients [-2, 0], [0, -2], [-2, -2], [-4, 0]


@pytest.mark.parametrize(
    "num_microbatches, expected",
    [
        # one microbatch per example: norms 2, 2, 2*sqrt(2), 4 -> all clipped to 1
        (None, np.array([-2 - 1 / SQRT2, -1 - 1 / SQRT2]) / 4),
        (4, np.array([-2 - 1 / SQRT2, -1 - 1 / SQRT2]) / 4),
        # two microbatches: means [-1, -1] (norm sqrt 2) and [-3, -1] (norm sqrt 10)
        (2, np.array([-1 / SQRT2 - 3 / SQRT10, -1 / SQRT2 - 1 / SQRT10]) / 2),
        # one microbatch: mean [-2, -1], norm sqrt 5
        (1, np.array([-2 / SQRT5, -1 / SQRT5])),
    ],
)
def test_microbatch_semantics_hand_computed(num_microbatches, expected):
    model, x, y = _linear_model()
    result = dk.dp_gradient(model, x, y, "mse", l2_norm_clip=1.0, noise_multiplier=0.0,
                            rng=np.random.default_rng(0), num_microbatches=num_microbatches)
    np.testing.assert_allclose(result.gradients[0][:, 0], expected, rtol=1e-14)
    assert result.num_microbatches == (num_microbatches or 4)
    assert result.denominator == (num_microbatches or 4)


def test_clip_above_every_norm_gives_the_plain_mean_gradient():
    model, x, y = _linear_model()
    result = dk.dp_gradient(model, x, y, "mse", l2_norm_clip=100.0, noise_multiplier=0.0,
                            rng=np.random.default_rng(0), num_microbatches=2)
    np.testing.assert_allclose(result.gradients[0][:, 0], [-2.0, -1.0], rtol=1e-14)
    np.testing.assert_allclose(result.norms, [SQRT2, SQRT10], rtol=1e-14)


def test_poisson_variant_divides_by_expected_batch_size_and_allows_empty_batches():
    model, x, y = _linear_model()
    result = dk.dp_gradient(model, x, y, "mse", l2_norm_clip=1.0, noise_multiplier=0.0,
                            rng=np.random.default_rng(0), expected_batch_size=8.0)
    np.testing.assert_allclose(result.gradients[0][:, 0],
                               np.array([-2 - 1 / SQRT2, -1 - 1 / SQRT2]) / 8, rtol=1e-14)
    empty = dk.dp_gradient(model, x[:0], y[:0], "mse", l2_norm_clip=2.0, noise_multiplier=1.5,
                           rng=np.random.default_rng(1), expected_batch_size=8.0)
    noise = np.random.default_rng(1).standard_normal(2) * 3.0 / 8
    np.testing.assert_allclose(empty.gradients[0][:, 0], noise, rtol=1e-14)
    assert np.isnan(empty.loss) and empty.norms.size == 0
    with pytest.raises(ValueError, match="x must hold at least one example"):
        dk.dp_gradient(model, x[:0], y[:0], "mse", l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0))


@pytest.mark.parametrize("num_microbatches", [None, 2, 8])
def test_clipping_postconditions(num_microbatches):
    rng = np.random.default_rng(3)
    model = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float64", rng=rng)
    x = rng.random(size=(8, 16, 16, 1)) * 3
    y = rng.integers(0, 10, size=8)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    clip = 0.5
    micro = dk.microbatch_gradients(model, x, y, loss, num_microbatches)
    flat = np.concatenate([g.reshape(g.shape[0], -1) for g in micro], axis=1)
    norms = np.linalg.norm(flat, axis=1)
    assert np.any(norms > clip) and np.any(norms > 2 * clip)  # clipping is exercised
    clipped = flat * np.minimum(1, clip / norms)[:, None]
    assert np.all(np.linalg.norm(clipped, axis=1) <= clip * (1 + 1e-12))
    result = dk.dp_gradient(model, x, y, loss, l2_norm_clip=clip, noise_multiplier=0.0,
                            rng=np.random.default_rng(0), num_microbatches=num_microbatches)
    np.testing.assert_allclose(result.norms, norms, rtol=1e-10)
    dp_flat = np.concatenate([g.ravel() for g in result.gradients])
    np.testing.assert_allclose(dp_flat, clipped.mean(axis=0), rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(dp_flat) <= clip * (1 + 1e-12)


def test_noise_is_gaussian_with_std_sigma_times_clip():
    rng = np.random.default_rng(4)
    model = dk.tf_privacy_mlp(dtype="float64", rng=rng)
    x = rng.normal(size=(5, 2))
    y = (x[:, 0] > 0).astype(float)
    clip, sigma = 0.7, 1.3
    kwargs = dict(l2_norm_clip=clip, num_microbatches=None)
    base = dk.dp_gradient(model, x, y, "binary_crossentropy", noise_multiplier=0.0,
                          rng=np.random.default_rng(0), **kwargs)
    base_flat = np.concatenate([g.ravel() for g in base.gradients])
    noise_rng = np.random.default_rng(12345)
    draws = []
    for _ in range(400):
        result = dk.dp_gradient(model, x, y, "binary_crossentropy", noise_multiplier=sigma,
                                rng=noise_rng, **kwargs)
        draws.append(np.concatenate([g.ravel() for g in result.gradients]) - base_flat)
    noise = np.array(draws) * 5  # undo the division by the 5 microbatches
    assert noise.shape == (400, model.count_params())
    standardised = noise.ravel() / (sigma * clip)
    assert abs(standardised.std() - 1) < 0.01  # 84,400 draws: std error ~0.0024
    assert abs(standardised.mean()) < 0.01
    assert stats.kstest(standardised, "norm").pvalue > 0.01
    # Coordinates are independent: the correlation of two parameters' noise is ~0.
    assert abs(np.corrcoef(noise[:, 0], noise[:, -1])[0, 1]) < 0.2


def test_noise_is_reproducible_from_the_generator():
    model, x, y = _linear_model()
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=1.1)
    a = dk.dp_gradient(model, x, y, "mse", rng=np.random.default_rng(9), **kwargs)
    b = dk.dp_gradient(model, x, y, "mse", rng=np.random.default_rng(9), **kwargs)
    c = dk.dp_gradient(model, x, y, "mse", rng=np.random.default_rng(10), **kwargs)
    np.testing.assert_array_equal(a.gradients[0], b.gradients[0])
    assert not np.array_equal(a.gradients[0], c.gradients[0])


def _models():
    rng = np.random.default_rng(5)
    mlp = dk.tf_privacy_mlp(dtype="float64", rng=rng)
    seq = dk.Sequential([dk.Dense(6, "tanh"), dk.Dense(3, "relu"), dk.Flatten(), dk.Dense(2)],
                        input_shape=(4, 5), dtype="float64", rng=rng)
    cnn = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float64", rng=rng)
    return [
        (mlp, rng.normal(size=(8, 2)), rng.integers(0, 2, 8).astype(float), "binary_crossentropy"),
        (seq, rng.normal(size=(8, 4, 5)), rng.normal(size=(8, 2)), "mse"),
        (cnn, rng.random(size=(8, 16, 16, 1)), rng.integers(0, 10, 8),
         dk.SparseCategoricalCrossentropy(from_logits=True)),
    ]


@pytest.mark.parametrize("num_microbatches", [None, 4, 2, 1])
def test_ghost_norms_equal_materialised_norms(num_microbatches):
    for model, x, y, loss in _models():
        ghost = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches, ghost=True)
        full = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches, ghost=False)
        auto = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches)
        micro = dk.microbatch_gradients(model, x, y, loss, num_microbatches)
        direct = np.linalg.norm(np.concatenate([g.reshape(g.shape[0], -1) for g in micro], 1),
                                axis=1)
        np.testing.assert_allclose(ghost, direct, rtol=1e-10)
        np.testing.assert_allclose(full, direct, rtol=1e-10)
        np.testing.assert_allclose(auto, direct, rtol=1e-10)
        for use_ghost in (True, False):
            a = dk.dp_gradient(model, x, y, loss, l2_norm_clip=0.3, noise_multiplier=1.0,
                               rng=np.random.default_rng(1), num_microbatches=num_microbatches,
                               ghost=use_ghost)
            b = dk.naive_dp_gradient(model, x, y, loss, l2_norm_clip=0.3, noise_multiplier=1.0,
                                     rng=np.random.default_rng(1),
                                     num_microbatches=num_microbatches)
            for ga, gb in zip(a.gradients, b.gradients, strict=True):
                np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("num_microbatches", [None, 2])
def test_transposed_materialised_gradients_match_the_naive_loop(num_microbatches):
    """Kernel gradients laid out (filters, rows) where an example has more rows than a row has
    entries (the 28x28 MNIST CNN's first convolution): norms and the step as the loop's."""
    rng = np.random.default_rng(9)
    model = dk.mnist_cnn(dtype="float64", rng=4)
    assert [layer._flat_transposed() for layer in model.linear_layers] == [
        True, False, False, False
    ]
    x, y = rng.random(size=(4, 28, 28, 1)), rng.integers(0, 10, 4)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    norms = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches, ghost=False)
    micro = dk.microbatch_gradients(model, x, y, loss, num_microbatches)
    direct = np.linalg.norm(np.concatenate([g.reshape(g.shape[0], -1) for g in micro], 1), axis=1)
    np.testing.assert_allclose(norms, direct, rtol=1e-10)
    kwargs = dict(l2_norm_clip=float(np.median(norms)), noise_multiplier=0.5,
                  num_microbatches=num_microbatches)
    a = dk.dp_gradient(model, x, y, loss, rng=np.random.default_rng(1), ghost=False, **kwargs)
    b = dk.naive_dp_gradient(model, x, y, loss, rng=np.random.default_rng(1), **kwargs)
    for ga, gb in zip(a.gradients, b.gradients, strict=True):
        np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-13)


def test_auto_mode_picks_ghost_for_dense_and_materialises_wide_convolutions():
    model = dk.mnist_cnn()
    choices = [layer.prefers_ghost(1) for layer in model.linear_layers]
    assert choices == [False, False, True, True]


def test_float32_dp_step_matches_float64():
    rng = np.random.default_rng(6)
    m64 = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float64", rng=1)
    m32 = dk.mnist_cnn(input_shape=(16, 16, 1), dtype="float32", rng=1)
    x = rng.random(size=(6, 16, 16, 1))
    y = rng.integers(0, 10, 6)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    kwargs = dict(l2_norm_clip=0.2, noise_multiplier=0.0, rng=np.random.default_rng(0))
    a = dk.dp_gradient(m64, x, y, loss, **kwargs)
    b = dk.dp_gradient(m32, x, y, loss, **kwargs)
    for ga, gb in zip(a.gradients, b.gradients, strict=True):
        assert gb.dtype == np.float32
        np.testing.assert_allclose(gb, ga, rtol=1e-3, atol=1e-6)


def test_bad_input_errors_name_the_argument():
    model, x, y = _linear_model()
    rng = np.random.default_rng(0)
    ok = dict(l2_norm_clip=1.0, noise_multiplier=1.0, rng=rng)

    def call(**changes):
        kwargs = {**ok, **changes}
        xx, yy = kwargs.pop("x", x), kwargs.pop("y", y)
        return dk.dp_gradient(model, xx, yy, "mse", **kwargs)

    for clip in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="l2_norm_clip must be a finite number > 0"):
            call(l2_norm_clip=clip)
    with pytest.raises(ValueError, match="noise_multiplier must be a finite number >= 0"):
        call(noise_multiplier=-0.1)
    with pytest.raises(ValueError, match="num_microbatches must divide the batch size 4, got 3"):
        call(num_microbatches=3)
    with pytest.raises(ValueError, match="num_microbatches must be a whole number >= 1"):
        call(num_microbatches=0)
    with pytest.raises(ValueError, match="num_microbatches must be None with expected_batch"):
        call(num_microbatches=2, expected_batch_size=4.0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        call(x=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="y must hold one target per example"):
        call(y=np.ones((3, 1)))
    with pytest.raises(ValueError, match="x must contain only finite"):
        call(x=np.array([[np.nan, 0.0]] * 4))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        call(rng=np.random.RandomState(0))
    with pytest.raises(TypeError, match="l2_norm_clip must be a real number"):
        call(l2_norm_clip="1.0")
    with pytest.raises(ValueError, match="ghost must be 'auto', True or False"):
        call(ghost="always")
    model.params[0][0, 0] = np.inf  # a diverged model: the gradient is not finite
    with np.errstate(invalid="ignore", over="ignore"):
        with pytest.raises(ValueError, match=r"gradients of microbatch\(es\) .* not finite"):
            call()
        with pytest.raises(ValueError, match=r"gradients\[0\] is not finite"):
            dk.batch_gradient(model, x, y, "mse")


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("num_microbatches", [None, 4, 2])
def test_chunked_steps_equal_one_pass_and_the_naive_loop(dtype, rtol, num_microbatches):
    """Chunks of whole microbatches add up to the one-pass step (book-keeping clipped sums
    from materialised conv gradients and Dense ghost norms alike), float32 and float64."""
    rng = np.random.default_rng(8)
    model = dk.mnist_cnn(input_shape=(16, 16, 1), dtype=dtype, rng=2)
    x = rng.random(size=(8, 16, 16, 1)) * 3
    y = rng.integers(0, 10, 8)
    loss = dk.SparseCategoricalCrossentropy(from_logits=True)
    reference = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches, chunk_size=None)
    clip = float(np.mean(reference))  # some microbatches are clipped, some not
    kwargs = dict(l2_norm_clip=clip, noise_multiplier=0.7, num_microbatches=num_microbatches)
    whole = dk.dp_gradient(model, x, y, loss, rng=np.random.default_rng(3), chunk_size=None,
                           **kwargs)
    naive = dk.naive_dp_gradient(model, x, y, loss, rng=np.random.default_rng(3), **kwargs)
    assert whole.norms.min() < clip < whole.norms.max()
    for chunk_size in (1, 3, 5, "auto"):  # 3 and 5 with pairs or quads: rounded down
        part = dk.dp_gradient(model, x, y, loss, rng=np.random.default_rng(3),
                              chunk_size=chunk_size, **kwargs)
        assert part.loss == pytest.approx(whole.loss, rel=rtol)
        np.testing.assert_allclose(part.norms, whole.norms, rtol=rtol)
        for a, b, c in zip(part.gradients, whole.gradients, naive.gradients, strict=True):
            assert a.dtype == np.dtype(dtype)
            scale = rtol * np.abs(b).max()  # float32 sums cancel: absolute error at b's scale
            np.testing.assert_allclose(a, b, rtol=rtol, atol=scale)
            np.testing.assert_allclose(a, c, rtol=rtol, atol=scale)
        norms = dk.microbatch_gradient_norms(model, x, y, loss, num_microbatches,
                                             chunk_size=chunk_size)
        np.testing.assert_allclose(norms, whole.norms, rtol=rtol)
        grads, value = dk.batch_gradient(model, x, y, loss, chunk_size=chunk_size)
        plain, plain_value = dk.batch_gradient(model, x, y, loss, chunk_size=None)
        assert value == pytest.approx(plain_value, rel=rtol)
        for a, b in zip(grads, plain, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("use_bias", [True, False])
def test_chunked_one_row_ghost_layers_keep_each_chunks_rows(use_bias):
    """Ghost layers with one row per example form their clipped sums once per step from the
    rows of every chunk: a Conv2D with a 1 x 1 output (whose rows array is rewritten by every
    pass) and Dense layers give the one-pass and naive step in chunks of 1, 2 and 3."""
    rng = np.random.default_rng(11)
    model = dk.Sequential(
        [dk.Conv2D(3, 3, activation="tanh", use_bias=use_bias), dk.Flatten(),
         dk.Dense(4, activation="relu", use_bias=use_bias), dk.Dense(2, use_bias=use_bias)],
        input_shape=(3, 3, 2), dtype="float64", rng=5,
    )
    assert all(layer.rows_per_example == 1 for layer in model.linear_layers)
    x, y = rng.normal(size=(6, 3, 3, 2)), rng.normal(size=(6, 2))
    clip = float(np.median(dk.microbatch_gradient_norms(model, x, y, "mse", chunk_size=None)))
    kwargs = dict(l2_norm_clip=clip, noise_multiplier=0.0, ghost=True)
    whole = dk.dp_gradient(model, x, y, "mse", rng=np.random.default_rng(0), chunk_size=None,
                           **kwargs)
    naive = dk.naive_dp_gradient(model, x, y, "mse", rng=np.random.default_rng(0),
                                 l2_norm_clip=clip, noise_multiplier=0.0)
    assert whole.norms.min() < clip < whole.norms.max()
    for chunk_size in (1, 2, 3):
        part = dk.dp_gradient(model, x, y, "mse", rng=np.random.default_rng(0),
                              chunk_size=chunk_size, **kwargs)
        for a, b, c in zip(part.gradients, whole.gradients, naive.gradients, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)


def test_auto_chunks_split_the_cnn_but_not_the_mlp():
    assert 16 <= dk.auto_chunk_size(dk.mnist_cnn()) <= 128
    assert dk.auto_chunk_size(dk.tf_privacy_mlp()) > 4096


def test_chunk_errors_and_non_finite_microbatch_index():
    model, x, y = _linear_model()
    kwargs = dict(l2_norm_clip=1.0, noise_multiplier=1.0, rng=np.random.default_rng(0))
    for bad in (0, -2, 1.5):
        with pytest.raises((ValueError, TypeError), match="chunk_size"):
            dk.dp_gradient(model, x, y, "mse", chunk_size=bad, **kwargs)
    with pytest.raises(ValueError, match="chunk_size must be 'auto', None or an integer"):
        dk.batch_gradient(model, x, y, "mse", chunk_size="big")
    # A float32 gradient whose squared norm overflows in the third chunk of one: named by its
    # index in the whole batch.
    model32 = dk.Sequential([dk.Dense(1, use_bias=False)], input_shape=(2,), dtype="float32")
    model32.set_weights([np.zeros((2, 1))])
    x_big = np.array(x, dtype=np.float32)
    x_big[2, 0] = 1e30
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match=r"microbatch\(es\) \[2\] are not finite"):
            dk.dp_gradient(model32, x_big, y, "mse", chunk_size=1, **kwargs)
