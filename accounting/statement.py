"""A privacy statement for a DP-SGD run: every figure with the sampler and assumption it rests on.

:func:`privacy_statement` is this package's counterpart of TF Privacy's
``compute_dp_sgd_privacy_statement`` (tensorflow-privacy 0.9): the inputs, the neighbouring
relation, and epsilon for the batch sampler the run used, beside the figures TF Privacy prints
("each example once per epoch", "assuming Poisson sampling", user-level by group privacy), each
labelled with what it assumes. A figure for one sampler is never reported as another's: where an
accountant cannot account for the sampler used, its line says "not available" and why.

Which figures are computed
--------------------------
* RDP figures (with their order) for every quantity that has an RDP analysis: milliseconds for
  any input, and TF Privacy's method (equal to its numbers with ``orders`` set to
  dp_accounting's default orders; the default orders of this package are a superset, so never
  larger).
* With ``accountant`` other than ``"rdp"``, each example-level quantity also gets that
  accountant's figure: for ``"pld"`` a certified bracket ``[lower, upper]``. PLD costs up to
  seconds per query (within the PLD accountant's fixed work budget), so it is asked for rather
  than always computed.
* User-level figures (``max_examples_per_user`` given): group privacy (Vadhan 2017, Lemma 2.2,
  :func:`accounting.group_privacy_epsilon`) of every example-level RDP upper bound, as TF
  Privacy does; the tight mixture-of-Gaussians bracket for Poisson sampling
  (:func:`accounting.user_level_epsilon_bounds`, certified PLD; on by default, off with
  ``user_level_pld=False``); and, where each
  example is used once per epoch, the Gaussian mechanism with the user's ``k`` clipping norms as
  sensitivity (a user's ``k`` examples move an epoch's releases by at most ``k C`` in total).

Samplers and relations (:func:`accounting.dpsgd_run`)
------------------------------------------------------
``"poisson"`` and ``"truncated"``: add-or-remove-one. ``"fixed"``: replace-one, with
``SampledWithoutReplacement(n, b, Gaussian(sigma / 2))``: replacing one example moves a DP-SGD
sum of gradients clipped to norm ``C`` by up to ``2 C``. ``"shuffle"``: each example once per
epoch, one Gaussian release per epoch for the zero-out relation (TF Privacy's "once per epoch"
line), with the lower bound of Chua et al. 2024 for shuffled batches
(:func:`accounting.shuffle_lower_bound`) beside it. ``"balls-in-bins"``: ``n // b`` steps per
epoch, each example in one of them (:class:`accounting.events.RandomAllocation`), add-or-remove;
each example is used once per epoch there too, so the once-per-epoch figure also holds.

Microbatching (``used_microbatching=True``): TF Privacy's rule. A microbatch's gradient is clipped
as a whole, so adding or removing one example moves it by up to ``2 C``: the add-or-remove and
zero-out figures use ``sigma / 2`` (``compute_dp_sgd_privacy_lib``; "How to DP-fy ML",
arXiv:2303.00654, Section 5.6). A replace-one figure already counts ``2 C`` per replaced example,
with or without microbatches, so the fixed-size figure is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
import warnings

import numpy as np

from accounting._validation import check_delta, check_orders, check_positive, check_positive_int
from accounting.accountant import Accountant, TightAccountant, UnsupportedEventError
from accounting.events import Event, Gaussian
from accounting.pld.accountant import ToleranceNotMetWarning
from accounting.registry import accountant_info, accountants, make_accountant
from accounting.sampling import DpsgdRun, check_sampling, dpsgd_run
from accounting.user_level import (
    MAX_EXAMPLES_PER_USER_MOG,
    group_privacy_epsilon,
    user_level_epsilon_bounds,
)

__all__ = ["PrivacyStatement", "StatementLine", "privacy_statement"]

_RELATION_TEXT = {
    "add_remove": "add-or-remove-one",
    "replace_one": "replace-one",
    "zero_out": "zero-out",
}

_SAMPLER_TEXT = {
    "poisson": "Poisson sampling (each example joins each step independently with probability "
               "{b}/{n})",
    "shuffle": "shuffled batches (each epoch a fresh permutation cut into {t} batches: each "
               "example used once per epoch)",
    "fixed": "fixed-size batches ({b} examples drawn without replacement for each step)",
    "truncated": "truncated Poisson sampling (Poisson batches of expected size {b} cut to at most "
                 "{cap} examples)",
    "balls-in-bins": "balls-in-bins batches ({t} steps per epoch, each example in one uniformly "
                     "random step of each epoch)",
}

_POISSON_ASSUMPTION = "if batches were Poisson-sampled"
_FOOTNOTE = (
    "(*) The batches of this run were not Poisson-sampled: these figures assume they were and "
    "are not a guarantee for this run. Chua et al. (\"How private are DP-SGD implementations?\", "
    "ICML 2024) show that the epsilon of shuffled batches can be several times the Poisson "
    "figure."
)


@dataclasses.dataclass(frozen=True)
class StatementLine:
    """One figure of a :class:`PrivacyStatement`.

    Attributes
    ----------
    key : str
        Stable identifier: the quantity (``"poisson"``, ``"once_per_epoch"``, ``"fixed"``,
        ``"truncated"``, ``"balls-in-bins"``, ``"shuffle_lower_bound"``, ``"user_mog"``,
        ``"user_once_per_epoch"``, ``"user_group:<key>"`` for group privacy of line ``<key>``),
        with ``"_<accountant>"`` appended for a non-RDP accountant's figure (``"poisson_pld"``).
    level : {"example", "user"}
    description : str
        What the figure is, in words.
    sampling : str
        The sampler whose analysis gives the figure.
    neighboring : {"add_remove", "replace_one", "zero_out"}
        Relation of the figure (for user-level lines: of the user's whole data).
    method : str
        How it was computed (``"RDP"``, ``"PLD"``, ``"group privacy of RDP"``, ...).
    guarantee : bool
        Whether ``epsilon`` is a certified upper bound for the run as trained.
    epsilon : float or None
        Upper bound on epsilon (the upper end of a bracket); ``None`` for a lower bound alone or
        a figure not available.
    lower : float or None
        A lower bound on the analysed mechanism's epsilon (the lower end of a certified PLD
        bracket, or Chua et al.'s lower bound), if known.
    order : float or None
        The Rényi order attaining an RDP figure.
    assumption : str or None
        What the figure assumes beyond the run (``"if batches were Poisson-sampled"``).
    unavailable : str or None
        Why the figure is not available (then ``epsilon`` and ``lower`` are ``None``).
    """

    key: str
    level: str
    description: str
    sampling: str
    neighboring: str
    method: str
    guarantee: bool
    epsilon: float | None = None
    lower: float | None = None
    order: float | None = None
    assumption: str | None = None
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        """Whether the figure was computed."""
        return self.unavailable is None

    def value_text(self) -> str:
        """The figure as the statement prints it."""
        if self.unavailable is not None:
            return f"not available: {self.unavailable}"
        if self.epsilon is None:
            return f">= {_number(self.lower)}"
        if self.lower is not None:
            return f"[{_number(self.lower)}, {_number(self.epsilon)}]"
        if self.order is not None:
            return f"{_number(self.epsilon)} (order {self.order:g})"
        return _number(self.epsilon)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3f}"


@dataclasses.dataclass(frozen=True)
class PrivacyStatement:
    """What a DP-SGD run's privacy is, under which assumptions (:func:`privacy_statement`).

    Attributes
    ----------
    sample_size, batch_size, epochs, noise_multiplier, delta, sampling, used_microbatching,
    max_examples_per_user, accountant, max_batch_size :
        The inputs.
    effective_noise_multiplier : float
        The noise multiplier the add-or-remove and zero-out figures use (``sigma / 2`` with
        microbatching, TF Privacy's rule).
    steps : int
        Training steps of the run (for ``"shuffle"`` and ``"balls-in-bins"``, whole epochs).
    neighboring : {"add_remove", "replace_one", "zero_out"}
        Relation of the guarantee for the sampler used.
    lines : tuple of StatementLine
        Every figure, in the order the text prints them.
    """

    sample_size: int
    batch_size: int
    epochs: float
    noise_multiplier: float
    delta: float
    sampling: str
    used_microbatching: bool
    max_examples_per_user: int | None
    accountant: str
    max_batch_size: int | None
    effective_noise_multiplier: float
    steps: int
    neighboring: str
    lines: tuple[StatementLine, ...]

    def line(self, key: str) -> StatementLine:
        """The line with ``key`` (``KeyError`` listing the keys if there is none)."""
        for item in self.lines:
            if item.key == key:
                return item
        raise KeyError(f"no line {key!r}; lines: {[item.key for item in self.lines]}")

    def keys(self) -> tuple[str, ...]:
        """Keys of the lines, in order."""
        return tuple(item.key for item in self.lines)

    @property
    def epsilon(self) -> float | None:
        """Smallest certified example-level epsilon for the run as trained (``None`` if no
        line gives one)."""
        return _smallest(self.lines, "example")

    @property
    def user_epsilon(self) -> float | None:
        """Smallest certified user-level epsilon for the run as trained (``None`` if none)."""
        return _smallest(self.lines, "user")

    @property
    def text(self) -> str:
        """The statement in words, in the spirit of TF Privacy's."""
        return _render(self)

    def __str__(self) -> str:
        return self.text


def _smallest(lines, level: str) -> float | None:
    values = [item.epsilon for item in lines
              if item.level == level and item.guarantee and item.epsilon is not None]
    return min(values) if values else None


@dataclasses.dataclass
class _Figure:
    """An accountant's answer for one event, or why there is none."""

    epsilon: float | None = None
    lower: float | None = None
    order: float | None = None
    unavailable: str | None = None
    ledger: Accountant | None = None
    method: str = ""


def _options_for(name: str, neighboring: str, orders, tolerance: float) -> dict | str:
    """Keyword options of accountant ``name`` for ``neighboring``, or why it has none."""
    info = accountant_info(name)
    options: dict = {}
    if neighboring == "replace_one":
        if not info.accepts("neighboring"):
            return f"the {name!r} accountant has no replace-one relation"
        options["neighboring"] = "replace_one"
    if orders is not None and name == "rdp":
        options["orders"] = orders
    if name == "pld":
        options["tolerance"] = tolerance
    return options


def _account(event: Event, count: int, name: str, neighboring: str, delta: float, orders,
             tolerance: float) -> _Figure:
    """``event`` composed ``count`` times in accountant ``name`` at ``delta``."""
    options = _options_for(name, neighboring, orders, tolerance)
    method = "PLD" if name == "pld" else name.upper() if name == "rdp" else name
    if isinstance(options, str):
        return _Figure(unavailable=options, method=method)
    try:
        ledger = make_accountant(name, **options)
    except (TypeError, ValueError) as error:  # e.g. an RDP accountant without replace-one yet
        return _Figure(unavailable=f"the {name!r} accountant cannot be built for the "
                                   f"{_RELATION_TEXT[neighboring]} relation ({error})",
                       method=method)
    try:
        ledger.compose(event, count)
    except UnsupportedEventError:
        return _Figure(unavailable=_unsupported(event, name, neighboring, orders, tolerance),
                       method=method)
    with warnings.catch_warnings():  # a wide bracket is still certified; it is printed as is
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        if isinstance(ledger, TightAccountant):
            bounds = ledger.get_epsilon_bounds(delta)
            return _Figure(float(bounds[1]), float(bounds[0]), ledger=ledger, method=method)
        if hasattr(ledger, "get_epsilon_and_order"):
            epsilon, order = ledger.get_epsilon_and_order(delta)
            return _Figure(float(epsilon), order=float(order), ledger=ledger, method=method)
        return _Figure(float(ledger.get_epsilon(delta)), ledger=ledger, method=method)


def _unsupported(event: Event, name: str, neighboring: str, orders, tolerance) -> str:
    """Why ``name`` has no figure for ``event``, naming the accountants that have one."""
    others = []
    for other in accountants():
        if other == name:
            continue
        options = _options_for(other, neighboring, orders, tolerance)
        if isinstance(options, str):
            continue
        try:
            if make_accountant(other, **options).supports(event):
                others.append(other)
        except Exception:  # noqa: BLE001 - a broken third-party accountant must not hide the answer
            continue
    unit = type(event).__name__
    who = (f"accountant={others[0]!r} has one" if len(others) == 1
           else f"accountants {others} have one" if others else "no registered accountant has one")
    return (f"the {name!r} accountant does not account for {unit} under "
            f"{_RELATION_TEXT[neighboring]} neighbours ({who})")


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def privacy_statement(
    sample_size: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float,
    *,
    sampling: str = "poisson",
    used_microbatching: bool = False,
    max_examples_per_user: int | None = None,
    accountant: str = "rdp",
    max_batch_size: int | None = None,
    orders=None,
    pld_tolerance: float = 1e-3,
    user_level_pld: bool = True,
) -> PrivacyStatement:
    """The privacy statement of a DP-SGD run (see the module docstring for every figure).

    Parameters
    ----------
    sample_size : int
        Training examples ``n >= 1``.
    batch_size : int
        (Expected) examples per step ``b`` in ``[1, n]``, however they are grouped into
        microbatches.
    epochs : float
        Passes over the data, a finite number ``>= 0``; ``steps = ceil(epochs n / b)`` for the
        step samplers, ``ceil(epochs)`` whole epochs for ``"shuffle"`` and ``"balls-in-bins"``.
    noise_multiplier : float
        Noise standard deviation over the clipping norm, ``sigma > 0``.
    delta : float
        Target delta in ``(0, 1)`` (example-level and user-level alike).
    sampling : {"poisson", "shuffle", "fixed", "truncated", "balls-in-bins"}
        The batch sampler the run used.
    used_microbatching : bool
        Whether gradients were clipped per microbatch of more than one example (TF Privacy's
        rule: add-or-remove and zero-out figures use ``sigma / 2``).
    max_examples_per_user : int, optional
        ``k`` in ``[1, n]``: the most examples one user contributes; adds user-level figures.
    accountant : str
        A registered accountant (:func:`accounting.accountants`). RDP figures are always given;
        another accountant adds its own figure for each example-level quantity (``"pld"``: a
        certified bracket).
    max_batch_size : int, optional
        The batch cap ``B >= 1`` of ``sampling="truncated"`` (required there, refused otherwise).
    orders : array_like, optional
        Rényi orders of the RDP figures (:data:`accounting.DEFAULT_ORDERS` by default; pass
        dp_accounting's default orders to reproduce TF Privacy's numbers exactly).
    pld_tolerance : float
        Target width of PLD brackets (default ``1e-3``), user-level MoG bracket included.
    user_level_pld : bool
        Whether to give the tight mixture-of-Gaussians user-level bracket (certified PLD, up to
        seconds; default ``True``). ``False`` leaves the line out: the user-level figures are
        then RDP's alone, milliseconds for any input.

    Returns
    -------
    PrivacyStatement
        Structured lines and their text (``str(statement)``).
    """
    sampling = check_sampling(sampling)
    microbatching = _check_bool(used_microbatching, "used_microbatching")
    mixture = _check_bool(user_level_pld, "user_level_pld")
    delta = check_delta(delta)
    accountant_info(accountant)  # names the registered accountants if unknown
    tolerance = check_positive(pld_tolerance, "pld_tolerance")
    if orders is not None:
        orders = check_orders(orders).tolist()
    run = dpsgd_run(sample_size, batch_size, noise_multiplier, epochs=epochs, sampling=sampling,
                    max_batch_size=max_batch_size)
    n, b, sigma = int(sample_size), int(batch_size), float(noise_multiplier)
    k = (None if max_examples_per_user is None
         else check_positive_int(max_examples_per_user, "max_examples_per_user", n))
    effective = sigma / 2.0 if microbatching else sigma
    if microbatching and run.neighboring != "replace_one":
        run = run.with_noise(effective)
    poisson = dpsgd_run(n, b, effective, epochs=epochs)
    builder = _Builder(delta, accountant, orders, tolerance)

    # example level: the sampler used, then what TF Privacy prints beside it
    sampler_key = "once_per_epoch" if sampling == "shuffle" else sampling
    if sampling == "poisson":
        builder.example("poisson", poisson, "Poisson sampling, as trained", guarantee=True)
    elif sampling == "shuffle":
        builder.example("once_per_epoch", run, "Shuffled batches, as trained: each example once "
                        "per epoch, one Gaussian release per epoch", guarantee=True)
        builder.shuffle_lower_bound(run, effective)
    else:
        label = {"fixed": "Fixed-size batches, as trained",
                 "truncated": "Truncated Poisson sampling, as trained",
                 "balls-in-bins": "Balls-in-bins batches, as trained"}[sampling]
        builder.example(sampler_key, run, label, guarantee=True)
    if sampling == "balls-in-bins":
        epoch_run = dataclasses.replace(run, unit_event=Gaussian(effective), unit="epoch")
        builder.example("once_per_epoch", epoch_run, "Balls-in-bins batches, as trained: each "
                        "example once per epoch, one Gaussian release per epoch", guarantee=True)
    if sampling != "poisson":
        builder.example("poisson", poisson, "If batches were Poisson-sampled (*)",
                        guarantee=False, assumption=_POISSON_ASSUMPTION)

    # user level
    if k is not None:
        for item in [line for line in builder.lines if line.level == "example"]:
            if item.method == "RDP" and item.epsilon is not None:
                builder.group_privacy(item, k)
            elif item.method == "RDP":
                builder.unavailable_user(item, k)
        if sampling in ("shuffle", "balls-in-bins"):
            builder.user_once_per_epoch(run, effective, k)
        if mixture:
            builder.user_mog(poisson, effective, k, guarantee=sampling == "poisson")

    return PrivacyStatement(
        sample_size=n, batch_size=b, epochs=epochs, noise_multiplier=sigma, delta=delta,
        sampling=sampling, used_microbatching=microbatching, max_examples_per_user=k,
        accountant=accountant, max_batch_size=None if max_batch_size is None
        else int(max_batch_size), effective_noise_multiplier=effective, steps=run.steps,
        neighboring=run.neighboring, lines=tuple(builder.lines),
    )


class _Builder:
    """Collects the lines of one statement."""

    def __init__(self, delta: float, accountant: str, orders, tolerance: float):
        self.delta = delta
        self.accountant = accountant
        self.orders = orders
        self.tolerance = tolerance
        self.lines: list[StatementLine] = []
        self._ledgers: dict[str, Accountant] = {}

    def _names(self) -> list[str]:
        return ["rdp"] if self.accountant == "rdp" else ["rdp", self.accountant]

    def example(self, key: str, run: DpsgdRun, label: str, *, guarantee: bool,
                assumption: str | None = None) -> None:
        for name in self._names():
            figure = _account(run.unit_event, run.count, name, run.neighboring, self.delta,
                              self.orders, self.tolerance)
            line_key = key if name == "rdp" else f"{key}_{name}"
            self.lines.append(StatementLine(
                line_key, "example", label, run.sampling, run.neighboring, figure.method,
                guarantee,
                figure.epsilon, figure.lower, figure.order, assumption, figure.unavailable,
            ))
            if figure.ledger is not None:
                self._ledgers[line_key] = figure.ledger

    def shuffle_lower_bound(self, run: DpsgdRun, effective: float) -> None:
        lower, reason = None, None
        try:
            from accounting.shuffle import shuffle_lower_bound
        except ImportError:
            reason = "accounting.shuffle (Chua et al.'s lower bound) is not installed"
        else:
            try:
                bound = shuffle_lower_bound(run.unit_event.batches, effective, run.count,
                                            self.delta)
                # a ShuffleLowerBound record (its certified epsilon) or a plain number
                lower = float(getattr(bound, "epsilon", bound))
            except (UnsupportedEventError, ValueError) as error:
                reason = str(error)[:300]
        self.lines.append(StatementLine(
            "shuffle_lower_bound", "example",
            "Shuffled batches, lower bound of Chua et al. 2024 (no upper bound for this run can "
            "be smaller)", "shuffle", run.neighboring, "lower bound", False,
            None, lower, None, None, reason,
        ))

    def group_privacy(self, item: StatementLine, k: int) -> None:
        ledger = self._ledgers[item.key]
        epsilon = group_privacy_epsilon(ledger, k, self.delta)
        self.lines.append(StatementLine(
            f"user_group:{item.key}", "user", _group_label(item.description), item.sampling,
            item.neighboring, "RDP", item.guarantee, epsilon, None, None, item.assumption, None,
        ))

    def unavailable_user(self, item: StatementLine, k: int) -> None:
        self.lines.append(StatementLine(
            f"user_group:{item.key}", "user", _group_label(item.description), item.sampling,
            item.neighboring, "RDP", item.guarantee, None, None, None, item.assumption,
            f"no example-level RDP figure to convert ({item.unavailable})",
        ))

    def user_once_per_epoch(self, run: DpsgdRun, effective: float, k: int) -> None:
        # a user's k examples move one epoch's releases by at most k clipping norms in total
        # (sqrt of the sum of squares of per-step shifts summing to at most k): Gaussian(s / k)
        sigma_user = effective / k
        for name in self._names():
            line_key = "user_once_per_epoch" if name == "rdp" else f"user_once_per_epoch_{name}"
            try:
                event = Gaussian(sigma_user)
            except ValueError as error:  # noise / k below the float range
                figure = _Figure(unavailable=str(error), method=name)
            else:
                figure = _account(event, run.count, name, "add_remove", self.delta, self.orders,
                                  self.tolerance)
            relation = "zero_out" if run.sampling == "shuffle" else "add_remove"
            self.lines.append(StatementLine(
                line_key, "user", f"{_SAMPLER_NAME[run.sampling]}, as trained: each example "
                "once per epoch, a user's k examples one Gaussian release per epoch of k times "
                "the sensitivity", run.sampling, relation,
                figure.method, True, figure.epsilon, figure.lower, figure.order, None,
                figure.unavailable,
            ))

    def user_mog(self, poisson: DpsgdRun, effective: float, k: int, *, guarantee: bool) -> None:
        rate = poisson.unit_event.sample_rate
        lower = upper = reason = None
        if k > MAX_EXAMPLES_PER_USER_MOG:
            reason = (f"the mixture step holds at most {MAX_EXAMPLES_PER_USER_MOG} examples per "
                      f"user, got {k}")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ToleranceNotMetWarning)
                    bounds = user_level_epsilon_bounds(rate, effective, poisson.count,
                                                       self.delta, k, tolerance=self.tolerance)
                lower, upper = float(bounds[0]), float(bounds[1])
            except UnsupportedEventError:
                reason = ("the 'pld' accountant does not account for MixtureOfGaussians events "
                          "(no registered accountant has one)")
        label = ("Poisson sampling, as trained" if guarantee
                 else "If batches were Poisson-sampled (*)")
        self.lines.append(StatementLine(
            "user_mog", "user", f"{label}: mixture of Gaussians step (tight)", "poisson",
            "add_remove", "PLD", guarantee, upper, lower, None,
            None if guarantee else _POISSON_ASSUMPTION, reason,
        ))


_SAMPLER_NAME = {"shuffle": "Shuffled batches", "balls-in-bins": "Balls-in-bins batches"}


def _group_label(description: str) -> str:
    return f"{description}: group privacy (Vadhan 2017, Lemma 2.2)"


def _count_text(value) -> str:
    """A count for the text: ``%g`` for floats, ints in full up to 20 digits, else ``~1e400``."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= 20 else f"~1e{len(text) - 1}"
    return f"{value:g}"


def _render(statement: PrivacyStatement) -> str:
    """The text of ``statement``."""
    n, b = statement.sample_size, statement.batch_size
    run_cap = statement.max_batch_size
    per_epoch = -(-n // b) if statement.sampling == "shuffle" else max(1, n // b)
    sampler = _SAMPLER_TEXT[statement.sampling].format(n=n, b=b, t=per_epoch, cap=run_cap)
    users = ("no bound on the number of examples per user" if statement.max_examples_per_user
             is None else f"at most {statement.max_examples_per_user} examples per user")
    opening = (
        f"DP-SGD over {n} examples with {b} examples per step, noise multiplier "
        f"{statement.noise_multiplier:g}, for {_count_text(statement.epochs)} epochs "
        f"({_count_text(statement.steps)} "
        f"steps), {'with' if statement.used_microbatching else 'without'} microbatching, and "
        f"{users}. Batches: {sampler}."
    )
    paragraphs = [_fill(opening), _fill(
        "This privacy guarantee protects the release of all model checkpoints in addition to "
        "the final model."
    )]
    notes = []
    if statement.sampling == "fixed":
        notes.append(
            "Fixed-size batches are accounted for replace-one neighbours: replacing one example "
            "moves a DP-SGD sum of gradients clipped to norm C by up to 2C, so the accounting "
            f"uses noise multiplier {statement.noise_multiplier:g} / 2 against that sensitivity."
        )
    if statement.sampling == "shuffle":
        notes.append(
            "Shuffled batches are accounted for zero-out neighbours (one example replaced by one "
            "that contributes nothing), where each epoch is one Gaussian release; TF Privacy "
            "prints the same figure as 'each example occurring once per epoch'."
        )
    if statement.used_microbatching:
        notes.append(
            "Microbatching: a microbatch's gradient is clipped as a whole, so adding or removing "
            "one example moves it by up to 2C; the add-or-remove and zero-out figures use noise "
            f"multiplier {statement.noise_multiplier:g} / 2 = "
            f"{statement.effective_noise_multiplier:g} (TF Privacy's rule)"
            + ("; replace-one figures count 2C already and are unchanged."
               if statement.sampling == "fixed" else ".")
        )
    paragraphs.extend(_fill(note) for note in notes)
    for level, title in (("example", "Example-level DP"), ("user", "User-level DP")):
        rows = [item for item in statement.lines if item.level == level]
        if level == "user" and statement.max_examples_per_user is None:
            paragraphs.append(_fill("No user-level privacy guarantee is possible without a bound "
                                    "on the number of examples per user."))
            continue
        header = f"{title} at delta = {statement.delta:g} (epsilon):"
        paragraphs.append("\n".join([header] + [_row(item) for item in rows]))
    if any(item.assumption == _POISSON_ASSUMPTION for item in statement.lines):
        paragraphs.append(_fill(_FOOTNOTE))
    return "\n\n".join(paragraphs) + "\n"


def _row(item: StatementLine) -> str:
    relation = _RELATION_TEXT[item.neighboring]
    if item.level == "user":
        relation = relation.replace("-one", "-one-user").replace("zero-out", "zero-out-user")
    method = "" if item.method == "lower bound" else f"; {item.method}"
    return textwrap.fill(f"{item.description} [{relation}{method}]: {item.value_text()}",
                         width=100, initial_indent="  - ", subsequent_indent="      ",
                         break_on_hyphens=False)


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False)
