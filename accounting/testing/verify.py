"""One call that runs every applicable property check on an accountant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accounting.testing import properties as props
from accounting.testing.properties import CheckResult

__all__ = ["KINDS", "VerificationError", "VerificationReport", "verify_accountant"]

Kind = Literal["rdp", "epsilon", "tight_epsilon", "delta", "accountant"]
#: What :func:`verify_accountant` can verify (see its ``kind`` parameter).
KINDS: tuple[str, ...] = ("rdp", "epsilon", "tight_epsilon", "delta", "accountant")


@dataclass(frozen=True)
class VerificationReport:
    """The results of :func:`verify_accountant`, one :class:`CheckResult` per check."""

    target: str
    kind: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that found a counterexample."""
        return [result for result in self.results if not result.passed]

    def failed(self, name_contains: str) -> bool:
        """Whether a check whose name contains ``name_contains`` failed."""
        return any(name_contains in result.name for result in self.failures)

    def __str__(self) -> str:
        head = (
            f"verify_accountant({self.target}, kind={self.kind!r}): "
            f"{len(self.results) - len(self.failures)}/{len(self.results)} checks passed"
        )
        return "\n".join([head, *(f"  {result}" for result in self.results)])

    def raise_if_failed(self) -> VerificationReport:
        """Raise :class:`VerificationError` if a check failed; return ``self`` otherwise."""
        if not self.passed:
            raise VerificationError(self)
        return self


class VerificationError(AssertionError):
    """Raised by :func:`verify_accountant` when a check fails; ``report`` holds the details."""

    def __init__(self, report: VerificationReport):
        super().__init__(str(report))
        self.report = report


def verify_accountant(
    fn: Callable[..., Any],
    kind: Kind = "epsilon",
    *,
    delta_fn: Callable[..., float] | None = None,
    epsilon_fn: Callable[..., float] | None = None,
    rdp_epsilon: Callable[..., float] | None = None,
    orders: Sequence[float] | None = None,
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
    fn : callable
        The accountant under test, of the form named by ``kind``.
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
        The user's Rényi orders (default :data:`accounting.DEFAULT_ORDERS`), for the epsilon
        and delta reference checks.
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
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    common = {"max_examples": max_examples, "seed": seed, "raise_on_failure": False}
    shape = {**common, "rtol": shape_rtol}
    few = {**common, "max_examples": max(1, (2 * max_examples) // 3)}
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
                fn, orders=orders, conversion=conversion, rtol=reference_rtol, exact=exact,
                **few))
        else:
            add("eps(tight accountant) <= eps(RDP)", lambda: props.check_pld_below_rdp(
                fn, rdp_epsilon, rtol=reference_rtol, **common))
        if delta_fn is not None:
            add("round trip", lambda: props.check_round_trip(
                fn, delta_fn, rtol=reference_rtol, **common))
    elif kind == "delta":
        for argument in ("q", "sigma", "steps", "epsilon"):
            add(f"delta monotone in {argument}",
                lambda argument=argument: props.check_delta_monotone(fn, argument, **shape))
        add("delta agrees", lambda: props.check_delta_reference(
            fn, orders=orders, conversion=conversion, rtol=reference_rtol, **few))
        if epsilon_fn is not None:
            add("round trip", lambda: props.check_round_trip(
                epsilon_fn, fn, rtol=reference_rtol, **common))
    else:
        add("composition", lambda: props.check_composition(fn, **shape))

    results = [run() for name, run in checks if not any(part in name for part in skip)]
    label = getattr(fn, "__qualname__", None) or repr(fn)
    report = VerificationReport(label, kind, results)
    if raise_on_failure:
        report.raise_if_failed()
    return report
