"""NumPy DP-SGD reference kernel (per-example gradients, clipping, noise, Poisson sampling).

The kernel arrives with its own issue; the package exists so the project layout is fixed. It
imports nothing and exports nothing yet.
"""

__all__: list[str] = []
