"""Whole-database helpers for the tests: find a text anywhere, snapshot every table."""
from __future__ import annotations

import duckdb


def user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT internal AND NOT temporary ORDER BY 1, 2").fetchall()]


def find_text(con: duckdb.DuckDBPyConnection, needles: list[str]) -> list[tuple[str, str]]:
    """(table, needle) for every needle found in any column of any table (each row cast to text whole)."""
    hits = []
    for table in user_tables(con):
        for needle in needles:
            found = con.execute(f"SELECT count(*) FROM {table} AS t WHERE contains(t::VARCHAR, ?)",
                                [needle]).fetchone()[0]
            if found:
                hits.append((table, needle))
    return hits


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every row of every table, in a total order (ORDER BY ALL), for comparing two runs."""
    return {table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in user_tables(con)}
