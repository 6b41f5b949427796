"""Small read helpers over a DuckDB connection, shared by `explain` and the reports."""
from __future__ import annotations

from typing import Any


def rows(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """The result of ``sql`` as one dict per row, keyed by column name."""
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def has_table(con, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the connection's databases."""
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0
