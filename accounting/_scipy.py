"""SciPy's submodules, imported on first use: ``_scipy.special.gammaln(x)``.

Importing ``scipy.special``, ``scipy.optimize``, ``scipy.fft`` and ``scipy.linalg`` would be
most of the cost of ``import accounting``; the import, ``dp-budget --help`` and argument
validation need none of them, so each is imported by the first computation that does (then it
is an ordinary attribute of this module).
"""

from __future__ import annotations

import importlib

_MODULES = {
    "fft": "scipy.fft",
    "lapack": "scipy.linalg.lapack",
    "optimize": "scipy.optimize",
    "special": "scipy.special",
}


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_MODULES[name])
    globals()[name] = module  # later lookups are plain attribute reads
    return module
