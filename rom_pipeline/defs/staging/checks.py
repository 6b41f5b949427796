"""The pandera contract as a blocking Dagster asset check on each staging table.

SQL checks (a query for the rows that break a rule) go through the one factory,
:func:`rom_pipeline.defs.checks.asset_check`.
"""

import copy

import dagster as dg
import ibis
import pandera.errors
import pandera.ibis as pa

from rom_pipeline.lib.validation_sql import key_columns
from rom_pipeline.resources import Workspace


def staging_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """The contract schema as the staging table holds it.

    Staging holds every concern, and ids are unique only within a concern, so keys gain
    concern_id; a pseudonymised column carries its own name.
    """
    keys = key_columns(schema)
    staged = copy.deepcopy(schema)
    for key in keys:
        staged.columns[key].unique = False  # replaced by the per-concern key below
    staged.unique = keys if "concern_id" in keys else ["concern_id", *keys]
    renames = {n: "client_pseudonym" for n, c in schema.columns.items() if (c.metadata or {}).get("pseudonymise")}
    return staged.rename_columns(renames) if renames else staged


def pandera_schema_check(schema: pa.DataFrameSchema) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["staging", schema.name]), name="pandera_contract", blocking=True,
        description=f"Blocking: staging.{schema.name} satisfies the contract's pandera schema "
                    "(validated in DuckDB through pandera's ibis backend).",
    )
    def _check(workspace: Workspace) -> dg.AssetCheckResult:
        with workspace.connect() as con:
            rows = con.execute(f"SELECT count(*) FROM staging.{schema.name}").fetchone()[0]
            table = ibis.duckdb.from_connection(con.cursor()).table(schema.name, database="staging")
            if rows == 0:
                # pandera's ibis backend reports every column as failing on an empty table
                return dg.AssetCheckResult(passed=True, metadata={"rows_validated": 0})
            try:
                staging_schema(schema).validate(table, lazy=True)
            except pandera.errors.SchemaErrors as errors:
                failures = [f"{e.get('column')}: {e.get('check')}" for group in errors.message.values()
                            for items in group.values() for e in items][:20]
                return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                           metadata={"failures": dg.MetadataValue.json(failures)})
        return dg.AssetCheckResult(passed=True, metadata={"rows_validated": rows})

    return _check
