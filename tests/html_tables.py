"""HTML tables of a rendered report as a reader sees them (shared by the report tests)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path


class _Tables(HTMLParser):
    """Tables of an HTML page as rows of cells; a cell is (main text, text of its <small> parts)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._small = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [[], []]
        elif tag == "small" and self._cell is not None:
            self._small += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            main, small = ("".join(p).strip() for p in self._cell)
            self.tables[-1][-1].append((re.sub(r"\s+", " ", main), re.sub(r"\s+", " ", small)))
            self._cell = None
        elif tag == "small":
            self._small = max(0, self._small - 1)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1 if self._small else 0].append(data + (" " if self._small else ""))


def tables(path: Path) -> list[list[list[tuple[str, str]]]]:
    return html_tables(path.read_text(encoding="utf-8"))


def html_tables(html: str) -> list[list[list[tuple[str, str]]]]:
    """Every table as rows of cells; a cell is (main text, text of its <small> parts)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables
