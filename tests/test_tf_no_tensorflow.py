"""Adapter pieces that need no TensorFlow: lazy imports, the data loader, the budget call."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import accounting
from dpsgd_kernels.tf_adapter import PrivateDataLoader, get_privacy_budget


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_importing_the_packages_never_imports_tensorflow():
    code = (
        "import sys\n"
        "import accounting, dpsgd_kernels, dpsgd_kernels.tf_adapter as ta\n"
        "ta.PrivateDataLoader, ta.get_privacy_budget, ta.to_numpy_model, ta.TFDPStep\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tensorflow_privacy', 'pandas'))\n"
        "print(bad)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_tensorflow_raises_import_error_naming_the_extra():
    # sys.modules[name] = None makes "import name" raise ImportError, as if not installed.
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\n"
        "import dpsgd_kernels.tf_adapter as ta\n"
        "for call in (lambda: ta.PrivateKerasModel(object(), 1.0, 1.0),\n"
        "             lambda: ta.TFDPStep(object(), 'mse', 1.0, 1.0),\n"
        "             lambda: ta.to_keras_model(None), lambda: ta.default_device()):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all("pip install 'dpsgd-accounting[tensorflow]'" in line for line in lines)


def test_unknown_attribute_is_an_attribute_error():
    import dpsgd_kernels.tf_adapter as ta

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ta.nope  # noqa: B018
    assert set(ta.__all__) <= set(dir(ta))


@pytest.mark.parametrize("args", [(100000, 4, 20, 1.2, 1e-5), (60000, 256, 60, 1.1, 1e-5),
                                  (1000, 1000, 3.5, 0.8, 1e-6)])
def test_get_privacy_budget_is_the_accountants(args):
    assert get_privacy_budget(*args) == accounting.get_privacy_budget(*args)
    sample_size, batch_size, epochs, sigma, delta = args
    steps = math.ceil(epochs * sample_size / batch_size)
    independent = accounting.RdpAccountant().compose(batch_size / sample_size, sigma, steps)
    assert get_privacy_budget(*args) == pytest.approx(independent.get_epsilon(delta), rel=1e-12)


@pytest.mark.parametrize("bad, match", [(dict(batch_size=0), "batch_size"),
                                        (dict(target_delta=1.5), "target_delta"),
                                        (dict(noise_multiplier=-1.0), "noise_multiplier")])
def test_get_privacy_budget_rejects_bad_input(bad, match):
    args = dict(sample_size=100, batch_size=10, num_epochs=1, noise_multiplier=1.0,
                target_delta=1e-5) | bad
    with pytest.raises(ValueError, match=match):
        get_privacy_budget(**args)


def test_loader_samples_each_example_with_rate_batch_over_n():
    features = np.arange(2000, dtype=float).reshape(1000, 2)
    labels = np.arange(1000)
    loader = PrivateDataLoader(features, labels, batch_size=50, seed=3)
    assert loader.sample_rate == 0.05 and loader.expected_batch_size == pytest.approx(50)
    assert len(loader) == 20 == len(list(loader))
    sizes, counts = [], np.zeros(1000)
    for x, y in loader.batches(400):
        np.testing.assert_array_equal(x[:, 0] / 2, y)  # rows stay paired with their labels
        sizes.append(len(y))
        counts[y] += 1
    # Batch size ~ Binomial(1000, 0.05): mean 50, sd ~6.9; 400 batches -> sd of mean ~0.34.
    assert abs(np.mean(sizes) - 50) < 5 * np.sqrt(1000 * 0.05 * 0.95 / 400)
    # Every example included ~ Binomial(400, 0.05) times: mean 20.
    assert abs(counts.mean() - 20) < 0.5
    same = PrivateDataLoader(features, labels, batch_size=50, seed=3)
    first = [y.tolist() for _, y in same.batches(3)]
    again = [y.tolist() for _, y in PrivateDataLoader(features, labels, 50, seed=3).batches(3)]
    assert first == again


def test_loader_accepts_pandas_objects():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 1.0, 0.0, 0.0]})
    for labels in (pd.Series([0, 1, 0, 1]), pd.DataFrame({"y": [0, 1, 0, 1]})):
        loader = PrivateDataLoader(frame, labels, batch_size=2, seed=0)
        assert loader.features.shape == (4, 2) and loader.labels.shape == (4,)
        np.testing.assert_array_equal(loader.features, frame.to_numpy())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, r"batch_size must be a whole number >= 1"),
    (dict(batch_size=11), ValueError, r"batch_size must lie in \[1, 10\]"),
    (dict(batch_size=2.5), TypeError, "batch_size"),
    (dict(label_df=np.zeros(9)), ValueError, "one label per row"),
    (dict(feature_df="abc"), TypeError, "feature_df"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_loader_rejects_bad_input(kwargs, error, match):
    args = dict(feature_df=np.zeros((10, 2)), label_df=np.zeros(10), batch_size=2) | kwargs
    with pytest.raises(error, match=match):
        PrivateDataLoader(**args)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(feature_df=np.r_[np.zeros((9, 2)), [[0.0, np.nan]]]), ValueError,
     "feature_df must contain only finite values"),
    (dict(label_df=np.r_[np.zeros(9), np.inf]), ValueError,
     "label_df must contain only finite values"),
    (dict(feature_df=np.zeros((10, 2), complex)), TypeError,
     "feature_df must hold real numbers, got dtype complex128"),
])
def test_loader_checks_every_row_when_made(kwargs, error, match):
    """A NaN in the last row is found before any batch is drawn, not when first sampled."""
    args = dict(feature_df=np.zeros((10, 2)), label_df=np.zeros(10), batch_size=2) | kwargs
    with pytest.raises(error, match=match):
        PrivateDataLoader(**args)
