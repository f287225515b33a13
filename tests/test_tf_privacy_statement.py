"""accounting.privacy_statement against TF Privacy's compute_dp_sgd_privacy_statement (where
tensorflow-privacy imports: the pinned TF 2.15 venv of make test-tensorflow).

Every RDP figure TF Privacy prints - "each example occurring once per epoch", "assuming Poisson
sampling", and both again at user level by group privacy - must equal ours for the same inputs,
with and without microbatching, at dp_accounting's default orders: to 1e-6 relative against the
functions behind the text, and to the printed three decimals against the text itself.
"""

from __future__ import annotations

import math
import re

import pytest

import accounting
from accounting.statement import privacy_statement

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow

from dpsgd_kernels.tf_adapter._imports import tf_privacy_or_none  # noqa: E402

if tf_privacy_or_none() is None:
    pytest.skip("tensorflow-privacy not importable (needs TF 2.15)", allow_module_level=True)

import dp_accounting  # noqa: E402
from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as lib  # noqa: E402

# (n, batch, sigma, epochs, delta): TF Privacy's MNIST tutorial and two more
SETTINGS = [
    (60000, 250, 1.3, 15, 1e-5),
    (50000, 500, 1.1, 10, 1e-6),
    (1000, 10, 2.0, 3, 1e-4),
]
TF_ORDERS = [float(order) for order in dp_accounting.rdp.RdpAccountant()._orders]


def _printed(text: str) -> dict[str, float]:
    """The four epsilons of TF Privacy's statement text (user ones only when printed)."""
    values = {}
    pattern = re.compile(r"Epsilon (with each example occurring once per epoch|assuming Poisson "
                         r"sampling \(\*\)):\s+(inf|[0-9.]+)")
    sections = text.split("User-level DP")
    for level, section in zip(("example", "user"), sections, strict=False):
        for name, value in pattern.findall(section):
            kind = "once_per_epoch" if name.startswith("with") else "poisson"
            values[f"{level}_{kind}"] = math.inf if value == "inf" else float(value)
    return values


def _close(ours: float, theirs: float) -> bool:
    if math.isinf(theirs) or math.isinf(ours):
        return ours == theirs
    return ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("microbatching", [False, True])
@pytest.mark.parametrize("users", [None, 2, 5, 10])
def test_statement_equals_tf_privacy(setting, microbatching, users):
    n, b, sigma, epochs, delta = setting
    q = b / n
    # the step counts agree (TF Privacy: ceil(epochs / q); ours: ceil(epochs n / b))
    assert math.ceil(epochs / q) == math.ceil(epochs * n / b)
    text = lib.compute_dp_sgd_privacy_statement(
        n, b, epochs, sigma, delta, used_microbatching=microbatching,
        max_examples_per_user=users,
    )
    printed = _printed(text)
    poisson = privacy_statement(n, b, epochs, sigma, delta, used_microbatching=microbatching,
                                max_examples_per_user=users, orders=TF_ORDERS,
                                user_level_pld=False)
    shuffled = privacy_statement(n, b, epochs, sigma, delta, sampling="shuffle",
                                 used_microbatching=microbatching,
                                 max_examples_per_user=users, orders=TF_ORDERS,
                                 user_level_pld=False)
    ours = {
        "example_poisson": poisson.line("poisson").epsilon,
        "example_once_per_epoch": shuffled.line("once_per_epoch").epsilon,
    }
    exact = {
        "example_poisson": lib._compute_dp_sgd_example_privacy(epochs, sigma, delta,
                                                               microbatching, q),
        "example_once_per_epoch": lib._compute_dp_sgd_example_privacy(epochs, sigma, delta,
                                                                      microbatching),
    }
    if users is not None:
        ours["user_poisson"] = poisson.line("user_group:poisson").epsilon
        ours["user_once_per_epoch"] = shuffled.line("user_group:once_per_epoch").epsilon
        exact["user_poisson"] = lib._compute_dp_sgd_user_privacy(epochs, sigma, delta, users,
                                                                 microbatching, q)
        exact["user_once_per_epoch"] = lib._compute_dp_sgd_user_privacy(epochs, sigma, delta,
                                                                        users, microbatching)
    assert set(printed) == set(ours)
    for key, value in ours.items():
        assert _close(value, exact[key]), (key, value, exact[key])
        if math.isinf(printed[key]):
            assert math.isinf(value), key
        else:
            assert abs(value - printed[key]) <= 5e-4 + 1e-9, (key, value, printed[key])
    # the shuffled statement's Poisson line is the same figure, labelled as an assumption
    assumed = shuffled.line("poisson")
    assert assumed.epsilon == ours["example_poisson"] and not assumed.guarantee
    assert "if batches were Poisson-sampled" in assumed.assumption
    if users is None:
        sentence = "No user-level privacy guarantee is possible without a bound"
        assert sentence in " ".join(poisson.text.split())
        assert sentence in " ".join(text.split())


def test_group_privacy_equals_tf_privacy_directly():
    """group_privacy_epsilon on the RDP accountant TF Privacy builds, for a grid of k."""
    n, b, sigma, epochs, delta = SETTINGS[0]
    q = b / n
    ledger = accounting.RdpAccountant(orders=TF_ORDERS).compose(q, sigma, math.ceil(epochs / q))
    for k in (1, 3, 8, 20):
        theirs = lib._compute_dp_sgd_user_privacy(epochs, sigma, delta, k, False, q)
        ours = accounting.user_level.group_privacy_epsilon(ledger, k, delta)
        assert _close(ours, theirs), (k, ours, theirs)
