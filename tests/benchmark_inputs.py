"""Hand-built inputs for the benchmark models (shared by the benchmark tests).

The tables are the pipeline's own, created empty by its own code (the staging layer on no
deliveries, the outcome models on no episodes), so they have exactly the columns and types a
run has. Rows are dicts with only the columns a test cares about; every other column is NULL.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.defs.staging.validate import build_empty_staging, validate_file
from rom_pipeline.lib.sqlfiles import SqlModel
from schemas.reference import REFERENCE_FILES

EMPTY_OUTCOME_MODELS = [("outcomes", "instrument_outcomes"), ("marts", "episode_outcomes"),
                        ("outcomes", "indicator_contributions"), ("marts", "indicator_cells"),
                        ("marts", "indicator_aggregates"),
                        ("marts", "indicators")]


def connect(tmp_path: Path, file_name: str = "bench.duckdb") -> duckdb.DuckDBPyConnection:
    """The database file with the pipeline's tables (created empty the first time)."""
    con = duckdb.connect(str(tmp_path / file_name))
    apply_parameters(con, load_parameters())
    if not SqlModel("marts", "indicators").exists(con):
        create_tables(con)
    return con


def create_tables(con) -> None:
    """The staging and outcome tables the benchmark models read, empty, made by the pipeline's code."""
    build_empty_staging(con)
    for schema in REFERENCE_FILES.values():
        validate_file(con, schema)
    for layer, name in EMPTY_OUTCOME_MODELS:
        SqlModel(layer, name).build(con)


def column_types(con, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall())


def _columns(con, table: str) -> list[str]:
    return list(column_types(con, table))


def _fill(con, table: str, rows: list[dict]) -> None:
    """Replace the rows of one of the pipeline's tables."""
    columns = _columns(con, table)
    unknown = {c for row in rows for c in row} - set(columns)
    assert not unknown, f"{table}: no such columns {unknown}"
    con.execute(f"DELETE FROM {table}")
    for row in rows:
        names = list(row)
        con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                    [row[c] for c in names])


def load_staging(con, file: str, rows: list[dict]) -> None:
    _fill(con, f"staging.{file}", [{"delivery_id": "reference-test", "source_row_number": i, **row}
                                   for i, row in enumerate(rows, start=1)])


def load_indicators(con, rows: list[dict]) -> None:
    _fill(con, "marts.indicators", rows)


def build(con, *names: str) -> None:
    for name in names:
        SqlModel("marts", name).build(con)


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]
