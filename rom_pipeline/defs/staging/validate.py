"""Split the rows of one delivered file into ``staging.<file>`` (valid, typed) and ``staging.<file>_rejects``.

With ``concerns`` (an incremental night, :mod:`rom_pipeline.lib.concern_scope`) only
those concerns' rows are checked and replaced, in one transaction; without, both
tables are rebuilt whole (first run, full rebuild, reference files).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import pandera.ibis as pa

from rom_pipeline.lib.sqltext import in_list as sql_in_list
from rom_pipeline.lib.validation_sql import checked_rows_sql, key_columns

REJECT_COLUMNS = ("delivery_id, concern_id, file_name, source_row_number, stage, reason, column_name, "
                  "detail, raw_row")


def staging_columns(schema: pa.DataFrameSchema) -> list[str]:
    """Typed output columns; a pseudonymised column is renamed so nobody mistakes it for the raw id."""
    out = []
    for name, col in schema.columns.items():
        if name == "concern_id":
            continue  # always the first column of a staging table
        if (col.metadata or {}).get("pseudonymise"):
            out.append(f'"{name}" AS client_pseudonym')
        else:
            out.append(f'"{name}"')
    return out


def validation_sql_sha256(schema: pa.DataFrameSchema) -> str:
    return hashlib.sha256(checked_rows_sql(schema).encode()).hexdigest()


def _staging_select(schema: pa.DataFrameSchema, checked: str) -> str:
    order = ", ".join(f'"{k}"' for k in key_columns(schema)) or "source_row_number"
    return f"""
        SELECT concern_id, delivery_id, source_row_number, {", ".join(staging_columns(schema))}
        FROM {checked} WHERE len(reasons) = 0
        ORDER BY concern_id, {order}"""


def _rejects_select(file: str, checked: str, concern_filter: str) -> str:
    return f"""
        WITH broken_rules AS (
            SELECT delivery_id, concern_id, file_name, source_row_number, raw_row, unnest(reasons) AS broken
            FROM {checked} WHERE len(reasons) > 0
        ),
        unreadable_rows AS (
            SELECT rr.delivery_id, rr.concern_id, rr.file_name, rr.source_row_number, 'read' AS stage,
                   rr.reason, NULL AS column_name, rr.detail, rr.raw_text AS raw_row
            FROM raw.rejected_rows AS rr
            JOIN audit.deliveries AS d ON d.delivery_id = rr.delivery_id AND d.status = 'current'
            WHERE rr.logical_file = '{file}'{concern_filter}
        )
        SELECT delivery_id, concern_id, file_name, source_row_number, 'validation' AS stage,
               broken.reason AS reason, broken.column_name AS column_name, broken.detail AS detail, raw_row
        FROM broken_rules
        UNION ALL
        SELECT {REJECT_COLUMNS} FROM unreadable_rows
        ORDER BY concern_id, file_name, source_row_number, reason"""


def _tables_exist(con, file: str) -> bool:
    return con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'staging' "
        "AND table_name IN (?, ?)", [file, f"{file}_rejects"]).fetchone()[0] == 2


def validate_file(con, schema: pa.DataFrameSchema, concerns: Sequence[str] | None = None) -> dict[str, int]:
    """Validate ``schema``'s file: all rows, or (``concerns``) only those concerns' rows.

    Returns the row counts of the tables; with ``concerns`` also rows deleted/inserted.
    """
    file = schema.name
    checked = f"checked_{file}"
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    incremental = concerns is not None and _tables_exist(con, file)
    if not incremental:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS {checked_rows_sql(schema)}")
        con.execute(f"CREATE OR REPLACE TABLE staging.{file} AS {_staging_select(schema, checked)}")
        con.execute(f"CREATE OR REPLACE TABLE staging.{file}_rejects AS {_rejects_select(file, checked, '')}")
        con.execute(f"DROP TABLE {checked}")
        changes = {}
    elif not concerns:
        changes = {"rows_deleted": 0, "rows_inserted": 0}
    else:
        in_list = sql_in_list(concerns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS "
                    f"SELECT * FROM ({checked_rows_sql(schema)}) AS c WHERE c.concern_id IN ({in_list})")
        con.begin()
        try:
            deleted = inserted = 0
            for table, select in ((file, _staging_select(schema, checked)),
                                  (f"{file}_rejects", _rejects_select(file, checked,
                                                                      f" AND rr.concern_id IN ({in_list})"))):
                deleted += con.execute(f"DELETE FROM staging.{table} WHERE concern_id IN ({in_list})").fetchone()[0]
                inserted += con.execute(f"INSERT INTO staging.{table} BY NAME {select}").fetchone()[0]
            con.commit()
        except BaseException:
            con.rollback()
            raise
        con.execute(f"DROP TABLE {checked}")
        changes = {"rows_deleted": deleted, "rows_inserted": inserted}
    loaded = con.execute(f"SELECT count(*) FROM staging.{file}").fetchone()[0]
    rejected = con.execute(f"SELECT count(DISTINCT (delivery_id, source_row_number)) FROM staging.{file}_rejects").fetchone()[0]
    return {"rows_loaded": loaded, "rows_quarantined": rejected, **changes}


def build_empty_staging(con) -> None:
    """Every staging table with its real columns and types, empty: the staging layer's own code
    run on no deliveries. For checks that must bind SQL before any data exists (the indicator
    catalogue) and for tests that fill staging tables by hand."""
    from rom_pipeline.defs.ingest.loader import ensure_tables
    from rom_pipeline.lib.sqlfiles import SqlModel
    from schemas.contract import FILES

    ensure_tables(con)
    for schema in FILES.values():
        validate_file(con, schema)
    for name in ("measurement_scoring", "measurement_scores"):
        SqlModel("staging", name).build(con)
