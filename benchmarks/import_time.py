"""Start-up cost: ``import accounting``, ``dp-budget --help`` and one ``dp-budget`` answer in a
fresh interpreter, side by side with the peers' imports where they are installed.

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
]


def wall_seconds(code: str, repeats: int) -> float:
    """Median wall time of ``python -c code`` over ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    print(f"{'start-up':<36} {'median s':>9}")
    for label, code, module in CASES:
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{label:<36} {'(not installed)':>9}")
            continue
        figures[label] = wall_seconds(code, args.repeats)
        print(f"{label:<36} {figures[label]:9.3f}")
    print(json.dumps({"import_seconds": figures, "repeats": args.repeats}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
