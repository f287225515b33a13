"""The TensorFlow cross-check notebook executes (TensorFlow stage: ``make test-tensorflow``).

Without TensorFlow the notebook only prints notes; here it must run the adapter's cross-check
on the MNIST tutorial CNN and find every checked row within its tolerance.
"""

from __future__ import annotations

import pytest

from tests.notebook_runner import execute, outputs, require_runner

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow


def test_tensorflow_crosscheck_notebook(tmp_path):
    require_runner()
    result = outputs(execute("tensorflow_crosscheck.ipynb", tmp_path))
    assert result["errors"] == [], result["errors"]
    assert result["unexecuted"] == 0
    text = result["text"]
    assert "TensorFlow is not installed" not in text
    for check in ("a per-example grads", "b DP step, noise 0", "c noise std / (sigma C)",
                  "d training run", "e epsilon"):
        assert f"| {check} |" in text
    assert "| e epsilon | tf_adapter vs accounting.get_privacy_budget |" in text
    assert "checked rows within tolerance" in text
    assert '"parameters": 26010' in text  # the MNIST tutorial CNN
