"""The Rényi-DP family: RDP of the Poisson-subsampled Gaussian and the accountants built on it.

* :mod:`~accounting.rdp.sampled_gaussian` - per-step RDP curves (Mironov, Talwar, Zhang 2019);
* :mod:`~accounting.rdp.without_replacement` - fixed-size batches sampled without replacement,
  replace-one neighbours (Wang, Balle, Kasiviswanathan 2019);
* :mod:`~accounting.rdp.conversions` - RDP curve to (epsilon, delta), classic and improved;
* :mod:`~accounting.rdp.curve` - epsilon over many step counts at once (:func:`epsilon_curve`);
* :mod:`~accounting.rdp.orders` and :mod:`~accounting.rdp.order_search` - the orders tracked
  and the exact minimisation over them without evaluating orders that cannot win;
* :mod:`~accounting.rdp.accountant` - :class:`RdpAccountant`;
* :mod:`~accounting.rdp.moments` - the moments accountant of Abadi et al. 2016.
"""

from accounting.rdp.accountant import RdpAccountant
from accounting.rdp.conversions import CONVERSIONS, delta_from_rdp, epsilon_from_rdp
from accounting.rdp.curve import epsilon_curve
from accounting.rdp.moments import MAX_LAMBDA, MomentsAccountant, gaussian_log_moments
from accounting.rdp.orders import DEFAULT_ORDERS
from accounting.rdp.sampled_gaussian import poisson_gaussian_rdp
from accounting.rdp.without_replacement import rdp_sampled_without_replacement

__all__ = [
    "CONVERSIONS",
    "DEFAULT_ORDERS",
    "MAX_LAMBDA",
    "MomentsAccountant",
    "RdpAccountant",
    "delta_from_rdp",
    "epsilon_curve",
    "epsilon_from_rdp",
    "gaussian_log_moments",
    "poisson_gaussian_rdp",
    "rdp_sampled_without_replacement",
]
