"""The budget-estimate call of hosted DP-SGD notebooks, answered by :mod:`accounting`.

:func:`get_privacy_budget` is :func:`accounting.get_privacy_budget` itself (RDP accountant,
improved conversion, ``steps = ceil(num_epochs sample_size / batch_size)``), offered here under
the adapter's namespace; it needs no TensorFlow.
"""

from __future__ import annotations

from accounting import get_privacy_budget

__all__ = ["get_privacy_budget"]
