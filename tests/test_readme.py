"""The README's library example runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_library_example_runs_and_matches_its_comments():
    text = README.read_text(encoding="utf-8")
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", text, re.S)]
    namespace: dict = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    first_line = output.getvalue().splitlines()[0]
    assert first_line.startswith("(2.5966555") and first_line.endswith(", 8.1)")
    assert namespace["eps"] == pytest.approx(0.2778802396, rel=1e-9)
    assert namespace["sigma"] == pytest.approx(1.0140214, rel=1e-6)
