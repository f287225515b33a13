"""Execute the notebooks (``make notebooks``): figures to ``notebooks/figures/``.

Each notebook is run top to bottom in a fresh kernel with ``notebooks/`` as its working directory;
the figures it saves go to ``--figures`` (the notebooks read ``NOTEBOOK_FIGURES``) and the executed
copy, with its outputs, to ``--executed``. The stored notebooks are never modified: they stay
without outputs (tests/test_notebooks.py checks).

    python notebooks/execute.py [NAME.ipynb ...] [--figures DIR] [--executed DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def execute(path: Path, figures: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` and return it with its outputs.

    Parameters
    ----------
    path : Path
        The ``.ipynb`` file (not modified).
    figures : Path
        Directory the notebook writes its figures to (``NOTEBOOK_FIGURES``).
    timeout : int
        Seconds allowed per cell.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        When a cell raises.
    """
    notebook = nbformat.read(path, as_version=4)
    previous = os.environ.get("NOTEBOOK_FIGURES")
    os.environ["NOTEBOOK_FIGURES"] = str(figures.resolve())  # the kernel inherits it
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("NOTEBOOK_FIGURES", None)
        else:
            os.environ["NOTEBOOK_FIGURES"] = previous
    return notebook


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("--figures", type=Path, default=HERE / "figures")
    parser.add_argument("--executed", type=Path, default=HERE / "executed")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [HERE / name for name in args.names] or sorted(HERE.glob("*.ipynb"))
    args.figures.mkdir(parents=True, exist_ok=True)
    args.executed.mkdir(parents=True, exist_ok=True)
    failed = []
    total = time.perf_counter()
    for path in paths:
        start = time.perf_counter()
        try:
            notebook = execute(path, args.figures, args.timeout)
        except CellExecutionError as error:
            failed.append(path.name)
            print(f"{path.name}: FAILED\n{error}", file=sys.stderr)
            continue
        nbformat.write(notebook, args.executed / path.name)
        print(f"{path.name}: ok in {time.perf_counter() - start:.1f} s "
              f"(executed copy in {args.executed / path.name})")
    figures = sorted(p.name for p in args.figures.glob("*.png"))
    print(f"{len(paths) - len(failed)} of {len(paths)} notebooks ran in "
          f"{time.perf_counter() - total:.1f} s; figures in {args.figures}: {', '.join(figures)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
