"""A privacy ledger: every DP-SGD step actually taken, composed as an event in an accountant.

:meth:`PrivacyLedger.record` records the Poisson DP-SGD step ``PoissonSampled(q,
Gaussian(sigma))`` (Abadi et al. 2016; Mironov, Talwar and Zhang 2019), and
:meth:`PrivacyLedger.record_event` any event: the trainers record the event of the sampler they
used (:mod:`dpsgd_kernels.sampling`), after :func:`check_accounts_for` has refused, before any
step, an accountant that cannot compose it. The events are composed in an
:class:`accounting.Accountant`: the Rényi-DP accountant by default, or any registered one by
name (``"pld"`` for certified two-sided brackets) or an instance. The ledger answers "how much
has been spent" and "would one more step exceed the budget", so a trainer can stop *before* the
step that would exceed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import accounting
from accounting.events import Event, Gaussian, PoissonSampled
from accounting.registry import accountant_info
from dpsgd_kernels._validation import check_finite_positive

__all__ = [
    "LEDGER_STATE_FORMAT",
    "BudgetExceededError",
    "PrivacyLedger",
    "accountants_for",
    "check_accounts_for",
    "make_ledger_accountant",
    "relation_options",
    "relation_text",
    "sampler_accountant",
]

#: Version of the layout written by :meth:`PrivacyLedger.state_dict`.
LEDGER_STATE_FORMAT = 1


class BudgetExceededError(RuntimeError):
    """Raised by :meth:`PrivacyLedger.record` when a step would exceed ``target_epsilon``."""


def make_ledger_accountant(
    accountant: str | accounting.Accountant = "rdp",
    orders=None,
    conversion: str | None = None,
    **accountant_options: Any,
) -> accounting.Accountant:
    """The accountant a ledger composes into: ``accountant`` itself if it is an instance (then
    no option may be given), else :func:`accounting.make_accountant` of the name and options."""
    if isinstance(accountant, accounting.Accountant):
        given = [name for name, value in (("orders", orders), ("conversion", conversion))
                 if value is not None] + sorted(accountant_options)
        if given:
            raise TypeError(
                f"{', '.join(given)} configure an accountant made by name; with an accountant "
                f"instance ({type(accountant).__name__}) pass them to its constructor"
            )
        return accountant
    if not isinstance(accountant, str):
        raise TypeError(
            "accountant must be a registered accountant name "
            f"{accounting.accountants()} or an accounting.Accountant, "
            f"got {type(accountant).__name__}"
        )
    return accounting.make_accountant(
        accountant, conversion=conversion, orders=orders, **accountant_options
    )


_RELATION_TEXT = {"add_remove": "add/remove", "replace_one": "replace-one",
                  "zero_out": "zero-out"}


def relation_text(neighboring: str) -> str:
    """``"replace_one"`` as ``"replace-one"`` (and so on), for reports."""
    return _RELATION_TEXT.get(neighboring, neighboring)


def relation_options(name: str, neighboring: str) -> dict[str, str] | None:
    """Options that make the registered accountant ``name`` account for ``neighboring``
    neighbours: ``{"neighboring": "replace_one"}`` for replace-one, none otherwise (add/remove
    accountants also bound zero-out), ``None`` if the accountant has no replace-one mode."""
    if neighboring != "replace_one":
        return {}
    if not accountant_info(name).accepts("neighboring"):
        return None
    return {"neighboring": "replace_one"}


def accountants_for(event: Event, neighboring: str) -> tuple[str, ...]:
    """Registered accountants that compose ``event`` when made for ``neighboring`` neighbours
    (with :func:`relation_options`)."""
    names = []
    for name in accounting.accountants():
        options = relation_options(name, neighboring)
        if options is None:
            continue
        try:
            if accounting.make_accountant(name, **options).supports(event):
                names.append(name)
        except Exception:  # noqa: BLE001 - a third-party factory failing is not our answer
            continue
    return tuple(names)


def check_accounts_for(
    accountant: accounting.Accountant, event: Event, *, sampling: str, neighboring: str
) -> None:
    """Refuse, before any step, a sampler whose ``event`` ``accountant`` cannot compose.

    Raises :class:`accounting.UnsupportedEventError` naming the sampler, the accountant, its
    reason and the registered accountants that can (made for ``neighboring`` neighbours); a
    trainer must never report another sampler's (e.g. the Poisson) epsilon instead.
    """
    if accountant.supports(event):
        return
    try:
        # the accountant's own reason, without the registry's list (made from add/remove
        # instances, which is not the list for a replace-one sampler)
        accountant._plan(event, 1)
        reason = "it does not compose it"
    except accounting.UnsupportedEventError as error:
        reason = str(error)
    able = list(accountants_for(event, neighboring))
    made = " (made with neighboring='replace_one')" if neighboring == "replace_one" else ""
    who = (f"accountants that can: {able}{made}" if able
           else "no registered accountant can yet")
    name = accountant.name or type(accountant).__name__
    message = (
        f"sampling={sampling!r} is accounted as {event!r} ({relation_text(neighboring)} "
        f"neighbours), which the {name!r} accountant ({type(accountant).__name__}, "
        f"neighboring={accountant.neighboring!r}) cannot account for: {reason}; {who}. "
        "No other sampler's epsilon is reported in its place."
    )
    raise accounting.UnsupportedEventError(message[:2000])


def sampler_accountant(
    accountant: str | accounting.Accountant,
    neighboring: str,
    *,
    sampling: str,
    orders=None,
    conversion: str | None = None,
    **accountant_options: Any,
) -> accounting.Accountant:
    """:func:`make_ledger_accountant` for a sampler whose guarantee is for ``neighboring``
    neighbours: a name is made with ``neighboring="replace_one"`` for a replace-one sampler
    (fixed-size batches); an instance is used as it is (:func:`check_accounts_for` refuses it
    when training starts if it cannot compose the sampler's event).

    Raises :class:`accounting.UnsupportedEventError` if the named accountant has no replace-one
    mode.
    """
    if isinstance(accountant, str):
        extra = relation_options(accountant, neighboring)
        if extra is None:
            able = [name for name in accounting.accountants()
                    if relation_options(name, neighboring) is not None]
            raise accounting.UnsupportedEventError(
                f"sampling={sampling!r} is accounted for {relation_text(neighboring)} "
                f"neighbours, and the {accountant!r} accountant has no neighboring option; "
                f"accountants that can be made for them: {able}"
            )
        accountant_options = {**extra, **accountant_options}
    return make_ledger_accountant(accountant, orders, conversion, **accountant_options)


def _check_delta(delta) -> float:
    delta = check_finite_positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta must lie in the open interval (0, 1), got {delta!r}")
    return delta


def _check_target(target_epsilon) -> float | None:
    if target_epsilon is None:
        return None
    return check_finite_positive(target_epsilon, "target_epsilon")


def _dpsgd_step(sample_rate: float, noise_multiplier: float) -> PoissonSampled:
    return PoissonSampled(sample_rate, Gaussian(noise_multiplier))


class PrivacyLedger:
    """Composes the events recorded and reports epsilon at a fixed ``delta``.

    Parameters
    ----------
    delta : float
        Target delta in ``(0, 1)``.
    target_epsilon : float, optional
        Budget; :meth:`record` and :meth:`record_event` refuse what would take epsilon above it.
    orders, conversion
        Options of the RDP accountant (as in earlier versions): passed to
        :func:`accounting.make_accountant` with ``accountant``'s name (``orders`` is an RDP-only
        option; ``conversion=None`` is the accountant's default, ``"improved"`` for RDP).
    accountant : str or accounting.Accountant
        A registry name (``"rdp"``, the default, ``"moments"``, ``"pld"`` or a third-party
        one, see :func:`accounting.accountants`) made with ``accountant_options``, or an
        accountant instance. An instance is composed into as it is, not copied: one that holds
        a history already (e.g. restored with ``load_state_dict``) continues it.
    **accountant_options
        Keyword options of the named accountant (e.g. ``tolerance=1e-4`` for ``"pld"``).

    With a :class:`accounting.TightAccountant` (``"pld"``) :attr:`epsilon` is the certified
    upper bound of the bracket, and :attr:`epsilon_bounds` the whole bracket.
    """

    def __init__(
        self,
        delta: float,
        target_epsilon: float | None = None,
        orders=None,
        conversion: str | None = None,
        *,
        accountant: str | accounting.Accountant = "rdp",
        **accountant_options: Any,
    ):
        self.delta = _check_delta(delta)
        self.target_epsilon = _check_target(target_epsilon)
        self.accountant = make_ledger_accountant(accountant, orders, conversion,
                                                 **accountant_options)
        self._epsilon_cache: tuple[Any, float] | None = None
        # the last trial (what the accountant held, event, count) -> epsilon, so that
        # can_afford followed by record composes and converts once
        self._trial_cache: tuple[Any, float] | None = None

    # ----------------------------------------------------------------- what was spent
    @property
    def neighboring(self) -> str:
        """Neighbouring relation of the accountant's guarantee (``"add_remove"`` or
        ``"replace_one"``)."""
        return self.accountant.neighboring

    def _key(self) -> tuple:
        """Changes whenever the accountant's history does (also when composed into directly)."""
        history = self.accountant.history
        return (len(history), history[-1] if history else None)

    @property
    def steps(self) -> int:
        """Number of steps recorded: the accountant's ``steps`` (every Gaussian release) if it
        counts them, else the sum of the history's counts."""
        steps = getattr(self.accountant, "steps", None)
        if isinstance(steps, int):
            return steps
        return sum(record.count for record in self.accountant.history)

    @property
    def history(self) -> list[accounting.CompositionRecord]:
        """The accountant's history: ``CompositionRecord(event, count)``, consecutive repeats
        merged; a step reads back as ``.sample_rate``, ``.noise_multiplier``, ``.steps``."""
        return self.accountant.history

    @property
    def ledger(self) -> Event:
        """Everything recorded as one event (``Composed`` of the history's events)."""
        return self.accountant.ledger

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta` (0 before anything is recorded); the certified
        upper bound for a :class:`accounting.TightAccountant`."""
        key = self._key()
        if key[0] == 0:
            return 0.0
        if self._epsilon_cache is None or self._epsilon_cache[0] != key:
            self._epsilon_cache = (key, float(self.accountant.get_epsilon(self.delta)))
        return self._epsilon_cache[1]

    @property
    def epsilon_bounds(self):
        """Certified ``(lower, upper, ...)`` bracket of epsilon at :attr:`delta`
        (:class:`accounting.EpsilonBounds` for ``"pld"``); ``None`` unless the accountant is a
        :class:`accounting.TightAccountant`."""
        if not isinstance(self.accountant, accounting.TightAccountant):
            return None
        return self.accountant.get_epsilon_bounds(self.delta)

    # ----------------------------------------------------------------- what more would cost
    def epsilon_after_event(self, event: Event, count: int = 1) -> float:
        """Epsilon if ``event`` were recorded ``count`` more times (nothing is recorded).

        Raises :class:`accounting.UnsupportedEventError` if the accountant cannot compose it.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an accounting event, got {type(event).__name__}")
        trial_key = (self._key(), event, count)
        if self._trial_cache is None or self._trial_cache[0] != trial_key:
            trial = self.accountant.copy().compose(event, count)
            self._trial_cache = (trial_key, float(trial.get_epsilon(self.delta)))
        return self._trial_cache[1]

    def epsilon_after(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> float:
        """Epsilon if ``steps`` more steps with ``(sample_rate, noise_multiplier)`` were taken."""
        return self.epsilon_after_event(_dpsgd_step(sample_rate, noise_multiplier), steps)

    def can_afford_event(self, event: Event, count: int = 1) -> bool:
        """Whether ``count`` more ``event`` keep epsilon within ``target_epsilon`` (always,
        without a budget, for an event the accountant composes)."""
        if self.target_epsilon is None:
            if not isinstance(event, Event):
                raise TypeError(f"event must be an accounting event, got {type(event).__name__}")
            if not self.accountant.supports(event):
                # the same error compose raises, naming the accountants that handle it
                self.accountant.copy().compose(event, count)
            return True
        return self.epsilon_after_event(event, count) <= self.target_epsilon

    def can_afford(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> bool:
        """Whether the steps keep epsilon within ``target_epsilon`` (always, without a budget)."""
        if self.target_epsilon is None:
            return True
        return self.epsilon_after(sample_rate, noise_multiplier, steps) <= self.target_epsilon

    # ----------------------------------------------------------------- recording
    def record_event(self, event: Event, count: int = 1) -> None:
        """Compose ``event`` ``count`` times, all or nothing.

        Raises
        ------
        BudgetExceededError
            If it would take epsilon above ``target_epsilon``.
        accounting.UnsupportedEventError
            If the accountant cannot compose ``event`` (or a part of it).
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an accounting event, got {type(event).__name__}")
        if self.target_epsilon is not None:
            after = self.epsilon_after_event(event, count)
            if not after <= self.target_epsilon:
                raise BudgetExceededError(
                    f"{event!r} composed {count} more time(s) would take epsilon to "
                    f"{after:.6g}, above target_epsilon={self.target_epsilon} at "
                    f"delta={self.delta}"
                )
            self.accountant.compose(event, count)
            self._epsilon_cache = (self._key(), after)
        else:
            self.accountant.compose(event, count)

    def record(self, sample_rate: float, noise_multiplier: float, steps: int = 1) -> None:
        """Compose ``steps`` DP-SGD steps ``PoissonSampled(sample_rate,
        Gaussian(noise_multiplier))``; raises :class:`BudgetExceededError` past the budget."""
        event = _dpsgd_step(sample_rate, noise_multiplier)
        if self.target_epsilon is not None and not self.can_afford_event(event, steps):
            raise BudgetExceededError(
                f"{steps} more step(s) with sample_rate={sample_rate}, "
                f"noise_multiplier={noise_multiplier} would exceed target_epsilon="
                f"{self.target_epsilon} at delta={self.delta}"
            )
        self.record_event(event, steps)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """``delta``, ``target_epsilon`` and the accountant's ``state_dict()`` (JSON types)."""
        return {
            "format": LEDGER_STATE_FORMAT,
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "accountant": self.accountant.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> PrivacyLedger:
        """Restore :meth:`state_dict`'s output (or a bare accountant ``state_dict``, which keeps
        ``delta`` and ``target_epsilon``); returns ``self``.

        The accountant restores in place (:meth:`accounting.Accountant.load_state_dict`), so
        the state must come from the same kind of accountant (``ValueError`` otherwise).
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        if isinstance(state.get("accountant"), Mapping):
            if state.get("format") != LEDGER_STATE_FORMAT:
                raise ValueError(f"ledger state format must be {LEDGER_STATE_FORMAT}, "
                                 f"got {state.get('format')!r}")
            delta = _check_delta(state.get("delta"))
            target = _check_target(state.get("target_epsilon"))
            self.accountant.load_state_dict(state["accountant"])
            self.delta, self.target_epsilon = delta, target
        else:
            self.accountant.load_state_dict(state)
        self._epsilon_cache = self._trial_cache = None
        return self

    def __repr__(self) -> str:
        name = self.accountant.name or type(self.accountant).__name__
        return (f"PrivacyLedger(accountant={name!r}, steps={self.steps}, "
                f"epsilon={self.epsilon:.4g}, delta={self.delta})")
