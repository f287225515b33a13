"""Helpers of the notebook tests: run a notebook of ``notebooks/`` and read its outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def require_runner() -> None:
    """Skip (with the reason) unless the notebook runner and matplotlib are installed."""
    for module in ("nbclient", "nbformat", "ipykernel", "matplotlib"):
        pytest.importorskip(module, reason=f"{module} is needed to execute the notebooks "
                                           "(pip install '.[notebooks]', part of the test extra)")
    import matplotlib

    matplotlib.use("Agg")  # nothing in this process may need a display


def execute(name: str, figures: Path):
    """Execute ``notebooks/<name>`` in a fresh kernel, figures to ``figures``; the notebook.

    The same runner as ``make notebooks`` (``notebooks/execute.py``, loaded by path: the
    notebooks folder is not a package).
    """
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner.execute(NOTEBOOKS / name, figures)


def outputs(notebook) -> dict:
    """Everything the executed notebook showed: ``text`` (streams, plain and Markdown results,
    joined), ``errors`` (error outputs and stderr tracebacks), ``images`` (PNG count), and
    ``unexecuted`` (code cells without an execution count)."""
    text, errors, images, unexecuted = [], [], 0, 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None and cell.source.strip():
            unexecuted += 1
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
            elif output.output_type == "stream":
                text.append(output.text)
                if output.name == "stderr" and "Traceback" in output.text:
                    errors.append(output.text)
            else:
                data = output.get("data", {})
                images += "image/png" in data
                for kind in ("text/markdown", "text/plain"):
                    if kind in data:
                        text.append(data[kind])
    return {"text": "\n".join(text), "errors": errors, "images": images,
            "unexecuted": unexecuted}


def stored(name: str) -> dict:
    """The stored notebook as JSON (read without nbformat, so the check never skips)."""
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
