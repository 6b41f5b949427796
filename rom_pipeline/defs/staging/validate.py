"""Split the rows of one delivered file into ``staging.<file>`` (valid, typed) and ``staging.<file>_rejects``.

The work is done one delivery at a time (a concern's current delivery, or the reference
inputs): each rule is decided within its delivery, so no query holds or sorts more than the
largest delivery's rows, and a concern's rows never depend on another concern's.
With ``concerns`` (an incremental night, :mod:`rom_pipeline.lib.concern_scope`) only
those concerns' rows are checked and replaced; without, both tables are rebuilt whole
(first run, full rebuild, reference files). Either way in one transaction.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import pandera.ibis as pa

from rom_pipeline.lib.sqltext import in_list as sql_in_list
from rom_pipeline.lib.sqltext import literal
from rom_pipeline.lib.validation_sql import checked_rows_sql, duplicate_keys_sql

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
    text = checked_rows_sql(schema) + (duplicate_keys_sql(schema) or "")
    return hashlib.sha256(text.encode()).hexdigest()


def _staging_select(schema: pa.DataFrameSchema, checked: str) -> str:
    # No ORDER BY: sorting every row of a file costs more than anything else here and nothing
    # downstream reads staging in table order. Rows land grouped by delivery (one insert each).
    return f"""
        SELECT concern_id, delivery_id, source_row_number, {", ".join(staging_columns(schema))}
        FROM {checked} WHERE len(reasons) = 0"""


def _rejects_select(file: str, checked: str, delivery_id: str) -> str:
    return f"""
        WITH broken_rules AS (
            SELECT delivery_id, concern_id, file_name, source_row_number, raw_row, unnest(reasons) AS broken
            FROM {checked} WHERE len(reasons) > 0
        ),
        unreadable_rows AS (
            SELECT rr.delivery_id, rr.concern_id, rr.file_name, rr.source_row_number, 'read' AS stage,
                   rr.reason, NULL AS column_name, rr.detail, rr.raw_text AS raw_row
            FROM raw.rejected_rows AS rr
            WHERE rr.logical_file = '{file}' AND rr.delivery_id = {literal(delivery_id)}
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


def current_deliveries(con, schema: pa.DataFrameSchema, concerns: Sequence[str] | None = None) -> list[str]:
    """The current deliveries whose rows ``schema``'s file is validated from (all, or of ``concerns``)."""
    from rom_pipeline.lib.concern_scope import REFERENCE_DELIVERY_ID

    if "concern_id" in schema.columns:  # a reference file: every concern's rows in one delivery
        wanted = [REFERENCE_DELIVERY_ID]
    else:
        wanted = None if concerns is None else list(concerns)
    rows = con.execute(
        "SELECT delivery_id, concern_id FROM audit.deliveries WHERE status = 'current' ORDER BY delivery_id"
    ).fetchall()
    if "concern_id" in schema.columns:
        return [d for d, _ in rows if d in wanted]
    return [d for d, c in rows if d != REFERENCE_DELIVERY_ID and (wanted is None or c in wanted)]


def _validate_delivery(con, schema: pa.DataFrameSchema, delivery_id: str) -> int:
    """Check one delivery's rows and append them to the staging and rejects tables; rows inserted."""
    file = schema.name
    checked, duplicates = f"checked_{file}", f"duplicate_keys_{file}"
    dup_sql = duplicate_keys_sql(schema, delivery_id)
    if dup_sql:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {duplicates} AS {dup_sql}")
    # The checked rows are a view, read once for the valid rows and once for the rejected ones, not
    # a temporary table: the whole file is validated in one transaction, and a dropped temporary
    # table's blocks are only freed at its commit, so at tier L (10 deliveries of 28 million item
    # rows) the spill folder held every delivery's checked rows at once: 13 GB, three times the
    # input (issue 11). Computing the rules twice cost no more CPU at tier M (29.8 -> 27.5 CPU-s).
    con.execute(f"CREATE OR REPLACE TEMP VIEW {checked} AS "
                f"{checked_rows_sql(schema, delivery_id, duplicates_table=duplicates)}")
    # Every join of the checking query has the delivery's rows on its left and a small table (the
    # delivery's duplicates, parents, lookups) on its right. DuckDB's estimate of a LEFT JOIN's
    # output after a subquery it expects to be empty collapses to a few rows, and it then builds
    # its hash tables on the delivery's rows (all their columns in memory): 3 times the CPU time and
    # 4 times the memory on item responses. The joins are kept as written instead.
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        inserted = con.execute(f"INSERT INTO staging.{file} BY NAME {_staging_select(schema, checked)}").fetchone()[0]
        inserted += con.execute(f"INSERT INTO staging.{file}_rejects BY NAME "
                                f"{_rejects_select(file, checked, delivery_id)}").fetchone()[0]
    finally:
        con.execute("RESET disabled_optimizers")
    con.execute(f"DROP VIEW {checked}")
    if dup_sql:
        con.execute(f"DROP TABLE {duplicates}")
    return inserted


def _create_empty(con, schema: pa.DataFrameSchema) -> None:
    """Both tables with their columns and types (the same SELECTs on no rows), replacing any old ones."""
    file = schema.name
    checked = f"checked_{file}"
    dup_sql = duplicate_keys_sql(schema, "")
    if dup_sql:
        con.execute(f"CREATE OR REPLACE TEMP TABLE duplicate_keys_{file} AS {dup_sql} LIMIT 0")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS "
                f"{checked_rows_sql(schema, '', duplicates_table=f'duplicate_keys_{file}')} LIMIT 0")
    con.execute(f"CREATE OR REPLACE TABLE staging.{file} AS {_staging_select(schema, checked)}")
    con.execute(f"CREATE OR REPLACE TABLE staging.{file}_rejects AS {_rejects_select(file, checked, '')}")
    con.execute(f"DROP TABLE {checked}")
    if dup_sql:
        con.execute(f"DROP TABLE duplicate_keys_{file}")


def validate_file(con, schema: pa.DataFrameSchema, concerns: Sequence[str] | None = None) -> dict[str, int]:
    """Validate ``schema``'s file: all rows, or (``concerns``) only those concerns' rows.

    One current delivery at a time, all in one transaction (a failure leaves both tables as they
    were). Returns the row counts of the tables; with ``concerns`` also rows deleted/inserted.
    """
    file = schema.name
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    incremental = concerns is not None and _tables_exist(con, file)
    changes: dict[str, int] = {}
    if incremental and not concerns:
        changes = {"rows_deleted": 0, "rows_inserted": 0}
    else:
        deliveries = current_deliveries(con, schema, concerns if incremental else None)
        con.begin()
        try:
            deleted = inserted = 0
            if incremental:
                in_list = sql_in_list(concerns)
                for table in (file, f"{file}_rejects"):
                    deleted += con.execute(
                        f"DELETE FROM staging.{table} WHERE concern_id IN ({in_list})").fetchone()[0]
            else:
                _create_empty(con, schema)
            for delivery_id in deliveries:
                inserted += _validate_delivery(con, schema, delivery_id)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        if incremental:
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
