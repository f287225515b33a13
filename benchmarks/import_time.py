"""Start-up cost: ``import accounting``, ``dp-budget --help`` and one ``dp-budget`` answer in a
fresh interpreter, side by side with the peers' imports where they are installed; then a first
RDP and a first PLD epsilon on setting A in a fresh process, ours beside the peers': the
process's wall time (import included) and the first call alone (timed inside the process,
after the imports: cold caches and tables).

Every figure is the median wall time of ``--repeats`` fresh processes (``python -c ...``), so it
includes the interpreter's own start, measured alone in the first row. Prints a table, then
(last) one JSON line.

    python benchmarks/import_time.py [--repeats N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time

#: A call timed inside the process (after its imports): it prints its own seconds.
_MARK = "first-call-seconds"
_CALL = ("import time as _time\n_start = _time.perf_counter()\n{}\n"
         f"print('{_MARK}', _time.perf_counter() - _start)")

#: Rows: (label, code run by ``python -c``, module that must be importable for the row).
CASES = [
    ("python (bare interpreter)", "pass", None),
    ("import accounting", "import accounting", "accounting"),
    ("dp-budget --help", "import sys; from accounting.cli import main; sys.argv[0] = 'dp-budget'"
     "\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass", "accounting"),
    ("dp-budget epsilon (RDP, tutorial)",
     "from accounting.cli import main; main(['epsilon', '--sample-size', '60000', "
     "'--batch-size', '256', '--epochs', '60', '--noise-multiplier', '1.1', '--delta', "
     "'1e-5', '--accountant', 'rdp'])", "accounting"),
    ("import dp_accounting (RDP + PLD)",
     "import dp_accounting; from dp_accounting import rdp, pld", "dp_accounting"),
    ("import opacus.accountants", "import opacus.accountants", "opacus"),
    ("import prv_accountant", "import prv_accountant", "prv_accountant"),
    # a first answer in a fresh process, import included: what a script or a CLI call pays
    ("first RDP ε, setting A: accounting",
     "import accounting\n" + _CALL.format(
         "accounting.RdpAccountant().compose(256 / 60000, 1.1, 14063).get_epsilon(1e-5)"),
     "accounting"),
    ("first RDP ε, setting A: dp_accounting",
     "from dp_accounting import dp_event as e\nfrom dp_accounting.rdp import "
     "rdp_privacy_accountant as r\n" + _CALL.format(
         "a = r.RdpAccountant(); a.compose(e.SelfComposedDpEvent(e.PoissonSampledDpEvent("
         "256 / 60000, e.GaussianDpEvent(1.1)), 14063)); a.get_epsilon(1e-5)"),
     "dp_accounting"),
    ("first RDP ε, setting A: Opacus",
     "from opacus.accountants import RDPAccountant\n" + _CALL.format(
         "a = RDPAccountant(); a.history = [(1.1, 256 / 60000, 14063)]; a.get_epsilon(1e-5)"),
     "opacus"),
    ("first PLD ε, setting A: accounting (tolerance 1e-3)",
     "import accounting\n" + _CALL.format(
         "accounting.PldAccountant().compose(256 / 60000, 1.1, 14063).get_epsilon(1e-5)"),
     "accounting"),
    ("first PLD ε, setting A: dp_accounting (grid 1e-4)",
     "from dp_accounting import dp_event as e\nfrom dp_accounting.pld import "
     "pld_privacy_accountant as p\n" + _CALL.format(
         "a = p.PLDAccountant(value_discretization_interval=1e-4); a.compose("
         "e.PoissonSampledDpEvent(256 / 60000, e.GaussianDpEvent(1.1)), 14063); "
         "a.get_epsilon(1e-5)"),
     "dp_accounting"),
]


def wall_seconds(code: str, repeats: int) -> tuple[float, float | None]:
    """Median wall time of ``python -c code`` over ``repeats`` fresh processes, and the median
    of the seconds the code printed last (its first call alone), if it printed any."""
    times, calls = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True)
        times.append(time.perf_counter() - start)
        printed = done.stdout.split()
        if _MARK in printed:
            calls.append(float(printed[printed.index(_MARK) + 1]))
    return statistics.median(times), (statistics.median(calls) if calls else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    first_calls: dict[str, float] = {}
    print(f"{'start-up':<52} {'median s':>9} {'the call alone ms':>18}")
    for label, code, module in CASES:
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{label:<52} {'(not installed)':>9}")
            continue
        figures[label], call = wall_seconds(code, args.repeats)
        if call is not None:
            first_calls[label] = call
        alone = "" if call is None else f"{call * 1e3:18.2f}"
        print(f"{label:<52} {figures[label]:9.3f} {alone}")
    print(json.dumps({"import_seconds": figures, "first_call_seconds": first_calls,
                      "repeats": args.repeats}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
