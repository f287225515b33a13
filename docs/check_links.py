"""Check the links of the built documentation and of the Markdown files.

Every relative link of every page under the HTML directory must name a file that exists and,
with a ``#fragment``, an ``id`` in that file; every relative link of the repository's Markdown
files must name a file that exists. External links (``http(s)://``, ``mailto:``) are counted but
not fetched: the build runs without general network access.

    python docs/check_links.py [HTML_DIR]     # default build/docs/html; exit status 1 if broken
"""

from __future__ import annotations

import html.parser
import pathlib
import re
import sys
import urllib.parse

__all__ = ["broken_html_links", "broken_markdown_links", "main"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARKDOWN = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "notebooks/README.md")
EXTERNAL = ("http://", "https://", "mailto:", "//", "data:", "javascript:")


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)
            elif name in ("id", "name") and value:
                self.ids.add(value)


def _parse(path: pathlib.Path, cache: dict) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_html_links(site: pathlib.Path) -> tuple[list[str], int]:
    """``(broken links as 'page: link', number of external links)`` of the pages under ``site``."""
    cache: dict = {}
    broken, external = [], 0
    for page_path in sorted(site.rglob("*.html")):
        for link in _parse(page_path, cache).links:
            if link.startswith(EXTERNAL):
                external += 1
                continue
            parts = urllib.parse.urlsplit(link)
            target = page_path if not parts.path else (page_path.parent / parts.path).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(site)}: {link}"
            if not target.exists():
                broken.append(where)
            elif parts.fragment and target.suffix == ".html":
                if urllib.parse.unquote(parts.fragment) not in _parse(target, cache).ids:
                    broken.append(where)
    return broken, external


def broken_markdown_links(files=None) -> list[str]:
    """Relative links of the Markdown files (default: the repository's) that name no file."""
    broken = []
    for name in files or MARKDOWN:
        path = ROOT / name
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            target = target.split("#", 1)[0]
            if target and not target.startswith(EXTERNAL) and not (path.parent / target).exists():
                broken.append(f"{name}: {target}")
    return broken


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    site = pathlib.Path(args[0]) if args else ROOT / "build" / "docs" / "html"
    if not (site / "index.html").exists():
        print(f"no built site at {site}: run make docs", file=sys.stderr)
        return 1
    broken, external = broken_html_links(site)
    broken += broken_markdown_links()
    pages = sum(1 for _ in site.rglob("*.html"))
    for line in broken:
        print(f"broken link: {line}")
    print(f"{pages} pages: {len(broken)} broken internal links; {external} external links "
          "not fetched (no network)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
