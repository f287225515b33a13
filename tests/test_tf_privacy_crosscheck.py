"""Against TF Privacy itself (where tensorflow-privacy imports: the pinned TF 2.15 venv), and the
cross-check harness on both TensorFlow versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import accounting
import dpsgd_kernels as dk

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter import TFDPStep, crosscheck, to_keras_model  # noqa: E402
from dpsgd_kernels.tf_adapter._imports import tf_privacy_or_none  # noqa: E402
from dpsgd_kernels.tf_adapter.crosscheck import example_problem  # noqa: E402

needs_tf_privacy = pytest.mark.skipif(tf_privacy_or_none() is None,
                                      reason="tensorflow-privacy not importable (needs TF 2.15)")


def _max_rel(ours, reference):
    scale = max(float(np.abs(r).max()) for r in reference)
    return max(float(np.abs(a - b).max()) for a, b in zip(ours, reference, strict=True)) / scale


@needs_tf_privacy
@pytest.mark.parametrize("name, microbatches", [("mlp", None), ("mlp", 4), ("cnn", None),
                                                ("cnn", 2)])
def test_noise_free_step_equals_tf_privacy_optimizer(name, microbatches):
    from dpsgd_kernels.tf_adapter.tf_privacy_bridge import tf_privacy_dp_gradient

    model, x, y, loss = example_problem(name, batch=8, seed=4)
    theirs = tf_privacy_dp_gradient(model, x, y, loss, l2_norm_clip=0.3, noise_multiplier=0.0,
                                    num_microbatches=microbatches)
    ours = TFDPStep(model, loss, 0.3, 0.0, num_microbatches=microbatches).dp_gradient(x, y)
    assert _max_rel(ours.gradients, theirs) <= 1e-5


@needs_tf_privacy
@pytest.mark.parametrize("args", [(60000, 256, 60, 1.1, 1e-5), (50000, 512, 15, 0.7, 1e-6),
                                  (1000, 10, 3, 2.0, 1e-4)])
def test_epsilon_equals_tf_privacy_at_the_same_orders(args):
    from dpsgd_kernels.tf_adapter.tf_privacy_bridge import tf_privacy_epsilons

    sample_size, batch_size, epochs, sigma, delta = args
    for microbatching in (False, True):
        theirs = tf_privacy_epsilons(sample_size, batch_size, epochs, sigma, delta, microbatching)
        for name, entry in theirs.items():
            ours = accounting.RdpAccountant(orders=entry["orders"]).compose(
                batch_size / sample_size, entry["noise_multiplier"], entry["steps"]
            ).get_epsilon(delta)
            if name == "statement":  # printed with 3 decimals
                assert round(ours, 3) == entry["epsilon"]
            else:
                assert ours == pytest.approx(entry["epsilon"], rel=1e-9)
    # Our default orders include every order TF Privacy uses: never a larger epsilon.
    statement = tf_privacy_epsilons(sample_size, batch_size, epochs, sigma, delta)
    assert accounting.get_privacy_budget(*args) <= statement["example_privacy"]["epsilon"] * (
        1 + 1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_crosscheck_report_passes_for_the_tutorial_models(name):
    model, x, y, loss = example_problem(name, batch=16, seed=1)
    before = [w.copy() for w in model.get_weights()]
    report = crosscheck(model, x, y, loss, train_steps=3, noise_samples=5000)
    assert report.passed, report.table()
    checks = {row.check[0] for row in report.rows if row.passed}
    assert checks == {"a", "b", "c", "d", "e"}
    with_tfp = tf_privacy_or_none() is not None
    tfp_rows = [row for row in report.rows if "TF Privacy" in row.compared or "TFP" in row.compared]
    assert tfp_rows and all((row.passed is True) == with_tfp for row in tfp_rows)
    assert "max rel" in report.table() and report.to_dict()["passed"]
    for a, b in zip(model.get_weights(), before, strict=True):  # the user's model is untouched
        np.testing.assert_array_equal(a, b)


def test_crosscheck_flags_a_mismatch():
    """A tolerance below float32 rounding must fail: the harness really compares."""
    model, x, y, loss = example_problem("mlp", batch=8)
    report = crosscheck(model, x, y, loss, train_steps=2, noise_samples=2000, tolerance=1e-12)
    assert not report.passed
    assert any(row.passed is False and row.check.startswith("a") for row in report.rows)


def test_crosscheck_rejects_bad_input():
    model = to_keras_model(dk.tf_privacy_mlp())
    with pytest.raises(ValueError, match="x and y must hold the same number"):
        crosscheck(model, np.zeros((4, 2)), np.zeros(3), "binary_crossentropy")
    with pytest.raises(ValueError, match="loss must be one of"):
        crosscheck(model, np.zeros((4, 2)), np.zeros(4), "hinge")
    assert math.isfinite(accounting.get_privacy_budget(60000, 256, 1, 1.1, 1e-5))
