"""The standard settings A-D (benchmarks/settings.py) are the runs the docs describe."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

import accounting

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _settings_module():
    spec = importlib.util.spec_from_file_location("settings", ROOT / "benchmarks" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_training_settings_follow_tf_privacy_conventions(name):
    module = _settings_module()
    q, steps = accounting.dpsgd_sample_rate_and_steps(*module.RUNS[name])
    setting = module.SETTINGS[name]
    assert (setting.q, setting.steps) == (q, steps)
    n, batch, epochs = module.RUNS[name]
    assert f"n {n}, batch {batch}, σ {setting.noise_multiplier}, {epochs} epochs ({steps} steps)" \
        in module.SETTINGS_TEXT[name]


def test_every_setting_is_described_once_with_its_delta():
    module = _settings_module()
    assert set(module.SETTINGS) == set(module.SETTINGS_TEXT) == {"A", "B", "C", "D"}
    for name, setting in module.SETTINGS.items():
        assert float(module.SETTINGS_TEXT[name].rsplit("δ ", 1)[1]) == setting.delta
    assert module.SETTINGS["D"] == (1e-3, 0.8, 100000, 1e-6)
