"""Accountants by name: the one place that maps ``accountant="..."`` to a class.

The CLI, :func:`accounting.dpsgd_epsilon`, calibration and the verification kit iterate this
registry; a third-party accountant registered with :func:`register_accountant` shows up in all
of them (as Opacus' accountant registry does for its ``PrivacyEngine``).

>>> import accounting
>>> accounting.accountants()
('rdp', 'moments', 'pld')
>>> accounting.make_accountant("pld", tolerance=1e-4)
PldAccountant(steps=0, compositions=0)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from accounting.accountant import Accountant
from accounting.events import Event
from accounting.pld.accountant import PldAccountant
from accounting.rdp.accountant import RdpAccountant
from accounting.rdp.conversions import check_conversion
from accounting.rdp.moments import MomentsAccountant

__all__ = [
    "ACCOUNTANTS",
    "AccountantInfo",
    "accountant_info",
    "accountants",
    "accountants_supporting",
    "load_accountant",
    "make_accountant",
    "register_accountant",
    "unregister_accountant",
]


@dataclass(frozen=True)
class AccountantInfo:
    """A registered accountant: its name, a factory taking keyword options, a one-line summary.

    ``bound`` says what its ``get_epsilon`` is: ``"upper"`` for a certified upper bound (every
    built-in accountant), ``"estimate"`` for an approximation.
    """

    name: str
    factory: Callable[..., Accountant]
    summary: str = ""
    bound: str = "upper"
    # the factory's keyword names, read once (None: it takes any keyword); make_accountant asks
    # on every call, and reading a signature costs more than building an accountant
    _options: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        try:
            parameters = inspect.signature(self.factory).parameters
        except (TypeError, ValueError):  # a builtin without a signature: let the call decide
            parameters = None
        if parameters is None or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        ):
            object.__setattr__(self, "_options", None)
        else:
            object.__setattr__(self, "_options", frozenset(parameters))

    def accepts(self, option: str) -> bool:
        """Whether the factory takes the keyword ``option``."""
        return self._options is None or option in self._options


_REGISTRY: dict[str, AccountantInfo] = {}


def register_accountant(
    name: str,
    factory: Callable[..., Accountant],
    summary: str = "",
    *,
    bound: str = "upper",
    replace: bool = False,
) -> AccountantInfo:
    """Register ``factory`` (a class or callable returning an :class:`Accountant`) as ``name``.

    ``name`` must be a non-empty identifier-like string (``[a-z0-9_-]``); registering a name
    twice needs ``replace=True``.
    """
    if not isinstance(name, str) or not name or not all(
        ch.isalnum() or ch in "_-" for ch in name
    ):
        raise ValueError(f"name must be a non-empty string of letters, digits, _ or -, got "
                         f"{name!r:.60}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if bound not in ("upper", "estimate"):
        raise ValueError(f"bound must be 'upper' or 'estimate', got {bound!r:.60}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"an accountant named {name!r} is registered already (replace=True "
                         "replaces it)")
    info = AccountantInfo(name, factory, summary, bound)
    _REGISTRY[name] = info
    return info


def unregister_accountant(name: str) -> None:
    """Remove a registered accountant (``KeyError``-free: a ``ValueError`` if unknown)."""
    accountant_info(name)
    del _REGISTRY[name]


def accountants() -> tuple[str, ...]:
    """Names of the registered accountants, in registration order (built-ins first)."""
    return tuple(_REGISTRY)


def accountant_info(name: str) -> AccountantInfo:
    """The registry entry of ``name``; ``ValueError`` listing the names if unknown."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"accountant must be one of {accountants()}, got {name!r:.60}")
    return _REGISTRY[name]


def accountants_supporting(event: Event, **options: Any) -> tuple[str, ...]:
    """Names of the registered accountants that support ``event`` when built with ``options``
    (e.g. ``neighboring="replace_one"``; accountants that do not take an option are left out),
    by default with their default options."""
    names = []
    for name, info in _REGISTRY.items():
        if not all(info.accepts(option) for option in options):
            continue
        try:
            if info.factory(**options).supports(event):
                names.append(name)
        except Exception:  # noqa: BLE001 - a broken third-party factory must not hide the answer
            continue
    return tuple(names)


def make_accountant(
    accountant: str = "rdp",
    conversion: str | None = None,
    orders=None,
    pld_tolerance: float | None = None,
    **options: Any,
) -> Accountant:
    """A fresh accountant by registry name, with keyword ``options`` for its factory.

    ``conversion`` (``"improved"`` or ``"classic"``), ``orders`` and ``pld_tolerance`` are the
    options of earlier versions, kept: ``conversion`` applies to the RDP accountant (the moments
    accountant always uses its tail bound, equal to the classic conversion, and the PLD
    accountant needs none); ``orders`` to RDP only; ``pld_tolerance`` is the PLD accountant's
    ``tolerance``. An option the accountant does not take raises ``ValueError`` naming it.
    """
    info = accountant_info(accountant)
    if conversion is not None:
        conversion = check_conversion(conversion)
        if info.accepts("conversion"):
            options["conversion"] = conversion
    if pld_tolerance is not None and "tolerance" not in options and info.accepts("tolerance"):
        options["tolerance"] = pld_tolerance
    if orders is not None:
        options["orders"] = orders
    for option in options:
        if not info.accepts(option):
            raise ValueError(f"{option} is not an option of the {accountant!r} accountant")
    return info.factory(**options)


def load_accountant(state: Mapping[str, Any]) -> Accountant:
    """The accountant that :meth:`Accountant.state_dict` saved ``state`` from."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping, got {type(state).__name__}")
    return accountant_info(state.get("accountant")).factory().load_state_dict(state)


def _moments(conversion: str = "improved", max_lambda: int = 32) -> MomentsAccountant:
    # the moments accountant converts with its own tail bound; conversion is accepted for the
    # callers that pass one to every accountant
    check_conversion(conversion)
    return MomentsAccountant(max_lambda=max_lambda)


def _pld(
    conversion: str = "improved",
    value_discretization: float | None = None,
    tolerance: float = 1e-3,
    neighboring: str = "add_remove",
    relative_tolerance: float | None = None,
) -> PldAccountant:
    check_conversion(conversion)  # PLD needs no conversion (see _moments)
    return PldAccountant(value_discretization, tolerance, neighboring, relative_tolerance)


register_accountant("rdp", RdpAccountant,
                    "Rényi DP (Mironov, Talwar, Zhang 2019), improved or classic conversion")
register_accountant("moments", _moments, "moments accountant (Abadi et al. 2016)")
register_accountant("pld", _pld, "privacy loss distributions, certified two-sided bracket")

#: Names of the built-in accountants (see :func:`accountants` for every registered one).
ACCOUNTANTS: tuple[str, ...] = accountants()
