"""Cells that are safe to open in a spreadsheet (CSV injection, OWASP "CSV Injection").

Excel, LibreOffice and Google Sheets run a text cell that starts with ``=``, ``+``, ``-``
or ``@`` as a formula (``=HYPERLINK(...)`` sends the reader to a site, ``=cmd|...`` ran
programs through DDE); a leading tab or carriage return can hide such a start. A text
cell that starts with one of these characters gets a leading apostrophe, which every
spreadsheet shows as text and does not display. The full-width forms of the four
characters are included, because some locales of Excel treat them the same way.

Numbers are never changed: a negative number in a numeric column stays a number.
NULL stays NULL (an empty cell). The rule only looks at a cell's first character.
"""
from __future__ import annotations

# = + - @ , tab, carriage return, and the full-width = + - @ (U+FF1D, U+FF0B, U+FF0D, U+FF20).
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
NEUTRALISER = "'"


def neutralise(value):
    """``value`` as a spreadsheet cell that is never run as a formula.

    Only text (``str``) can be changed: ``None``, numbers, dates and booleans are
    returned as they are.
    """
    if isinstance(value, str) and value and value[0] in FORMULA_START:
        return NEUTRALISER + value
    return value


def neutralise_text(value: str | None) -> str | None:
    """:func:`neutralise` for a text column (the signature DuckDB needs for a scalar function)."""
    return neutralise(value)
