"""``dp-budget``: plan the privacy budget of a DP-SGD run from the command line.

Examples
--------
Epsilon of the TF Privacy MNIST tutorial (60000 examples, batch 256, 60 epochs, sigma 1.1)::

    dp-budget epsilon --sample-size 60000 --batch-size 256 --epochs 60 \\
        --noise-multiplier 1.1 --delta 1e-5

The noise multiplier needed for epsilon 3 on the same run, as JSON::

    dp-budget noise --sample-size 60000 --batch-size 256 --epochs 60 --epsilon 3 \\
        --delta 1e-5 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from accounting.budget import ACCOUNTANTS, dpsgd_sample_rate_and_steps, make_accountant
from accounting.calibration import calibrate_noise_multiplier, calibrate_steps
from accounting.conversions import CONVERSIONS
from accounting.gdp import gdp_epsilon
from accounting.pld_accountant import PldAccountant

__all__ = ["main"]

_ORDER_LABEL = {"rdp": "order", "moments": "lambda"}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp-budget",
        description="Privacy budget of DP-SGD with Poisson sampling (Gaussian noise).",
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
        run.add_argument("--sample-size", type=int, help="number of training examples n")
        run.add_argument("--batch-size", type=int, help="expected batch size (q = batch / n)")
        run.add_argument("--sample-rate", type=float, help="Poisson sampling probability q")
        if name != "steps":
            run.add_argument("--epochs", type=float, help="epochs (steps = ceil(epochs n / batch))")
            run.add_argument("--steps", type=int, help="number of steps")
        if name != "noise":
            sub.add_argument("--noise-multiplier", type=float, required=True,
                             help="noise standard deviation over the clipping norm")
        if name == "delta":
            sub.add_argument("--epsilon", type=float, required=True)
        else:
            sub.add_argument("--delta", type=float, required=True)
            if name != "epsilon":
                sub.add_argument("--epsilon", type=float, required=True, help="target epsilon")
        sub.add_argument("--accountant", choices=ACCOUNTANTS, action="append",
                         help="accountant to use (repeatable; default: all)")
        sub.add_argument("--conversion", choices=CONVERSIONS, default="improved",
                         help="RDP to (epsilon, delta) conversion (default: improved)")
        if name in ("epsilon", "delta"):
            sub.add_argument("--tolerance", type=float, default=1e-3,
                             help="PLD: width of the certified epsilon bracket (default 1e-3)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _resolve_run(args, parser) -> dict:
    """Sample rate, and steps where the command needs them, from the flags given."""
    by_size = args.sample_size is not None or args.batch_size is not None
    if by_size == (args.sample_rate is not None):
        parser.error("give either --sample-size and --batch-size, or --sample-rate")
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
    else:
        run["sample_rate"] = args.sample_rate
        if needs_steps:
            if getattr(args, "epochs", None) is not None or args.steps is None:
                parser.error("with --sample-rate give --steps (epochs need --sample-size)")
            run["steps"] = args.steps
    return run


def _conversion_label(args, accountant: str) -> str:
    return {"rdp": args.conversion, "moments": "tail bound", "pld": "certified"}[accountant]


def _evaluate_pld(args, run: dict, row: dict) -> dict:
    ledger = PldAccountant(tolerance=args.tolerance).compose(
        run["sample_rate"], args.noise_multiplier, run["steps"]
    )
    if args.command == "epsilon":
        bounds = ledger.get_epsilon_bounds(args.delta)
        row["epsilon"], row["epsilon_lower"] = bounds.upper, bounds.lower
    else:
        bounds = ledger.get_delta_bounds(args.epsilon)
        row["delta"], row["delta_lower"] = bounds.upper, bounds.lower
    row["value_discretization"] = bounds.value_discretization
    return row


def _evaluate(args, run: dict, accountant: str) -> dict:
    row = {"accountant": accountant, "conversion": _conversion_label(args, accountant)}
    if accountant == "pld" and args.command in ("epsilon", "delta"):
        return _evaluate_pld(args, run, row)
    if args.command in ("epsilon", "delta"):
        ledger = make_accountant(accountant, args.conversion).compose(
            run["sample_rate"], args.noise_multiplier, run["steps"]
        )
        if args.command == "epsilon":
            row["epsilon"], row[_ORDER_LABEL[accountant]] = ledger.get_epsilon_and_order(args.delta)
        else:
            row["delta"] = ledger.get_delta(args.epsilon)
    elif args.command == "noise":
        row["noise_multiplier"] = calibrate_noise_multiplier(
            args.epsilon, args.delta, run["sample_rate"], run["steps"], accountant,
            conversion=args.conversion,
        )
    else:
        steps = calibrate_steps(
            args.epsilon, args.delta, run["sample_rate"], args.noise_multiplier, accountant,
            conversion=args.conversion,
        )
        row["steps"] = steps
        if "sample_size" in run:
            row["epochs"] = steps * run["batch_size"] / run["sample_size"]
    return row


def _approximation(args, run: dict) -> dict | None:
    """The Gaussian-DP CLT estimate, for the epsilon command (flagged: not a bound)."""
    if args.command != "epsilon":
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
        for key, value in row.items():
            if key == "order":
                cells["optimum"] = f"alpha={_format_number(value)}"
            elif key == "lambda":
                cells["optimum"] = f"lambda={_format_number(value)}"
            elif key in ("epsilon_lower", "delta_lower"):
                cells["certified lower"] = _format_number(value)
            elif key == "value_discretization":
                cells["optimum"] = f"grid={value:.3g}"
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
    if approximation is not None:
        print()
        print(f"  {approximation['accountant']}: epsilon "
              f"{_format_number(approximation['epsilon'])}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dp-budget`` and ``python -m accounting``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    accountants = args.accountant or list(ACCOUNTANTS)
    try:
        run = _resolve_run(args, parser)
        rows = [_evaluate(args, run, name) for name in dict.fromkeys(accountants)]
        approximation = _approximation(args, run)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if args.json:
        inputs = {key: value for key, value in vars(args).items()
                  if key not in ("json", "accountant", "command") and value is not None}
        report = {"command": args.command, "run": run, "inputs": inputs, "results": rows}
        if approximation is not None:
            report["approximation"] = approximation
        print(json.dumps(report))
    else:
        _print_table(args, run, rows, approximation)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
