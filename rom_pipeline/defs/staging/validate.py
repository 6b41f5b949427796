"""Split the rows of one delivered file into ``staging.<file>`` (valid, typed) and ``staging.<file>_rejects``."""
from __future__ import annotations

import hashlib

import pandera.ibis as pa

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


def validate_file(con, schema: pa.DataFrameSchema) -> dict[str, int]:
    file = schema.name
    checked = f"checked_{file}"
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {checked} AS {checked_rows_sql(schema)}")
    order = ", ".join(f'"{k}"' for k in key_columns(schema)) or "source_row_number"
    con.execute(f"""
        CREATE OR REPLACE TABLE staging.{file} AS
        SELECT concern_id, delivery_id, source_row_number, {", ".join(staging_columns(schema))}
        FROM {checked} WHERE len(reasons) = 0
        ORDER BY concern_id, {order}""")
    con.execute(f"""
        CREATE OR REPLACE TABLE staging.{file}_rejects AS
        WITH broken_rules AS (
            SELECT delivery_id, concern_id, file_name, source_row_number, raw_row, unnest(reasons) AS broken
            FROM {checked} WHERE len(reasons) > 0
        ),
        unreadable_rows AS (
            SELECT rr.delivery_id, rr.concern_id, rr.file_name, rr.source_row_number, 'read' AS stage,
                   rr.reason, NULL AS column_name, rr.detail, rr.raw_text AS raw_row
            FROM raw.rejected_rows AS rr
            JOIN audit.deliveries AS d ON d.delivery_id = rr.delivery_id AND d.status = 'current'
            WHERE rr.logical_file = '{file}'
        )
        SELECT delivery_id, concern_id, file_name, source_row_number, 'validation' AS stage,
               broken.reason AS reason, broken.column_name AS column_name, broken.detail AS detail, raw_row
        FROM broken_rules
        UNION ALL
        SELECT {REJECT_COLUMNS} FROM unreadable_rows
        ORDER BY concern_id, file_name, source_row_number, reason""")
    con.execute(f"DROP TABLE {checked}")
    loaded = con.execute(f"SELECT count(*) FROM staging.{file}").fetchone()[0]
    rejected = con.execute(f"SELECT count(DISTINCT (delivery_id, source_row_number)) FROM staging.{file}_rejects").fetchone()[0]
    return {"rows_loaded": loaded, "rows_quarantined": rejected}
