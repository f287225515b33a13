"""BLAS thread control of the kernel's steps: the limit is applied inside a step and restored
after it, results do not depend on it, and bad ``blas_threads`` values are refused by name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dpsgd_kernels as dk
from dpsgd_kernels import _tuning, blas


def _numpy_blas_name() -> str:
    config = np.show_config(mode="dicts")
    return config.get("Build Dependencies", {}).get("blas", {}).get("name", "")


@pytest.fixture
def controlled():
    """The BLAS thread count, which must be readable where NumPy says it runs on OpenBLAS."""
    count = dk.blas_thread_count()
    if count is None:
        assert "openblas" not in _numpy_blas_name().lower(), "NumPy's OpenBLAS not found"
        pytest.skip(f"no thread control for NumPy's BLAS {_numpy_blas_name()!r}")
    return count


def _mlp(seed=1):
    return dk.tf_privacy_mlp(dtype="float64", rng=seed)


def _cnn(seed=1):
    layers = [dk.Conv2D(4, 3, activation="relu"), dk.MaxPool2D(2), dk.Flatten(), dk.Dense(3)]
    return dk.Sequential(layers, input_shape=(10, 10, 1), dtype="float64", rng=seed)


def _batch(model, n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *model.input_shape))
    if model.output_shape[-1] == 1:
        return x, (x[:, 0] > 0).astype(float), dk.BinaryCrossentropy()
    return x, rng.integers(0, 3, n), dk.SparseCategoricalCrossentropy(from_logits=True)


def _spy_threads(model, seen):
    """Record the BLAS thread count every time the model's first layer runs forward."""
    layer = model.layers[0]
    forward = layer.forward

    def spying(x):
        seen.append(dk.blas_thread_count())
        return forward(x)

    layer.forward = spying


def test_numpy_openblas_is_found():
    """NumPy's wheels ship OpenBLAS; its thread count must be readable and at least 1."""
    if "openblas" not in _numpy_blas_name().lower():
        pytest.skip(f"NumPy is built on {_numpy_blas_name()!r}, not OpenBLAS")
    count = dk.blas_thread_count()
    assert count is not None and count >= 1


def test_limit_is_applied_and_restored(controlled):
    with dk.limit_blas_threads(2):
        with dk.limit_blas_threads(1) as inside:
            assert inside == 1 and dk.blas_thread_count() == 1
        assert dk.blas_thread_count() == 2
    assert dk.blas_thread_count() == controlled


def test_limit_is_restored_after_an_exception(controlled):
    with pytest.raises(ZeroDivisionError), dk.limit_blas_threads(1):
        assert dk.blas_thread_count() == 1
        _ = 1 / 0
    assert dk.blas_thread_count() == controlled


def test_none_changes_nothing(controlled):
    with dk.limit_blas_threads(2), dk.limit_blas_threads(None) as inside:
        assert inside is None and dk.blas_thread_count() == 2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("entry", ["dp", "batch"])
def test_step_runs_with_the_requested_threads_and_restores(controlled, threads, entry):
    model = _cnn()
    x, y, loss = _batch(model)
    seen = []
    _spy_threads(model, seen)
    with dk.limit_blas_threads(3):
        if entry == "dp":
            dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                           rng=np.random.default_rng(0), chunk_size=8, blas_threads=threads)
        else:
            dk.batch_gradient(model, x, y, loss, chunk_size=8, blas_threads=threads)
        assert dk.blas_thread_count() == 3
    assert seen == [threads] * 3  # three chunks of 8
    assert dk.blas_thread_count() == controlled


def test_step_restores_after_an_error(controlled):
    model = _mlp()
    x, y, loss = _batch(model)
    x[3, 0] = 1e308  # overflows to non-finite gradients inside the step
    with dk.limit_blas_threads(2), np.errstate(all="ignore"):
        with pytest.raises(ValueError, match="not finite"):
            dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                           rng=np.random.default_rng(0), blas_threads=1)
        assert dk.blas_thread_count() == 2


def test_auto_uses_one_thread_for_small_products(controlled):
    model = _mlp()
    x, y, loss = _batch(model)
    seen = []
    _spy_threads(model, seen)
    with dk.limit_blas_threads(2):
        dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0), ghost=False)  # the general path
        assert dk.blas_thread_count() == 2
    assert seen == [1]


@pytest.mark.parametrize("serial_macs, vector_macs, expected", [
    (_tuning.BLAS_SERIAL_MACS, _tuning.BLAS_SERIAL_VECTOR_MACS, 2), (0, 10**9, 1), (10**9, 0, 1),
])
def test_auto_leaves_blas_alone_where_it_runs_every_product_serially(
    controlled, monkeypatch, serial_macs, vector_macs, expected
):
    """The Dense-stack step: products below BLAS_SERIAL_MACS (matrix-vector ones below
    BLAS_SERIAL_VECTOR_MACS) leave the count as it is (the BLAS runs them on one thread
    anyway); above either, "auto" limits as the general path does."""
    from dpsgd_kernels import _dense_step

    monkeypatch.setattr(_tuning, "BLAS_SERIAL_MACS", serial_macs)
    monkeypatch.setattr(_tuning, "BLAS_SERIAL_VECTOR_MACS", vector_macs)
    model = _mlp()
    x, y, loss = _batch(model)
    seen = []
    inner = _dense_step.DenseStep.forward_backward

    def spying(self, *args):
        seen.append(dk.blas_thread_count())
        return inner(self, *args)

    monkeypatch.setattr(_dense_step.DenseStep, "forward_backward", spying)
    with dk.limit_blas_threads(2):
        dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0))
        assert dk.blas_thread_count() == 2
    assert seen == [expected]


def test_auto_keeps_the_threads_large_products_keep_busy(controlled, monkeypatch):
    """With every product "large" and the machine idle, auto leaves BLAS its count."""
    monkeypatch.setattr(_tuning, "BLAS_MACS_PER_THREAD", 1)
    monkeypatch.setattr(blas.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(blas.os, "cpu_count", lambda: 64)
    model = _cnn()
    x, y, loss = _batch(model)
    seen = []
    _spy_threads(model, seen)
    with dk.limit_blas_threads(2):
        dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0), chunk_size=None)
    assert seen == [2]


@pytest.mark.parametrize("make_model", [_mlp, _cnn])
@pytest.mark.parametrize("ghost", ["auto", False])
def test_result_does_not_depend_on_the_thread_count(controlled, make_model, ghost):
    """1, 2, 4 threads, "auto" and None: the same privatized gradient to float rounding."""
    model = make_model()
    x, y, loss = _batch(model, n=64)
    results = []
    for threads in (1, 2, 4, "auto", None):
        step = dk.dp_gradient(model, x, y, loss, l2_norm_clip=0.5, noise_multiplier=1.0,
                              rng=np.random.default_rng(5), ghost=ghost, chunk_size=None,
                              blas_threads=threads)
        plain, _ = dk.batch_gradient(model, x, y, loss, chunk_size=None, blas_threads=threads)
        results.append((step, plain))
    (first, first_plain), rest = results[0], results[1:]
    for step, plain in rest:
        np.testing.assert_allclose(step.norms, first.norms, rtol=1e-12)
        for a, b in zip(step.gradients + plain, first.gradients + first_plain, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_trainer_passes_blas_threads(controlled):
    model = _cnn()  # the general path, whose first layer's forward the spy sees
    x, y, loss = _batch(model)
    seen = []
    _spy_threads(model, seen)
    trainer = dk.DPSGDTrainer(model, loss, dk.SGD(0.1), batch_size=8, blas_threads=1, rng=3)
    with dk.limit_blas_threads(2):
        trainer.step(x[:8], y[:8], sample_rate=8 / 24, expected_batch_size=8.0)
        assert dk.blas_thread_count() == 2
    assert seen == [1]


BAD = ["fast", "", 0, -1, 1.5, True, np.bool_(True), 4097, 10**30, [1], float("nan")]


@pytest.mark.parametrize("value", BAD)
def test_bad_blas_threads_are_refused_by_name(value):
    model = _mlp()
    x, y, loss = _batch(model)
    with pytest.raises(ValueError, match=r"blas_threads must be 'auto', None .* \[1, 4096\]"):
        dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                       rng=np.random.default_rng(0), blas_threads=value)
    with pytest.raises(ValueError, match="blas_threads must be"):
        dk.batch_gradient(model, x, y, loss, blas_threads=value)
    with pytest.raises(ValueError, match="blas_threads must be"):
        dk.DPSGDTrainer(model, loss, dk.SGD(0.1), batch_size=8, blas_threads=value)


@pytest.mark.parametrize("value", BAD + ["auto"])
def test_bad_limits_are_refused_by_name(value):
    with pytest.raises(ValueError, match="threads must be"):
        with dk.limit_blas_threads(value):
            pass


def test_unknown_blas_falls_back_to_its_own_count(monkeypatch):
    """No thread control found: explicit counts warn once and change nothing; auto is silent;
    the step still runs."""
    monkeypatch.setattr(blas, "_libraries", [])
    monkeypatch.setattr(blas, "_warned", False)
    assert dk.blas_thread_count() is None
    with pytest.warns(RuntimeWarning, match="OPENBLAS_NUM_THREADS"):
        with dk.limit_blas_threads(1) as inside:
            assert inside is None
    model = _mlp()
    x, y, loss = _batch(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once already; "auto" never warns
        for threads in ("auto", 1):
            dk.dp_gradient(model, x, y, loss, l2_norm_clip=1.0, noise_multiplier=1.0,
                           rng=np.random.default_rng(0), blas_threads=threads)


def test_auto_threads_rule(monkeypatch):
    """floor(macs / BLAS_MACS_PER_THREAD), within [1, available] and the idle cores + 1."""
    per = _tuning.BLAS_MACS_PER_THREAD
    monkeypatch.setattr(blas.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(blas.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert blas.auto_blas_threads(0, 8) == 1
    assert blas.auto_blas_threads(2 * per - 1, 8) == 1
    assert blas.auto_blas_threads(3 * per, 8) == 3
    assert blas.auto_blas_threads(100 * per, 8) == 8
    assert blas.auto_blas_threads(100 * per, 4) == 4
    assert blas.auto_blas_threads(float("inf"), 6) == 6
    assert blas.auto_blas_threads(float("nan"), 6) == 1
    monkeypatch.setattr(blas.os, "getloadavg", lambda: (6.5, 0.0, 0.0))  # 1.5 cores idle
    assert blas.auto_blas_threads(100 * per, 8) == 2
    monkeypatch.setattr(blas.os, "getloadavg", lambda: (20.0, 0.0, 0.0))  # oversubscribed
    assert blas.auto_blas_threads(100 * per, 8) == 1


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1e15), st.floats(0, 1e15), st.integers(1, 64), st.floats(0, 100))
def test_auto_threads_bounded_and_monotone(small, large, available, load):
    small, large = min(small, large), max(small, large)
    cores = 16
    original = (blas.os.getloadavg, blas.os.cpu_count)
    blas.os.getloadavg, blas.os.cpu_count = (lambda: (load, 0.0, 0.0)), (lambda: cores)
    try:
        low, high = (blas.auto_blas_threads(m, available) for m in (small, large))
    finally:
        blas.os.getloadavg, blas.os.cpu_count = original
    assert 1 <= low <= high <= available
    assert high <= 1 + max(0, int(cores - load))
