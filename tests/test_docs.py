"""The documentation's sources: the API reference lists the whole public API, the link checker
that ``make docs`` runs finds broken links, and the Markdown files' relative links resolve.

(The build itself, with warnings as errors, and its doctests run in ``make docs``.)"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re

import pytest

import accounting
import accounting.events
import accounting.reference
import accounting.testing
import dpsgd_kernels
import dpsgd_kernels.tf_adapter

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _checker():
    spec = importlib.util.spec_from_file_location("check_links", DOCS / "check_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documented(pattern: str) -> set[str]:
    text = "".join(path.read_text(encoding="utf-8") for path in (DOCS / "api").glob(pattern))
    listed = set(re.findall(r"^   ([A-Za-z_][\w.]*)$", text, re.M))
    listed |= {name.rsplit(".", 1)[1] for name in re.findall(r"^\.\. py:data:: ([\w.]+)", text,
                                                               re.M)}
    return listed


@pytest.mark.parametrize("module, page", [
    (accounting, "accounting.rst"),
    (accounting.events, "accounting.rst"),
    *[(importlib.import_module(f"accounting.{name}"), "accounting.rst") for name in (
        "rdp", "pld", "gdp", "registry", "sampling", "statement", "shuffle", "random_allocation",
        "user_level", "budget", "calibration", "dpsgd_calibration", "accountant")],
    (accounting.reference, "reference_and_testing.rst"),
    (accounting.testing, "reference_and_testing.rst"),
    (dpsgd_kernels, "dpsgd_kernels.rst"),
    (dpsgd_kernels.tf_adapter, "dpsgd_kernels.rst"),
])
def test_api_reference_lists_every_public_name(module, page):
    missing = set(module.__all__) - _documented(page) - {"events", "properties", "strategies"}
    assert not missing, f"{module.__name__}: add to docs/api/{page}: {sorted(missing)}"


def test_link_checker_finds_missing_files_and_anchors(tmp_path):
    checker = _checker()
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a><a href="sub/page.html#gone">bad anchor</a>'
        '<a href="missing.html">bad file</a><a href="https://example.org/">external</a>'
        '<a href="#top">self</a><p id="top"></p>', encoding="utf-8")
    (tmp_path / "sub" / "page.html").write_text(
        '<h1 id="here">x</h1><a href="../index.html">up</a><img src="../_static/x.png">',
        encoding="utf-8")
    broken, external = checker.broken_html_links(tmp_path)
    assert sorted(broken) == ["index.html: missing.html", "index.html: sub/page.html#gone",
                              "sub/page.html: ../_static/x.png"]
    assert external == 1


def test_markdown_files_have_no_broken_relative_links(tmp_path):
    checker = _checker()
    assert checker.broken_markdown_links() == []
    assert checker.broken_markdown_links(["README.md"]) == []
    # a broken one is reported (a file in the repository root that links nowhere)
    bad = ROOT / "build" / "test_docs_bad.md"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("[x](does-not-exist.md) [y](https://example.org)\n", encoding="utf-8")
    try:
        assert checker.broken_markdown_links(["build/test_docs_bad.md"]) == [
            "build/test_docs_bad.md: does-not-exist.md"]
    finally:
        bad.unlink()


def test_docs_name_the_standard_settings_as_benchmarks_define_them():
    spec = importlib.util.spec_from_file_location("settings", ROOT / "benchmarks" / "settings.py")
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    notes = (DOCS / "design-notes.rst").read_text(encoding="utf-8")
    for name, (q, sigma, steps, delta) in settings.SETTINGS.items():
        row = re.search(rf"   \* - {name}\n((?:     - .*\n)+)", notes).group(1)
        cells = [cell.strip() for cell in row.split("- ")[1:]]
        assert float(sigma) == float(cells[2]) and int(cells[3]) == steps
        assert float(cells[4]) == delta
        numerator, _, denominator = cells[1].partition("/")
        assert float(numerator) / float(denominator or 1) == q
