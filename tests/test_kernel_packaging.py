"""Packaging metadata: one version for both packages, PEP 561 markers, the declared license."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

import accounting
import dpsgd_kernels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_the_one_pyproject_reads(pyproject):
    project = pyproject["project"]
    assert "version" in project["dynamic"] and "version" not in project
    module, _, attribute = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"] \
        .rpartition(".")
    version = getattr(importlib.import_module(module), attribute)
    assert accounting.__version__ == dpsgd_kernels.__version__ == version
    assert all(part.isdigit() for part in version.split("."))


def test_installed_metadata_has_the_same_version():
    try:
        installed = importlib.metadata.version("dpsgd-accounting")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("dpsgd-accounting is not installed (a plain checkout)")
    assert installed == accounting.__version__


@pytest.mark.parametrize("package", [accounting, dpsgd_kernels])
def test_packages_ship_a_py_typed_marker(pyproject, package):
    assert (Path(package.__file__).parent / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"][package.__name__]


def test_license_file_is_the_declared_apache_license(pyproject):
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer to it
