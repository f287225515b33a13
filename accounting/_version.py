"""The version of the dpsgd-accounting distribution (``accounting`` and ``dpsgd_kernels``).

The single source of truth: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``) and both
packages export it as ``__version__``.
"""

__version__ = "0.1.0"
