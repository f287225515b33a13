"""One call that runs every applicable property check on an accountant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from accounting.testing import properties as props
from accounting.testing.domain import Domain
from accounting.testing.properties import CheckResult

__all__ = ["KINDS", "VerificationError", "VerificationReport", "verify_accountant"]

Kind = Literal["rdp", "epsilon", "tight_epsilon", "delta", "accountant"]
#: What :func:`verify_accountant` can verify (see its ``kind`` parameter).
KINDS: tuple[str, ...] = ("rdp", "epsilon", "tight_epsilon", "delta", "accountant")


@dataclass(frozen=True)
class VerificationReport:
    """The results of :func:`verify_accountant`, one :class:`CheckResult` per check.

    A check not applicable to the declared :class:`~accounting.testing.Domain` is listed as
    skipped (``[SKIP]``, with the reason), neither passed nor failed.
    """

    target: str
    kind: str
    results: list[CheckResult] = field(default_factory=list)
    domain: str = "unrestricted"

    @property
    def passed(self) -> bool:
        """Whether no check failed and, unless there were none, at least one ran."""
        ran = [result for result in self.results if not result.skipped]
        return not self.failures and (bool(ran) or not self.results)

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that found a counterexample."""
        return [result for result in self.results if result.failed]

    @property
    def skipped(self) -> list[CheckResult]:
        """The checks not run because they do not apply to the domain."""
        return [result for result in self.results if result.skipped]

    def failed(self, name_contains: str) -> bool:
        """Whether a check whose name contains ``name_contains`` failed."""
        return any(name_contains in result.name for result in self.failures)

    def __str__(self) -> str:
        ran = len(self.results) - len(self.skipped)
        where = "" if self.domain == "unrestricted" else f", domain: {self.domain}"
        head = (
            f"verify_accountant({self.target}, kind={self.kind!r}{where}): "
            f"{ran - len(self.failures)}/{ran} checks passed"
        )
        if self.skipped:
            head += f", {len(self.skipped)} skipped as not applicable"
        return "\n".join([head, *(f"  {result}" for result in self.results)])

    def raise_if_failed(self) -> VerificationReport:
        """Raise :class:`VerificationError` if a check failed (or every check was skipped);
        return ``self`` otherwise."""
        if not self.passed:
            raise VerificationError(self)
        return self


class VerificationError(AssertionError):
    """Raised by :func:`verify_accountant` when a check fails; ``report`` holds the details."""

    def __init__(self, report: VerificationReport):
        super().__init__(str(report))
        self.report = report


def _resolve_name(name: str, kind: str) -> Callable[..., Any]:
    """The function of form ``kind`` for the registered accountant ``name``."""
    from accounting.registry import accountant_info, make_accountant

    accountant_info(name)  # ValueError listing the registered names if unknown

    if kind == "accountant":
        def factory():
            return make_accountant(name)

        factory.__qualname__ = factory.__name__ = repr(name)
        return factory
    if kind in ("epsilon", "tight_epsilon"):
        def epsilon(q, sigma, steps, delta):
            return make_accountant(name).compose(q, sigma, steps).get_epsilon(delta)

        epsilon.__qualname__ = epsilon.__name__ = f"{name!r}.get_epsilon"
        return epsilon
    if kind == "delta":
        def delta(q, sigma, steps, epsilon):
            return make_accountant(name).compose(q, sigma, steps).get_delta(epsilon)

        delta.__qualname__ = delta.__name__ = f"{name!r}.get_delta"
        return delta
    raise ValueError(f"kind={kind!r} needs a function, not a registered accountant's name "
                     f"({name!r}); a name works with kind 'accountant', 'epsilon', "
                     "'tight_epsilon' or 'delta'")


def verify_accountant(
    fn: Callable[..., Any] | str,
    kind: Kind = "epsilon",
    *,
    delta_fn: Callable[..., float] | None = None,
    epsilon_fn: Callable[..., float] | None = None,
    rdp_epsilon: Callable[..., float] | None = None,
    orders: Sequence[float] | None = None,
    domain: Domain | None = None,
    conversion: str = "improved",
    max_examples: int = 30,
    reference_rtol: float = props.REFERENCE_RTOL,
    shape_rtol: float = props.SHAPE_RTOL,
    exact: bool = False,
    skip: Sequence[str] = (),
    seed: int | None = None,
    raise_on_failure: bool = True,
) -> VerificationReport:
    """Run every property check that applies to ``fn``.

    Parameters
    ----------
    fn : callable or str
        The accountant under test, of the form named by ``kind``; or the name of a registered
        accountant (:func:`accounting.make_accountant`), checked as a fresh accountant
        (``kind="accountant"``), its ``get_epsilon`` (``"epsilon"``, ``"tight_epsilon"``) or
        its ``get_delta`` (``"delta"``).
    kind : {"rdp", "epsilon", "tight_epsilon", "delta", "accountant"}
        ``"rdp"``: ``fn(q, sigma, orders)``, the RDP of one step at each order.
        ``"epsilon"``: ``fn(q, sigma, steps, delta)`` of an RDP accountant (checked against the
        mpmath reference with ``orders`` and ``conversion``).
        ``"tight_epsilon"``: ``fn(q, sigma, steps, delta)`` of a tighter accountant (e.g. PLD):
        no reference check, but ``fn <= rdp_epsilon``.
        ``"delta"``: ``fn(q, sigma, steps, epsilon)`` of an RDP accountant.
        ``"accountant"``: ``fn()`` returns a fresh object with ``compose(q, sigma, steps)`` and
        ``get_epsilon(delta)``.
    delta_fn : callable, optional
        With ``kind="epsilon"``: the matching ``delta(q, sigma, steps, epsilon)``, to check the
        round trip ``delta(epsilon(delta)) = delta``.
    epsilon_fn : callable, optional
        With ``kind="delta"``: the matching epsilon function, for the same round trip.
    rdp_epsilon : callable, optional
        With ``kind="tight_epsilon"``: the RDP epsilon it must not exceed (default
        :func:`accounting.compute_epsilon`).
    orders : sequence of float, optional
        The user's Rényi orders: shorthand for ``domain=Domain(orders=orders)`` (the RDP checks
        draw only these orders; the epsilon and delta reference checks minimise over them,
        default :data:`accounting.DEFAULT_ORDERS`). Give it here or in ``domain``, not both.
    domain : Domain, optional
        The inputs ``fn`` supports (orders, ranges of ``q``, ``sigma``, ``steps``, ``delta``
        and ``epsilon``, neighbouring relation); every check draws only inside it, and one that
        needs an input outside it is reported as skipped. Under ``"replace_one"`` the
        epsilon and delta kinds also get the one-step hockey-stick soundness check.
    conversion : {"improved", "classic"}
        The user's RDP-to-DP conversion, for the reference checks.
    max_examples : int
        Hypothesis examples per check (the reference checks use two thirds as many).
    reference_rtol : float
        Tolerance of the reference checks (default ``1e-6``).
    shape_rtol : float
        Slack of the monotonicity, convexity and closed-form checks (default ``1e-8``).
    exact : bool
        Decide every reference example with mpmath (see
        :func:`accounting.testing.properties.check_rdp_reference`).
    skip : sequence of str
        Checks to leave out: any whose name contains one of these strings.
    seed : int, optional
        Fixes Hypothesis' draws.
    raise_on_failure : bool
        Raise :class:`VerificationError` (an ``AssertionError``) listing every result if any
        check fails; else return the report.

    Returns
    -------
    VerificationReport
        One result per check; ``str(report)`` is a readable summary with each minimal
        counterexample.

    Raises
    ------
    VerificationError
        With ``raise_on_failure``, when a check fails (skipped checks never fail).
    ValueError, TypeError
        For a bad ``kind``, ``domain`` or ``orders`` (see :class:`~accounting.testing.Domain`).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(fn, str):
        fn = _resolve_name(fn, kind)
    if domain is None:
        domain = Domain()
    elif not isinstance(domain, Domain):
        raise TypeError(f"domain must be an accounting.testing.Domain, got {domain!r}")
    if orders is not None:
        if domain.orders != "any":
            raise ValueError("orders: given both as orders= and in domain; give it once")
        domain = replace(domain, orders=orders)
    replace_one = domain.relation == "replace_one"
    common = {"max_examples": max_examples, "seed": seed, "raise_on_failure": False,
              "domain": domain}
    shape = {**common, "rtol": shape_rtol}
    few = {**common, "max_examples": max(1, (2 * max_examples) // 3)}
    hockey = {**common, "max_examples": max(1, max_examples // 3)}  # an mpmath quadrature each
    checks: list[tuple[str, Callable[[], CheckResult]]] = []

    def add(name: str, run: Callable[[], CheckResult]) -> None:
        checks.append((name, run))

    if kind == "rdp":
        add("RDP non-decreasing in q", lambda: props.check_rdp_monotone_in_sample_rate(fn, **shape))
        add("RDP non-increasing in sigma", lambda: props.check_rdp_monotone_in_noise(fn, **shape))
        add("RDP non-decreasing in alpha", lambda: props.check_rdp_order_shape(fn, **shape))
        add("RDP closed forms", lambda: props.check_rdp_closed_form(fn, **shape))
        add("subsampled RDP", lambda: props.check_rdp_subsampling_bound(fn, **shape))
        add("RDP agrees", lambda: props.check_rdp_reference(
            fn, rtol=reference_rtol, exact=exact, **few))
    elif kind in ("epsilon", "tight_epsilon"):
        for argument in ("q", "sigma", "steps", "delta"):
            add(f"epsilon monotone in {argument}",
                lambda argument=argument: props.check_epsilon_monotone(fn, argument, **shape))
        add("subsampled epsilon", lambda: props.check_epsilon_subsampling_bound(fn, **shape))
        if kind == "epsilon":
            add("epsilon agrees", lambda: props.check_epsilon_reference(
                fn, conversion=conversion, rtol=reference_rtol, exact=exact, **few))
        else:
            add("eps(tight accountant) <= eps(RDP)", lambda: props.check_pld_below_rdp(
                fn, rdp_epsilon, rtol=reference_rtol, **common))
        if replace_one:
            add("epsilon sound at one step", lambda: props.check_epsilon_hockey_stick(
                fn, rtol=reference_rtol, **hockey))
        if delta_fn is not None:
            add("round trip", lambda: props.check_round_trip(
                fn, delta_fn, rtol=reference_rtol, **common))
    elif kind == "delta":
        for argument in ("q", "sigma", "steps", "epsilon"):
            add(f"delta monotone in {argument}",
                lambda argument=argument: props.check_delta_monotone(fn, argument, **shape))
        add("delta agrees", lambda: props.check_delta_reference(
            fn, conversion=conversion, rtol=reference_rtol, **few))
        if replace_one:
            add("delta sound at one step", lambda: props.check_delta_hockey_stick(
                fn, rtol=reference_rtol, **hockey))
        if epsilon_fn is not None:
            add("round trip", lambda: props.check_round_trip(
                epsilon_fn, fn, rtol=reference_rtol, **common))
    else:
        add("composition", lambda: props.check_composition(fn, **shape))

    results = [run() for name, run in checks if not any(part in name for part in skip)]
    label = getattr(fn, "__qualname__", None) or repr(fn)
    report = VerificationReport(label, kind, results, domain.describe())
    if raise_on_failure:
        report.raise_if_failed()
    return report
