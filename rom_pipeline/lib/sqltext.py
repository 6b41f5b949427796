"""SQL text built in Python: the one way a value becomes an SQL string literal.

Prefer bound parameters (``con.execute(sql, [value])``); where DuckDB does not take
one (``ATTACH`` paths and options, ``COMMENT ON``, a text spliced into a model or
an ``IN`` list), quote with :func:`literal`.
"""
from __future__ import annotations

from typing import Iterable


def literal(value) -> str:
    """``value`` as an SQL string literal: ``O'Brien`` -> ``'O''Brien'``."""
    return "'" + str(value).replace("'", "''") + "'"


def in_list(values: Iterable) -> str:
    """The inside of an ``IN (...)``: each value as a literal, comma-separated."""
    return ", ".join(literal(v) for v in values)
