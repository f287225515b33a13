"""Privacy accounting for DP-SGD.

How much privacy does a DP-SGD run spend, and how much noise does it need? This package answers
with Rényi-DP and moments accountants for the Poisson-subsampled Gaussian mechanism, a tight
privacy-loss-distribution accountant with certified lower and upper epsilon
(:class:`PldAccountant`), conversions to (epsilon, delta), calibration of noise, steps and
sample rate, and an mpmath reference
(:mod:`accounting.reference`) that every fast path is tested against. A property-based
verification kit for any accountant lives in :mod:`accounting.testing` (needs the ``test``
extra; ``import accounting`` does not import it).

>>> import accounting
>>> acc = accounting.RdpAccountant().compose(sample_rate=256 / 60000, noise_multiplier=1.1,
...                                           steps=14063)
>>> round(acc.get_epsilon(1e-5), 5)
2.59666
"""

from accounting._caches import clear_caches
from accounting._version import __version__ as __version__
from accounting.accountant import (
    Accountant,
    CompositionRecord,
    TightAccountant,
    UnsupportedEventError,
)
from accounting.budget import (
    compute_epsilon,
    dpsgd_epsilon,
    dpsgd_sample_rate_and_steps,
    epsilon_grid,
    get_privacy_budget,
)
from accounting.calibration import (
    calibrate,
    calibrate_noise_multiplier,
    calibrate_sample_rate,
    calibrate_steps,
)
from accounting.dpsgd_calibration import (
    calibrate_dpsgd_noise_multiplier,
    calibrate_dpsgd_steps,
)
from accounting.gdp import gaussian_delta, gaussian_epsilon, gdp_delta, gdp_epsilon, gdp_mu
from accounting.integrations.dp_accounting import from_dp_event, to_dp_event
from accounting.pld import DeltaBounds, EpsilonBounds, PldAccountant, ToleranceNotMetWarning
from accounting.pld.random_allocation import random_allocation_pld_epsilon_bounds
from accounting.random_allocation import (
    MonteCarloEstimate,
    random_allocation_epsilon,
    random_allocation_monte_carlo,
    random_allocation_rdp,
)
from accounting.rdp import (
    CONVERSIONS,
    DEFAULT_ORDERS,
    MomentsAccountant,
    RdpAccountant,
    delta_from_rdp,
    epsilon_curve,
    epsilon_from_rdp,
    gaussian_log_moments,
    poisson_gaussian_rdp,
    rdp_sampled_without_replacement,
)
from accounting.registry import (
    ACCOUNTANTS,
    accountants,
    load_accountant,
    make_accountant,
    register_accountant,
    unregister_accountant,
)
from accounting.sampling import SAMPLINGS, DpsgdRun, dpsgd_run
from accounting.shuffle import ShuffleLowerBound, shuffle_lower_bound, shuffle_upper_bound
from accounting.statement import PrivacyStatement, StatementLine, privacy_statement
from accounting.user_level import (
    MAX_EXAMPLES_PER_USER_MOG,
    group_privacy_delta,
    group_privacy_epsilon,
    user_level_epsilon_bounds,
    user_level_step,
)

__all__ = [
    "ACCOUNTANTS",
    "CONVERSIONS",
    "DEFAULT_ORDERS",
    "MAX_EXAMPLES_PER_USER_MOG",
    "SAMPLINGS",
    "Accountant",
    "CompositionRecord",
    "DeltaBounds",
    "DpsgdRun",
    "EpsilonBounds",
    "MomentsAccountant",
    "MonteCarloEstimate",
    "PldAccountant",
    "PrivacyStatement",
    "RdpAccountant",
    "ShuffleLowerBound",
    "StatementLine",
    "TightAccountant",
    "ToleranceNotMetWarning",
    "UnsupportedEventError",
    "accountants",
    "calibrate",
    "calibrate_dpsgd_noise_multiplier",
    "calibrate_dpsgd_steps",
    "calibrate_noise_multiplier",
    "calibrate_sample_rate",
    "calibrate_steps",
    "clear_caches",
    "compute_epsilon",
    "delta_from_rdp",
    "dpsgd_epsilon",
    "dpsgd_run",
    "dpsgd_sample_rate_and_steps",
    "epsilon_from_rdp",
    "epsilon_curve",
    "epsilon_grid",
    "events",
    "from_dp_event",
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_log_moments",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "get_privacy_budget",
    "group_privacy_delta",
    "group_privacy_epsilon",
    "load_accountant",
    "make_accountant",
    "poisson_gaussian_rdp",
    "privacy_statement",
    "random_allocation_epsilon",
    "random_allocation_monte_carlo",
    "random_allocation_pld_epsilon_bounds",
    "random_allocation_rdp",
    "rdp_sampled_without_replacement",
    "register_accountant",
    "shuffle_lower_bound",
    "shuffle_upper_bound",
    "to_dp_event",
    "unregister_accountant",
    "user_level_epsilon_bounds",
    "user_level_step",
]

from accounting import events  # noqa: E402 - the subpackage, listed in __all__
