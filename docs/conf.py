"""Sphinx configuration: the API reference from the NumPy-style docstrings, the user guide and the
design notes. Built by ``make docs`` with warnings as errors."""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accounting._version import __version__  # noqa: E402

project = "dpsgd-accounting"
author = "dpsgd-accounting contributors"
copyright = "the dpsgd-accounting contributors, Apache-2.0"  # noqa: A001
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# The optional back ends are not needed to read their docstrings: TensorFlow, Keras, Opacus and
# torch are replaced by stand-ins, so the reference builds in the package's own environment.
autodoc_mock_imports = [
    "tensorflow", "keras", "tf_keras", "tensorflow_privacy", "opacus", "torch", "dp_accounting",
]
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # signatures show the hints; numpydoc sections give the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3

# Docstring examples are written in their module's namespace: the public names are in scope.
doctest_global_setup = """
import numpy as np
import accounting
from accounting import *
from accounting.events import *
from accounting.registry import *
from accounting.testing import Domain, verify_accountant
"""

html_theme = "furo"
html_title = f"dpsgd-accounting {version}"
html_static_path: list[str] = []

nitpicky = False
