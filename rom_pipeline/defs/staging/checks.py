"""The pandera contract as a blocking Dagster asset check on each staging table.

SQL checks (a query for the rows that break a rule) go through the one factory,
:func:`rom_pipeline.defs.checks.asset_check`.
"""

import copy
import os

import dagster as dg
import ibis
import pandera.errors
import pandera.ibis as pa

from rom_pipeline.lib.concern_scope import read_scope
from rom_pipeline.lib.concern_batches import batched
from rom_pipeline.lib.sqltext import in_list as sql_in_list
from rom_pipeline.lib.validation_sql import key_columns
from rom_pipeline.resources import Workspace
from schemas.contract import FILES


def staging_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """The contract schema as the staging table holds it.

    Staging holds every concern, and ids are unique only within a concern, so keys gain
    concern_id; a pseudonymised column carries its own name.
    """
    keys = key_columns(schema)
    staged = copy.deepcopy(schema)
    for key in keys:
        staged.columns[key].unique = False  # replaced by the per-concern key below
    staged.unique = None
    staged.checks = [*staged.checks, unique_together(keys if "concern_id" in keys else ["concern_id", *keys])]
    renames = {n: "client_pseudonym" for n, c in schema.columns.items() if (c.metadata or {}).get("pseudonymise")}
    return staged.rename_columns(renames) if renames else staged


def unique_together(columns: list[str]) -> pa.Check:
    """pandera's ``unique=columns`` as a table-level check counted by a GROUP BY.

    pandera's ibis backend counts every row's duplicates over a window partitioned by the key,
    which sorts every row: twice the time of a hash aggregate on item responses, the largest table
    (issue 11). Same rule; a failure names the columns.
    """
    def no_key_twice(data) -> ibis.expr.types.BooleanScalar:
        counts = data.table.group_by(columns).aggregate(rows=ibis._.count())
        return counts.rows.max().fill_null(0) <= 1

    return pa.Check(no_key_twice, name="multiple_fields_uniqueness",
                    error=f"columns {tuple(columns)} not unique")


# Rows one run of pandera reads at most (unless one concern alone has more): concerns are checked
# in batches up to this size, so the uniqueness count never holds more than one batch.
CHECK_BATCH_ROWS_ENV = "ROM_CHECK_BATCH_ROWS"
DEFAULT_CHECK_BATCH_ROWS = 10_000_000


def check_batch_rows() -> int:
    value = os.environ.get(CHECK_BATCH_ROWS_ENV, "")
    try:
        rows = int(value) if value else DEFAULT_CHECK_BATCH_ROWS
    except ValueError:
        raise ValueError(f"{CHECK_BATCH_ROWS_ENV}={value!r} is not a whole number of rows") from None
    if rows < 1:
        raise ValueError(f"{CHECK_BATCH_ROWS_ENV} must be at least 1, not {rows}")
    return rows


def rows_to_check(con, file: str) -> tuple[list[tuple[str | None, int]], str]:
    """(concern, rows) of the staging rows the pandera check reads tonight, and why.

    A delivery file's rows of a concern are written only when that concern is pending
    (:mod:`rom_pipeline.lib.concern_scope`); the other concerns' rows are the ones a previous
    night wrote and this check passed (it blocks publish, and a concern stays pending until a
    publish succeeds, so rows the check never passed are always checked again). Reading them
    again would only repeat a verdict on unchanged rows. Reference files are rebuilt whole
    every night and checked whole.
    """
    where, scope = "", "every row (full rebuild)"
    if file in FILES:
        pending = read_scope(con)
        if not pending.full:
            if not pending.concerns:
                return [], f"rows written tonight: none ({pending.describe()})"
            where = f"WHERE concern_id IN ({sql_in_list(pending.concerns)})"
            scope = f"rows written tonight: {pending.describe()}"
    counts = con.execute(f"SELECT concern_id, count(*) FROM staging.{file} {where} "
                         "GROUP BY concern_id ORDER BY concern_id NULLS FIRST").fetchall()
    return counts, scope


def failures_of(schema: pa.DataFrameSchema, table) -> list[str]:
    """What the schema finds wrong with an ibis table (empty: nothing)."""
    try:
        staging_schema(schema).validate(table, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return [f"{e.get('column')}: {e.get('check')}" for group in errors.message.values()
                for items in group.values() for e in items]
    return []


def check_staging_table(con, schema: pa.DataFrameSchema) -> tuple[list[str], int, str]:
    """(failures, rows validated, scope) of the pandera schema on ``staging.<file>``.

    In batches of whole concerns: every rule of the staging schema holds within a concern (its
    key is unique per concern), so a batch is checked completely on its own, and one run of
    pandera (its uniqueness window) holds one batch, not the table.
    """
    counts, scope = rows_to_check(con, schema.name)
    table = ibis.duckdb.from_connection(con.cursor()).table(schema.name, database="staging")
    failures: list[str] = []
    for batch in batched(dict(counts), check_batch_rows()):
        named = [c for c in batch if c is not None]
        condition = table.concern_id.isin(named) if named else None
        if None in batch:  # a row without a concern breaks the schema; it is checked too
            condition = table.concern_id.isnull() if condition is None else condition | table.concern_id.isnull()
        failures += [f for f in failures_of(schema, table.filter(condition)) if f not in failures]
    return failures, sum(rows for _, rows in counts), scope


def pandera_schema_check(schema: pa.DataFrameSchema) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["staging", schema.name]), name="pandera_contract", blocking=True,
        description=f"Blocking: staging.{schema.name} satisfies the contract's pandera schema "
                    "(validated in DuckDB through pandera's ibis backend, one concern at a time, "
                    "on the concerns whose rows were written tonight).",
    )
    def _check(workspace: Workspace) -> dg.AssetCheckResult:
        with workspace.connect() as con:
            failures, rows, scope = check_staging_table(con, schema)
        if failures:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={"failures": dg.MetadataValue.json(failures[:20]),
                                                 "rows_validated": rows, "scope": scope})
        return dg.AssetCheckResult(passed=True, metadata={"rows_validated": rows, "scope": scope})

    return _check
