"""``dp-budget``: plan the privacy budget of a DP-SGD run from the command line.

Examples
--------
Epsilon of the TF Privacy MNIST tutorial (60000 examples, batch 256, 60 epochs, sigma 1.1)::

    dp-budget epsilon --sample-size 60000 --batch-size 256 --epochs 60 \\
        --noise-multiplier 1.1 --delta 1e-5

The noise multiplier needed for epsilon 3 on the same run, as JSON::

    dp-budget noise --sample-size 60000 --batch-size 256 --epochs 60 --epsilon 3 \\
        --delta 1e-5 --json

The privacy statement of the same run trained on shuffled batches, users holding up to 5
examples::

    dp-budget statement --sample-size 60000 --batch-size 256 --epochs 60 \\
        --noise-multiplier 1.1 --delta 1e-5 --sampling shuffle --max-examples-per-user 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

from accounting.accountant import TightAccountant, UnsupportedEventError
from accounting.budget import dpsgd_sample_rate_and_steps
from accounting.calibration import calibrate_noise_multiplier, calibrate_steps
from accounting.dpsgd_calibration import calibrate_dpsgd_noise_multiplier, calibrate_dpsgd_steps
from accounting.gdp import gdp_epsilon
from accounting.pld.accountant import ToleranceNotMetWarning
from accounting.rdp.conversions import CONVERSIONS
from accounting.registry import accountant_info, make_accountant
from accounting.registry import accountants as registered_accountants
from accounting.sampling import SAMPLINGS, DpsgdRun, dpsgd_run
from accounting.statement import privacy_statement

__all__ = ["main"]

#: Default wall-clock limit of one accountant's row, in seconds (``--time-limit``).
DEFAULT_TIME_LIMIT = 60.0


class _RowTimeout(Exception):
    """One accountant's row ran past ``--time-limit``."""


def _whole_number(text: str) -> int:
    """A count given as ``14063``, ``1e9`` or ``1_000_000`` (a whole number >= 0)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not (math.isfinite(value) and value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _positive_number(text: str) -> float:
    """A finite number > 0 (``--tolerance``, ``--time-limit``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp-budget",
        description="Privacy budget of DP-SGD (Gaussian noise) for the batch sampler it uses: "
                    "Poisson (default), shuffled epochs, fixed-size batches, truncated Poisson "
                    "or balls-in-bins.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "epsilon": "epsilon spent at --delta",
        "delta": "delta at --epsilon",
        "noise": "smallest noise multiplier meeting --epsilon at --delta",
        "steps": "most steps (and epochs) meeting --epsilon at --delta",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        run = sub.add_argument_group("the run (give --sample-size/--batch-size or --sample-rate)")
        run.add_argument("--sample-size", type=_whole_number,
                         help="number of training examples n")
        run.add_argument("--batch-size", type=_whole_number,
                         help="expected batch size (q = batch / n)")
        run.add_argument("--sample-rate", type=float, help="Poisson sampling probability q")
        run.add_argument("--sampling", choices=SAMPLINGS, default="poisson",
                         help="how batches were drawn (default poisson); every sampler but "
                              "poisson needs --sample-size and --batch-size")
        run.add_argument("--max-batch-size", type=_whole_number,
                         help="batch cap B of --sampling truncated")
        if name != "steps":
            run.add_argument("--epochs", type=float, help="epochs (steps = ceil(epochs n / batch))")
            run.add_argument("--steps", type=_whole_number, help="number of steps (e.g. 1e5)")
        if name != "noise":
            sub.add_argument("--noise-multiplier", type=float, required=True,
                             help="noise standard deviation over the clipping norm")
        if name == "delta":
            sub.add_argument("--epsilon", type=float, required=True)
        else:
            sub.add_argument("--delta", type=float, required=True)
            if name != "epsilon":
                sub.add_argument("--epsilon", type=float, required=True, help="target epsilon")
        sub.add_argument("--accountant", choices=registered_accountants(), action="append",
                         help="accountant to use (repeatable; default: all)")
        sub.add_argument("--conversion", choices=CONVERSIONS, default="improved",
                         help="RDP to (epsilon, delta) conversion (default: improved)")
        default_tolerance = 1e-3 if name in ("epsilon", "delta") else 1e-2
        sub.add_argument("--tolerance", type=_positive_number, default=default_tolerance,
                         help="PLD: width of the certified epsilon bracket "
                              f"(default {default_tolerance:g})")
        sub.add_argument("--time-limit", type=_positive_number, default=DEFAULT_TIME_LIMIT,
                         help="seconds one accountant may take before its row reports a "
                              f"time-out (default {DEFAULT_TIME_LIMIT:g})")
        sub.add_argument("--json", action="store_true",
                         help="print one JSON object (strict JSON: infinity is the string "
                              '"inf")')
    _add_statement_parser(commands)
    return parser


def _add_statement_parser(commands) -> None:
    text = ("the privacy statement of a run: epsilon for the sampler used, with the Poisson "
            "figure labelled as an assumption, and user-level figures")
    sub = commands.add_parser("statement", help=text, description=text)
    sub.add_argument("--sample-size", type=_whole_number, required=True,
                     help="number of training examples n")
    sub.add_argument("--batch-size", type=_whole_number, required=True,
                     help="(expected) batch size")
    sub.add_argument("--epochs", type=float, required=True, help="epochs")
    sub.add_argument("--noise-multiplier", type=float, required=True,
                     help="noise standard deviation over the clipping norm")
    sub.add_argument("--delta", type=float, required=True)
    sub.add_argument("--sampling", choices=SAMPLINGS, default="poisson",
                     help="how batches were drawn (default poisson)")
    sub.add_argument("--max-batch-size", type=_whole_number,
                     help="batch cap B of --sampling truncated")
    sub.add_argument("--used-microbatching", action="store_true",
                     help="gradients were clipped per microbatch (TF Privacy's rule: sigma / 2)")
    sub.add_argument("--max-examples-per-user", type=_whole_number,
                     help="most examples one user holds: adds user-level figures")
    sub.add_argument("--accountant", choices=registered_accountants(), default="rdp",
                     help="accountant whose figures accompany RDP's (default rdp; pld adds "
                          "certified brackets)")
    sub.add_argument("--tolerance", type=_positive_number, default=1e-3,
                     help="PLD: width of the certified epsilon brackets (default 0.001)")
    sub.add_argument("--json", action="store_true",
                     help="print one JSON object (strict JSON: infinity is the string "
                          '"inf")')


def _statement(args, parser) -> int:
    try:
        statement = privacy_statement(
            args.sample_size, args.batch_size, args.epochs, args.noise_multiplier, args.delta,
            sampling=args.sampling, used_microbatching=args.used_microbatching,
            max_examples_per_user=args.max_examples_per_user, accountant=args.accountant,
            max_batch_size=args.max_batch_size, pld_tolerance=args.tolerance,
        )
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if args.json:
        report = dataclasses.asdict(statement)
        report["command"] = "statement"
        print(json.dumps(_strict_json(report), allow_nan=False))
    else:
        print(statement.text)
    return 0


def _resolve_run(args, parser) -> dict:
    """Sample rate, and steps where the command needs them, from the flags given."""
    by_size = args.sample_size is not None or args.batch_size is not None
    if by_size == (args.sample_rate is not None):
        parser.error("give either --sample-size and --batch-size, or --sample-rate")
    if args.sampling != "poisson" and not by_size:
        parser.error(f"--sampling {args.sampling} needs --sample-size and --batch-size")
    if (args.max_batch_size is not None) != (args.sampling == "truncated"):
        parser.error("--max-batch-size goes with --sampling truncated, and only with it")
    needs_steps = args.command != "steps"
    run: dict = {}
    if by_size:
        if args.sample_size is None or args.batch_size is None:
            parser.error("--sample-size and --batch-size go together")
        run["sample_size"], run["batch_size"] = args.sample_size, args.batch_size
        if needs_steps and (args.epochs is None) == (args.steps is None):
            parser.error("give exactly one of --epochs and --steps")
        epochs = args.epochs if needs_steps and args.epochs is not None else 1.0
        run["sample_rate"], steps = dpsgd_sample_rate_and_steps(
            args.sample_size, args.batch_size, epochs
        )
        if needs_steps:
            run["steps"] = steps if args.steps is None else args.steps
            if args.epochs is not None:
                run["epochs"] = args.epochs
        if args.sampling != "poisson":
            length = ({"epochs": args.epochs} if needs_steps and args.epochs is not None
                      else {"steps": run.get("steps", 0)})
            sampled = _sampled_run(args, getattr(args, "noise_multiplier", None) or 1.0, **length)
            run.update(sampling=sampled.sampling, neighboring=sampled.neighboring)
            if needs_steps:
                run["steps"] = sampled.steps
                run[f"{sampled.unit}s_accounted"] = sampled.count
    else:
        run["sample_rate"] = args.sample_rate
        if needs_steps:
            if getattr(args, "epochs", None) is not None or args.steps is None:
                parser.error("with --sample-rate give --steps (epochs need --sample-size)")
            run["steps"] = args.steps
    return run


def _sampled_run(args, noise_multiplier: float, **length) -> DpsgdRun:
    return dpsgd_run(args.sample_size, args.batch_size, noise_multiplier, sampling=args.sampling,
                     max_batch_size=args.max_batch_size, **length)


def _evaluate_sampled(args, run: dict, accountant: str, row: dict) -> dict:
    """A row for a sampler other than Poisson: the run's event (:func:`accounting.dpsgd_run`)
    with an accountant for its neighbouring relation."""
    length = {"epochs": args.epochs} if getattr(args, "epochs", None) is not None else {
        "steps": run.get("steps", 0)}
    options = {"conversion": args.conversion, "pld_tolerance": args.tolerance}
    if run["neighboring"] == "replace_one" and not accountant_info(accountant).accepts(
        "neighboring"
    ):
        raise UnsupportedEventError(
            f"the {accountant} accountant has no replace-one relation, which --sampling "
            f"{args.sampling} is accounted for"
        )
    if args.command == "noise":
        row["noise_multiplier"] = calibrate_dpsgd_noise_multiplier(
            args.epsilon, args.delta, args.sample_size, args.batch_size, sampling=args.sampling,
            max_batch_size=args.max_batch_size, accountant=accountant, **length, **options,
        )
        return row
    if args.command == "steps":
        steps = calibrate_dpsgd_steps(
            args.epsilon, args.delta, args.sample_size, args.batch_size, args.noise_multiplier,
            sampling=args.sampling, max_batch_size=args.max_batch_size, accountant=accountant,
            **options,
        )
        row["steps"] = steps
        row["epochs"] = steps * run["batch_size"] / run["sample_size"]
        return row
    sampled = _sampled_run(args, args.noise_multiplier, **length)
    ledger = make_accountant(accountant, args.conversion, pld_tolerance=args.tolerance,
                             **sampled.accountant_options)
    return _query(args, ledger.compose(sampled.event), row)


def _query(args, ledger, row: dict) -> dict:
    """The epsilon or delta row of a ledger with the run composed."""
    if isinstance(ledger, TightAccountant):
        return _evaluate_bounds(args, ledger, row)
    if args.command == "epsilon" and ledger.order_label:
        row["epsilon"], row[ledger.order_label] = ledger.get_epsilon_and_order(args.delta)
    elif args.command == "epsilon":
        row["epsilon"] = ledger.get_epsilon(args.delta)
    else:
        row["delta"] = ledger.get_delta(args.epsilon)
    return row


def _evaluate_bounds(args, ledger: TightAccountant, row: dict) -> dict:
    # a bracket wider than --tolerance is reported in its row, not as a warning on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToleranceNotMetWarning)
        if args.command == "epsilon":
            bounds = ledger.get_epsilon_bounds(args.delta)
            row["epsilon"], row["epsilon_lower"] = bounds[1], bounds[0]
        else:
            bounds = ledger.get_delta_bounds(args.epsilon)
            row["delta"], row["delta_lower"] = bounds[1], bounds[0]
    for field in ("value_discretization", "tolerance_met"):
        if hasattr(bounds, field):
            row[field] = getattr(bounds, field)
    return row


def _evaluate(args, run: dict, accountant: str) -> dict:
    ledger = make_accountant(accountant, args.conversion, pld_tolerance=args.tolerance)
    row = {"accountant": accountant, "conversion": ledger.conversion_label}
    if run.get("sampling", "poisson") != "poisson":
        return _evaluate_sampled(args, run, accountant, row)
    if args.command in ("epsilon", "delta"):
        _query(args, ledger.compose(run["sample_rate"], args.noise_multiplier, run["steps"]), row)
    elif args.command == "noise":
        row["noise_multiplier"] = calibrate_noise_multiplier(
            args.epsilon, args.delta, run["sample_rate"], run["steps"], accountant,
            conversion=args.conversion, pld_tolerance=args.tolerance,
        )
    else:
        steps = calibrate_steps(
            args.epsilon, args.delta, run["sample_rate"], args.noise_multiplier, accountant,
            conversion=args.conversion, pld_tolerance=args.tolerance,
        )
        row["steps"] = steps
        if "sample_size" in run:
            row["epochs"] = steps * run["batch_size"] / run["sample_size"]
    return row


def _approximation(args, run: dict) -> dict | None:
    """The Gaussian-DP CLT estimate of Poisson sampling, for the epsilon command (flagged: not a
    bound)."""
    if args.command != "epsilon" or run.get("sampling", "poisson") != "poisson":
        return None
    return {
        "accountant": "gdp (CLT approximation, NOT an upper bound)",
        "epsilon": gdp_epsilon(run["sample_rate"], args.noise_multiplier, run["steps"],
                               args.delta),
    }


def _format_number(value) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.6g}"


def _print_table(args, run: dict, rows: list[dict], approximation: dict | None) -> None:
    print(f"DP-SGD privacy budget: {args.command}")
    if "sample_size" in run:
        print(f"  sample rate q      {run['sample_rate']:.6g}  "
              f"(batch {run['batch_size']} of {run['sample_size']} examples)")
    else:
        print(f"  sample rate q      {run['sample_rate']:.6g}")
    if "sampling" in run:
        relation = run["neighboring"].replace("_", "-")
        print(f"  sampling           {run['sampling']}  (neighbouring relation: {relation})")
    if "steps" in run:
        epochs = f"  ({_format_number(run['epochs'])} epochs)" if "epochs" in run else ""
        print(f"  steps              {run['steps']}{epochs}")
    for flag in ("noise_multiplier", "delta", "epsilon"):
        value = getattr(args, flag, None)
        if value is not None:
            label = "target epsilon" if flag == "epsilon" and args.command != "delta" else flag
            print(f"  {label.replace('_', ' '):<18} {value:.6g}")
    table = []
    for row in rows:
        cells = {"accountant": row["accountant"], "conversion": row["conversion"]}
        if "error" in row:
            cells["note"] = "no answer (see below)"
            table.append(cells)
            continue
        for key, value in row.items():
            if key == "order":
                cells["optimum"] = f"alpha={_format_number(value)}"
            elif key == "lambda":
                cells["optimum"] = f"lambda={_format_number(value)}"
            elif key in ("epsilon_lower", "delta_lower"):
                cells["certified lower"] = _format_number(value)
            elif key == "value_discretization":
                cells["optimum"] = f"grid={value:.3g}" if value else "RDP's bound"
            elif key == "tolerance_met":
                if not value:
                    cells["note"] = "wider than --tolerance (still certified)"
            elif key not in cells:
                cells[key.replace("_", " ")] = _format_number(value)
        table.append(cells)
    header = list(dict.fromkeys(key for cells in table for key in cells))
    table = [[cells.get(key, "") for key in header] for cells in table]
    widths = [max(len(header[i]), *(len(line[i]) for line in table)) for i in range(len(header))]
    print()
    print("  ".join(title.ljust(width) for title, width in zip(header, widths, strict=True)))
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    failed = [row for row in rows if "error" in row]
    if failed:
        print()
        for row in failed:
            print(f"  {row['accountant']}: {row['error']}")
    if approximation is not None:
        print()
        if "error" in approximation:
            print(f"  {approximation['accountant']}: {approximation['error']}")
        else:
            print(f"  {approximation['accountant']}: epsilon "
                  f"{_format_number(approximation['epsilon'])}")


@contextmanager
def _time_limit(seconds: float):
    """Raise :class:`_RowTimeout` once ``seconds`` have passed (a safety net: the accountants
    bound their own work; the alarm only exists in the main thread of a Unix process)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not (hasattr(signal, "setitimer") and in_main_thread):
        yield
        return

    def on_alarm(signum, frame):
        raise _RowTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _evaluate_row(args, run: dict, accountant: str) -> tuple[dict, bool]:
    """One accountant's row, and whether its failure was the input's fault (a ValueError or
    TypeError) rather than a time-out; a row that cannot answer carries an ``error`` instead
    of hiding the other accountants' rows."""
    try:
        with _time_limit(args.time_limit):
            return _evaluate(args, run, accountant), False
    except _RowTimeout:
        message = f"no answer within {args.time_limit:g} s (--time-limit)"
        invalid = False
    except (ValueError, TypeError) as error:
        message, invalid = str(error), True
    try:
        label = make_accountant(accountant, args.conversion).conversion_label
    except (ValueError, TypeError):
        label = ""
    row = {"accountant": accountant, "conversion": label, "error": message}
    return row, invalid


def _strict_json(value):
    """``value`` with every infinite float replaced by the string ``"inf"`` / ``"-inf"``
    (JSON has no infinity; results are never NaN)."""
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf"; "nan" only for an input echoed back
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dp-budget`` and ``python -m accounting``.

    Exit status 0 when at least one accountant answered (rows that could not answer carry an
    ``error``), 2 for invalid arguments, 1 when every accountant ran out of time.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "statement":
        return _statement(args, parser)
    accountants = args.accountant or list(registered_accountants())
    try:
        run = _resolve_run(args, parser)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    evaluated = [_evaluate_row(args, run, name) for name in dict.fromkeys(accountants)]
    rows = [row for row, _ in evaluated]
    if all("error" in row for row in rows):
        messages = "; ".join(dict.fromkeys(row["error"] for row in rows))
        if any(invalid for _, invalid in evaluated):
            parser.error(messages)
        print(f"{parser.prog}: {messages}", file=sys.stderr)
        return 1
    try:
        approximation = _approximation(args, run)
    except (ValueError, TypeError) as error:
        approximation = {"accountant": "gdp (CLT approximation)", "error": str(error)}
    if args.json:
        inputs = {key: value for key, value in vars(args).items()
                  if key not in ("json", "accountant", "command") and value is not None}
        report = {"command": args.command, "run": run, "inputs": inputs, "results": rows}
        if approximation is not None:
            report["approximation"] = approximation
        print(json.dumps(_strict_json(report), allow_nan=False))
    else:
        _print_table(args, run, rows, approximation)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
