"""Hand-built inputs for the benchmark models (shared by the benchmark tests).

The staging tables get exactly the columns of ``schemas.reference`` plus
``delivery_id, source_row_number`` (what the generic validator produces);
``marts.indicators`` gets the columns of architecture.md (plus ``sd``). Rows are dicts with
only the columns a test cares about; every other column is NULL.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import ibis.expr.datatypes as dt

from rom_pipeline.config import apply_parameters, load_parameters
from rom_pipeline.lib.sqlfiles import SqlModel
from schemas.reference import REFERENCE_FILES

_DUCKDB_TYPES = {dt.String: "VARCHAR", dt.Int32: "INTEGER", dt.Float64: "DOUBLE",
                 dt.Boolean: "BOOLEAN", dt.Date: "DATE"}

INDICATOR_COLUMNS = {
    "concern_id": "VARCHAR", "level": "VARCHAR", "unit_id": "VARCHAR", "period_type": "VARCHAR",
    "period": "VARCHAR", "indicator": "VARCHAR", "aggregation": "VARCHAR", "value": "DOUBLE",
    "n": "INTEGER", "ci_low": "DOUBLE", "ci_high": "DOUBLE", "target": "DOUBLE",
    "target_met": "BOOLEAN", "suppressed": "BOOLEAN",
    # Extra beyond the published interface: the episode-level sample sd of a mean
    # (rows with aggregation 'episodes'); the internal benchmark's funnel uses it.
    "sd": "DOUBLE",
}


def connect(tmp_path: Path, file_name: str = "bench.duckdb") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / file_name))
    apply_parameters(con, load_parameters())
    for schema in ("staging", "marts"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return con


def _create(con, table: str, columns: dict[str, str], rows: list[dict]) -> None:
    unknown = {c for row in rows for c in row} - set(columns)
    assert not unknown, f"{table}: no such columns {unknown}"
    con.execute(f"CREATE OR REPLACE TABLE {table} ("
                + ", ".join(f"{c} {t}" for c, t in columns.items()) + ")")
    for row in rows:
        con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in columns)})",
                    [row.get(c) for c in columns])


def staging_columns(file: str) -> dict[str, str]:
    schema = REFERENCE_FILES[file]
    columns = {name: _DUCKDB_TYPES[type(col.dtype.type)] for name, col in schema.columns.items()}
    return {**columns, "delivery_id": "VARCHAR", "source_row_number": "BIGINT"}


def load_staging(con, file: str, rows: list[dict]) -> None:
    numbered = [{"delivery_id": "reference-test", "source_row_number": i, **row}
                for i, row in enumerate(rows, start=1)]
    _create(con, f"staging.{file}", staging_columns(file), numbered)


def load_indicators(con, rows: list[dict]) -> None:
    _create(con, "marts.indicators", INDICATOR_COLUMNS, rows)


def build(con, *names: str) -> None:
    for name in names:
        SqlModel("marts", name).build(con)


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]
